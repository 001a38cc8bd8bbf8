"""The docker CLI (through podman's Docker API) pushes to and pulls from
txregistry on S3, started with the classic S3 command line, against both
real S3 servers of the suite: moto's, and Ceph's RADOS Gateway (which
verifies signatures and presigned URLs, and refuses chunked bodies).

A layer larger than the driver's multipart part size goes up in one
chunked PATCH: the S3 server's own request log shows the multipart upload
and the C{.partial} side object it took.  Blobs come back as 307 redirects
to presigned S3 URLs, or streamed through the daemon with
STORAGE_REDIRECT=false; ``docker search`` answers from the SQL index.  Two
daemons on one bucket with one PostgreSQL index, behind a relay that plays
load balancer, serve one push between them."""

import hashlib
import json
import time
import urllib.error
import urllib.request
import uuid

import pytest

from tests.docker.test_docker_push import localImage, pushedDigest
from tests.docker.test_docker_search import searchRows
from tests.docker.wiretap import WireTap
from tests.support import procs
from txregistry.storage.s3 import PART_SIZE, PARTIAL_SUFFIX

MiB = 1024 * 1024
PREFIX = "/registry/docker/registry/v2"
DESCRIPTION = "pushed by the docker CLI to txregistry on S3"


@pytest.fixture(params=["moto", "rgw"])
def s3(request):
    return request.getfixturevalue("motoServer" if request.param == "moto" else "rgwServer")


@pytest.fixture
def bucket(s3):
    """A fresh, empty bucket for one test."""
    return s3.createBucket("txr-docker-" + uuid.uuid4().hex[:12])


