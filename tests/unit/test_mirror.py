"""The mirror's parts on their own: configuration, routing, challenges,
and the teed blob fetch (BlobFetch) on the memory driver, fed by a stand-in
upstream response whose transport records pauses."""

import hashlib

import pytest
from twisted.internet.defer import Deferred, ensureDeferred, succeed
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http_headers import Headers

from txregistry import config
from txregistry.mirror import Mirror, fetch
from txregistry.mirror.settings import MirrorConfigError, UpstreamSettings, parseMirror
from txregistry.mirror.upstream import parseChallenge, retryAfter
from txregistry.registry import Registry, layout
from txregistry.storage.memory import MemoryDriver


def test_classicMirroringIsTheDefaultUpstream():
    s = parseMirror(None, {"source": "https://registry-1.docker.io", "source_index": "https://index.docker.io",
                           "tags_cache_ttl": 60}, "f.yml", "/")
    (u,) = s.upstreams
    assert (u.url, u.default, u.library, u.tagsTTL) == ("https://registry-1.docker.io", True, True, 60.0)
    assert s.route("alpine")[1] == "library/alpine"
    assert s.route("library/alpine")[1] == "library/alpine"
    assert s.route("bitnami/redis")[1] == "bitnami/redis"


def test_routesPrefixGlobDefault():
    s = parseMirror({"upstreams": [
        {"name": "hub", "url": "https://hub.example", "default": True},
        {"name": "quay", "url": "https://quay.example", "prefix": "quay"},
        {"name": "team", "url": "http://team.example:5000", "repositories": ["team/*"]},
    ]}, None, "f.yml", "/")
    assert [(u.name, r) for u, r in [s.route(n) for n in ("quay/coreos/etcd", "team/app", "alpine")]] == [
        ("quay", "coreos/etcd"), ("team", "team/app"), ("hub", "library/alpine")]
    local = parseMirror({"upstreams": [{"url": "https://quay.example", "prefix": "quay"}]}, None, "f", "/")
    assert local.route("mine/app") is None


@pytest.mark.parametrize("section, words", [
    ({"upstreams": [{"url": "ftp://x", "default": True}]}, "url must be an http(s) URL"),
    ({"upstreams": [{"url": "https://x"}]}, "needs exactly one of"),
    ({"upstreams": [{"url": "https://x", "default": True, "username": "u"}]}, "both username and password"),
    ({"upstreams": [{"url": "https://x", "default": True}, {"url": "https://y", "default": True}]},
     "more than one default"),
    ({"upstreams": [{"url": "https://x", "default": True, "tags_ttl": "long"}]}, "tags_ttl must be a number"),
    ({"upstreams": [{"url": "https://x", "default": True, "ca_bundle": "/nonexistent.pem"}]}, "cannot read"),
    ({"upstream": []}, "is not a key of mirrors"),
])
def test_badConfigurationIsOneLine(section, words):
    with pytest.raises(MirrorConfigError) as e:
        parseMirror(section, None, "f.yml", "/")
    assert words in str(e.value) and "\n" not in str(e.value)


def test_configLoadReadsMirroring(tmp_path):
    path = tmp_path / "c.yml"
    path.write_text("dev:\n  mirroring:\n    source: https://registry-1.docker.io\n    tags_cache_ttl: 10\n")
    s = config.load(configFile=str(path), environ={})
    assert "mirroring" not in s.ignoredKeys
    assert s.mirror.upstreams[0].tagsTTL == 10.0
    path.write_text("dev:\n  mirroring:\n    source: nope\n")
    with pytest.raises(config.ConfigError):
        config.load(configFile=str(path), environ={})


def test_challengesAndRetryAfter():
    scheme, params = parseChallenge(
        'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.docker.io/token", "service": "registry.docker.io",
                      "scope": "repository:library/alpine:pull"}
    assert parseChallenge('Basic realm="x"') == ("basic", {"realm": "x"})
    assert retryAfter(Headers({b"Retry-After": [b"30"]})) == 30
    assert retryAfter(Headers()) is None


class Transport:
    def __init__(self):
        self.paused = False
        self.pauses = 0
        self.stopped = False

    def pauseProducing(self):
        self.paused = True
        self.pauses += 1

    def resumeProducing(self):
        self.paused = False

    def stopProducing(self):
        self.stopped = True


class Response:
    def __init__(self, length):
        self.code = 200
        self.length = length
        self.headers = Headers()
        self.protocol = None
        self.transport = Transport()

    def deliverBody(self, protocol):
        self.protocol = protocol
        protocol.makeConnection(self.transport)


class Client:
    settings = UpstreamSettings(name="up", url="http://up.example", default=True)

    def __init__(self, response):
        self.response = response

    def request(self, method, path, remote, accept=None):
        return succeed(self.response)


