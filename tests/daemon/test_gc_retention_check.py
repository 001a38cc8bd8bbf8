"""Beside a running daemon: retention policies through ``txregistry gc
--retention`` (a dry run lists, a real run deletes, what is kept pulls
whole) and through the schedule (a dry run only logs); a bad ``gc:`` or
``retention:`` value stops the start with one line; ``txregistry check``
finds a corrupted and a missing blob on disk, with progress lines on
stderr and exit status 1, and a bar when stderr is a terminal."""

import json
import os
import subprocess
import time

from tests.daemon.test_gc_online import Client, descriptor, pullWhole
from tests.daemon.test_startup import assertFailedAtStart, start
from tests.support import procs
from txregistry import digest as digests
from txregistry.registry import layout

CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
RETENTION = ("  retention:\n    - repositories: 'team/*'\n      keep_last: 2\n      keep_tags: ['v*']\n"
             "    - repositories: 'other'\n      older_than: 30d\n")


def command(name, *args, env=None):
    return subprocess.run([os.path.join(procs.BIN, "txregistry"), name] + list(args),
                          capture_output=True, text=True, timeout=120, env=procs.twistdEnv(env))


def pushImage(client, repo, tag):
    """Push a config and a layer of their own and a manifest; its digest
    and the blobs'."""
    config = json.dumps({"image": tag}).encode()
    layer = ("layer of %s:%s " % (repo, tag)).encode() * 100
    for data in (config, layer):
        client.upload(repo, data)
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(CONFIG_TYPE, config),
                       "layers": [descriptor(LAYER_TYPE, layer)]}).encode()
    client.putManifest(repo, tag, body)
    return digests.of(body), [digests.of(config), digests.of(layer)]


def tags(client, repo):
    _, _, body = client.call("GET", "/v2/%s/tags/list" % (repo,))
    return sorted(json.loads(body)["tags"] or [])


def waitForLog(d, text, timeout=30):
    deadline = time.monotonic() + timeout
    while text not in d.log() and time.monotonic() < deadline:
        time.sleep(0.05)  # polling interval
    assert text in d.log(), d.log()[-3000:]


def test_retention_from_the_command(tmp_path):
    data = str(tmp_path / "data")
    cfg = tmp_path / "config.yml"
    cfg.write_text("dev:\n  loglevel: info\n" + RETENTION)
    d = procs.startTxregistry(data, str(tmp_path), env={"DOCKER_REGISTRY_CONFIG": str(cfg)})
    try:
        client = Client(d.url)
        pushed = {}
        for tag in ("old1", "v1.0", "old2", "new1", "new2"):  # in push order, oldest first
            pushed[tag] = pushImage(client, "team/app", tag)
        pushImage(client, "other", "old")
        env = {"DOCKER_REGISTRY_CONFIG": str(cfg)}
        common = ["--storage-path", data, "--retention", "--delete-untagged", "--min-age", "0", "--grace", "0"]

        r = command("gc", "--dry-run", *common, env=env)
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert sorted(x for x in lines if " tag " in x) == [
            "would delete tag team/app:old1", "would delete tag team/app:old2"]
        assert "would delete 2 tag(s) by the retention policies" in lines
        assert "would delete 2 untagged manifest(s)" in lines
        assert "would delete 6 (" in r.stdout  # the two manifests, their configs and layers
        assert tags(client, "team/app") == ["new1", "new2", "old1", "old2", "v1.0"]
        # Not a terminal: plain progress lines on stderr.
        assert "marking: 2/2 repositories (done)" in r.stderr and "sweeping: " in r.stderr

        r = command("gc", *common, env=env)
        assert r.returncode == 0, r.stderr
        assert "deleted 2 tag(s) by the retention policies" in r.stdout
        deleted = {x.split()[1] for x in r.stdout.splitlines() if x.startswith("deleted sha256:")}
        gone = {pushed["old1"][0], pushed["old2"][0]} | set(pushed["old1"][1] + pushed["old2"][1])
        assert deleted == gone, r.stdout
        assert tags(client, "team/app") == ["new1", "new2", "v1.0"]
        assert tags(client, "other") == ["old"]  # younger than 30 days
        for tag in ("new1", "new2", "v1.0"):
            assert pullWhole(client, "team/app", tag) == pushed[tag][0]

        r = command("gc", "--storage-path", data, "--retention")  # a configuration without policies
        assert r.returncode != 0 and "no retention: policies" in r.stderr
    finally:
        d.stop()


