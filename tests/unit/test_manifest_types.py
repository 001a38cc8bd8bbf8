"""Which manifests must carry their mediaType (Docker's), which may omit it
(OCI's)."""

import json

import pytest

from txregistry.errors import RegistryError
from txregistry.registry import manifests as M

D = "sha256:" + "a" * 64


def doc(config="application/vnd.oci.image.config.v1+json", layer="application/vnd.oci.image.layer.v1.tar",
        mediaType=None):
    out = {"schemaVersion": 2, "config": {"mediaType": config, "digest": D, "size": 1},
           "layers": [{"mediaType": layer, "digest": D, "size": 1}]}
    if mediaType:
        out["mediaType"] = mediaType
    return json.dumps(out).encode()


def index(child, mediaType=None):
    out = {"schemaVersion": 2, "manifests": [{"mediaType": child, "digest": D, "size": 1}]}
    if mediaType:
        out["mediaType"] = mediaType
    return json.dumps(out).encode()


DOCKER = dict(config="application/vnd.docker.container.image.v1+json",
              layer="application/vnd.docker.image.rootfs.diff.tar.gzip")


@pytest.mark.parametrize("body,contentType", [
    (doc(**DOCKER), M.DOCKER_MANIFEST),
    (doc(), M.DOCKER_MANIFEST),
    (doc(**DOCKER), "application/json"),
    (doc(**DOCKER), None),
    (doc(layer=DOCKER["layer"]), ""),
    (index(M.DOCKER_MANIFEST), M.DOCKER_LIST),
    (index(M.OCI_MANIFEST), M.DOCKER_LIST),
    (index(M.DOCKER_MANIFEST), "application/json"),
])
def test_dockerWithoutMediaTypeRefused(body, contentType):
    with pytest.raises(RegistryError) as e:
        M.parseManifest(body, contentType)
    assert (e.value.code, e.value.limit) == ("MANIFEST_INVALID", None)  # malformed, not too large
    assert "mediaType" in e.value.message


@pytest.mark.parametrize("body,contentType,mediaType", [
    (doc(**DOCKER, mediaType=M.DOCKER_MANIFEST), M.DOCKER_MANIFEST, M.DOCKER_MANIFEST),
    (doc(**DOCKER, mediaType=M.DOCKER_MANIFEST), "application/json", M.DOCKER_MANIFEST),
    (index(M.DOCKER_MANIFEST, M.DOCKER_LIST), M.DOCKER_LIST, M.DOCKER_LIST),
    (doc(), M.OCI_MANIFEST, M.OCI_MANIFEST),
    (doc(), None, M.OCI_MANIFEST),
    (doc(**DOCKER), M.OCI_MANIFEST, M.OCI_MANIFEST),  # the client said OCI: served as OCI
    (doc(**DOCKER, mediaType=M.OCI_MANIFEST), None, M.OCI_MANIFEST),
    (index(M.OCI_MANIFEST), "application/json", M.OCI_INDEX),
    (index(M.DOCKER_MANIFEST), M.OCI_INDEX, M.OCI_INDEX),
])
def test_accepted(body, contentType, mediaType):
    assert M.parseManifest(body, contentType).mediaType == mediaType
    # What is stored is served as the type it was accepted as.
    assert M.mediaTypeOf(body) == mediaType
