"""txregistry on S3: the classic command line against moto and Ceph RGW,
real clients, redirects and streaming, and several daemons on one bucket
sharing one PostgreSQL search index."""

import hashlib
import json
import threading

from tests.e2e import clients, oci
from tests.perf.registryclient import BlobData, RegistryClient, configBlob, imageManifest
from tests.s3.conftest import startOnS3


def client(daemon):
    return RegistryClient("127.0.0.1", daemon.port)


def test_classic_command_line_push_pull(s3, bucket, tmp_path):
    d = startOnS3(s3, bucket, tmp_path)
    try:
        assert "storage s3 at %s (bucket %s, prefix /registry)" % (s3.endpoint, bucket) in d.log()
        image = oci.buildImage(str(tmp_path / "img"), "v1", layers=3)
        multi = oci.buildMultiArch(str(tmp_path / "multi"), "m1")
        clients.push("oci:%s:v1" % (tmp_path / "img"), d, "team/app:v1")
        clients.push("oci:%s:m1" % (tmp_path / "multi"), d, "team/multi:m1", "--all")
        out = str(tmp_path / "out")
        clients.pull(d, "team/app:v1", "oci:%s:v1" % out)
        assert oci.resolve(out, "v1")["digest"] == image.manifestDigest
        assert set(image.blobDigests) <= oci.verifyBlobs(out)
        outm = str(tmp_path / "outm")
        clients.pull(d, "team/multi:m1", "oci:%s:m1" % outm, "--all")
        assert oci.resolve(outm, "m1")["digest"] == multi.indexDigest
        assert set(multi.blobDigests) <= oci.verifyBlobs(outm)
        assert clients.getJSON(d, "/v2/_catalog")["repositories"] == ["team/app", "team/multi"]
        found = clients.getJSON(d, "/v1/search?q=team")
        assert {r["name"] for r in found["results"]} == {"team/app", "team/multi"}
        # blob downloads are redirects to presigned URLs
        r = client(d).request("GET", "/v2/team/app/blobs/" + image.layerDigests[0])
        assert r.status == 307, r.status
        assert "X-Amz-Signature=" in r.header("location") and "X-Amz-Expires=1200" in r.header("location")
        # S3 connections are not logged one by one
        assert "_HTTP11ClientFactory" not in d.log()
    finally:
        d.stop()


def test_streaming_without_redirect_and_restart(s3, bucket, tmp_path):
    d = startOnS3(s3, bucket, tmp_path, STORAGE_REDIRECT="false")
    try:
        c = client(d)
        data = BlobData(37 * 1024 * 1024 + 123, seed=3)
        digest = c.pushBlobChunked("big/blob", data)
        assert c.pullBlob("big/blob", digest) == (data.size, digest)
        # an upload begun before a restart is continued after it
        location = c.startUpload("big/blob")
        part = BlobData(9 * 1024 * 1024 + 7, seed=4)
        h = hashlib.sha256()
        c.expect("PATCH", c.patchChunked(location, part.chunks(), h), 202)
        c.close()
    finally:
        d.stop()
    d = startOnS3(s3, bucket, tmp_path, port=d.port, STORAGE_REDIRECT="false")
    try:
        c = client(d)
        status = c.uploadStatus(location)
        assert status.status == 204 and status.header("range") == "0-%d" % (part.size - 1)
        rest = BlobData(6 * 1024 * 1024, seed=5)
        r = c.patchChunked(location, rest.chunks(), h, contentRange=(part.size, part.size + rest.size - 1))
        c.expect("PATCH", r, 202)
        digest2 = "sha256:" + h.hexdigest()
        c.finishUpload(location, digest2)  # verified by re-reading: the hash state died with the daemon
        assert c.pullBlob("big/blob", digest2) == (part.size + rest.size, digest2)
        assert c.pullBlob("big/blob", digest) == (data.size, digest)
    finally:
        d.stop()


def twoDaemons(s3, bucket, tmp_path, sharedIndex):
    """Two daemons on C{bucket} sharing the PostgreSQL index C{sharedIndex}
    (the fixture of tests/conftest.py)."""
    extra = {"SQLALCHEMY_INDEX_DATABASE": sharedIndex.url, "STORAGE_REDIRECT": "false"}
    a = startOnS3(s3, bucket, tmp_path, **extra)
    try:
        b = startOnS3(s3, bucket, tmp_path, **extra)
    except Exception:
        a.stop()
        raise
    return a, b


