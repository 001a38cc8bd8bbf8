"""python-dxf (a requests-based registry client) against a live registry:
blobs and the schema-2 manifests it makes for them."""

import hashlib
import json
import os

import pytest
import requests
from dxf import DXF, DXFBase

from tests.e2e import oci


def dxfFor(daemon, repo):
    return DXF(daemon.host, repo, insecure=True, timeout=30)


def pulled(client, digest):
    # pull_blob's iterator checks the digest itself as it ends.
    return b"".join(client.pull_blob(digest))


def test_blobs(registry, tmp_path):
    """push_blob from a file and from chunks; pull_blob, blob_size, and
    pushing again finds the blob already there."""
    client = dxfFor(registry, "e2e/dxf")
    small = os.urandom(1000)
    big = os.urandom(3 * 1024 * 1024 + 7)
    path = tmp_path / "big.bin"
    path.write_bytes(big)

    bigDigest = client.push_blob(str(path))
    assert bigDigest == oci.sha256(big)
    chunks = [small[i : i + 100] for i in range(0, len(small), 100)]
    smallDigest = client.push_blob(data=iter(chunks), digest=oci.sha256(small))
    assert smallDigest == oci.sha256(small)

    assert pulled(client, bigDigest) == big
    assert pulled(client, smallDigest) == small
    assert client.blob_size(bigDigest) == len(big)
    assert client.blob_size(smallDigest) == len(small)
    it, size = client.pull_blob(bigDigest, size=True, chunk_size=65536)
    assert size == len(big)
    assert hashlib.sha256(b"".join(it)).hexdigest() == bigDigest.split(":")[1]

    # Already there: push_blob HEADs first and uploads nothing.
    assert client.push_blob(str(path)) == bigDigest

    missing = oci.sha256(b"never pushed")
    with pytest.raises(requests.HTTPError) as e:
        client.blob_size(missing)
    assert e.value.response.status_code == 404


def test_aliases(registry, tmp_path):
    """set_alias makes and puts a Docker schema-2 manifest over the blobs;
    get_alias, get_digest, get_manifest and list_aliases read it back."""
    client = dxfFor(registry, "e2e/dxf")
    blobs = [os.urandom(50000 + i) for i in range(3)]
    digests = []
    for i, blob in enumerate(blobs):
        path = tmp_path / ("blob%d" % i)
        path.write_bytes(blob)
        digests.append(client.push_blob(str(path)))

    manifest = client.set_alias("first", *digests)
    client.set_alias("second", digests[2])

    assert client.get_alias("first") == digests
    assert client.get_alias("first", sizes=True) == [(d, len(b)) for d, b in zip(digests, blobs)]
    assert client.get_alias("second") == [digests[2]]
    # dxf uses the first blob as the config.
    assert client.get_digest("first") == digests[0]
    assert client.get_manifest("first") == manifest
    assert json.loads(manifest)["mediaType"] == "application/vnd.docker.distribution.manifest.v2+json"

    # The registry names the manifest by the digest of the exact bytes.
    body, response = client.get_manifest_and_response("first")
    assert response.headers["Docker-Content-Digest"] == oci.sha256(manifest.encode())
    assert response.headers["Content-Type"] == "application/vnd.docker.distribution.manifest.v2+json"
    digest, head = client.head_manifest_and_response("first")
    assert digest == oci.sha256(manifest.encode())
    assert int(head.headers["Content-Length"]) == len(manifest.encode())

    assert sorted(client.list_aliases()) == ["first", "second"]
    assert sorted(client.list_aliases(batch_size=1)) == ["first", "second"]

    for d, blob in zip(digests, blobs):
        assert pulled(client, d) == blob

    # The catalog, through DXFBase.
    base = DXFBase(registry.host, insecure=True, timeout=30)
    assert base.list_repos() == ["e2e/dxf"]


def test_delAliasAndBlob(registry, tmp_path):
    """del_alias deletes the manifest by digest; del_blob deletes a blob."""
    client = dxfFor(registry, "e2e/dxfdel")
    path = tmp_path / "blob"
    path.write_bytes(os.urandom(20000))
    digest = client.push_blob(str(path))
    client.set_alias("gone", digest)

    assert client.del_alias("gone") == [digest]
    with pytest.raises(requests.HTTPError) as e:
        client.get_alias("gone")
    assert e.value.response.status_code == 404

    client.del_blob(digest)
    with pytest.raises(requests.HTTPError) as e:
        client.blob_size(digest)
    assert e.value.response.status_code == 404


def test_mountBlob(registry, tmp_path):
    """mount_blob: a blob of one repository appears in another with
    201 and Docker-Content-Digest."""
    source = dxfFor(registry, "e2e/source")
    path = tmp_path / "blob"
    data = os.urandom(30000)
    path.write_bytes(data)
    digest = source.push_blob(str(path))

    target = dxfFor(registry, "e2e/target")
    assert target.mount_blob("e2e/source", digest) == digest
    assert pulled(target, digest) == data
