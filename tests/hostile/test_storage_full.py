"""A full disk and a read-only file system, for real: the daemon stores on a
small tmpfs mounted for the test (needs root).  Pushes that need space answer
507 (full) or 503 (read-only) with the spec's JSON error and Retry-After, the
daemon logs one warning line for each and no traceback, and once space (or
write access) is back, pushes work again without a restart."""

import errno
import os
import subprocess

import pytest

from tests.hostile.checks import Env, LogCursor, isErrorEnvelope, pushAndPull
from tests.perf.registryclient import BlobData, RegistryClient, _withQuery, configBlob, imageManifest
from tests.support.required import missing

MiB = 1024 * 1024
SIZE = 16 * MiB


def _mount(*args):
    return subprocess.run(["mount"] + list(args), capture_output=True, text=True)


@pytest.fixture
def tmpfsEnv(tmp_path):
    """An L{Env} whose storage is a tmpfs of L{SIZE} bytes."""
    env = Env(tmp_path)
    done = _mount("-t", "tmpfs", "-o", "size=%d" % (SIZE,), "tmpfs", env.storage)
    if done.returncode != 0:
        missing("cannot mount a tmpfs here (needs root): %s" % (done.stderr.strip(),))
    try:
        yield env
    finally:
        subprocess.run(["umount", env.storage], check=True)


def fill(path, leave=0):
    """Write a file at C{path} until the file system has at most C{leave}
    bytes free (or none: ENOSPC)."""
    st = os.statvfs(os.path.dirname(path))
    want = max(0, st.f_bavail * st.f_frsize - leave)
    block = b"\0" * MiB
    with open(path, "ab") as f:
        try:
            while want > 0:
                want -= f.write(block[: min(len(block), want)])
            if not leave:
                while True:
                    f.write(block)
                    f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC, e


def assertRefused(r, status, what):
    assert r.status == status, "%s: HTTP %d %r" % (what, r.status, r.body[:300])
    assert isErrorEnvelope(r.body), (what, r.body[:300])
    assert r.json()["errors"][0]["code"] == "UNAVAILABLE", (what, r.body)
    assert r.header("retry-after") and int(r.header("retry-after")) > 0, (what, r.headers)


def test_fullDiskAnswers507AndRecovers(tmpfsEnv):
    env = tmpfsEnv
    daemon = env.start()
    cursor = LogCursor(daemon)
    client = RegistryClient("127.0.0.1", daemon.port, timeout=30)
    ballast = os.path.join(env.storage, "ballast")
    try:
        pushAndPull(daemon, name="full/before", size=64 * 1024)
        config = configBlob()
        configDigest = client.pushBlobMonolithic("full/before", config)

        # Room for a part of a layer: its body fails on the way in.
        fill(ballast, leave=MiB)
        data = BlobData(3 * MiB, seed=7)
        location = client.startUpload("full/app")
        r = client.patchChunked(location, data.chunks())
        assertRefused(r, 507, "chunked PATCH filling the disk")
        r = client.request("POST", "/v2/full/app/blobs/uploads/?digest=" + data.digest(), body=data.bytes(),
                           headers={"Content-Type": "application/octet-stream"})
        assertRefused(r, 507, "monolithic POST filling the disk")

        # No room at all: small writes (an upload's start, a manifest) too.
        fill(ballast)
        r = client.request("POST", "/v2/full/app/blobs/uploads/")
        assertRefused(r, 507, "POST of an upload on a full disk")
        manifest = imageManifest(configDigest, len(config), [])
        r = client.request("PUT", "/v2/full/before/manifests/full", body=manifest,
                           headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        assertRefused(r, 507, "manifest PUT on a full disk")
        # Reads still work.
        assert client.getManifest("full/before", "ok").status == 200

        log = daemon.syncLog()
        assert not cursor.problems(), cursor.problems()
        warnings = [line for line in log.splitlines() if "storage refused" in line]
        assert len(warnings) == 4, "\n".join(warnings)
        assert all("#warn]" in line for line in warnings), warnings

        # Space comes back: the same pushes work, without a restart.
        os.unlink(ballast)
        assert client.pushBlobChunked("full/app", data) == data.digest()
        assert client.pullBlob("full/app", data.digest()) == (data.size, data.digest())
        client.putManifest("full/before", "full", manifest)
        pushAndPull(daemon, name="full/after", size=256 * 1024)
        assert not cursor.problems(), cursor.problems()
    finally:
        client.close()
        daemon.stop()


def test_readOnlyStorageAnswers503AndRecovers(tmpfsEnv):
    env = tmpfsEnv
    # The search index elsewhere: a file open for writing keeps a file
    # system from being remounted read-only.
    index = "sqlite:///" + os.path.join(env.root, "index.db")
    daemon = env.start(env={"SQLALCHEMY_INDEX_DATABASE": index})
    cursor = LogCursor(daemon)
    client = RegistryClient("127.0.0.1", daemon.port, timeout=30)
    try:
        pushAndPull(daemon, name="ro/before", size=64 * 1024)
        done = _mount("-o", "remount,ro", env.storage)
        assert done.returncode == 0, done.stderr
        try:
            r = client.request("POST", "/v2/ro/app/blobs/uploads/")
            assertRefused(r, 503, "POST of an upload on a read-only file system")
            body = b"layer on read-only storage"
            r = client.request("POST", _withQuery("/v2/ro/app/blobs/uploads/", "digest=sha256:" + "0" * 64),
                               body=body, headers={"Content-Type": "application/octet-stream"})
            assertRefused(r, 503, "monolithic POST on a read-only file system")
            assert client.getManifest("ro/before", "ok").status == 200
        finally:
            done = _mount("-o", "remount,rw", env.storage)
            assert done.returncode == 0, done.stderr
        log = daemon.syncLog()
        assert not cursor.problems(), cursor.problems()
        assert len([line for line in log.splitlines() if "storage refused" in line]) == 2, log[-3000:]
        pushAndPull(daemon, name="ro/after", size=256 * 1024)
        assert not cursor.problems(), cursor.problems()
    finally:
        client.close()
        daemon.stop()
