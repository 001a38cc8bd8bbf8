"""The wire as the specs say, over real sockets to a ``twistd`` daemon:
``Host`` (RFC 9112 3.2) and the public URL, conditional requests (RFC 9110
13), ``Accept`` with q=0, manifest references that are no tag nor digest,
Docker manifests without their ``mediaType``, and a ``PATCH`` whose
``Content-Range`` disagrees with its body."""

import hashlib
import json
import os

import pytest

from tests.hostile import rawhttp
from tests.hostile.checks import Env, LogCursor, isErrorEnvelope
from tests.perf.registryclient import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, RegistryClient, configBlob
from tests.support import secure

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
NAME = "wire/app"


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Target:
    def __init__(self, daemon, env=None):
        self.daemon = daemon
        self.env = env
        self.port = daemon.port
        self.cursor = LogCursor(daemon)

    def send(self, method, target, headers=(), body=b"", **kw):
        data = rawhttp.request(method, target, headers, body, **kw)
        return rawhttp.exchange(self.port, data)

    def client(self):
        return RegistryClient("127.0.0.1", self.port, timeout=30)

    def seed(self):
        client = self.client()
        try:
            self.layer = os.urandom(2048) + b"wire-layer"
            self.layerDigest = client.pushBlobMonolithic(NAME, self.layer)
            self.config = configBlob()
            self.configDigest = client.pushBlobMonolithic(NAME, self.config)
            self.manifest = json.dumps({
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": self.configDigest, "size": len(self.config)},
                "layers": [{"mediaType": OCI_LAYER, "digest": self.layerDigest, "size": len(self.layer)}],
            }).encode()
            r = client.putManifest(NAME, "v1", self.manifest)
            assert r.status == 201, r.body
            self.manifestDigest = sha(self.manifest)
        finally:
            client.close()

    def checkLog(self):
        problems = self.cursor.problems()
        assert not problems, problems


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    env = Env(tmp_path_factory.mktemp("wire"))
    daemon = env.start()
    t = Target(daemon, env)
    try:
        t.seed()
        yield t
        t.checkLog()
    finally:
        daemon.stop()


def refused400(r):
    assert r.status == 400, r
    assert isErrorEnvelope(r.body), r
    assert r.header("docker-distribution-api-version") == b"registry/2.0"


# --- Host (RFC 9112 3.2) -------------------------------------------------------

def test_requestWithoutHostIs400(target):
    refused400(target.send("GET", "/v2/", host=None))
    refused400(target.send("GET", "/v2/%s/manifests/v1" % NAME, host=None))


def test_twoHostsAre400(target):
    refused400(target.send("GET", "/v2/", [("Host", "127.0.0.1"), ("Host", "evil.example")]))


@pytest.mark.parametrize("value", ["", "a b", "a/b", "user@host", "h\xe9", "a:b", 'x"y', "a:1:2", ":80"])
def test_invalidHostIs400(target, value):
    refused400(target.send("GET", "/v2/", [("Host", value)]))


def test_validHostsServed(target):
    for value in ("127.0.0.1", "127.0.0.1:%d" % target.port, "registry.example", "[::1]:5000", "Reg-1.example:"):
        r = target.send("GET", "/v2/", [("Host", value)])
        assert r.status == 200, (value, r)


def test_http10WithoutHostServed(target):
    # Host is optional in HTTP/1.0 (old health checks send none).
    r = target.send("GET", "/v2/", host=None, version=b"HTTP/1.0")
    assert r.status == 200, r
    refused400(target.send("GET", "/v2/", [("Host", "a"), ("Host", "b")], version=b"HTTP/1.0"))


def test_refusedHostWritesNoUpload(target):
    # An upload body behind two Host lines is refused before it is routed.
    client = target.client()
    try:
        location = client.startUpload(NAME)
    finally:
        client.close()
    r = target.send("PATCH", location, [("Host", "a"), ("Host", "b"), ("Content-Type", "application/octet-stream")],
                    b"x" * 1000)
    refused400(r)
    r = target.send("GET", location)
    assert (r.status, r.header("range")) == (204, b"0-0"), r