def poll(check, what, timeout=20.0):
    """C{check()} until it returns something true; returns that."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("still not %s after %ss" % (what, timeout))
        time.sleep(0.05)  # polling interval


def getManifest(registry, repository, reference):
    request = urllib.request.Request(
        "%s/v2/%s/manifests/%s" % (registry.url, repository, reference),
        headers={"Accept": "application/vnd.docker.distribution.manifest.v2+json, "
                           "application/vnd.oci.image.manifest.v1+json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.read()


def searchReady(registry):
    """Whether the daemon's search index answers from a complete index (it
    is rebuilt from the bucket at start when empty; meanwhile it answers
    from the rows so far, saying so in a header)."""
    try:
        with urllib.request.urlopen(registry.url + "/v1/search?q=x", timeout=5) as response:
            return response.status == 200 and response.headers.get("Txregistry-Search-Index") != "rebuilding"
    except urllib.error.HTTPError as e:
        if e.code != 503:
            raise
        return False


def blobGets(requests):
    """C{{digest: status}} of the blob GETs in access-log C{requests}."""
    return {path.rsplit("/", 1)[1]: status for method, path, status in requests
            if method == "GET" and "/blobs/sha256:" in path}


def assertPulled(cli, ref, built, repository, digest):
    """The engine holds C{ref} as the image C{built}, pushed as C{digest}."""
    info = cli.inspect(ref)
    assert info["Id"] == built.configDigest
    assert info["RootFS"]["Layers"] == built.diffIDs
    assert "%s@%s" % (repository, digest) in info["RepoDigests"], info["RepoDigests"]
    assert ref in info["RepoTags"] or ref.endswith(digest)


def blobKey(digest):
    """The key of a blob's data in the bucket (Distribution's layout)."""
    algorithm, hexa = digest.split(":")
    return "%s/blobs/%s/%s/%s/data" % (PREFIX, algorithm, hexa[:2], hexa)


def bucketState(s3, bucket):
    """The keys in C{bucket} and the multipart uploads in progress."""
    client = s3.client()
    keys = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys += [o["Key"] for o in page.get("Contents", [])]
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return keys, [u["Key"] for u in uploads]


def uploadRequests(s3, bucket, repository):
    """The S3 requests for the upload data of C{repository}, by upload:
    C{{upload id: [(method, what, status)]}}, what being C{data} or
    C{data.partial} with the names in its query (C{data?uploads},
    C{data?partNumber=2&uploadId})."""
    out = {}
    uploads = "%s/repositories/%s/_uploads/" % (PREFIX, repository)
    for method, path, status in s3.requests(bucket):
        key, _, query = path.partition("?")
        if not key.startswith(uploads):
            continue
        upload, _, name = key[len(uploads):].partition("/")
        if name not in ("data", "data" + PARTIAL_SUFFIX):
            continue
        names = "&".join(x if x.startswith("partNumber=") else x.split("=")[0] for x in query.split("&") if x)
        out.setdefault(upload, []).append((method, name + ("?" + names if names else ""), status))
    return out


def loggedUploads(s3, bucket, repository, count):
    """L{uploadRequests} once the S3 server has logged the end of C{count}
    uploads (radosgw logs a request a little after answering it)."""
    def ended():
        seen = uploadRequests(s3, bucket, repository)
        # An upload ends when its data, moved to the blob's key, is deleted.
        done = [r for r in seen.values() if r[-1] == ("DELETE", "data", 204)]
        return seen if len(done) >= count else None

    seen = poll(ended, "logged by the S3 server")
    assert len(seen) == count, seen
    return seen


def assertMultipartThroughPartial(seen, blobs, rereads):
    """What the S3 server saw of the uploads of C{blobs} (descriptors): a
    blob larger than a part (and smaller than two) became a multipart upload
    whose first part was stored during the PATCH, with the rest in the
    C{.partial} side object until the PUT made it the last part; a smaller
    one went through the side object alone.  With C{rereads}, the daemon
    that completed each upload read its data back to verify the digest (it
    lacked the running hash)."""
    big = [d for d in blobs if d["size"] > PART_SIZE]
    assert all(d["size"] < 2 * PART_SIZE for d in big)
    multipart = [r for r in seen.values() if ("POST", "data?uploads", 200) in r]
    assert len(multipart) == len(big), seen
    for requests in seen.values():
        writes = [r for r in requests if r[0] in ("PUT", "POST")]
        if requests in multipart:
            start = writes.index(("POST", "data?uploads", 200))
            # The PATCH: a multipart upload, its first part, the rest in the
            # side object; the PUT ?digest=: the side object read back, the
            # rest sent as the last part, the upload completed.
            assert writes[start:] == [
                ("POST", "data?uploads", 200),
                ("PUT", "data?partNumber=1&uploadId", 200),
                ("PUT", "data" + PARTIAL_SUFFIX, 200),
                ("PUT", "data?partNumber=2&uploadId", 200),
                ("POST", "data?uploadId", 200),
            ], requests
        else:
            assert ("PUT", "data" + PARTIAL_SUFFIX, 200) in writes and writes[-1] == ("PUT", "data", 200), requests
            assert not [r for r in requests if "upload" in r[1]], requests
        assert ("GET", "data" + PARTIAL_SUFFIX, 200) in requests, requests
        # Then the side object is deleted, the data (read back to verify the
        # digest, or not) copied to the blob's key and deleted.
        reread = [("GET", "data", 200)] if rereads else []  # (from the start: no Range)
        assert requests[-2 - len(reread):] == [("DELETE", "data" + PARTIAL_SUFFIX, 204)] + reread + [
            ("DELETE", "data", 204)], requests


def assertS3Answered(s3, bucket):
    """Every request the S3 server logged for C{bucket} succeeded, or was a
    404: no refused signature (403), no chunked body refused (411), no
    server error that a retry hid."""
    failed = [r for r in s3.requests(bucket) if not (200 <= r[2] < 300 or r[2] == 404)]
    assert failed == [], failed


def test_pushPullSearch(cli, registries, s3, bucket, tmp_path):
    """docker push of a multi-layer image, docker pull by tag and by digest
    (blobs by presigned redirect, then streamed), docker search."""
    registry = registries.startOnS3(s3, bucket, name="redirect")
    assert "storage s3 at %s (bucket %s, prefix /registry)" % (s3.endpoint, bucket) in registry.log()
    built = localImage(cli, tmp_path, "localhost/txr-s3:1", layerSizes=(PART_SIZE + 8 * MiB, 256 * 1024),
                       label=DESCRIPTION)
    repository = "%s/s3/app" % (registry.host,)
    ref = repository + ":1"
    cli.docker("tag", "localhost/txr-s3:1", ref)

    mark = registry.access.mark()
    digest, size = pushedDigest(cli.docker("push", ref).stdout)
    got = registry.access.requests(mark)
    assert [s for m, _, s in got if m == "PATCH"] == [202] * 3, got
    assert got[-1] == ("PUT", "/v2/s3/app/manifests/1", 201)

    # The bucket holds what docker pushed, and no upload is left over.
    body = getManifest(registry, "s3/app", "1")
    assert "sha256:" + hashlib.sha256(body).hexdigest() == digest and len(body) == size
    manifest = json.loads(body)
    blobs = manifest["layers"] + [manifest["config"]]
    assert manifest["config"]["digest"] == built.configDigest
    assert max(d["size"] for d in manifest["layers"]) > PART_SIZE
    keys, inProgress = bucketState(s3, bucket)
    for d in blobs:
        head = s3.client().head_object(Bucket=bucket, Key=blobKey(d["digest"]).lstrip("/"))
        assert head["ContentLength"] == d["size"]
    assert inProgress == [] and [k for k in keys if "/_uploads/" in k or k.endswith(PARTIAL_SUFFIX)] == [], keys
    assertMultipartThroughPartial(loggedUploads(s3, bucket, "s3/app", len(blobs)), blobs, rereads=False)

    # Pull by tag: every blob is a redirect to a presigned URL, which the
    # S3 server honours.
    cli.removeAllImages()
    mark = registry.access.mark()
    cli.docker("pull", ref)
    got = registry.access.requests(mark)
    assert ("GET", "/v2/s3/app/manifests/1", 200) in got
    assert blobGets(got) == {d["digest"]: 307 for d in blobs}
    assertPulled(cli, ref, built, repository, digest)

    def presignedGets():
        fetched = {path.split("?")[0]: status for method, path, status in s3.requests(bucket)
                   if method == "GET" and "X-Amz-Signature=" in path}
        return fetched if len(fetched) == len(blobs) else None

    assert poll(presignedGets, "fetched from S3") == {blobKey(d["digest"]): 200 for d in blobs}

    # Pull by digest.
    cli.removeAllImages()
    mark = registry.access.mark()
    cli.docker("pull", "%s@%s" % (repository, digest))
    got = registry.access.requests(mark)
    assert ("GET", "/v2/s3/app/manifests/%s" % (digest,), 200) in got
    assert set(blobGets(got).values()) == {307}
    assertPulled(cli, "%s@%s" % (repository, digest), built, repository, digest)

    # docker search: the index was updated by the push.
    assert searchRows(cli, "%s/app" % (registry.host,)) == [(repository, DESCRIPTION, "0")]

    # The same bucket through a daemon that streams blobs, with a new
    # (empty) search index: rebuilt from the bucket at start.
    registry = registries.startOnS3(s3, bucket, name="streaming", STORAGE_REDIRECT="false")
    poll(lambda: searchReady(registry), "searchable")
    assert "search index rebuilt from storage: 1 repositories" in registry.log()
    assert searchRows(cli, "%s/app" % (registry.host,)) == [(repository, DESCRIPTION, "0")]
    for pulled in (ref, "%s@%s" % (repository, digest)):
        cli.removeAllImages()
        mark = registry.access.mark()
        cli.docker("pull", pulled)
        assert blobGets(registry.access.requests(mark)) == {d["digest"]: 200 for d in blobs}
        assertPulled(cli, pulled, built, repository, digest)
    assertS3Answered(s3, bucket)


def test_twoDaemonsOneBucket(cli, registries, podmanHost, s3, bucket, sharedIndex, tmp_path):
    """Two daemons on one bucket sharing a PostgreSQL index, behind a relay
    on the engine's trusted port: pushed through one, pulled and searched
    through the other (which never saw the push); then one push whose
    uploads are begun and completed on one daemon and written on the
    other."""
    shared = {"SQLALCHEMY_INDEX_DATABASE": sharedIndex.url}
    a = registries.startOnS3(s3, bucket, name="a", port=procs.freePort(), **shared)
    b = registries.startOnS3(s3, bucket, name="b", port=procs.freePort(), STORAGE_REDIRECT="false", **shared)
    send = {"to": lambda method: a}  # which daemon a request goes to

    def route(method, target):
        return send["to"](method).port

    try:
        relay = WireTap(podmanHost.port, route=route)
    except OSError:  # the trusted port was taken meanwhile
        podmanHost.restart(procs.freePort())
        relay = WireTap(podmanHost.port, route=route)
    try:
        host = podmanHost.registryHost
        built = localImage(cli, tmp_path, "localhost/txr-two:1", layerSizes=(64 * 1024, 32 * 1024),
                           label="the first image")
        repository = "%s/two/app" % (host,)
        cli.docker("tag", "localhost/txr-two:1", repository + ":1")
        markB = b.access.mark()
        digest, _ = pushedDigest(cli.docker("push", repository + ":1").stdout)
        assert b.access.requests(markB) == []

        # Through B alone, which streams the blobs from the bucket.
        send["to"] = lambda method: b
        cli.removeAllImages()
        markA, markB = a.access.mark(), b.access.mark()
        for pulled in (repository + ":1", "%s@%s" % (repository, digest)):
            cli.docker("pull", pulled)
            assertPulled(cli, pulled, built, repository, digest)
            cli.removeAllImages()
        assert searchRows(cli, "%s/two" % (host,)) == [(repository, "the first image", "0")]
        assert a.access.requests(markA) == []
        got = b.access.requests(markB)
        assert ("GET", "/v2/two/app/manifests/1", 200) in got
        assert ("GET", "/v2/two/app/manifests/%s" % (digest,), 200) in got
        assert set(blobGets(got).values()) == {200}

        # PATCHes to B, everything else to A: A begins each upload, B
        # writes it (a multipart part, the rest in the side object), A
        # completes it without the running hash, which stayed on B.
        send["to"] = lambda method: b if method == "PATCH" else a
        big = localImage(cli, tmp_path, "localhost/txr-two-big:1", layerSizes=(PART_SIZE + 3 * MiB, 128 * 1024),
                         label="the second image")
        bigRepository = "%s/two/big" % (host,)
        cli.docker("tag", "localhost/txr-two-big:1", bigRepository + ":1")
        markA, markB = a.access.mark(), b.access.mark()
        bigDigest, _ = pushedDigest(cli.docker("push", bigRepository + ":1").stdout)
        onA, onB = a.access.requests(markA), b.access.requests(markB)
        assert [(m, s) for m, _, s in onB] == [("PATCH", 202)] * 3, onB
        assert [s for m, p, s in onA if m == "PUT" and "/blobs/uploads/" in p] == [201] * 3, onA
        assert onA[-1] == ("PUT", "/v2/two/big/manifests/1", 201)
        manifest = json.loads(getManifest(a, "two/big", "1"))
        blobs = manifest["layers"] + [manifest["config"]]
        assertMultipartThroughPartial(loggedUploads(s3, bucket, "two/big", len(blobs)), blobs, rereads=True)

        # Pulled back through B; both repositories are found through A.
        send["to"] = lambda method: b
        cli.removeAllImages()
        cli.docker("pull", bigRepository + ":1")
        assertPulled(cli, bigRepository + ":1", big, bigRepository, bigDigest)
        send["to"] = lambda method: a
        assert searchRows(cli, "%s/two" % (host,)) == [
            (bigRepository, "the second image", "0"), (repository, "the first image", "0")]
        assertS3Answered(s3, bucket)
    finally:
        relay.stop()
