"""Garbage collection inside a running daemon, on its schedule, while
pushes and deletes go on: for a bounded time, threads push images (layers
shared through a pool, HEAD before upload as docker does, so a manifest
often names a blob it did not upload again) and a thread deletes images,
while the daemon collects every second with min_age 0 and untagged
manifests deleted.  Then every tagged image pulls whole (each blob there,
its digest right), every push not deleted is still tagged, the collection
did delete blobs, and ``txregistry check`` finds nothing wrong.

The layer pools are timed against the collection's grace (15 s): pool A
is used first, left alone for longer than the grace (its blobs become
collectable while the images naming them are deleted), then used again
while the collector sweeps them: the race the touch records are for."""

import hashlib
import json
import os
import random
import re
import subprocess
import threading
import time
import urllib.error
import urllib.request

from tests.support import procs
from txregistry.registry import touch

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar"
REPOSITORIES = ("team/a", "team/b")
PUSHERS = 3
# Seconds: pool A alone, then pool B for longer than the grace, then both.
PHASE_A = 5.0
PHASE_B = PHASE_A + touch.GRACE + 3.0
DURATION = PHASE_B + 9.0


class Client:
    def __init__(self, url):
        self.url = url

    def call(self, method, path, data=None, headers=None, expect=(200, 201, 202)):
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=60) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            body = e.read()
            if e.code in expect:
                return e.code, dict(e.headers), body
            raise PushRefused(method, path, e.code, body)

    def hasBlob(self, repo, digest):
        status, _, _ = self.call("HEAD", "/v2/%s/blobs/%s" % (repo, digest), expect=(200, 404))
        return status == 200

    def upload(self, repo, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        _, headers, _ = self.call("POST", "/v2/%s/blobs/uploads/" % (repo,), data=b"")
        location = headers["Location"]
        location = location if location.startswith("/") else "/" + location.split("/", 3)[3]
        self.call("PUT", "%s%sdigest=%s" % (location, "&" if "?" in location else "?", digest), data=data,
                  headers={"Content-Type": "application/octet-stream"})
        return digest

    def putManifest(self, repo, tag, body):
        self.call("PUT", "/v2/%s/manifests/%s" % (repo, tag), data=body, headers={"Content-Type": OCI_MANIFEST})


class PushRefused(Exception):
    def __init__(self, method, path, code, body):
        Exception.__init__(self, "%s %s: %s %r" % (method, path, code, body[:300]))
        self.code = code
        self.body = body


def layer(pool, i):
    return ("pool %s layer %d " % (pool, i)).encode() * 200


def descriptor(mediaType, data):
    return {"mediaType": mediaType, "digest": "sha256:" + hashlib.sha256(data).hexdigest(), "size": len(data)}


class Workload:
    def __init__(self, client):
        self.client = client
        self.start = time.monotonic()
        self.lock = threading.Lock()
        self.pushed = {}  # (repo, tag) -> manifest digest
        self.deleted = set()  # manifest digests
        self.retries = {"MANIFEST_BLOB_UNKNOWN": 0, "UNAVAILABLE": 0}
        self.errors = []

    def elapsed(self):
        return time.monotonic() - self.start

    def pools(self):
        t = self.elapsed()
        if t < PHASE_A:
            return ["A"]
        if t < PHASE_B:
            return ["B"]
        return ["A", "B"]

    def push(self, rng, repo, tag):
        pool = rng.choice(self.pools())
        layers = [layer(pool, i) for i in sorted(rng.sample(range(6), 2))] + [("own %s %s" % (repo, tag)).encode()]
        config = json.dumps({"tag": tag, "repo": repo}).encode()
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(CONFIG, config),
                           "layers": [descriptor(LAYER, d) for d in layers]}).encode()
        for attempt in range(10):
            for data in [config] + layers:
                d = "sha256:" + hashlib.sha256(data).hexdigest()
                if not self.client.hasBlob(repo, d):
                    self.client.upload(repo, data)
            try:
                self.client.putManifest(repo, tag, body)
            except PushRefused as e:
                code = json.loads(e.body)["errors"][0]["code"] if e.body else ""
                if code not in self.retries:
                    raise
                with self.lock:
                    self.retries[code] += 1
                continue  # as a client would: push what is missing again
            with self.lock:
                self.pushed[(repo, tag)] = "sha256:" + hashlib.sha256(body).hexdigest()
            return
        raise AssertionError("%s:%s not pushed in 10 attempts" % (repo, tag))

    def pusher(self, n):
        rng = random.Random(n)
        i = 0
        try:
            while self.elapsed() < DURATION:
                self.push(rng, rng.choice(REPOSITORIES), "p%d-%d" % (n, i))
                i += 1
        except Exception as e:
            self.errors.append(e)

    def deleter(self):
        rng = random.Random(99)
        try:
            while self.elapsed() < DURATION:
                with self.lock:
                    candidates = sorted((k, v) for k, v in self.pushed.items() if v not in self.deleted)
                if len(candidates) > 6:
                    (repo, tag), digest = rng.choice(candidates[:-4])  # not the newest few
                    # By digest, or by tag: then delete_untagged collects it.
                    self.client.call("DELETE", "/v2/%s/manifests/%s" % (repo, rng.choice([digest, tag])))
                    with self.lock:
                        self.deleted.add(digest)
                time.sleep(0.05)  # pacing of the deletes, not a wait for readiness
        except Exception as e:
            self.errors.append(e)