def startFetch(data, digest=None):
    registry = Registry(MemoryDriver(), Clock(), None)
    response = Response(len(data))
    digest = digest or "sha256:" + hashlib.sha256(data).hexdigest()
    from txregistry.digest import parse

    f = fetch.BlobFetch(Client(response), registry.blobs, registry.uploads, registry.driver, "lib/app", "lib/app",
                        parse(digest), None, Clock())
    done = ensureDeferred(f.run())
    return registry, response, f, done


def test_teeHoldsBackTheLastByteUntilVerifiedAndPausesASlowReader():
    data = bytes(range(256)) * (64 * 1024)  # 16 MiB
    registry, response, f, done = startFetch(data)
    assert f.whenStarted().result == len(data)
    reader = f.join("lib/app")
    chunk = 64 * 1024
    for i in range(0, len(data), chunk):
        response.protocol.dataReceived(data[i:i + chunk])
        assert len(f.buf) <= fetch.HIGH + chunk  # bounded by the slow reader
        if response.transport.paused:
            break
    assert response.transport.pauses == 1  # the reader read nothing: the upstream is paused
    got = []
    while len(b"".join(got)) < len(data) - 1:
        d = reader.read(1024 * 1024)
        if not d.called:
            # Everything buffered was read: the upstream was resumed.
            assert not response.transport.paused
            i = f.received
            response.protocol.dataReceived(data[i:i + chunk * 16])
            if f.received == len(data):
                response.protocol.connectionLost(Failure(ResponseDone()))
        got.append(d.result if d.called else None)
        got = [g for g in got if g is not None]
    assert b"".join(got) == data[:-1] or b"".join(got) == data
    last = reader.read(10)
    assert last.called
    rest = last.result
    assert b"".join(got) + rest == data
    assert reader.read(10).result == b""
    assert done.called
    stored = registry.driver.getContent(layout.blobData(f.digest))
    assert stored.result == data


def test_wrongBytesFailTheReaderAndLeaveNothing():
    data = b"x" * 100000
    registry, response, f, done = startFetch(data, "sha256:" + hashlib.sha256(b"other").hexdigest())
    reader = f.join("lib/app")
    response.protocol.dataReceived(data)
    first = reader.read(1000000)
    assert len(first.result) == len(data) - 1  # the last byte waits for the digest
    pending = reader.read(10)
    assert not pending.called
    response.protocol.connectionLost(Failure(ResponseDone()))
    assert done.called
    errors = []
    pending.addErrback(errors.append)
    assert errors and errors[0].check(fetch.BlobMismatch)
    missing = []
    registry.driver.stat(layout.blobData(f.digest)).addErrback(missing.append)
    assert missing
    missing = []
    registry.driver.list(layout.uploadsDir("lib/app")).addCallbacks(lambda x: missing.append(x) if x else None,
                                                                    lambda e: None)
    assert not missing


def test_pushRefusal():
    s = parseMirror({"upstreams": [{"url": "https://quay.example", "prefix": "quay"}]}, None, "f", "/")
    m = Mirror(s, Registry(MemoryDriver(), Clock(), None), Clock())
    assert m.refusal("uploadStart", "POST", "quay/x").code == "UNSUPPORTED"
    assert m.refusal("manifest", "PUT", "quay/x").code == "UNSUPPORTED"
    assert m.refusal("manifest", "GET", "quay/x") is None
    assert m.refusal("manifest", "DELETE", "quay/x") is None
    assert m.refusal("manifest", "PUT", "mine/x") is None


def test_aWaiterThatGoesAwayDoesNotBreakTheFetch():
    data = b"y" * 5000
    registry = Registry(MemoryDriver(), Clock(), None)
    response = Response(len(data))
    answer = Deferred()

    class Later(Client):
        def request(self, method, path, remote, accept=None):
            return answer

    from txregistry.digest import parse

    f = fetch.BlobFetch(Later(response), registry.blobs, registry.uploads, registry.driver, "lib/app", "lib/app",
                        parse("sha256:" + hashlib.sha256(data).hexdigest()), None, Clock())
    done = ensureDeferred(f.run())
    gone, staying = f.whenStarted(), f.whenStarted()
    gone.addErrback(lambda _: None)
    gone.cancel()  # (the client disconnected while the upstream had not answered)
    answer.callback(response)
    assert staying.result == len(data)
    reader = f.join("lib/app")
    response.protocol.dataReceived(data)
    response.protocol.connectionLost(Failure(ResponseDone()))
    assert done.called and done.result is None
    assert f.whenDone().called
    assert reader.read(10000).result == data
