"""A daemon with several workers, and ways to send a request to one of
them: the others are paused (SIGSTOP) meanwhile, so only that one accepts
from the shared socket."""

import contextlib
import hashlib
import http.client
import json
import os
import re
import signal
import time

from tests.support import procs


def start(tmp_path, workers=2, args=(), env=None, tls=None):
    env = dict(env or {}, WORKERS=str(workers))
    d = procs.startTxregistry(str(tmp_path / "data"), str(tmp_path), args=tuple(args), env=env, tls=tls)
    try:
        waitForWorkers(d, workers)
    except Exception:
        d.stop()
        raise
    return d


def children(pid):
    """The pids of a process's children."""
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return sorted(int(p) for p in f.read().split())
    except FileNotFoundError:
        return []


def waitForWorkers(d, count, timeout=60, exclude=()):
    """Poll until C{count} worker processes other than C{exclude} run and
    each answered a request: their pids."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [p for p in children(d.pid) if p not in exclude]
        if len(pids) == count and all(answers(d, p) for p in pids):
            return pids
        time.sleep(0.05)  # polling interval
    raise AssertionError("%d workers did not serve within %s s: %s\n%s" % (count, timeout, children(d.pid),
                                                                            d.log()[-3000:]))


def answers(d, pid):
    """Whether the worker C{pid} answers a request sent to it alone."""
    try:
        with only(d, pid):
            request(d, "GET", "/v2/", timeout=2)
            return True
    except OSError:
        return False


@contextlib.contextmanager
def only(d, pid):
    """Only worker C{pid} accepts connections meanwhile: the others are
    stopped (SIGSTOP), and continued after."""
    others = [p for p in children(d.pid) if p != pid]
    for p in others:
        os.kill(p, signal.SIGSTOP)
    try:
        yield
    finally:
        for p in others:
            try:
                os.kill(p, signal.SIGCONT)
            except ProcessLookupError:
                pass


def connect(d, timeout=30):
    host, port = d.host.split(":")
    if d.sslContext is not None:
        return http.client.HTTPSConnection(host, int(port), timeout=timeout, context=d.sslContext)
    return http.client.HTTPConnection(host, int(port), timeout=timeout)


def request(d, method, path, body=None, headers=None, timeout=30):
    """One request on a connection of its own: (status, headers, body)."""
    conn = connect(d, timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}, Connection="close"))
        r = conn.getresponse()
        return r.status, r.headers, r.read()
    finally:
        conn.close()


def statusOn(d, pid, wanted, method, path, timeout=10, **kwargs):
    """The status worker C{pid} answers C{method path} with, asked again
    (polled) until C{wanted(status)} or C{timeout} seconds."""
    deadline = time.monotonic() + timeout
    while True:
        with only(d, pid):
            status = request(d, method, path, **kwargs)[0]
        if wanted(status) or time.monotonic() > deadline:
            return status
        time.sleep(0.05)  # polling interval


def digestOf(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def pushBlob(d, repo, data):
    status, headers, _ = request(d, "POST", "/v2/%s/blobs/uploads/" % (repo,))
    assert status == 202
    status, _, body = request(d, "PUT", headers["Location"] + "&digest=" + digestOf(data)
                              if "?" in headers["Location"] else headers["Location"] + "?digest=" + digestOf(data),
                              body=data, headers={"Content-Type": "application/octet-stream"})
    assert status == 201, body
    return digestOf(data)


def pushImage(d, repo, tag, layer):
    config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": pushBlob(d, repo, config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": pushBlob(d, repo, layer),
                    "size": len(layer)}],
    }).encode()
    status, _, body = request(d, "PUT", "/v2/%s/manifests/%s" % (repo, tag), body=manifest,
                              headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert status == 201, body
    return digestOf(manifest)