def pullWhole(client, repo, tag):
    _, _, body = client.call("GET", "/v2/%s/manifests/%s" % (repo, tag), headers={"Accept": OCI_MANIFEST})
    doc = json.loads(body)
    for desc in [doc["config"]] + doc["layers"]:
        _, _, data = client.call("GET", "/v2/%s/blobs/%s" % (repo, desc["digest"]))
        assert "sha256:" + hashlib.sha256(data).hexdigest() == desc["digest"], (repo, tag, desc)
        assert len(data) == desc["size"]
    return "sha256:" + hashlib.sha256(body).hexdigest()


def collections(log):
    return [tuple(int(x) for x in m.groups()) for m in re.finditer(
        r"garbage collection in [\d.]+s: deleted (\d+) tag\(s\), (\d+) untagged manifest\(s\), (\d+) blob\(s\)", log)]


GC_CONFIG = "dev:\n  loglevel: info\n  gc: {interval: 1s, min_age: 0, delete_untagged: true}\n"


def exercise(d):
    """Run the workload against daemon C{d} (configured with L{GC_CONFIG})
    and check the outcome."""
    assert "garbage collection every 1s, min_age 0s, untagged manifests deleted" in d.log()
    client = Client(d.url)
    work = Workload(client)
    threads = [threading.Thread(target=work.pusher, args=(n,)) for n in range(PUSHERS)]
    threads.append(threading.Thread(target=work.deleter))
    for t in threads:
        t.start()
    for t in threads:
        t.join(DURATION + 120)
    assert not work.errors, work.errors
    # One more collection after the last push and delete.
    runs = len(collections(d.log()))
    deadline = time.monotonic() + 60
    while len(collections(d.log())) < runs + 2 and time.monotonic() < deadline:
        time.sleep(0.1)  # polling interval
    assert len(collections(d.log())) >= runs + 2, d.log()[-3000:]

    expected = {k: v for k, v in work.pushed.items() if v not in work.deleted}
    found = {}
    for repo in REPOSITORIES:
        _, _, body = client.call("GET", "/v2/%s/tags/list" % (repo,))
        for tag in json.loads(body)["tags"] or []:
            found[(repo, tag)] = pullWhole(client, repo, tag)
    assert found == expected
    done = collections(d.log())
    deletedBlobs = sum(blobs for _, _, blobs in done)
    print("%d pushes, %d deletes, %d collections deleted %d untagged manifests and %d blobs; retries %s"
          % (len(work.pushed), len(work.deleted), len(done), sum(m for _, m, _ in done), deletedBlobs,
             work.retries))
    assert len(work.pushed) > 30 and len(work.deleted) > 10
    assert deletedBlobs > 0 and sum(m for _, m, _ in done) > 0 and "Traceback" not in d.log()


def checkCommand(*args, env=None):
    return subprocess.run([os.path.join(procs.BIN, "txregistry"), "check"] + list(args),
                          capture_output=True, text=True, timeout=120, env=procs.twistdEnv(env))


def test_collect_while_pushing_and_deleting(tmp_path):
    data = str(tmp_path / "data")
    cfg = tmp_path / "config.yml"
    cfg.write_text(GC_CONFIG)
    d = procs.startTxregistry(data, str(tmp_path), env={"DOCKER_REGISTRY_CONFIG": str(cfg)})
    try:
        exercise(d)
    finally:
        d.stop()
    r = checkCommand("--storage-path", data)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 corrupt, 0 missing, 0 unreadable" in r.stdout