# --- conditional requests (RFC 9110 13) ----------------------------------------

def manifestPath():
    return "/v2/%s/manifests/v1" % NAME


def blobPath(target):
    return "/v2/%s/blobs/%s" % (NAME, target.layerDigest)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_manifestIfNoneMatch(target, method):
    etag = '"%s"' % target.manifestDigest
    for value in (etag, "*", "W/" + etag, '"other", ' + etag, ' "a" , W/"b",' + etag):
        r = target.send(method, manifestPath(), [("If-None-Match", value)])
        assert r.status == 304, (value, r)
        assert r.body == b""
        assert r.header("etag") == etag.encode()
        assert r.header("docker-content-digest") == target.manifestDigest.encode()
    r = target.send(method, manifestPath(), [("If-None-Match", '"other"')])
    assert r.status == 200, r
    r = target.send(method, "/v2/%s/manifests/%s" % (NAME, target.manifestDigest), [("If-None-Match", etag)])
    assert r.status == 304, r


def test_manifestIfNoneMatchOfUnknownIs404(target):
    r = target.send("GET", "/v2/%s/manifests/nope" % NAME, [("If-None-Match", "*")])
    assert r.status == 404, r


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_blobIfNoneMatch(target, method):
    etag = '"%s"' % target.layerDigest
    for value in (etag, "*", "W/" + etag, '"a", ' + etag):
        r = target.send(method, blobPath(target), [("If-None-Match", value)])
        assert r.status == 304, (value, r)
        assert r.body == b""
        # A 304's Content-Length, if any, is that of the 200 (RFC 9110 8.6).
        assert r.header("content-length") in (None, b"%d" % len(target.layer))
    r = target.send(method, blobPath(target), [("If-None-Match", '"sha256:other"')])
    assert r.status == 200, r


def test_ifRange(target):
    etag = '"%s"' % target.layerDigest
    r = target.send("GET", blobPath(target), [("Range", "bytes=0-9"), ("If-Range", etag)])
    assert (r.status, r.body) == (206, target.layer[:10]), r
    for value in ('"sha256:other"', "W/" + etag, "Wed, 21 Oct 2015 07:28:00 GMT", "junk"):
        r = target.send("GET", blobPath(target), [("Range", "bytes=0-9"), ("If-Range", value)])
        assert (r.status, r.body) == (200, target.layer), (value, r.status)
        assert r.header("content-range") is None
    r = target.send("HEAD", blobPath(target), [("Range", "bytes=0-9"), ("If-Range", '"x"')])
    assert (r.status, r.header("content-length")) == (200, b"%d" % len(target.layer)), r


# --- Accept with q=0 -------------------------------------------------------------

