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


def _holdLock(db, ready, release):
    """In a process of its own: hold an exclusive lock on the SQLite file
    C{db} (as a sqlite3 shell or a backup would) until C{release} is set."""
    import sqlite3

    conn = sqlite3.connect(db, timeout=0, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    ready.set()
    release.wait(120)
    conn.execute("ROLLBACK")
    conn.close()


def timed(method, url, body=None, headers=None):
    """C{(status, headers, seconds)} of one request, errors included."""
    started = time.monotonic()
    try:
        status, h, _ = call(method, url, body, headers)
    except urllib.error.HTTPError as e:
        status, h = e.code, dict(e.headers)
    return status, h, time.monotonic() - started


def test_locked_index_holds_up_nothing(tmp_path):
    """A second process holds BEGIN EXCLUSIVE on the daemon's SQLite index:
    four pushes each answer at once (the index is updated after), search
    answers 503 with Retry-After within the bounded wait (index_wait, 2 s
    here), the catalog lists every repository (from storage), and once the
    lock is gone the index catches up and the lag is logged."""
    import multiprocessing

    data = str(tmp_path / "data")
    configPath = tmp_path / "config.yml"
    configPath.write_text("dev:\n    limits:\n        index_wait: 2\n")
    d = procs.startTxregistry(data, str(tmp_path), args=["--config", str(configPath)])
    db = os.path.join(data, "txregistry", "search.db")
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_holdLock, args=(db, ready, release))
    try:
        push(d.url, "before/lock", "v1", "pushed before the lock")
        assert search(d.url, "lock") == {"before/lock": "pushed before the lock"}
        holder.start()
        assert ready.wait(30)
        for i in range(4):
            started = time.monotonic()
            push(d.url, "during/lock%d" % i, "v1", "pushed during the lock")
            took = time.monotonic() - started
            assert took < 2, "push %d took %.1f s" % (i, took)
        status, headers, took = timed("GET", d.url + "/v1/search?q=lock")
        assert status == 503 and took < 5, (status, took)
        assert headers.get("Retry-After") == "5"
        status, _, took = timed("GET", d.url + "/v2/_catalog")
        assert status == 200 and took < 5, (status, took)
        _, _, body = call("GET", d.url + "/v2/_catalog")
        assert json.loads(body)["repositories"] == ["before/lock"] + ["during/lock%d" % i for i in range(4)]
        # The lag is logged once a write has waited LAG_WARN seconds.
        deadline = time.monotonic() + 20
        while "search index behind storage: " not in d.log() and time.monotonic() < deadline:
            time.sleep(0.1)  # polling for the log line
        assert "search index behind storage: 4 repositories wait to be indexed" in d.log()
        release.set()
        holder.join(30)
        # The index catches up: search finds the repositories pushed
        # during the lock (polled: the repair loop retries every 5 s).
        deadline = time.monotonic() + 60
        while True:
            try:
                found = search(d.url, "lock")
            except urllib.error.HTTPError as e:
                assert e.code == 503
                found = {}
            if len(found) == 5 or time.monotonic() > deadline:
                break
            time.sleep(0.1)  # polling for the repair
        assert sorted(found) == ["before/lock"] + ["during/lock%d" % i for i in range(4)]
        assert "search index caught up with storage after" in d.syncLog()
    finally:
        release.set()
        if holder.is_alive():
            holder.join(30)
        d.stop()


def test_updates_not_yet_indexed_survive_a_crash(tmp_path):
    """A push acknowledged while the index was locked, then kill -9: the
    next start finds the marker a clean stop removes, repairs the index
    from storage, and search finds the push.  After a clean stop the next
    start repairs nothing."""
    import multiprocessing

    data = str(tmp_path / "data")
    db = os.path.join(data, "txregistry", "search.db")
    d = procs.startTxregistry(data, str(tmp_path))
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_holdLock, args=(db, ready, release))
    try:
        push(d.url, "before/crash", "v1", "indexed")
        assert search(d.url, "crash") == {"before/crash": "indexed"}
        assert os.path.exists(db + ".lagging")
        holder.start()
        assert ready.wait(30)
        push(d.url, "during/crash", "v1", "acknowledged, not indexed")
        d.kill()
    finally:
        release.set()
        holder.join(30)
        d.stop()
    d = procs.startTxregistry(data, str(tmp_path))
    try:
        deadline = time.monotonic() + 30
        found = {}
        while len(found) < 2 and time.monotonic() < deadline:
            try:
                found = search(d.url, "crash")
            except urllib.error.HTTPError:
                pass
            time.sleep(0.05)  # polling for the repair
        assert found == {"before/crash": "indexed", "during/crash": "acknowledged, not indexed"}
        assert "repairing it from storage" in d.syncLog()
    finally:
        d.stop()
    assert not os.path.exists(db + ".lagging")  # a clean stop, every update written
    d = procs.startTxregistry(data, str(tmp_path))
    try:
        assert search(d.url, "crash") == {"before/crash": "indexed", "during/crash": "acknowledged, not indexed"}
        assert d.syncLog().count("repairing it from storage") == 0
    finally:
        d.stop()
