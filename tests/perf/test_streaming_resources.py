"""Resource checks of the streaming paths, on a real daemon over loopback.

A 1 GiB blob is pushed as docker pushes it (one chunked PATCH, no
Content-Length) and pulled back: the daemon's memory must stay flat (peak
RSS within 64 MiB of its idle RSS, whatever the blob size) and the bytes
must hit the disk once (at most 1.05 bytes written per byte uploaded).
These are resource checks only: nothing here depends on speed.

And a client that goes away in the middle of a chunked PATCH leaves nothing
visible: no blob, an upload that can be continued or cancelled, a daemon
that keeps serving.
"""

import os
import time

import pytest

from tests.perf.registryclient import (
    BlobData,
    RegistryClient,
    _pathOf,
    _withQuery,
    partialChunkedPatch,
)
from tests.support.procs import processStats

MiB = 1024 * 1024
GiB = 1024 * MiB
BIG = 1 * GiB
RSS_ALLOWANCE = 64 * MiB
WRITE_AMPLIFICATION = 1.05
NAME = "perf/streaming"


def client(registry):
    return RegistryClient("127.0.0.1", registry.port)


def mib(n):
    return "%.1f MiB" % (n / MiB,)


def test_bigChunkedPushAndPullStayFlat(registry):
    """1 GiB pushed as one chunked PATCH without length, then pulled and
    verified: peak RSS within 64 MiB of idle, <= 1.05 bytes written per
    byte uploaded."""
    idle = processStats(registry.pid)
    idleRSS = idle["VmRSS"]
    c = client(registry)
    data = BlobData(BIG, seed=7)

    digest = c.pushBlobChunked(NAME, data)
    os.sync()
    pushed = processStats(registry.pid)

    size, pulledDigest = c.pullBlob(NAME, digest)
    pulled = processStats(registry.pid)
    c.close()

    written = pushed["write_bytes"] - idle["write_bytes"]
    figures = (
        "%s: idle RSS %s, peak RSS after push %s, after pull %s; "
        "written during push %d bytes (%.3f per uploaded byte)"
        % (
            registry.kind,
            mib(idleRSS),
            mib(pushed["VmHWM"]),
            mib(pulled["VmHWM"]),
            written,
            written / BIG,
        )
    )
    print(figures)

    assert (size, pulledDigest) == (BIG, digest), figures
    # write_bytes counts pages as they are dirtied; if it did not see the
    # blob at all, the upper bound below would prove nothing.
    assert written >= BIG, "I/O accounting did not see the upload: " + figures
    assert written <= WRITE_AMPLIFICATION * BIG, "blob written more than once: " + figures
    assert pushed["VmHWM"] - idleRSS <= RSS_ALLOWANCE, "memory grew during the push: " + figures
    assert pulled["VmHWM"] - idleRSS <= RSS_ALLOWANCE, "memory grew during the pull: " + figures
    _assertNoServerFault(registry)


# --- a client leaving in the middle of a chunked PATCH ---

SMALL = 64 * MiB
# Half of the body, ending inside an HTTP chunk (the chunk header announced
# a full 1 MiB chunk).
CUT = SMALL // 2 + 12345
SETTLE = 10.0  # seconds a server may take to notice the disconnect


def _uploadID(location):
    return _pathOf(location).split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]


def _offset(response):
    """Bytes held by an upload, from the Range header of a 202/204."""
    value = response.header("range")
    assert value is not None, "no Range header: %r" % (response.headers,)
    first, last = value.split("-")
    assert first == "0", value
    return int(last) + 1


def _retrying(attempt):
    """Run C{attempt} until it returns a response other than 409 (the
    server still finishing the dropped request) or 416 (its offset moved
    while we asked), for at most SETTLE seconds."""
    deadline = time.monotonic() + SETTLE
    delay = 0.01
    while True:
        response = attempt()
        if response.status not in (409, 416) or time.monotonic() > deadline:
            return response
        time.sleep(delay)  # polling interval
        delay = min(delay * 2, 0.2)


def _assertServing(c):
    r = c.request("GET", "/v2/")
    assert r.status == 200, (r.status, r.body)
    fresh = BlobData(3 * MiB + 17, seed=99)
    digest = c.pushBlobChunked("perf/other", fresh)
    assert c.pullBlob("perf/other", digest) == (fresh.size, digest)


