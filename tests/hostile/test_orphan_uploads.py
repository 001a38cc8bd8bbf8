"""A request that is refused, or that completes without the upload it
created, leaves no upload behind (no files under ``_uploads``, no open
descriptor): on a real daemon over raw sockets."""

import hashlib
import os
import socket
import time

import pytest

from tests.hostile import rawhttp
from tests.support import procs

NAME = "team/app"
BODY = b"some layer bytes " * 4096
DIGEST = "sha256:" + hashlib.sha256(BODY).hexdigest()
DEADLINE = 10.0


@pytest.fixture
def registry(tmp_path):
    data = tmp_path / "data"
    d = procs.startTxregistry(str(data), str(tmp_path))
    d.data = str(data)
    yield d
    d.stop()


def uploadsDir(registry, name=NAME):
    return os.path.join(registry.data, "docker/registry/v2/repositories", name, "_uploads")


def uploads(registry, name=NAME):
    try:
        return sorted(os.listdir(uploadsDir(registry, name)))
    except FileNotFoundError:
        return []


def openUploadFiles(registry):
    out = []
    fdDir = "/proc/%d/fd" % (registry.pid,)
    for fd in os.listdir(fdDir):
        try:
            target = os.readlink(os.path.join(fdDir, fd))
        except OSError:
            continue
        if "/_uploads/" in target:
            out.append(target)
    return out


def send(registry, method, target, body=b"", headers=()):
    return rawhttp.exchange(registry.port, rawhttp.request(method, target, headers, body))


def startUpload(registry, name=NAME):
    r = send(registry, "POST", "/v2/%s/blobs/uploads/" % (name,))
    assert r.status == 202, r
    return r.header("location").decode()


def settled(registry, expected):
    """Poll until the uploads of NAME are C{expected} and none is open."""
    deadline = time.monotonic() + DEADLINE
    while True:
        now, files = uploads(registry), openUploadFiles(registry)
        if now == expected and not files:
            return
        if time.monotonic() > deadline:
            pytest.fail("uploads %r (expected %r), open: %r" % (now, expected, files))
        time.sleep(0.05)  # polling interval


def test_post_to_an_upload_url_with_a_body(registry):
    location = startUpload(registry)
    existing = uploads(registry)
    r = send(registry, "POST", location + "?digest=" + DIGEST, BODY)
    assert r.status == 405, r
    settled(registry, existing)


@pytest.mark.parametrize("withDigest", [True, False])
def test_mount_with_a_body(registry, withDigest):
    r = send(registry, "POST", "/v2/source/app/blobs/uploads/?digest=" + DIGEST, BODY)
    assert r.status == 201, r
    query = "?mount=%s&from=source/app" % (DIGEST,) + ("&digest=" + DIGEST if withDigest else "")
    r = send(registry, "POST", "/v2/%s/blobs/uploads/%s" % (NAME, query), BODY)
    assert r.status == 201, r
    settled(registry, [])


def test_failed_mount_with_a_body_starts_one_session(registry):
    query = "?mount=%s&from=source/app" % (DIGEST,)
    r = send(registry, "POST", "/v2/%s/blobs/uploads/%s" % (NAME, query), BODY)
    assert r.status == 202, r
    uploadID = r.header("location").decode().rsplit("/", 1)[1]
    settled(registry, [uploadID])


def test_monolithic_post_whose_client_leaves(registry):
    head = rawhttp.request("POST", "/v2/%s/blobs/uploads/?digest=%s" % (NAME, DIGEST),
                           [("Content-Length", str(len(BODY)))], close=False)
    s = socket.create_connection(("127.0.0.1", registry.port))
    s.sendall(head + BODY[: len(BODY) // 2])
    deadline = time.monotonic() + DEADLINE
    while not uploads(registry):  # the upload the body goes to exists
        assert time.monotonic() < deadline
        time.sleep(0.02)  # polling interval
    s.close()
    settled(registry, [])
    r = send(registry, "HEAD", "/v2/%s/blobs/%s" % (NAME, DIGEST))
    assert r.status == 404


def test_monolithic_post_with_a_wrong_digest(registry):
    wrong = "sha256:" + "1" * 64
    r = send(registry, "POST", "/v2/%s/blobs/uploads/?digest=%s" % (NAME, wrong), BODY)
    assert r.status == 400, r
    settled(registry, [])
