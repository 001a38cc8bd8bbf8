"""oras-py (ORAS artifacts: files as layers of an OCI manifest) against a
live registry."""

import hashlib
import json
import os

import oras.oci
import oras.provider

from tests.e2e import clients


class Registry(oras.provider.Registry):
    """oras-py's client without its retry decorator: it would sleep 3 s
    and more before retrying a failed request, turning one registry error
    into a minute-long test and hiding the first failure."""

    do_request = oras.provider.Registry.do_request.__wrapped__


def orasFor(daemon):
    return Registry(hostname=daemon.host, insecure=True, auth_backend="basic")


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def writeFiles(directory, files):
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, data in files.items():
        path = directory / name
        path.write_bytes(data)
        paths.append(str(path))
    return paths


def test_pushPullFiles(registry, tmp_path):
    """Files pushed as an artifact come back with the same content; the
    manifest lists them by digest and title; the tag is listed."""
    client = orasFor(registry)
    files = {"readme.txt": b"hello from txregistry e2e\n", "payload.bin": os.urandom(300 * 1024)}
    paths = writeFiles(tmp_path / "in", files)
    target = "%s/e2e/artifact:v1" % (registry.host,)

    response = client.push(
        target, files=paths, disable_path_validation=True,
        manifest_annotations={"org.example.purpose": "e2e"}, quiet=True,
    )
    assert response.status_code == 201
    sent = response.request.body
    assert response.headers["Docker-Content-Digest"] == sha256(sent)
    location = response.headers.get("Location")
    assert location, "PUT manifest answered without Location"

    out = tmp_path / "out"
    pulledPaths = client.pull(target, outdir=str(out))
    assert sorted(os.path.basename(p) for p in pulledPaths) == sorted(files)
    for name, data in files.items():
        assert (out / name).read_bytes() == data

    manifest = client.get_manifest(target)
    assert manifest["annotations"] == {"org.example.purpose": "e2e"}
    layers = {layer["annotations"]["org.opencontainers.image.title"]: layer for layer in manifest["layers"]}
    for name, data in files.items():
        assert layers[name]["digest"] == sha256(data)
        assert layers[name]["size"] == len(data)
    # Served by digest too, byte for byte what was pushed.
    status, headers, body = clients.request(
        registry, "/v2/e2e/artifact/manifests/" + sha256(sent),
        headers={"Accept": oras.defaults.default_manifest_media_type},
    )
    assert status == 200
    assert body == sent
    assert headers["Content-Type"] == oras.defaults.default_manifest_media_type

    assert client.get_tags(target) == ["v1"]


def test_chunkedPush(registry, tmp_path):
    """oras's chunked upload: POST, PATCHes with Content-Range, PUT."""
    client = orasFor(registry)
    data = os.urandom(700 * 1024 + 3)
    paths = writeFiles(tmp_path / "in", {"big.bin": data})
    target = "%s/e2e/chunked:v1" % (registry.host,)
    client.push(target, files=paths, disable_path_validation=True, do_chunked=True, chunk_size=256 * 1024, quiet=True)

    out = tmp_path / "out"
    client.pull(target, outdir=str(out))
    assert (out / "big.bin").read_bytes() == data


def test_directoryArtifact(registry, tmp_path):
    """A directory is pushed as one tar+gzip layer and unpacked on pull."""
    client = orasFor(registry)
    files = {"a.txt": b"a" * 1000, "b.bin": os.urandom(50000)}
    writeFiles(tmp_path / "in" / "tree", files)
    target = "%s/e2e/tree:v1" % (registry.host,)
    client.push(target, files=[str(tmp_path / "in" / "tree")], disable_path_validation=True, quiet=True)

    out = tmp_path / "out"
    client.pull(target, outdir=str(out))
    for name, data in files.items():
        assert (out / "tree" / name).read_bytes() == data


def test_deleteTag(registry, tmp_path):
    """oras delete_tag: HEAD the tag for its digest, DELETE the manifest
    by digest, expect 202; the tag is then gone."""
    client = orasFor(registry)
    paths = writeFiles(tmp_path / "in", {"f.txt": b"to be deleted"})
    target = "%s/e2e/deleteme:v1" % (registry.host,)
    client.push(target, files=paths, disable_path_validation=True, quiet=True)
    client.push("%s/e2e/deleteme:keep" % (registry.host,), files=writeFiles(tmp_path / "in2", {"g.txt": b"kept"}),
                disable_path_validation=True, quiet=True)

    assert client.delete_tag(target, "v1") is True
    status, _, _ = clients.request(registry, "/v2/e2e/deleteme/manifests/v1", method="HEAD",
                                   headers={"Accept": oras.defaults.default_manifest_media_type})
    assert status == 404
    assert client.get_tags(target) == ["keep"]


def test_subjectAndReferrers(registry, registryKind, tmp_path):
    """An artifact whose manifest has a C{subject}: the registry says it
    processed it (OCI-Subject) and lists it under the subject's referrers
    (OCI Distribution Spec 1.1).  Distribution 2.8 predates 1.1: it only
    stores the manifest."""
    client = orasFor(registry)
    subjectTarget = "%s/e2e/signed:v1" % (registry.host,)
    response = client.push(subjectTarget, files=writeFiles(tmp_path / "img", {"app": b"the app"}),
                           disable_path_validation=True, quiet=True)
    subjectBytes = response.request.body
    subjectDigest = sha256(subjectBytes)
    subject = oras.oci.Subject(oras.defaults.default_manifest_media_type, subjectDigest, len(subjectBytes))

    response = client.push(
        "%s/e2e/signed:sig" % (registry.host,),
        files=writeFiles(tmp_path / "sig", {"signature.txt": b"signed, e2e"}),
        disable_path_validation=True, subject=subject, manifest_config="/dev/null:application/vnd.example.sig",
        quiet=True,
    )
    assert response.status_code == 201
    referrerBytes = response.request.body
    referrerDigest = sha256(referrerBytes)
    assert response.headers["Docker-Content-Digest"] == referrerDigest

    if registryKind == "distribution":
        return
    assert response.headers.get("OCI-Subject") == subjectDigest

    status, headers, body = clients.request(registry, "/v2/e2e/signed/referrers/" + subjectDigest)
    assert status == 200, body
    assert headers["Content-Type"].startswith("application/vnd.oci.image.index.v1+json")
    index = json.loads(body)
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [m["digest"] for m in index["manifests"]] == [referrerDigest]
    descriptor = index["manifests"][0]
    assert descriptor["size"] == len(referrerBytes)
    assert descriptor["mediaType"] == oras.defaults.default_manifest_media_type
    assert descriptor["artifactType"] == "application/vnd.example.sig"

    status, _, body = clients.request(
        registry, "/v2/e2e/signed/referrers/%s?artifactType=application/vnd.other" % (subjectDigest,))
    assert status == 200
    assert json.loads(body)["manifests"] == []
