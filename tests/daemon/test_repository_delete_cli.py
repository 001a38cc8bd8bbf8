"""``txregistry delete REPO`` and ``txregistry gc --delete-untagged`` on a
running daemon's storage: the repository leaves the catalog and the search
index; untagged manifests go with their blobs."""

import json
import os
import subprocess

from tests.e2e import clients, oci
from tests.support import procs


def command(*args):
    return subprocess.run([os.path.join(procs.BIN, "txregistry")] + list(args),
                          capture_output=True, text=True, timeout=120, env=procs.twistdEnv())


def test_delete_and_untagged_beside_the_daemon(tmp_path):
    data = str(tmp_path / "data")
    one = oci.buildImage(str(tmp_path / "one"), "v1", layers=1, seed=5, layerSize=16 * 1024)
    two = oci.buildImage(str(tmp_path / "two"), "v1", layers=1, seed=6, layerSize=16 * 1024)
    d = procs.startTxregistry(data, str(tmp_path))
    try:
        clients.push("oci:%s:v1" % (tmp_path / "one"), d, "team/app:v1")
        clients.push("oci:%s:v1" % (tmp_path / "one"), d, "team/keep:v1")
        clients.push("oci:%s:v1" % (tmp_path / "two"), d, "team/keep:old")
        status, _, _ = clients.request(d, "/v2/team/keep/manifests/old", method="DELETE")  # the tag only
        assert status == 202

        r = command("delete", "--storage-path", data, "team/app")
        assert r.returncode == 0, r.stderr
        assert "deleted repository team/app" in r.stdout
        _, _, body = clients.request(d, "/v2/_catalog")
        assert json.loads(body)["repositories"] == ["team/keep"]
        _, _, body = clients.request(d, "/v1/search?q=team")
        assert [x["name"] for x in json.loads(body)["results"]] == ["team/keep"]
        status, _, _ = clients.request(d, "/v2/team/app/manifests/v1", method="HEAD")
        assert status == 404
        r = command("delete", "--storage-path", data, "team/app")
        assert r.returncode != 0 and "no such repository" in r.stderr

        r = command("gc", "--storage-path", data, "--min-age", "0", "--grace", "0", "--delete-untagged", "--dry-run")
        assert r.returncode == 0, r.stderr
        assert "would delete manifest team/keep@%s" % (two.manifestDigest,) in r.stdout, r.stdout
        r = command("gc", "--storage-path", data, "--min-age", "0", "--grace", "0", "--delete-untagged")
        assert r.returncode == 0, r.stderr
        assert "deleted manifest team/keep@%s" % (two.manifestDigest,) in r.stdout, r.stdout
        deleted = {line.split()[1] for line in r.stdout.splitlines() if line.startswith("deleted sha256:")}
        assert deleted == set(two.blobDigests) | {two.manifestDigest}, r.stdout
        status, _, _ = clients.request(d, "/v2/team/keep/manifests/%s" % (two.manifestDigest,), method="HEAD")
        assert status == 404
        clients.pull(d, "team/keep:v1", "oci:%s:v1" % (tmp_path / "pulled"))
        oci.verifyBlobs(str(tmp_path / "pulled"))
    finally:
        d.stop()


def test_delete_bad_arguments(tmp_path):
    r = command("delete", "--storage-path", str(tmp_path), "Not/A/Name")
    assert r.returncode != 0 and "not a repository name" in r.stderr
