"""Request bodies cannot be used to fill the daemon's memory.

- With logins on, every request with a body is judged when its headers
  arrive (login, permission, read-only mode, declared length) and answered
  at once, before any of the body is read and without a ``100 Continue``;
  only a caller who may make the request is told to send its body.
- The bodies held in memory (manifests, token forms) are bounded all
  together (``limits.max_body_memory``): one that does not fit is answered
  429 at its headers.
- So is the number of connections (``limits.max_connections``): one over
  it is answered 503 and closed.

Each check sends only a request head (or part of a body) over a raw socket
and waits, with a deadline, for the answer: before these bounds, such a
request waited for its whole body.
"""

import hashlib
import json
import os
import shutil
import signal
import socket
import time

import pytest

from tests.hostile import rawhttp
from tests.support import procs, secure
from tests.support.required import missing

ANSWER_WITHIN = 5.0  # seconds: "at once", with room for a loaded machine
MIB = 1024 * 1024


def basicAuth(user, password):
    import base64

    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def head(method, target, length, headers=(), expect=True):
    """A request head declaring a body of C{length} bytes (chunked if
    C{None}), asking for ``100 Continue`` if C{expect}."""
    headers = list(headers)
    if length is None:
        headers.append(("Transfer-Encoding", "chunked"))
    else:
        headers.append(("Content-Length", str(length)))
    if expect:
        headers.append(("Expect", "100-continue"))
    return rawhttp.request(method, target, headers, close=False)


class Held:
    """A connection that sent C{data} and keeps the rest of its body."""

    def __init__(self, port, data):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=ANSWER_WITHIN)
        self.sock.sendall(data)
        self.raw = b""

    def interim(self):
        """The first response line (``HTTP/1.1 100 Continue`` or the final
        status line), or None if nothing came in time."""
        self.sock.settimeout(ANSWER_WITHIN)
        try:
            while b"\r\n\r\n" not in self.raw:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.raw += chunk
        except socket.timeout:
            return None
        return self.raw.split(b"\r\n", 1)[0] if self.raw else None

    def response(self, method=b"PUT"):
        reader = rawhttp._Reader(self.sock, time.monotonic() + ANSWER_WITHIN)
        reader.buf = self.raw
        reader.raw = self.raw
        return rawhttp.readResponse(reader, method)

    def close(self):
        self.sock.close()


def answeredAtOnce(port, data, method=b"PUT"):
    """The response to C{data} (a head whose body is never sent), and
    whether a ``100 Continue`` came first."""
    held = Held(port, data)
    try:
        r = held.response(method)
    except rawhttp.NoResponse as e:
        pytest.fail("no answer within %s s without the body: %s" % (ANSWER_WITHIN, e))
    finally:
        held.close()
    return r, b" 100 " in r.raw.split(b"\r\n", 1)[0]


def errorCode(r):
    return json.loads(r.body)["errors"][0]["code"]


def rss(pid):
    return procs.processStats(pid)["VmRSS"]


def _secureRegistry(tmp_path_factory, mode):
    if shutil.which("htpasswd") is None:
        missing("htpasswd (apache2-utils) is not installed")
    d = secure.startSecure(tmp_path_factory.mktemp("bodies-" + mode), mode=mode, tls=False)
    yield d
    d.stop()


@pytest.fixture(scope="module")
def basicRegistry(tmp_path_factory):
    yield from _secureRegistry(tmp_path_factory, "basic")


@pytest.fixture(scope="module")
def bearerRegistry(tmp_path_factory):
    yield from _secureRegistry(tmp_path_factory, "bearer")


LIMITED = """\
limited:
    storage: local
    loglevel: info
    limits:
        max_manifest_size: 1048576
        max_body_memory: 2097152
        max_connections: 20
"""


@pytest.fixture
def limitedRegistry(tmp_path):
    path = tmp_path / "config.yml"
    path.write_text(LIMITED)
    d = procs.startTxregistry(str(tmp_path / "data"), str(tmp_path), args=("--config", str(path), "--flavor", "limited"))
    yield d
    d.stop()


REFUSED_WITHOUT_LOGIN = [
    ("PUT", "/v2/alice/app/manifests/1.0", 4 * MIB),
    ("PUT", "/v2/alice/app/manifests/1.0", None),
    ("GET", "/v2/", MIB),
    ("DELETE", "/v2/alice/app/manifests/1.0", MIB),
    ("POST", "/v2/alice/app/blobs/uploads/?digest=sha256:" + "0" * 64, 4 * MIB),
    ("POST", "/v2/alice/app/blobs/uploads/", MIB),
]


@pytest.mark.parametrize("method,target,length", REFUSED_WITHOUT_LOGIN)
def test_no_login_is_answered_at_the_headers(basicRegistry, method, target, length):
    r, continued = answeredAtOnce(basicRegistry.port, head(method, target, length), method.encode())
    assert r.status == 401, r
    assert errorCode(r) == "UNAUTHORIZED"
    assert not continued, "100 Continue sent to a caller without a login"


@pytest.mark.parametrize("authorization,status", [
    (basicAuth("alice", "wrong-password"), 401),  # a wrong password
    (basicAuth("bob", secure.PASSWORDS["bob"]), 403),  # bob may only pull alice/*
])
def test_a_caller_who_may_not_push_gets_no_100_continue(basicRegistry, authorization, status):
    data = head("PUT", "/v2/alice/app/manifests/1.0", 4 * MIB, [("Authorization", authorization)])
    r, continued = answeredAtOnce(basicRegistry.port, data)
    assert r.status == status, r
    assert not continued


