"""Slow and silent clients are cut off.

The idle timeout defaults to 300 s and the slow-client limits to 30-60 s,
too long for a test; these tests run a daemon with ``limits: idle_timeout:
2`` and short slow-client limits (a config file flavor) and measure how long
the server keeps each kind of dead connection open.  The times seen are
printed (``pytest -s``).

- a connection that sends nothing; a request line and then nothing; half a
  header block; a whole request then silence on a keep-alive connection;
  headers and part of a body: each is closed within the idle timeout (plus a
  little), and an upload whose body stopped halfway is released (its status
  answers at once and it can be resumed);
- a client trickling a header byte now and then, each within the idle
  timeout, is cut off too (a slowloris would otherwise hold a connection
  for ever): limits.header_timeout;
- so is one trickling a request body (limits.min_body_rate over
  body_rate_window), and the upload it fed is released; a body that is
  slow but above the rate is not cut off;
- and a client that stops reading a large response (limits.send_timeout).
"""

import hashlib
import os
import select
import socket
import time

import pytest

from tests.hostile import rawhttp
from tests.hostile.checks import Env, LogCursor, pushAndPull
from tests.perf.registryclient import RegistryClient

IDLE = 2  # seconds: limits.idle_timeout of the daemon under test
HEAD = 4  # limits.header_timeout
RATE = 1024  # limits.min_body_rate (bytes/s) ...
WINDOW = 4  # ... over limits.body_rate_window seconds
SEND = 2  # limits.send_timeout
SLACK = 2.0  # seconds the server may take beyond a limit
CONFIG = """\
hostile:
    storage: local
    loglevel: info
    search_backend: none
    limits:
        idle_timeout: %d
        header_timeout: %d
        min_body_rate: %d
        body_rate_window: %d
        send_timeout: %d
""" % (IDLE, HEAD, RATE, WINDOW, SEND)


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    env = Env(tmp_path_factory.mktemp("timeouts"))
    config = os.path.join(env.logs, "config.yml")
    with open(config, "w") as f:
        f.write(CONFIG)
    d = env.start(args=("--config", config, "--flavor", "hostile"))
    d.env = env
    try:
        yield d
    finally:
        d.stop()


def _connect(daemon):
    s = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
    s.setblocking(False)
    return s


def _watch(socks, limit):
    """Wait until each socket is closed by the server (EOF or reset), at
    most C{limit} seconds from now; returns {key: (seconds or None, bytes
    received)} with seconds measured from when each key's last byte was
    sent (C{socks}: key -> (socket, time of the last byte sent))."""
    start = time.monotonic()
    pending = dict(socks)
    result = {key: (None, b"") for key in socks}
    while pending and time.monotonic() - start < limit:
        ready, _, _ = select.select([s for s, _ in pending.values()], [], [], 0.2)
        for key, (s, sentAt) in list(pending.items()):
            if s not in ready:
                continue
            try:
                data = s.recv(65536)
            except (ConnectionResetError, BlockingIOError) as e:
                if isinstance(e, BlockingIOError):
                    continue
                data = b""
            got = result[key][1] + data
            if data:
                result[key] = (None, got)
                continue
            result[key] = (time.monotonic() - sentAt, got)
            del pending[key]
    for s, _ in socks.values():
        s.close()
    return result