def test_scheduled_dry_run(tmp_path):
    data = str(tmp_path / "data")
    cfg = tmp_path / "config.yml"
    cfg.write_text("dev:\n  loglevel: info\n  gc: {interval: 1s, min_age: 0, delete_untagged: true, dry_run: true}\n"
                   + RETENTION)
    d = procs.startTxregistry(data, str(tmp_path), env={"DOCKER_REGISTRY_CONFIG": str(cfg)})
    try:
        waitForLog(d, "garbage collection every 1s, min_age 0s, untagged manifests deleted, retention: team/*: "
                      "keep the newest 2; keep v*")
        client = Client(d.url)
        for tag in ("a", "b", "c", "d"):
            pushImage(client, "team/app", tag)
        waitForLog(d, "garbage collection (dry run) in")
        waitForLog(d, "would delete 2 tag(s), 2 untagged manifest(s)")
        assert tags(client, "team/app") == ["a", "b", "c", "d"]
        for tag in "abcd":
            pullWhole(client, "team/app", tag)
        assert "Traceback" not in d.log()
    finally:
        d.stop()


def test_bad_gc_settings_stop_the_start(tmp_path):
    for text, detail in [("  gc: {interval: often}\n", "gc.interval must be a duration"),
                         ("  gc: {interval: 1h, min_age: -1}\n", "gc.min_age must be a duration"),
                         ("  retention: [{repositories: 'a/*', keep_tags: [latest]}]\n", "needs keep_last or older_than")]:
        cfg = tmp_path / "config.yml"
        cfg.write_text("dev:\n" + text)
        r = start(tmp_path, "-n", "tcp:0:interface=127.0.0.1", env={"DOCKER_REGISTRY_CONFIG": str(cfg)})
        line = assertFailedAtStart(r, "txregistry: configuration error: ")
        assert detail in line, line


def test_check_finds_corrupt_and_missing_blobs(tmp_path):
    data = str(tmp_path / "data")
    d = procs.startTxregistry(data, str(tmp_path))
    try:
        client = Client(d.url)
        _, (config, layer) = pushImage(client, "team/app", "v1")
        pushImage(client, "team/app", "v2")
    finally:
        d.stop()
    r = command("check", "--storage-path", data)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "checked 6 blob(s)" in r.stdout and "0 corrupt, 0 missing, 0 unreadable" in r.stdout
    assert "checking: 6/6 blobs" in r.stderr

    def onDisk(digest):
        return os.path.join(data, layout.blobData(digests.parse(digest)).lstrip("/"))

    with open(onDisk(layer), "r+b") as f:
        f.seek(10)
        f.write(b"!")  # one byte changed, same size
    os.unlink(onDisk(config))
    r = command("check", "--storage-path", data, "--quiet")
    assert r.returncode == 1, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert [x.split(":")[0] + ":" + x.split(":")[1] for x in lines if x.startswith("corrupt ")] == [
        "corrupt " + layer]
    missing = [x for x in lines if x.startswith("missing ")]
    assert len(missing) == 1 and missing[0].startswith("missing %s: named by team/app (layer link), team/app@sha256:"
                                                         % (config,)), missing
    assert "checked 5 blob(s)" in r.stdout and "1 corrupt, 1 missing, 0 unreadable" in r.stdout
    assert r.stderr == ""  # --quiet: no progress


def test_progress_bar_on_a_terminal(tmp_path):
    """stderr a terminal (a pty): the bar, redrawn in place, then a newline;
    stdout (a pipe) has the plain report."""
    import pty

    data = str(tmp_path / "data")
    d = procs.startTxregistry(data, str(tmp_path))
    try:
        client = Client(d.url)
        for tag in ("a", "b"):
            pushImage(client, "team/app", tag)
    finally:
        d.stop()
    master, slave = pty.openpty()
    try:
        r = subprocess.run([os.path.join(procs.BIN, "txregistry"), "check", "--storage-path", data],
                           stdout=subprocess.PIPE, stderr=slave, text=True, timeout=120, env=procs.twistdEnv())
        os.close(slave)
        slave = None
        shown = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the other end is closed, all read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if slave is not None:
            os.close(slave)
        os.close(master)
    assert r.returncode == 0, r.stdout
    text = shown.decode()
    assert "\r[" in text and "] checking: 6/6 blobs, 4.7 KiB of 4.7 KiB" in text, text
    assert text.rstrip("\r\n").count("\n") == 0  # one line, redrawn
    assert "checked 6 blob(s)" in r.stdout and "[" not in r.stdout
