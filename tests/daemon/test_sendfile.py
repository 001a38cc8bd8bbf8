"""Blob pulls copied by the kernel (os.sendfile) on a real daemon over
loopback: whole, ranged, HEAD, conditional; a slow reader (memory flat); a
client leaving half-way (the daemon keeps serving, no descriptor left
open); and over TLS, where the body goes through Python as before.  The
counter txregistry_blob_sendfile_bytes_total says which path was taken."""

import hashlib
import http.client
import os
import socket
import ssl
import time

import pytest

from tests.daemon.test_metrics import scrape, value
from tests.perf.registryclient import BlobData, RegistryClient
from tests.support import pki, procs

MiB = 1024 * 1024
SIZE = 64 * MiB
NAME = "zero/copy"
SENT = "txregistry_blob_sendfile_bytes_total"
BODY = "txregistry_http_response_body_bytes_total"


def start(tmp_path, tls=None):
    debugPort = procs.freePort()
    d = procs.startTxregistry(str(tmp_path / "data"), str(tmp_path), args=("--debug-port", str(debugPort)), tls=tls)
    d.debugURL = "http://127.0.0.1:%d" % (debugPort,)
    return d


@pytest.fixture(scope="module")
def pushed(tmp_path_factory):
    """A daemon on plain TCP holding a 64 MiB blob: (daemon, data, digest)."""
    tmp = tmp_path_factory.mktemp("sendfile")
    d = start(tmp)
    data = BlobData(SIZE, seed=11)
    c = RegistryClient("127.0.0.1", d.port)
    digest = c.pushBlobChunked(NAME, data)
    c.close()
    try:
        yield d, data, digest
    finally:
        d.stop()


def sendfileBytes(d):
    return value(scrape(d.debugURL), SENT)


def blobBytes(d):
    return value(scrape(d.debugURL), BODY, route="blob")


def get(port, path, headers=None, method="GET", context=None):
    """(status, headers, sha256 of the body, body length, first bytes)."""
    if context is None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    else:
        conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=60, context=context)
    conn.request(method, path, headers=headers or {})
    r = conn.getresponse()
    h = hashlib.sha256()
    size = 0
    head = b""
    while True:
        chunk = r.read(MiB)
        if not chunk:
            break
        if len(head) < 64:
            head += chunk[: 64 - len(head)]
        h.update(chunk)
        size += len(chunk)
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, "sha256:" + h.hexdigest(), size, head


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def fdCount(pid):
    return len(os.listdir("/proc/%d/fd" % (pid,)))


def rss(pid):
    return procs.processStats(pid)["VmRSS"]


def waitUntil(predicate, timeout=15):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)  # polling interval
    return True


def test_wholeBlobBySendfile(pushed):
    d, data, digest = pushed
    before, bodyBefore = sendfileBytes(d), blobBytes(d)
    status, headers, got, size, _ = get(d.port, "/v2/%s/blobs/%s" % (NAME, digest))
    assert (status, size, got) == (200, SIZE, digest)
    assert headers["content-length"] == str(SIZE)
    assert headers["docker-content-digest"] == digest
    assert sendfileBytes(d) - before == SIZE
    # request.sentLength is what sendfile sent: the response-body counter
    # (and the access log) count the body.
    assert blobBytes(d) - bodyBefore == SIZE


@pytest.mark.parametrize("spec,first,last", [
    ("bytes=0-0", 0, 0),
    ("bytes=1000-%d" % (10 * MiB + 5,), 1000, 10 * MiB + 5),
    ("bytes=%d-" % (SIZE - 12345,), SIZE - 12345, SIZE - 1),
    ("bytes=-100", SIZE - 100, SIZE - 1),
])
def test_rangeBySendfile(pushed, spec, first, last):
    d, data, digest = pushed
    before = sendfileBytes(d)
    status, headers, got, size, _ = get(d.port, "/v2/%s/blobs/%s" % (NAME, digest), {"Range": spec})
    assert status == 206
    assert headers["content-range"] == "bytes %d-%d/%d" % (first, last, SIZE)
    assert size == last - first + 1 == int(headers["content-length"])
    assert got == sha(data.bytes(first, last + 1))
    assert sendfileBytes(d) - before == size


def test_unsatisfiableRange(pushed):
    d, data, digest = pushed
    status, headers, _, _, _ = get(d.port, "/v2/%s/blobs/%s" % (NAME, digest), {"Range": "bytes=%d-" % (SIZE,)})
    assert status == 416
    assert headers["content-range"] == "bytes */%d" % (SIZE,)


def test_headAndNotModifiedSendNoBody(pushed):
    d, data, digest = pushed
    before = sendfileBytes(d)
    status, headers, _, size, _ = get(d.port, "/v2/%s/blobs/%s" % (NAME, digest), method="HEAD")
    assert (status, size, headers["content-length"]) == (200, 0, str(SIZE))
    status, headers, _, size, _ = get(d.port, "/v2/%s/blobs/%s" % (NAME, digest), {"If-None-Match": '"%s"' % digest})
    assert (status, size) == (304, 0)
    assert sendfileBytes(d) == before