def test_acceptQZeroIsNotAcceptable(target):
    for accept in (OCI_MANIFEST + ";q=0", OCI_MANIFEST + ";q=0, */*", "*/*;q=0", OCI_MANIFEST + "; q=0.000"):
        r = target.send("GET", manifestPath(), [("Accept", accept)])
        assert r.status == 404, (accept, r)
        assert json.loads(r.body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    for accept in (OCI_MANIFEST + ";q=0.5", DOCKER_MANIFEST + ";q=0, " + OCI_MANIFEST, "*/*"):
        r = target.send("GET", manifestPath(), [("Accept", accept)])
        assert r.status == 200, (accept, r)


# --- references that are no tag nor digest -----------------------------------------

@pytest.mark.parametrize("reference", ["sha256:totallywrong", "md5:abc", "-bad", "a" * 129, "%2e%2e", "x:y"])
def test_invalidReferenceIsUnknown(target, reference):
    for method in ("GET", "HEAD"):
        r = target.send(method, "/v2/%s/manifests/%s" % (NAME, reference))
        assert r.status == 404, (method, reference, r)
        if method == "GET":
            assert json.loads(r.body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    r = target.send("PUT", "/v2/%s/manifests/%s" % (NAME, reference), [("Content-Type", OCI_MANIFEST)],
                    target.manifest)
    assert r.status == 400, r
    assert json.loads(r.body)["errors"][0]["code"] in ("TAG_INVALID", "DIGEST_INVALID")


# --- the public URL ------------------------------------------------------------------

def startBearer(tmp_path, env=None):
    conf = str(tmp_path / "conf")
    path = secure.writeConfig(conf, "bearer")
    e = Env(tmp_path)
    return e.start(args=("--config", path, "--flavor", "secure"), env=env)


def challenge(daemon, hosts):
    r = rawhttp.exchange(daemon.port, rawhttp.request("GET", "/v2/alice/app/tags/list", [("Host", h) for h in hosts]))
    return r


def test_realmNeverFromASecondHost(tmp_path):
    daemon = startBearer(tmp_path)
    try:
        r = challenge(daemon, ["127.0.0.1:%d" % daemon.port, "evil.example"])
        refused400(r)
        assert r.header("www-authenticate") is None
        r = challenge(daemon, ["registry.example:5000"])
        assert r.status == 401, r
        assert b'realm="http://registry.example:5000/auth/token"' in r.header("www-authenticate"), r
    finally:
        daemon.stop()


def test_publicURLForRealmAndLocation(tmp_path):
    daemon = startBearer(tmp_path, env={"REGISTRY_PUBLIC_URL": "https://Registry.Example.com/"})
    try:
        r = challenge(daemon, ["evil.example"])
        assert r.status == 401, r
        assert b'realm="https://registry.example.com/auth/token"' in r.header("www-authenticate"), r
        token = json.loads(rawhttp.exchange(daemon.port, rawhttp.request(
            "GET", "/auth/token?service=txregistry&scope=repository:alice/app:pull,push",
            [("Authorization", _basic("alice"))])).body)["token"]
        r = rawhttp.exchange(daemon.port, rawhttp.request(
            "POST", "/v2/alice/app/blobs/uploads/", [("Authorization", "Bearer " + token), ("Host", "evil.example")]))
        assert r.status == 202, r
        assert r.header("location").startswith(b"https://registry.example.com/v2/alice/app/blobs/uploads/"), r
    finally:
        daemon.stop()


def _basic(user):
    import base64

    return "Basic " + base64.b64encode(("%s:%s" % (user, secure.PASSWORDS[user])).encode()).decode()


# --- Docker manifests without their mediaType ------------------------------------------

def dockerManifest(target, mediaType=True, configType=DOCKER_CONFIG, layerType=DOCKER_LAYER):
    doc = {
        "schemaVersion": 2,
        "config": {"mediaType": configType, "digest": target.configDigest, "size": len(target.config)},
        "layers": [{"mediaType": layerType, "digest": target.layerDigest, "size": len(target.layer)}],
    }
    if mediaType:
        doc["mediaType"] = DOCKER_MANIFEST
    return json.dumps(doc).encode()


def put(target, reference, body, contentType):
    headers = [("Content-Type", contentType)] if contentType is not None else []
    return target.send("PUT", "/v2/%s/manifests/%s" % (NAME, reference), headers, body)


@pytest.mark.parametrize("contentType", [DOCKER_MANIFEST, "application/json", None])
def test_dockerManifestWithoutMediaTypeRefused(target, contentType):
    body = dockerManifest(target, mediaType=False)
    r = put(target, "nomedia", body, contentType)
    assert r.status == 400, r
    assert json.loads(r.body)["errors"][0]["code"] == "MANIFEST_INVALID"
    # Nothing was stored: neither the tag nor the revision.
    assert target.send("GET", "/v2/%s/manifests/nomedia" % NAME).status == 404
    assert target.send("GET", "/v2/%s/manifests/%s" % (NAME, sha(body))).status == 404


@pytest.mark.parametrize("contentType", [DOCKER_LIST, "application/json"])
def test_dockerListWithoutMediaTypeRefused(target, contentType):
    child = {"mediaType": DOCKER_MANIFEST if contentType == "application/json" else OCI_MANIFEST,
             "digest": target.manifestDigest, "size": len(target.manifest),
             "platform": {"architecture": "amd64", "os": "linux"}}
    body = json.dumps({"schemaVersion": 2, "manifests": [child]}).encode()
    r = put(target, "nomedialist", body, contentType)
    assert r.status == 400, r
    assert json.loads(r.body)["errors"][0]["code"] == "MANIFEST_INVALID"


def test_dockerAndOCIManifestsStillAccepted(target):
    # A Docker manifest that says what it is; OCI ones that omit mediaType
    # (allowed by the OCI image spec), also with a generic Content-Type.
    body = dockerManifest(target)
    r = put(target, "docker", body, DOCKER_MANIFEST)
    assert r.status == 201, r
    r = target.send("GET", "/v2/%s/manifests/docker" % NAME, [("Accept", DOCKER_MANIFEST)])
    assert (r.status, r.header("content-type")) == (200, DOCKER_MANIFEST.encode()), r
    oci = dockerManifest(target, mediaType=False, configType=OCI_CONFIG, layerType=OCI_LAYER)
    for contentType in (OCI_MANIFEST, "application/json"):
        r = put(target, "oci", oci, contentType)
        assert r.status == 201, (contentType, r)
    r = target.send("GET", "/v2/%s/manifests/oci" % NAME, [("Accept", OCI_MANIFEST)])
    assert (r.status, r.header("content-type")) == (200, OCI_MANIFEST.encode()), r


# --- a PATCH whose Content-Range disagrees with its body ------------------------------------

def chunked(data, pieces=3):
    out, step = b"", max(1, len(data) // pieces)
    for i in range(0, len(data), step):
        piece = data[i:i + step]
        out += b"%x\r\n%s\r\n" % (len(piece), piece)
    return out + b"0\r\n\r\n"


def patch(target, location, contentRange, body, chunk=False):
    headers = [("Content-Type", "application/octet-stream"), ("Content-Range", contentRange)]
    if chunk:
        headers.append(("Transfer-Encoding", "chunked"))
        body = chunked(body)
    return target.send("PATCH", location, headers, body)


def offset(target, location):
    r = target.send("GET", location)
    assert r.status == 204, r
    return int(r.header("range").split(b"-")[1]) + 1 if r.header("range") != b"0-0" else 0


def staged(target):
    return [os.path.join(d, f) for d, _, files in os.walk(target.env.storage) for f in files if f == "staged"]


@pytest.mark.parametrize("chunk", [False, True], ids=["content-length", "chunked"])
def test_contentRangeMismatchRefused(target, chunk):
    client = target.client()
    try:
        location = client.startUpload(NAME)
    finally:
        client.close()
    first, second = os.urandom(10), os.urandom(10)
    # A first chunk, as its range says.
    r = patch(target, location, "0-9", first, chunk)
    assert (r.status, r.header("range")) == (202, b"0-9"), r
    # Shorter and longer than the range: 416, and nothing of them stays.
    for body in (second[:4], second + b"extra-bytes"):
        r = patch(target, location, "10-19", body, chunk)
        assert r.status == 416, (body, r)
        assert isErrorEnvelope(r.body), r
        assert json.loads(r.body)["errors"][0]["code"] == "RANGE_INVALID"
        assert offset(target, location) == 10
        assert staged(target) == []
    # The right chunk still goes on, and the blob is what was meant.
    r = patch(target, location, "10-19", second, chunk)
    assert (r.status, r.header("range")) == (202, b"0-19"), r
    digest = sha(first + second)
    sep = "&" if "?" in location else "?"
    r = target.send("PUT", location + sep + "digest=" + digest)
    assert r.status == 201, r
    r = target.send("GET", "/v2/%s/blobs/%s" % (NAME, digest))
    assert (r.status, r.body) == (200, first + second)
    assert staged(target) == []
