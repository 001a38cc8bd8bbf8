"""Notifications on a real daemon: skopeo pushes, pulls and deletes, and a
real HTTP receiver on loopback that fails, stalls and recovers."""

import http.server
import json
import os
import threading
import time

import pytest

from tests.daemon.test_metrics import scrape, value
from tests.e2e import clients, oci
from tests.support import procs

ENVELOPE = "application/vnd.docker.distribution.events.v1+json"


class Receiver:
    """A threaded HTTP server recording the envelopes POSTed to it; its
    C{mode} is "ok" (204), "fail" (500) or "stall" (never answers)."""

    def __init__(self):
        self.mode = "ok"
        self.envelopes = []
        self.requests = []  # (headers) of every POST, answered or not
        self.lock = threading.Lock()
        self.released = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.lock:
                    receiver.requests.append(dict(self.headers))
                    mode = receiver.mode
                if mode == "stall":
                    receiver.released.wait(60)
                    return
                if mode == "fail":
                    self.send_response(500)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with receiver.lock:
                    receiver.envelopes.append((dict(self.headers), json.loads(body)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d/events" % (self.server.server_address[1],)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def events(self):
        with self.lock:
            return [e for _, env in self.envelopes for e in env["events"]]

    def waitFor(self, predicate, timeout=30):
        """Poll until C{predicate(events)} holds; return the events."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.events()
            if predicate(got):
                return got
            if time.monotonic() > deadline:
                raise AssertionError("receiver did not get the events in %ss; got %s" % (
                    timeout, json.dumps(got, indent=1)[-3000:]))
            time.sleep(0.05)  # polling interval

    def close(self):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def writeConfig(tmp_path, url, **endpoint):
    ep = {"name": "listener", "url": url, "headers": {"Authorization": ["Bearer s3cret"]},
          "timeout": "1s", "threshold": 2, "backoff": "50ms", "maxbackoff": "200ms"}
    ep.update(endpoint)
    path = tmp_path / "config.yml"
    path.write_text(json.dumps({"prod": {"loglevel": "info", "search_backend": "none",
                                         "notifications": {"endpoints": [ep]}}}))
    return str(path)


def start(tmp_path, configFile, port=None, debugPort=None):
    args = ("--config", configFile, "--flavor", "prod")
    if debugPort:
        args += ("--debug-port", str(debugPort))
    return procs.startTxregistry(str(tmp_path / "data"), str(tmp_path), port=port, args=args)


def pushed(image, repo, tag):
    """A predicate: push events for every blob and the tagged manifest."""
    def holds(got):
        blobs = {e["target"]["digest"] for e in got if e["action"] == "push" and e["target"].get("repository") == repo
                 and e["target"].get("mediaType") == "application/octet-stream"}
        manifests = [e for e in got if e["action"] == "push" and e["target"].get("digest") == image.manifestDigest
                     and e["target"].get("tag") == tag]
        return set(image.blobDigests) <= blobs and manifests
    return holds


@pytest.fixture
def image(tmp_path):
    path = str(tmp_path / "image")
    return path, oci.buildImage(path, tag="v1", layers=2, seed=7, layerSize=64 * 1024)


def test_push_pull_delete_events(tmp_path, receiver, image):
    path, img = image
    d = start(tmp_path, writeConfig(tmp_path, receiver.url))
    try:
        clients.push("oci:%s:v1" % (path,), d, "team/app:v1")
        got = receiver.waitFor(pushed(img, "team/app", "v1"))
        headers, envelope = receiver.envelopes[0]
        assert headers["Content-Type"] == ENVELOPE and headers["Authorization"] == "Bearer s3cret"
        assert len(envelope["events"]) == 1  # one event an envelope, as Distribution sends them
        (m,) = [e for e in got if e["action"] == "push" and e["target"]["digest"] == img.manifestDigest]
        t = m["target"]
        assert t["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
        assert t["size"] == t["length"] == len(img.manifest) and t["repository"] == "team/app"
        assert t["url"] == "%s/v2/team/app/manifests/%s" % (d.url, img.manifestDigest)
        assert m["request"]["method"] == "PUT" and m["request"]["addr"].startswith("127.0.0.1:")
        assert m["request"]["host"] == d.host and "skopeo" in m["request"]["useragent"]
        assert m["source"]["addr"].endswith(":%d" % (d.port,)) and m["source"]["instanceID"]
        assert m["id"] and m["timestamp"].endswith("Z")
        blob = [e for e in got if e["target"].get("digest") == img.layerDigests[0]][0]
        assert blob["target"]["url"] == "%s/v2/team/app/blobs/%s" % (d.url, img.layerDigests[0])

        before = len(got)
        clients.pull(d, "team/app:v1", "oci:%s:copy" % (tmp_path / "copy",))
        got = receiver.waitFor(lambda got: {e["target"].get("digest") for e in got[before:] if e["action"] == "pull"
                                            and e["request"]["method"] == "GET"} >= set(img.blobDigests)
                               | {img.manifestDigest})

        before = len(got)
        clients.delete(d, "team/app@%s" % (img.manifestDigest,))
        got = receiver.waitFor(lambda got: any(e["action"] == "delete" for e in got[before:]))
        (deleted,) = [e for e in got[before:] if e["action"] == "delete"]
        assert deleted["target"] == {"digest": img.manifestDigest, "repository": "team/app"}
        assert len({e["id"] for e in got}) == len(got)
    finally:
        d.stop()


def test_mount_and_ignored(tmp_path, receiver, image):
    path, img = image
    d = start(tmp_path, writeConfig(tmp_path, receiver.url, ignore={"actions": ["pull"]}, batch=50))
    try:
        clients.push("oci:%s:v1" % (path,), d, "team/app:v1")
        receiver.waitFor(pushed(img, "team/app", "v1"))
        digest = img.layerDigests[0]
        status, headers, _ = clients.request(
            d, "/v2/team/other/blobs/uploads/?mount=%s&from=team/app" % (digest,), method="POST", data=b"")
        assert status == 201
        got = receiver.waitFor(lambda got: any(e["action"] == "mount" for e in got))
        (mount,) = [e for e in got if e["action"] == "mount"]
        assert mount["target"]["repository"] == "team/other" and mount["target"]["fromRepository"] == "team/app"
        assert mount["target"]["digest"] == digest
        clients.pull(d, "team/app:v1", "oci:%s:copy" % (tmp_path / "copy",))
        clients.request(d, "/v2/team/other/blobs/%s" % (digest,), method="DELETE")
        got = receiver.waitFor(lambda got: any(e["action"] == "delete" for e in got))
        assert not [e for e in got if e["action"] == "pull"]
    finally:
        d.stop()


def test_failing_receiver_recovers_without_loss(tmp_path, receiver, image):
    path, img = image
    receiver.mode = "fail"
    debugPort = procs.freePort()
    d = start(tmp_path, writeConfig(tmp_path, receiver.url), debugPort=debugPort)
    debug = "http://127.0.0.1:%d" % (debugPort,)
    try:
        clients.push("oci:%s:v1" % (path,), d, "team/app:v1")
        deadline = time.monotonic() + 30
        while len(receiver.requests) < 5:  # failed, retried, backed off, retried
            assert time.monotonic() < deadline
            time.sleep(0.05)  # polling interval
        assert receiver.events() == []
        receiver.mode = "ok"
        got = receiver.waitFor(pushed(img, "team/app", "v1"))
        assert len([e for e in got if e["action"] == "push"]) == len(img.blobDigests) + 1
        count = len(img.blobDigests) + 1
        deadline = time.monotonic() + 30
        while True:
            samples = scrape(debug)
            # (The queue's count drops in its thread, the sent count after,
            # on the reactor: a scrape may come in between.)
            if (value(samples, "txregistry_notification_pending", endpoint="listener") == 0
                    and value(samples, "txregistry_notification_events_total", endpoint="listener",
                              outcome="sent") == count):
                break
            assert time.monotonic() < deadline
            time.sleep(0.05)  # polling interval
        assert value(samples, "txregistry_notification_events_total", endpoint="listener", outcome="queued") == count
        assert value(samples, "txregistry_notification_events_total", endpoint="listener", outcome="sent") == count
        assert value(samples, "txregistry_notification_failures_total", endpoint="listener") >= 5
    finally:
        d.stop()


def test_stalled_receiver_never_slows_a_push(tmp_path, receiver, image):
    path, img = image
    receiver.mode = "stall"
    d = start(tmp_path, writeConfig(tmp_path, receiver.url, timeout="30s"))
    try:
        started = time.monotonic()
        clients.push("oci:%s:v1" % (path,), d, "team/app:v1")
        took = time.monotonic() - started
        assert receiver.requests  # the first event was sent, and is stalled
        assert took < 15, took  # a push here takes well under a second; the stall is 30s
        # Still answered at once while the receiver holds the connection.
        started = time.monotonic()
        status, _, _ = clients.request(d, "/v2/team/app/manifests/v1", method="HEAD",
                                       headers={"Accept": oci.MANIFEST})
        assert status == 200 and time.monotonic() - started < 5
    finally:
        d.stop()


def test_queued_events_survive_kill(tmp_path, receiver, image):
    path, img = image
    down = procs.freePort()  # nothing listens here: every delivery fails
    configFile = writeConfig(tmp_path, "http://127.0.0.1:%d/events" % (down,))
    d = start(tmp_path, configFile)
    try:
        clients.push("oci:%s:v1" % (path,), d, "team/app:v1")
        queue = tmp_path / "data" / "txregistry" / "notify" / "listener"
        deadline = time.monotonic() + 30
        while True:  # every event in the queue on disk (the push answered; the queue is written after)
            text = b"".join(open(queue / n, "rb").read() for n in os.listdir(queue) if n.endswith(".jsonl"))
            if text.count(b'"action":"push"') == len(img.blobDigests) + 1:
                break
            assert time.monotonic() < deadline, text
            time.sleep(0.05)  # polling interval
    finally:
        d.kill()
    d = start(tmp_path, writeConfig(tmp_path, receiver.url))
    try:
        got = receiver.waitFor(pushed(img, "team/app", "v1"))
        assert len({e["id"] for e in got if e["action"] == "push"}) == len(img.blobDigests) + 1
        assert "%d event(s) queued from before" % (len(img.blobDigests) + 1,) in d.log()
    finally:
        d.stop()


def test_bad_notifications_config_fails_at_start(tmp_path):
    configFile = writeConfig(tmp_path, "http://127.0.0.1:1/", timeout="soon")
    import subprocess

    proc = subprocess.run([os.path.join(procs.BIN, "twistd"), "-n", "--pidfile=", "txregistry", "--port",
                           "tcp:%d:interface=127.0.0.1" % (procs.freePort(),), "--config", configFile,
                           "--flavor", "prod", "--storage-path", str(tmp_path / "data")],
                          capture_output=True, env=procs.twistdEnv(), cwd=procs.REPO, timeout=60)
    assert proc.returncode != 0
    err = proc.stderr.decode().strip()
    assert "notifications.endpoints[listener].timeout must be a duration" in err and len(err.splitlines()) == 1, err