def test_silent_and_stalled_connections_are_closed(daemon):
    cursor = LogCursor(daemon)
    client = RegistryClient("127.0.0.1", daemon.port)
    location = client.startUpload("timeouts/upload")
    client.close()
    body = os.urandom(1000)
    sends = {
        "nothing": b"",
        "request line only": b"GET /v2/ HTTP/1.1\r\n",
        "half the headers": b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: ",
        "keep-alive, idle after a request": b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        "upload body stopped at 10 of 1000 bytes": (
            b"PATCH %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: 1000\r\n\r\n" % (location.encode(),) + body[:10]),
        "manifest body stopped": (
            b"PUT /v2/timeouts/m/manifests/t HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 500\r\n\r\n{\"sche"),
        "chunked body stopped": (
            b"PUT /v2/timeouts/m/manifests/t HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"100\r\n{\"sche"),
    }
    socks = {}
    for key, data in sends.items():
        s = _connect(daemon)
        if data:
            s.sendall(data)
        socks[key] = (s, time.monotonic())
    closed = _watch(socks, IDLE + SLACK + 3)
    report = "\n".join("  %-42s %s%s" % (key, "closed after %.2f s" % (t,) if t is not None else "STILL OPEN",
                                          " (sent %r)" % (got[:60],) if got else "")
                       for key, (t, got) in closed.items())
    print("\nidle_timeout %d s:\n%s" % (IDLE, report))
    late = [key for key, (t, _) in closed.items() if t is None or t > IDLE + SLACK]
    assert not late, "not closed within %d s + %.0f s:\n%s" % (IDLE, SLACK, report)
    early = [key for key, (t, _) in closed.items() if t < IDLE * 0.5]
    assert not early, "closed long before the idle timeout (not by it?):\n%s" % (report,)

    # The upload whose body stopped is released: its status answers at
    # once with what arrived, and it can be finished.
    client = RegistryClient("127.0.0.1", daemon.port, timeout=5)
    try:
        status = client.uploadStatus(location)
        assert status.status == 204 and status.header("range") == "0-9", (status.status, status.headers)
        r = client.request("PATCH", location, body=body[10:], headers={
            "Content-Type": "application/octet-stream", "Content-Range": "10-999"})
        assert r.status == 202, (r.status, r.body)
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        client.finishUpload(location, digest)
        assert client.pullBlob("timeouts/upload", digest) == (1000, digest)
    finally:
        client.close()
    assert not cursor.problems()
    pushAndPull(daemon)


def test_trickling_client_is_cut_off(daemon):
    """One header byte every IDLE/2 seconds: never idle for IDLE, but at
    this pace a request takes minutes.  The server must bound the time a
    request's head may take (a slow-client timeout), not only the silence
    between bytes; here: cut off within 5 x the idle timeout (the daemon's
    header_timeout is HEAD)."""
    head = b"GET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 1000
    limit = 5 * IDLE
    s = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
    start = time.monotonic()
    closedAfter = None
    try:
        for byte in head:
            try:
                s.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                closedAfter = time.monotonic() - start
                break
            readable, _, _ = select.select([s], [], [], IDLE / 2)
            if readable:
                try:
                    data = s.recv(4096)
                except ConnectionResetError:
                    data = b""
                if not data:
                    closedAfter = time.monotonic() - start
                    break
            if time.monotonic() - start > limit:
                break
    finally:
        s.close()
    print("\ntrickling one byte every %.1f s: %s" % (
        IDLE / 2, "closed after %.1f s" % (closedAfter,) if closedAfter else "still open after %.1f s" % (
            time.monotonic() - start,)))
    assert closedAfter is not None, (
        "a client sending a header byte every %.1f s was still connected after %.0f s (idle_timeout %d s): "
        "the idle timer restarts with every byte and nothing bounds the whole request" % (IDLE / 2, limit, IDLE))


def test_client_that_stops_reading_is_cut_off(daemon):
    """A client that asks for a large blob and never reads the response:
    the server's send buffer fills, the producer pauses, and (Twisted turns
    the idle timeout off while a request is answered) only the send timeout
    ends the connection, aborting it and stopping the producer."""
    cursor = LogCursor(daemon)
    client = RegistryClient("127.0.0.1", daemon.port)
    data = os.urandom(16 * 1024 * 1024)
    digest = client.pushBlobMonolithic("timeouts/big", data)
    client.close()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", daemon.port))
    s.sendall(rawhttp.request("GET", "/v2/timeouts/big/blobs/%s" % (digest,), close=False))
    wait = SEND + SLACK + 1
    time.sleep(wait)  # the client under test reads nothing for this long (not a wait for readiness)
    s.settimeout(2)
    received = b""  # the head and the first bytes of the body
    bodyBytes = 0
    cut = False
    try:
        while True:
            chunk = s.recv(1024 * 1024)
            if not chunk:
                cut = True
                break
            if b"\r\n\r\n" not in received:
                received += chunk
                if b"\r\n\r\n" in received:
                    bodyBytes = len(received.split(b"\r\n\r\n", 1)[1])
            else:
                bodyBytes += len(chunk)
    except ConnectionResetError:
        cut = True
    except socket.timeout:
        pass
    finally:
        s.close()
    whole = bodyBytes >= len(data)
    print("\nnot reading for %d s, then: %d of %d body bytes came%s" % (
        wait, bodyBytes, len(data), ", then a close (the idle timeout, after the response)" if cut and whole else
        ", then a close" if cut else ", and the connection was still open"))
    assert not whole, (
        "a client that read nothing for %d s then still got the whole response (%d bytes): never cut off" % (
            wait, bodyBytes))
    assert cut, "a client that read nothing for %d s was still connected" % (wait,)
    assert not cursor.problems()
    pushAndPull(daemon)


def _trickleBody(daemon, head, pieces, interval):
    """Send C{head}, then each of C{pieces} C{interval} seconds apart, until
    the server closes; returns (bytes of the pieces sent, seconds from the
    end of the head to the close or C{None}, what the server sent)."""
    s = socket.create_connection(("127.0.0.1", daemon.port), timeout=10)
    sent = 0
    received = b""
    try:
        s.sendall(head)
        start = time.monotonic()
        for piece in pieces:
            readable, _, _ = select.select([s], [], [], interval)
            if readable:
                try:
                    data = s.recv(65536)
                except ConnectionResetError:
                    data = b""
                if not data:
                    return sent, time.monotonic() - start, received
                received += data
            try:
                s.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                return sent, time.monotonic() - start, received
            sent += len(piece)
        s.settimeout(10)
        while True:
            try:
                data = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not data or b"\r\n\r\n" in received + data:
                received += data
                break
            received += data
        return sent, None, received
    finally:
        s.close()


def test_trickling_body_is_cut_off_and_the_upload_released(daemon):
    """Ten bytes of an upload body every IDLE/4 seconds: never idle, far
    under min_body_rate; cut off after about body_rate_window, and the
    upload keeps what arrived and can be resumed at once."""
    cursor = LogCursor(daemon)
    client = RegistryClient("127.0.0.1", daemon.port, timeout=5)
    try:
        location = client.startUpload("timeouts/trickle")
    finally:
        client.close()  # (it would be idle for longer than IDLE)
    body = os.urandom(100000)
    head = (b"PATCH %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % (location.encode(), len(body)))
    pieces = [body[i : i + 10] for i in range(0, 10 * int(5 * WINDOW / (IDLE / 4)), 10)]
    sent, closedAfter, _ = _trickleBody(daemon, head, pieces, IDLE / 4)
    print("\ntrickling 10 bytes every %.1f s: %s after %d bytes" % (
        IDLE / 4, "closed after %.1f s" % (closedAfter,) if closedAfter else "still open", sent))
    assert closedAfter is not None, "a body trickled at %.0f bytes/s was not cut off" % (10 / (IDLE / 4),)
    assert WINDOW * 0.9 <= closedAfter <= WINDOW + SLACK, closedAfter
    client = RegistryClient("127.0.0.1", daemon.port, timeout=5)
    try:
        status = client.uploadStatus(location)
        assert status.status == 204, (status.status, status.headers)
        have = int(status.header("range").split("-")[1]) + 1
        assert 0 < have <= sent, (have, sent)
        r = client.request("PATCH", location, body=body[have:], headers={
            "Content-Type": "application/octet-stream", "Content-Range": "%d-%d" % (have, len(body) - 1)})
        assert r.status == 202, (r.status, r.body)
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        client.finishUpload(location, digest)
        assert client.pullBlob("timeouts/trickle", digest) == (len(body), digest)
    finally:
        client.close()
    assert not cursor.problems()


def test_slow_body_above_the_rate_is_not_cut_off(daemon):
    """A body at twice min_body_rate for longer than body_rate_window is
    received whole."""
    client = RegistryClient("127.0.0.1", daemon.port, timeout=5)
    try:
        location = client.startUpload("timeouts/slow")
    finally:
        client.close()
    piece = RATE // 2
    interval = 0.25  # 2 x RATE bytes/s
    body = os.urandom(piece * int(1.5 * WINDOW / interval))
    head = (b"PATCH %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Length: %d\r\n\r\n" % (location.encode(), len(body)))
    pieces = [body[i : i + piece] for i in range(0, len(body), piece)]
    sent, closedAfter, received = _trickleBody(daemon, head, pieces, interval)
    assert closedAfter is None and sent == len(body), (sent, closedAfter, received[:200])
    assert received.startswith(b"HTTP/1.1 202 "), received[:300]
