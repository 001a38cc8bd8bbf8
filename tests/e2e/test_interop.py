"""txregistry and Distribution on the same storage directory: what one
wrote, the other serves, in both directions."""

import os

import pytest
from dxf import DXF

from tests.e2e import clients, oci
from tests.e2e.conftest import selectedKinds
from tests.e2e.test_skopeo import assertPulledImage, assertPulledMultiArch

# Distribution to Distribution is the reference: it checks the test.
DIRECTIONS = [
    pytest.param(first, second, id="%s-to-%s" % (first, second))
    for first, second in [("distribution", "txregistry"), ("txregistry", "distribution"), ("distribution", "distribution")]
    if {first, second} <= set(selectedKinds())
]


def putManifest(daemon, repo, reference, body, mediaType):
    status, headers, response = clients.request(
        daemon, "/v2/%s/manifests/%s" % (repo, reference), method="PUT",
        headers={"Content-Type": mediaType}, data=body,
    )
    assert status == 201, "PUT %s:%s -> %s %r" % (repo, reference, status, response[:2000])
    assert headers["Docker-Content-Digest"] == oci.sha256(body)


def getManifest(daemon, repo, reference, accept):
    status, headers, body = clients.request(
        daemon, "/v2/%s/manifests/%s" % (repo, reference), headers={"Accept": accept})
    assert status == 200, "GET %s:%s -> %s %r" % (repo, reference, status, body[:2000])
    return headers, body


@pytest.mark.parametrize("first,second", DIRECTIONS)
def test_sameStorage(daemons, storage, tmp_path, first, second):
    """C{first} is pushed a multi-layer image (two tags), a multi-arch
    index and a blob mounted into another repository, then stopped;
    C{second}, started on the same directory, serves all of it with the
    same digests, the same tags and the same catalog, and accepts new
    pushes on top of it."""
    single, multiDir = str(tmp_path / "single"), str(tmp_path / "multi")
    image = oci.buildImage(single, tag="v1", layers=3)
    multi = oci.buildMultiArch(multiDir, tag="multi")

    writer = daemons.start(first, storage)
    clients.push("oci:%s:v1" % (single,), writer, "interop/app:v1")
    putManifest(writer, "interop/app", "latest", image.manifest, oci.MANIFEST)
    clients.push("oci:%s:multi" % (multiDir,), writer, "interop/multi:multi", "--all")
    status, headers, _ = clients.request(
        writer, "/v2/interop/mounted/blobs/uploads/?mount=%s&from=interop/app" % (image.layerDigests[0],),
        method="POST", data=b"")
    assert status == 201, (status, headers)
    # A Docker schema-2 manifest (python-dxf makes those).
    dxfBlob = os.urandom(40000)
    dxfWriter = DXF(writer.host, "interop/dxf", insecure=True, timeout=30)
    dxfDigest = dxfWriter.push_blob(data=iter([dxfBlob]), digest=oci.sha256(dxfBlob))
    dxfManifest = dxfWriter.set_alias("docker", dxfDigest)
    writer.stop()

    reader = daemons.start(second, storage)
    out = str(tmp_path / "out")
    clients.pull(reader, "interop/app:v1", "oci:%s:v1" % (out,))
    assertPulledImage(out, "v1", image)
    outMulti = str(tmp_path / "outmulti")
    clients.pull(reader, "interop/multi:multi", "oci:%s:multi" % (outMulti,), "--all")
    assertPulledMultiArch(outMulti, "multi", multi)

    headers, body = getManifest(reader, "interop/app", "latest", oci.MANIFEST)
    assert body == image.manifest
    assert headers["Docker-Content-Digest"] == image.manifestDigest
    headers, body = getManifest(reader, "interop/multi", multi.indexDigest, oci.INDEX)
    assert body == multi.index
    assert headers["Content-Type"] == oci.INDEX
    for platformImage in multi.images:
        _, body = getManifest(reader, "interop/multi", platformImage.manifestDigest, oci.MANIFEST)
        assert body == platformImage.manifest

    status, headers, body = clients.request(reader, "/v2/interop/mounted/blobs/" + image.layerDigests[0])
    assert status == 200
    assert oci.sha256(body) == image.layerDigests[0]
    status, _, _ = clients.request(reader, "/v2/interop/mounted/blobs/" + image.layerDigests[1], method="HEAD")
    assert status == 404, "a blob not linked into the repository must not be served from it"

    dxfReader = DXF(reader.host, "interop/dxf", insecure=True, timeout=30)
    assert dxfReader.get_manifest("docker") == dxfManifest
    assert dxfReader.get_alias("docker") == [dxfDigest]
    assert b"".join(dxfReader.pull_blob(dxfDigest)) == dxfBlob

    clients.assertTags(reader, "interop/app", ["latest", "v1"])
    clients.assertTags(reader, "interop/multi", ["multi"])
    assert clients.getJSON(reader, "/v2/_catalog") == {
        "repositories": ["interop/app", "interop/dxf", "interop/mounted", "interop/multi"]
    }

    # The second registry writes on top of the first one's data: a tag
    # over existing blobs (every HEAD finds them), then a delete.
    putManifest(reader, "interop/app", "again", image.manifest, oci.MANIFEST)
    status, _, _ = clients.request(reader, "/v2/interop/multi/manifests/" + multi.indexDigest, method="DELETE")
    assert status == 202
    reader.stop()

    # And back to the first.
    again = daemons.start(first, storage)
    headers, body = getManifest(again, "interop/app", "again", oci.MANIFEST)
    assert body == image.manifest
    clients.assertTags(again, "interop/app", ["again", "latest", "v1"])
    status, _, _ = clients.request(again, "/v2/interop/multi/manifests/multi", method="HEAD",
                                   headers={"Accept": oci.INDEX})
    assert status == 404
    for platformImage in multi.images:
        _, body = getManifest(again, "interop/multi", platformImage.manifestDigest, oci.MANIFEST)
        assert body == platformImage.manifest
