"""The search index of a running daemon: survives restarts, is rebuilt from
storage when lost, and `txregistry reindex` runs beside the daemon."""

import hashlib
import json
import os
import subprocess
import time
import urllib.request

from tests.support import procs


def call(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(req) as r:
        return r.status, dict(r.headers), r.read()


def push(base, name, tag, description):
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    digest = "sha256:" + hashlib.sha256(config).hexdigest()
    status, _, _ = call("POST", "%s/v2/%s/blobs/uploads/?digest=%s" % (base, name, digest), config)
    assert status == 201
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest, "size": len(config)},
        "layers": [],
        "annotations": {"org.opencontainers.image.description": description},
    }).encode()
    status, _, _ = call("PUT", "%s/v2/%s/manifests/%s" % (base, name, tag), manifest,
                        {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert status == 201


def search(base, q):
    _, _, body = call("GET", "%s/v1/search?q=%s" % (base, q))
    return {r["name"]: r["description"] for r in json.loads(body)["results"]}


def test_index_survives_restart_and_is_rebuilt_when_lost(tmp_path):
    data = str(tmp_path / "data")
    d = procs.startTxregistry(data, str(tmp_path))
    try:
        push(d.url, "acme/web", "1.0", "the web front end")
        assert search(d.url, "web") == {"acme/web": "the web front end"}
    finally:
        d.stop()
    db = os.path.join(data, "txregistry", "search.db")
    assert os.path.exists(db)
    d = procs.startTxregistry(data, str(tmp_path))
    try:
        assert search(d.url, "front") == {"acme/web": "the web front end"}
    finally:
        d.stop()
    os.unlink(db)
    d = procs.startTxregistry(data, str(tmp_path))
    try:
        # rebuilt from storage at start, in the background: poll
        deadline = time.monotonic() + 30
        found = search(d.url, "acme")
        while not found and time.monotonic() < deadline:
            time.sleep(0.05)  # polling for the rebuild
            found = search(d.url, "acme")
        assert found == {"acme/web": "the web front end"}
    finally:
        d.stop()


def test_reindex_command_beside_the_daemon(tmp_path):
    data = str(tmp_path / "data")
    d = procs.startTxregistry(data, str(tmp_path))
    try:
        for i in range(3):
            push(d.url, "team/app%d" % i, "v1", "app number %d" % i)
        r = subprocess.run(
            [os.path.join(procs.BIN, "txregistry"), "reindex", "--storage-path", data],
            capture_output=True, text=True, timeout=120, env=procs.twistdEnv(),
        )
        assert r.returncode == 0, r.stderr
        assert "3/3 repositories" in r.stderr
        assert "indexed 3 repositories" in r.stdout
        assert set(search(d.url, "app")) == {"team/app0", "team/app1", "team/app2"}
    finally:
        d.stop()


def test_search_off(tmp_path):
    d = procs.startTxregistry(str(tmp_path / "data"), str(tmp_path), env={"SEARCH_BACKEND": "none"})
    try:
        try:
            call("GET", d.url + "/v1/search?q=x")
        except urllib.error.HTTPError as e:
            assert e.code == 404
        else:
            raise AssertionError("search answered while off")
        assert not os.path.exists(str(tmp_path / "data" / "txregistry" / "search.db"))
    finally:
        d.stop()