def _assertNoServerFault(registry):
    """A client going away is not a server fault: nothing in the daemon's
    log may look like one."""
    log = registry.log()
    for marker in ("Traceback", "Unhandled", "panic:"):
        assert marker not in log, "%s in the %s log:\n%s" % (marker, registry.kind, log[-4000:])


def _uploadDir(registry, location):
    return os.path.join(
        registry.storagePath, "docker/registry/v2/repositories", NAME, "_uploads", _uploadID(location)
    )


def _abandonedUpload(registry, reset):
    """Start an upload, send half of a chunked PATCH and drop the
    connection; check that nothing became visible and the daemon serves.
    Returns the client, the data, its digest, the upload's location and the
    number of bytes sent."""
    c = client(registry)
    data = BlobData(SMALL, seed=3)
    digest = data.digest()
    location = c.startUpload(NAME)
    sent = partialChunkedPatch("127.0.0.1", registry.port, location, data, CUT, reset=reset)
    assert sent == CUT

    r = c.headBlob(NAME, digest)
    assert r.status == 404, (r.status, r.headers)
    r = c.request("GET", "/v2/%s/blobs/%s" % (NAME, digest))
    assert r.status == 404, (r.status, r.body[:300])
    _assertServing(c)
    return c, data, digest, location, sent


def _statusAfterDisconnect(registry, c, location):
    r = _retrying(lambda: c.uploadStatus(location))
    if r.status == 404 and registry.kind == "distribution":
        # Distribution 2.8 carries the upload's offset in the HMAC-signed
        # _state query parameter of each Location; the dropped PATCH never
        # returned a new one, so the data on disk no longer matches the
        # state ("upload resumed at wrong offest") and every request on the
        # upload, DELETE included, answers 404 BLOB_UPLOAD_INVALID.
        pytest.xfail("Distribution cannot continue or cancel an upload after a dropped PATCH: %r" % (r.body,))
    assert r.status == 204, (r.status, r.body)
    return r


@pytest.mark.parametrize("reset", [False, True], ids=["close", "reset"])
def test_droppedPatchCanBeContinued(registry, reset):
    c, data, digest, location, sent = _abandonedUpload(registry, reset)
    status = _statusAfterDisconnect(registry, c, location)
    offset = _offset(status)
    assert 0 <= offset <= sent, (offset, sent)
    location = _pathOf(status.header("location") or location)

    def resume():
        nonlocal offset
        r = c.uploadStatus(location)
        assert r.status == 204, (r.status, r.body)
        offset = _offset(r)
        return c.patchChunked(location, data.chunks(offset), contentRange=(offset, SMALL - 1))

    r = _retrying(resume)
    assert r.status == 202, (r.status, r.body, offset)
    assert _offset(r) == SMALL, (r.headers, offset)
    location = _pathOf(r.header("location") or location)

    r = c.request("HEAD", "/v2/%s/blobs/%s" % (NAME, digest))
    assert r.status == 404, "visible before PUT: %r" % (r.headers,)
    c.finishUpload(location, digest)
    r = c.headBlob(NAME, digest)
    assert r.status == 200 and int(r.header("content-length")) == SMALL, (r.status, r.headers)
    assert c.pullBlob(NAME, digest) == (SMALL, digest)
    _assertServing(c)
    c.close()
    _assertNoServerFault(registry)


@pytest.mark.parametrize("reset", [False, True], ids=["close", "reset"])
def test_droppedPatchCanBeCancelled(registry, reset):
    c, data, digest, location, sent = _abandonedUpload(registry, reset)
    status = _statusAfterDisconnect(registry, c, location)
    assert 0 <= _offset(status) <= sent
    location = _pathOf(status.header("location") or location)

    r = _retrying(lambda: c.cancelUpload(location))
    assert r.status == 204, (r.status, r.body)
    r = c.uploadStatus(location)
    assert r.status == 404, (r.status, r.body)
    assert b"BLOB_UPLOAD_UNKNOWN" in r.body, r.body
    r = c.request("PUT", _withQuery(location, "digest=" + digest), headers={"Content-Length": "0"})
    assert r.status == 404, (r.status, r.body)
    assert c.headBlob(NAME, digest).status == 404
    leftover = _uploadDir(registry, location)
    assert not os.path.exists(leftover), "upload data left in storage: %s" % (leftover,)
    _assertServing(c)
    c.close()
    _assertNoServerFault(registry)
