"""Metrics and health of a running daemon, scraped while real clients push
and pull (skopeo), on the debug listener and on the main port."""

import json
import os
import signal
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e import clients, oci
from tests.support import procs, s3servers, secure

ROUTES = {"base", "catalog", "tags", "manifest", "uploadStart", "upload", "blob", "referrers", "unknown",
          "token", "v1_ping", "v1_search", "health", "healthz", "ready", "debug_health", "metrics", "other"}


def get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def scrape(url):
    """{(name, frozenset(labels.items())): value} of every sample."""
    status, headers, body = get(url + "/metrics")
    assert status == 200, body[:300]
    assert headers["Content-Type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples, name, **labels):
    """Sum over every sample of C{name} whose labels include C{labels}."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


@pytest.fixture
def debugged(tmp_path):
    debugPort = procs.freePort()
    d = procs.startTxregistry(str(tmp_path / "data"), str(tmp_path), args=("--debug-port", str(debugPort)))
    d.debugURL = "http://127.0.0.1:%d" % (debugPort,)
    yield d
    d.stop()


def test_counters_follow_a_real_push_and_pull(debugged, tmp_path):
    d = debugged
    src, out = str(tmp_path / "src"), str(tmp_path / "out")
    image = oci.buildImage(src, tag="v1", layers=3)
    sizes = sum(os.path.getsize(os.path.join(src, "blobs", "sha256", b.split(":")[1])) for b in image.blobDigests)
    before = scrape(d.debugURL)
    clients.push("oci:%s:v1" % (src,), d, "metrics/app:v1")
    pushed = scrape(d.debugURL)
    clients.pull(d, "metrics/app:v1", "oci:%s:v1" % (out,))
    pulled = scrape(d.debugURL)

    def delta(a, b, name, **labels):
        return total(b, name, **labels) - total(a, name, **labels)

    requests = "txregistry_http_requests_total"
    assert delta(before, pushed, requests, route="manifest", method="PUT", code="201") == 1
    # Every blob went up whole, in one upload each (its body counted).
    uploads = delta(before, pushed, requests, route="upload", method="PUT", code="201") + delta(
        before, pushed, requests, route="uploadStart", method="POST", code="201")
    assert uploads == len(image.blobDigests)
    received = delta(before, pushed, "txregistry_http_request_body_bytes_total")
    assert sizes <= received <= sizes + len(image.manifest) + 4096
    # The pull fetched each blob once, and sent their bytes.
    assert delta(pushed, pulled, requests, route="blob", method="GET", code="200") == len(image.blobDigests)
    assert delta(pushed, pulled, "txregistry_http_response_body_bytes_total", route="blob") == sizes
    assert delta(pushed, pulled, requests, route="manifest", method="GET", code="200") >= 1
    # Durations are observed for each request counted.
    assert delta(before, pulled, "txregistry_http_request_duration_seconds_count") == delta(
        before, pulled, requests) - delta(before, pulled, requests, route="metrics")
    # Storage operations timed, by driver and operation.
    assert delta(before, pushed, "txregistry_storage_operation_duration_seconds_count",
                 driver="filesystem", operation="move") >= len(image.blobDigests)
    assert total(pulled, "txregistry_storage_errors_total") == 0
    assert value(pulled, "txregistry_uploads_in_progress") == 0
    assert value(pulled, "process_resident_memory_bytes") > 0
    # No label carries a repository or a path.
    for (name, labels), _ in pulled.items():
        for k, v in labels:
            if k == "route":
                assert v in ROUTES, (name, v)
            assert "metrics/app" not in v


def test_probes_of_odd_paths_make_no_new_labels(debugged):
    for path in ("/v2/a/b/c/nothing/here", "/no/such/%d" % (time.time(),), "/v2/x/blobs/uploads/../../etc"):
        get("http://127.0.0.1:%d%s" % (debugged.port, path))
    routes = {dict(ls).get("route") for (n, ls) in scrape(debugged.debugURL) if n == "txregistry_http_requests_total"}
    assert routes <= ROUTES


def test_health_and_ready(debugged):
    for base in (debugged.url, debugged.debugURL):
        status, headers, body = get(base + "/health")
        assert status == 200 and json.loads(body)["status"] == "ok"
        status, headers, body = get(base + "/ready")
        doc = json.loads(body)
        assert status == 200, doc
        names = {c["name"]: c for c in doc["checks"]}
        assert set(names) == {"storage", "search_index", "shutdown"}
        assert all(c["status"] == "ok" and c["latency_seconds"] >= 0 for c in names.values())
    # /metrics is on the debug listener only, unless configured.
    assert get(debugged.url + "/metrics")[0] == 404


def test_health_needs_no_login(tmp_path):
    d = secure.startSecure(tmp_path, mode="bearer", tls=False)
    try:
        assert get(d.url + "/v2/")[0] == 401
        for path in ("/health", "/ready"):
            status, _, body = get(d.url + path)
            assert status == 200, body
    finally:
        d.stop()


def test_ready_fails_when_s3_stops(tmp_path):
    s3servers.skipUnlessAvailable(s3servers.MotoServer)
    server = s3servers.MotoServer().start()
    try:
        server.createBucket("ready")
        config = tmp_path / "config.yml"
        config.write_text("s3:\n    storage: s3\n    health_timeout: 1\n    metrics_main_port: true\n")
        d = procs.startTxregistryOnS3(server, "ready", str(tmp_path), DOCKER_REGISTRY_CONFIG=str(config))
        try:
            assert get(d.url + "/ready")[0] == 200
            assert total(scrape(d.url), "txregistry_s3_requests_total") > 0
            os.kill(server.proc.pid, signal.SIGSTOP)  # hung: connections accepted, nothing answered
            try:
                started = time.monotonic()
                status, _, body = get(d.url + "/ready")
                elapsed = time.monotonic() - started
                doc = json.loads(body)
                assert status == 503, doc
                storage = [c for c in doc["checks"] if c["name"] == "storage"][0]
                assert storage["status"] == "failed" and "no answer within 1 s" in storage["error"]
                assert elapsed < 5
                assert get(d.url + "/health")[0] == 200  # alive all the same
            finally:
                os.kill(server.proc.pid, signal.SIGCONT)
            deadline = time.monotonic() + 30
            while get(d.url + "/ready")[0] != 200:
                assert time.monotonic() < deadline, "not ready again after S3 came back"
                time.sleep(0.2)  # polling interval
        finally:
            d.stop()
    finally:
        server.stop()


def test_debug_listener_port_in_use_is_one_line(tmp_path):
    import socket
    import subprocess

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    try:
        taken = s.getsockname()[1]
        argv = [os.path.join(procs.BIN, "twistd"), "-n", "--pidfile=", "txregistry", "--port",
                "tcp:%d:interface=127.0.0.1" % (procs.freePort(),), "--storage-path", str(tmp_path / "data"),
                "--debug-port", str(taken)]
        proc = subprocess.run(argv, capture_output=True, timeout=60, env=procs.twistdEnv(), cwd=procs.REPO)
    finally:
        s.close()
    assert proc.returncode != 0
    lines = proc.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "debug_addr" in lines[0], proc.stderr