def test_a_caller_who_may_push_is_told_to_continue(basicRegistry):
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": 2,
                   "digest": "sha256:" + hashlib.sha256(b"{}").hexdigest()},
        "layers": [],
    }).encode()
    data = head("PUT", "/v2/alice/app/manifests/1.0", len(manifest), [
        ("Authorization", basicAuth("alice", secure.PASSWORDS["alice"])),
        ("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
    ])
    held = Held(basicRegistry.port, data)
    try:
        assert held.interim() == b"HTTP/1.1 100 Continue"
        held.raw = held.raw.split(b"\r\n\r\n", 1)[1]
        held.sock.sendall(manifest)
        r = held.response()
    finally:
        held.close()
    # The body was read and judged: its config blob was never pushed.
    assert r.status == 400 and errorCode(r) == "MANIFEST_BLOB_UNKNOWN", r


def test_token_form_is_bounded(bearerRegistry):
    data = head("POST", "/auth/token", 4 * MIB, [("Content-Type", "application/x-www-form-urlencoded")])
    r, continued = answeredAtOnce(bearerRegistry.port, data, b"POST")
    assert r.status == 413, r
    assert not continued


def test_many_bodies_without_login_hold_no_memory(basicRegistry):
    """The attack of the issue: connections without credentials, each
    sending part of a large manifest body and keeping the rest."""
    before = rss(basicRegistry.pid)
    part = b"x" * (512 * 1024)
    held = []
    try:
        for _ in range(100):
            h = Held(basicRegistry.port, head("PUT", "/v2/alice/app/manifests/1.0", 4 * MIB, expect=False))
            try:
                h.sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                pass  # answered and closed already
            held.append(h)
        statuses = []
        for h in held:
            try:
                statuses.append(h.response().status)
            except rawhttp.NoResponse:
                statuses.append(None)
        grown = rss(basicRegistry.pid) - before
    finally:
        for h in held:
            h.close()
    assert statuses == [401] * len(held)
    # Before: 100 x 512 KiB held until the whole 4 MiB arrived.
    assert grown < 20 * MIB, "the daemon grew by %d MiB" % (grown // MIB,)


def test_bodies_in_memory_share_a_budget(limitedRegistry):
    port = limitedRegistry.port
    target = "/v2/team/app/manifests/1.0"
    first = Held(port, head("PUT", target, MIB))
    second = Held(port, head("PUT", target, None))  # chunked: reserves the limit
    try:
        assert first.interim() == b"HTTP/1.1 100 Continue"
        assert second.interim() == b"HTTP/1.1 100 Continue"
        r, continued = answeredAtOnce(port, head("PUT", target, 1000))
        assert r.status == 429 and errorCode(r) == "TOOMANYREQUESTS", r
        assert r.header("retry-after") == b"1"
        assert not continued
        # Small bodies of other routes take nothing from it.
        r, _ = answeredAtOnce(port, rawhttp.request("GET", "/v2/", close=False), b"GET")
        assert r.status == 200
    finally:
        first.close()
        second.close()
    # The budget is given back when the requests are gone.
    deadline = time.monotonic() + ANSWER_WITHIN
    while True:
        h = Held(port, head("PUT", target, MIB))
        line = h.interim()
        h.close()
        if line == b"HTTP/1.1 100 Continue":
            break
        assert time.monotonic() < deadline, "the budget was not given back: %r" % (line,)
        time.sleep(0.05)  # polling interval


def test_connections_are_bounded(limitedRegistry):
    port = limitedRegistry.port
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(20)]
    try:
        # The server has accepted them all once one request on the last
        # answers.
        idle[-1].sendall(rawhttp.request("GET", "/v2/", close=False))
        assert rawhttp.readResponse(rawhttp._Reader(idle[-1], time.monotonic() + ANSWER_WITHIN), b"GET").status == 200
        r = rawhttp.exchange(port, rawhttp.request("GET", "/v2/"))
        assert r.status == 503 and errorCode(r) == "UNAVAILABLE", r
        assert r.header("retry-after") == b"1"
    finally:
        for s in idle:
            s.close()
    deadline = time.monotonic() + ANSWER_WITHIN
    while rawhttp.exchange(port, rawhttp.request("GET", "/v2/")).status != 200:
        assert time.monotonic() < deadline, "connections not counted out"
        time.sleep(0.05)  # polling interval
    assert "connections open (limits.max_connections): refused" in limitedRegistry.syncLog()


def test_read_only_refuses_bodies_at_the_headers(limitedRegistry):
    port = limitedRegistry.port
    os.kill(limitedRegistry.pid, signal.SIGUSR1)
    try:
        # The signal is handled asynchronously: poll with a bodyless delete.
        deadline = time.monotonic() + ANSWER_WITHIN
        while rawhttp.exchange(port, rawhttp.request("DELETE", "/v2/team/app/manifests/x")).status != 405:
            assert time.monotonic() < deadline, "read-only mode not on"
            time.sleep(0.05)  # polling interval
        r, continued = answeredAtOnce(port, head("PUT", "/v2/team/app/manifests/1.0", MIB))
        assert r.status == 405 and errorCode(r) == "UNSUPPORTED", r
        assert not continued
    finally:
        os.kill(limitedRegistry.pid, signal.SIGUSR2)