def pushImage(c, name, tag, description, layerSeed):
    layer = BlobData(3 * 1024 * 1024 + layerSeed, seed=layerSeed)
    layerDigest = c.pushBlobChunked(name, layer)
    config = configBlob()
    configDigest = c.pushBlobMonolithic(name, config)
    doc = json.loads(imageManifest(configDigest, len(config), [(layerDigest, layer.size)]))
    doc["annotations"] = {"org.opencontainers.image.description": description}
    body = json.dumps(doc).encode()
    c.putManifest(name, tag, body)
    return "sha256:" + hashlib.sha256(body).hexdigest(), layerDigest, layer.size


def test_several_daemons_one_bucket(s3, bucket, tmp_path, sharedIndex):
    a, b = twoDaemons(s3, bucket, tmp_path, sharedIndex)
    try:
        ca, cb = client(a), client(b)
        manifestDigest, layerDigest, size = pushImage(ca, "shop/cart", "1.0", "the shopping cart", 11)
        # pull and search through the other daemon
        r = cb.getManifest("shop/cart", "1.0")
        assert r.status == 200 and r.header("docker-content-digest") == manifestDigest
        assert cb.pullBlob("shop/cart", layerDigest) == (size, layerDigest)
        _, _, body = clients.request(b, "/v1/search?q=cart")
        assert [(x["name"], x["description"]) for x in json.loads(body)["results"]] == [
            ("shop/cart", "the shopping cart")]
        assert clients.getJSON(b, "/v2/_catalog")["repositories"] == ["shop/cart"]
        # one upload whose PATCHes alternate between the daemons
        location = ca.startUpload("shop/alternating")
        h = hashlib.sha256()
        offset = 0
        for i, (c, n) in enumerate([(ca, 7 * 1024 * 1024), (cb, 1000), (ca, 6 * 1024 * 1024 + 5), (cb, 12345)]):
            piece = BlobData(n, seed=20 + i)
            r = c.patchChunked(location, piece.chunks(), h, contentRange=(offset, offset + n - 1))
            c.expect("PATCH %d" % i, r, 202)
            offset += n
            assert r.header("range") == "0-%d" % (offset - 1)
        digest = "sha256:" + h.hexdigest()
        cb.finishUpload(location, digest)
        assert ca.pullBlob("shop/alternating", digest) == (offset, digest)
    finally:
        a.stop()
        b.stop()


def test_kill9_mid_push_then_retry_elsewhere(s3, bucket, tmp_path, sharedIndex):
    a, b = twoDaemons(s3, bucket, tmp_path, sharedIndex)
    try:
        ca, cb = client(a), client(b)
        committed = pushImage(ca, "safe/image", "v1", "committed before the crash", 31)
        big = BlobData(96 * 1024 * 1024, seed=32)
        location = ca.startUpload("crash/app")
        started = threading.Event()

        def chunks():
            for i, pieces in enumerate(big.chunks()):
                if i == 16:
                    started.set()
                yield pieces

        errors = []

        def push():
            try:
                ca.patchChunked(location, chunks())
            except Exception as e:
                errors.append(e)

        t = threading.Thread(target=push)
        t.start()
        assert started.wait(60)
        a.kill()
        t.join(60)
        # the client's retry goes to the other daemon, from the start
        digest = cb.pushBlobChunked("crash/app", big)
        assert digest == big.digest()
        assert cb.pullBlob("crash/app", digest) == (big.size, digest)
        # nothing committed was lost
        manifestDigest, layerDigest, size = committed
        r = cb.getManifest("safe/image", "v1")
        assert r.status == 200 and r.header("docker-content-digest") == manifestDigest
        assert cb.pullBlob("safe/image", layerDigest) == (size, layerDigest)
        # the interrupted upload is not a blob, and can be cancelled
        r = cb.request("HEAD", "/v2/crash/app/blobs/sha256:" + "0" * 64)
        assert r.status == 404
        assert cb.cancelUpload(location).status == 204
    finally:
        a.stop()
        b.stop()
