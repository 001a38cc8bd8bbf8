"""``txregistry gc`` beside a running daemon, with skopeo pushing, deleting
and pulling: the deleted image's own layers go, the other image is still
pulled intact, and a dry run deletes nothing."""

import os
import signal
import subprocess
import time

from tests.e2e import clients, oci
from tests.support import procs


def waitForLog(d, text, timeout=10):
    deadline = time.monotonic() + timeout
    while text not in d.log() and time.monotonic() < deadline:
        time.sleep(0.02)  # polling interval
    assert text in d.log(), d.log()[-2000:]


def gcCommand(data, *args):
    return subprocess.run(
        [os.path.join(procs.BIN, "txregistry"), "gc", "--storage-path", data] + list(args),
        capture_output=True, text=True, timeout=120, env=procs.twistdEnv(),
    )


def test_gc_beside_the_daemon(tmp_path):
    data = str(tmp_path / "data")
    keep = oci.buildImage(str(tmp_path / "keep"), "v1", layers=2, seed=1, layerSize=64 * 1024)
    gone = oci.buildImage(str(tmp_path / "gone"), "v1", layers=2, seed=2, layerSize=64 * 1024)
    d = procs.startTxregistry(data, str(tmp_path))
    try:
        clients.push("oci:%s:v1" % (tmp_path / "keep"), d, "team/app:keep")
        clients.push("oci:%s:v1" % (tmp_path / "gone"), d, "team/app:gone")
        clients.delete(d, "team/app@%s" % (gone.manifestDigest,))
        expected = set(gone.blobDigests) | {gone.manifestDigest}

        r = gcCommand(data, "--min-age", "0", "--grace", "0", "--dry-run")
        assert r.returncode == 0, r.stderr
        assert {line.split()[-1] for line in r.stdout.splitlines() if line.startswith("would delete ")} == expected
        assert "would delete 4 (" in r.stdout, r.stdout
        assert "1 repositories" in r.stdout and "1 manifest(s)" in r.stdout

        r = gcCommand(data)  # the default minimum age: all of it is too young
        assert r.returncode == 0 and "deleted 0 (0 bytes)" in r.stdout and "4 unused blob(s) younger" in r.stdout

        # --grace 0 (no wait for what pushes relied on lately): read-only while it runs.
        d.proc.send_signal(signal.SIGUSR1)
        waitForLog(d, "read-only mode on")
        r = gcCommand(data, "--min-age", "0", "--grace", "0")
        d.proc.send_signal(signal.SIGUSR2)
        waitForLog(d, "read-only mode off")
        assert r.returncode == 0, r.stderr
        assert {line.split()[1] for line in r.stdout.splitlines() if line.startswith("deleted sha256:")} == expected
        for digest in expected:
            status, _, _ = clients.request(d, "/v2/team/app/blobs/%s" % (digest,), method="HEAD")
            assert status == 404, digest
        clients.pull(d, "team/app:keep", "oci:%s:v1" % (tmp_path / "pulled"))
        assert oci.resolve(str(tmp_path / "pulled"), "v1")["digest"] == keep.manifestDigest
        oci.verifyBlobs(str(tmp_path / "pulled"))
        # The deleted image can be pushed again.
        clients.push("oci:%s:v1" % (tmp_path / "gone"), d, "team/app:again")
        clients.pull(d, "team/app:again", "oci:%s:v1" % (tmp_path / "again"))
        oci.verifyBlobs(str(tmp_path / "again"))
    finally:
        d.stop()


def test_gc_bad_arguments(tmp_path):
    r = gcCommand(str(tmp_path / "data"), "--min-age", "soon")
    assert r.returncode != 0
    assert "--min-age must be a whole number of seconds" in r.stderr