def test_keepAliveAfterSendfile(pushed):
    """The next response on the connection follows the body, in order."""
    d, data, digest = pushed
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)
    for spec in ("bytes=0-99", "bytes=5-9", None):
        conn.request("GET", "/v2/%s/blobs/%s" % (NAME, digest), headers={"Range": spec} if spec else {})
        r = conn.getresponse()
        body = r.read()
        if spec is None:
            assert (r.status, sha(body)) == (200, digest)
        else:
            first, last = (int(x) for x in spec[6:].split("-"))
            assert (r.status, body) == (206, data.bytes(first, last + 1))
        assert not r.will_close
    conn.request("GET", "/v2/")
    assert conn.getresponse().status == 200
    conn.close()


def rawGet(port, path, rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(60)
    s.connect(("127.0.0.1", port))
    s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % (path.encode(),))
    return s


def test_slowReaderMemoryStaysFlat(pushed):
    """A client reading 64 KiB at a time with pauses: the daemon's RSS does
    not grow (the kernel waits for the socket), the body arrives whole."""
    d, data, digest = pushed
    idle = rss(d.pid)
    before = sendfileBytes(d)
    s = rawGet(d.port, "/v2/%s/blobs/%s" % (NAME, digest), rcvbuf=64 * 1024)
    received = bytearray()
    peak = idle
    h = hashlib.sha256()
    while b"\r\n\r\n" not in received:
        received += s.recv(65536)
    head, _, rest = bytes(received).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    h.update(rest)
    total = len(rest)
    slow = 8 * MiB
    while total < SIZE:
        chunk = s.recv(65536 if total < slow else MiB)
        assert chunk, "connection closed after %d bytes" % total
        h.update(chunk)
        total += len(chunk)
        if total < slow:
            time.sleep(0.002)  # the slow reader's pace
            peak = max(peak, rss(d.pid))
    s.close()
    assert "sha256:" + h.hexdigest() == digest
    assert peak - idle < 16 * MiB, "RSS grew from %d to %d" % (idle, peak)
    assert sendfileBytes(d) - before == SIZE


def test_clientLeavesHalfWay(pushed):
    """A client that reads 16 MiB and closes: the daemon stops sending,
    closes what it opened for the response, and keeps serving."""
    d, data, digest = pushed
    # One request first, so the descriptors a first request opens for good
    # (thread pools, log) are in the baseline.
    get(d.port, "/v2/")
    baseline = fdCount(d.pid)
    for reset in (False, True):
        s = rawGet(d.port, "/v2/%s/blobs/%s" % (NAME, digest))
        got = 0
        while got < 16 * MiB:
            chunk = s.recv(MiB)
            assert chunk
            got += len(chunk)
        if reset:  # an RST rather than a FIN
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        s.close()
        assert waitUntil(lambda: fdCount(d.pid) <= baseline), (
            "descriptors: %d before, %d now: %s" % (baseline, fdCount(d.pid), os.listdir("/proc/%d/fd" % d.pid)))
    status, _, got, size, _ = get(d.port, "/v2/%s/blobs/%s" % (NAME, digest))
    assert (status, size, got) == (200, SIZE, digest)
    assert d.proc.poll() is None


def test_tlsFallsBackToTheProducer(tmp_path):
    """Over TLS the kernel cannot send the file: the body goes through the
    transport (and is right), sendfile's counter stays at zero."""
    paths = pki.makePKI(str(tmp_path / "pki"))
    d = start(tmp_path, tls=paths)
    try:
        context = ssl.create_default_context(cafile=paths["ca"])
        body = BlobData(8 * MiB, seed=3).bytes()
        digest = sha(body)
        conn = http.client.HTTPSConnection("127.0.0.1", d.port, timeout=60, context=context)
        conn.request("POST", "/v2/%s/blobs/uploads/" % (NAME,))
        r = conn.getresponse()
        r.read()
        assert r.status == 202
        location = r.getheader("location")
        conn.request("PUT", location + ("&" if "?" in location else "?") + "digest=" + digest, body=body,
                     headers={"Content-Type": "application/octet-stream"})
        r = conn.getresponse()
        r.read()
        assert r.status == 201
        conn.close()
        path = "/v2/%s/blobs/%s" % (NAME, digest)
        status, _, got, size, _ = get(d.port, path, context=context)
        assert (status, size, got) == (200, len(body), digest)
        status, _, got, size, _ = get(d.port, path, {"Range": "bytes=10-2000000"}, context=context)
        assert (status, got) == (206, sha(body[10:2000001]))
        assert sendfileBytes(d) == 0
        assert blobBytes(d) == len(body) + 2000000 - 10 + 1
    finally:
        d.stop()
