"""A daemon of several worker processes (``--workers 2``), real sockets and
signals: the shared port, uploads and logins across workers, a worker
killed mid-pull, SIGHUP under load, SIGTERM with requests under way, and
the master's merged metrics."""

import base64
import os
import re
import signal
import socket
import threading
import time

from tests.support import procs, secure
from tests.workers.pool import (children, connect, only, pushBlob, pushImage, request, start, statusOn,
                                waitForWorkers)


def test_the_port_is_shared_and_each_line_says_which_worker(tmp_path):
    d = start(tmp_path)
    try:
        pids = children(d.pid)
        assert len(pids) == 2
        for pid in pids:  # each serves on the one port
            with only(d, pid):
                assert request(d, "GET", "/v2/")[0] == 200
        log = d.syncLog()
        assert re.search(r"txregistry master \(pid %d\) listening on 127\.0\.0\.1:%d: 2 worker process\(es\)"
                         % (d.pid, d.port), log), log
        for index in (0, 1):
            assert re.search(r"\[worker-%d\] txregistry listening on 127\.0\.0\.1:%d" % (index, d.port), log)
            assert re.search(r'\[worker-%d\] "127\.0\.0\.1" .*"GET /v2/ HTTP/1\.1" 200' % (index,), log)
    finally:
        d.stop()
    assert d.proc.returncode == -signal.SIGTERM  # (as twistd with one process: it ends by the signal)
    assert not any(os.path.exists("/proc/%d" % p) and open("/proc/%d/stat" % p).read().split()[2] != "Z"
                   for p in pids)


def test_a_chunked_upload_whose_requests_reach_different_workers(tmp_path):
    d = start(tmp_path)
    try:
        first, second = children(d.pid)
        chunks = [os.urandom(300 * 1024 + i) for i in range(6)]
        data = b"".join(chunks)
        with only(d, first):
            status, headers, _ = request(d, "POST", "/v2/team/app/blobs/uploads/")
        assert status == 202
        location, offset = headers["Location"], 0
        for i, chunk in enumerate(chunks):
            with only(d, first if i % 2 else second):
                status, headers, body = request(d, "PATCH", location, body=chunk, headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": "%d-%d" % (offset, offset + len(chunk) - 1)})
            assert status == 202, body
            offset += len(chunk)
            assert headers["Range"] == "0-%d" % (offset - 1,)
            location = headers["Location"]
        from tests.workers.pool import digestOf

        with only(d, second):
            status, _, body = request(d, "PUT", location + ("&" if "?" in location else "?") + "digest=" + digestOf(data))
        assert status == 201, body
        for pid in (first, second):
            with only(d, pid):
                status, _, body = request(d, "GET", "/v2/team/app/blobs/" + digestOf(data))
            assert status == 200 and body == data
    finally:
        d.stop()


def test_a_worker_killed_mid_pull_is_replaced(tmp_path):
    d = start(tmp_path)
    try:
        data = os.urandom(64 * 1024 * 1024)
        digest = pushBlob(d, "team/big", data)
        victim, other = children(d.pid)
        with only(d, victim):
            conn = connect(d)
            conn.request("GET", "/v2/team/big/blobs/" + digest)
            response = conn.getresponse()
            assert response.status == 200
            response.read(1024 * 1024)
        os.kill(victim, signal.SIGKILL)
        got = 1024 * 1024
        try:
            while True:
                chunk = response.read(1024 * 1024)
                if not chunk:
                    break
                got += len(chunk)
        except Exception:
            pass  # (http.client's IncompleteRead, or a reset)
        conn.close()
        assert got < len(data), "the client saw the whole blob from a killed worker"
        # The next request is served (by the other worker), and the master
        # starts a new one.
        status, _, body = request(d, "GET", "/v2/team/big/blobs/" + digest)
        assert status == 200 and body == data
        pids = waitForWorkers(d, 2)
        assert victim not in pids and other in pids
        assert re.search(r"worker \d \(pid %d\) killed by signal 9 .*: starting another" % (victim,), d.log())
    finally:
        d.stop()


def test_sighup_replaces_every_worker_without_a_failed_request(tmp_path):
    d = start(tmp_path)
    try:
        digest = pushImage(d, "team/app", "1.0", os.urandom(256 * 1024))
        before = children(d.pid)
        failures, done, count = [], threading.Event(), [0]

        def pulls():
            while not done.is_set():
                try:
                    status, _, _ = request(d, "GET", "/v2/team/app/manifests/1.0",
                                           headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
                    if status != 200:
                        failures.append(status)
                except Exception as e:
                    failures.append(repr(e))
                count[0] += 1

        threads = [threading.Thread(target=pulls) for _ in range(4)]
        for t in threads:
            t.start()
        try:
            os.kill(d.pid, signal.SIGHUP)
            deadline = time.monotonic() + 90
            while "reload done" not in d.log() and time.monotonic() < deadline:
                time.sleep(0.05)  # polling interval
            after = waitForWorkers(d, 2, exclude=before)
        finally:
            done.set()
            for t in threads:
                t.join()
        assert "reload done: 2 new worker(s)" in d.log()
        # No request is refused, reset, answered with an error or left hanging (an old worker froze
        # once, with requests it had accepted, when its SIGTERM came in the middle of a log line to the
        # master: tests/unit/test_signal_reentry.py).
        assert failures == [] and count[0] > 20, (failures[:5], count[0])
        deadline = time.monotonic() + 60
        while children(d.pid) != after and time.monotonic() < deadline:
            time.sleep(0.05)  # polling interval: the old workers end
        assert children(d.pid) == after
        assert digest  # (the image pulled throughout)
    finally:
        d.stop()


def test_sighup_rereads_htpasswd(tmp_path):
    conf = tmp_path / "conf"
    path = secure.writeConfig(str(conf), "basic")
    d = start(tmp_path, args=("--config", path, "--flavor", "secure"))
    try:
        def login(user, password):
            auth = "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
            return request(d, "GET", "/v2/", headers={"Authorization": auth})[0]

        assert login("carol", "new-password") == 401
        secure.htpasswd(str(conf / "users.htpasswd"), dict(secure.PASSWORDS, carol="new-password"), "-B")
        before = children(d.pid)
        os.kill(d.pid, signal.SIGHUP)
        for pid in waitForWorkers(d, 2, exclude=before):
            with only(d, pid):
                assert login("carol", "new-password") == 200
    finally:
        d.stop()


def test_failed_logins_are_counted_across_workers(tmp_path):
    conf = tmp_path / "conf"
    path = secure.writeConfig(str(conf), "basic", config=secure.CONFIG.replace(
        "        mode: %(mode)s\n", "        mode: %(mode)s\n        login_failures: 3\n        login_failure_window: 30\n"))
    d = start(tmp_path, args=("--config", path, "--flavor", "secure"))
    try:
        first, second = children(d.pid)
        wrong = "Basic " + base64.b64encode(b"alice:wrong").decode()
        # (a password never checked before: a right one checked is remembered a while)
        right = "Basic " + base64.b64encode(("bob:%s" % secure.PASSWORDS["bob"]).encode()).decode()
        with only(d, first):
            for _ in range(3):
                assert request(d, "GET", "/v2/", headers={"Authorization": wrong})[0] == 401
        # (the master relays the failures: polled)
        assert statusOn(d, second, lambda s: s == 429, "GET", "/v2/", headers={"Authorization": right}) == 429
    finally:
        d.stop()


def test_sigusr1_and_sigusr2_reach_every_worker(tmp_path):
    d = start(tmp_path)
    try:
        for sig, expected in ((signal.SIGUSR1, 405), (signal.SIGUSR2, 202)):
            os.kill(d.pid, sig)
            for pid in children(d.pid):
                assert statusOn(d, pid, lambda s: s == expected, "POST", "/v2/team/app/blobs/uploads/") == expected
    finally:
        d.stop()


def test_sigterm_lets_a_pull_under_way_finish(tmp_path):
    d = start(tmp_path)
    data = os.urandom(32 * 1024 * 1024)
    digest = pushBlob(d, "team/big", data)
    conn = connect(d)
    conn.request("GET", "/v2/team/big/blobs/" + digest)
    response = conn.getresponse()
    got = response.read(4 * 1024 * 1024)
    d.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    while "waiting for 1 request(s) under way" not in d.log() and time.monotonic() < deadline:
        time.sleep(0.05)  # polling interval
    # Meanwhile no new connection is accepted... once the workers stopped listening.
    got += response.read()
    conn.close()
    assert got == data
    d.proc.wait(30)
    assert d.proc.returncode == -signal.SIGTERM
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", d.port)) != 0
    d.stop()


def test_one_scrape_counts_every_worker(tmp_path):
    debug = procs.freePort()
    d = start(tmp_path, args=("--debug-port", str(debug)))
    try:
        for pid in children(d.pid):
            with only(d, pid):
                for _ in range(5):
                    assert request(d, "GET", "/v2/")[0] == 200
        import urllib.request

        text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % (debug,)).read().decode()
        found = re.search(r'txregistry_http_requests_total\{code="200",method="GET",route="base"\} ([0-9.]+)', text)
        assert found, text[:3000]
        assert float(found.group(1)) >= 10
        import json

        ready = json.loads(urllib.request.urlopen("http://127.0.0.1:%d/ready" % (debug,)).read())
        assert ready["status"] == "ok"
        assert {c.get("worker") for c in ready["checks"]} >= {0, 1}
    finally:
        d.stop()


def test_the_main_ports_metrics_count_every_worker(tmp_path):
    """With metrics_main_port, a scrape of the main port shows all workers'
    metrics added up, whichever worker answers it (each was its own)."""
    config = tmp_path / "config.yml"
    config.write_text("w:\n    storage: local\n    metrics_main_port: true\n")
    d = start(tmp_path, args=("--config", str(config), "--flavor", "w"))
    try:
        pinned = []
        for pid in children(d.pid):
            with only(d, pid):
                for _ in range(5):
                    assert request(d, "GET", "/v2/")[0] == 200
                conn = connect(d)  # accepted by this worker, kept open
                conn.request("GET", "/v2/")
                conn.getresponse().read()
                pinned.append(conn)
        assert len(pinned) == 2
        counts = []
        for conn in pinned:  # one scrape answered by each worker, both running
            conn.request("GET", "/metrics")
            r = conn.getresponse()
            text = r.read().decode()
            assert r.status == 200, text[:500]
            found = re.search(r'txregistry_http_requests_total\{code="200",method="GET",route="base"\} ([0-9.]+)',
                              text)
            assert found, text[:3000]
            counts.append(float(found.group(1)))
            conn.close()
        # 12 here, and the start-up's readiness polls; each worker alone served 6 of the 12
        assert counts[0] == counts[1] >= 12, counts
        log = d.syncLog()
        for index in (0, 1):
            assert re.search(r'\[worker-%d\] "127\.0\.0\.1" .*"GET /metrics HTTP/1\.1" 200' % (index,), log), log[-3000:]
    finally:
        d.stop()


def test_start_up_failures_end_the_master_with_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        r = __import__("subprocess").run(
            [os.path.join(procs.BIN, "twistd"), "-n", "--pidfile=", "txregistry", "--workers", "2", "--port",
             "tcp:%d:interface=127.0.0.1" % (port,), "--storage-path", str(tmp_path / "data")],
            capture_output=True, env=procs.twistdEnv(), cwd=procs.REPO, timeout=60)
    assert r.returncode != 0
    assert r.stderr.decode().strip().splitlines() == [
        "txregistry: cannot listen on tcp:%d:interface=127.0.0.1: Couldn't listen on 127.0.0.1:%d: "
        "[Errno 98] Address already in use." % (port, port)]


def test_tls_with_workers(tmp_path):
    from tests.support import pki

    d = start(tmp_path, tls=pki.makePKI(str(tmp_path / "pki")))
    try:
        for pid in children(d.pid):
            with only(d, pid):
                assert request(d, "GET", "/v2/")[0] == 200
    finally:
        d.stop()


def test_daemonized_master_with_pidfile_and_json_log(tmp_path):
    import json
    import subprocess

    port = procs.freePort()
    pidfile, logfile = tmp_path / "txregistry.pid", tmp_path / "txregistry.log"
    subprocess.run([os.path.join(procs.BIN, "twistd"), "--pidfile", str(pidfile), "--logfile", str(logfile),
                    "txregistry", "--workers", "2", "--log-format", "json", "--port",
                    "tcp:%d:interface=127.0.0.1" % (port,), "--storage-path", str(tmp_path / "data")],
                   check=True, env=procs.twistdEnv(), cwd=procs.REPO, timeout=60)
    master = int(pidfile.read_text())
    try:
        procs.waitFor("http://127.0.0.1:%d/v2/" % (port,))
        deadline = time.monotonic() + 60
        while len(children(master)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # polling interval
        workers = children(master)
        assert len(workers) == 2
        for pid in workers:
            os.kill(pid, signal.SIGSTOP)
            for other in workers:
                if other != pid:
                    os.kill(other, signal.SIGCONT)
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    s.sendall(b"GET /v2/ HTTP/1.0\r\n\r\n")
                    assert s.recv(100).startswith(b"HTTP/1.0 200")
            finally:
                os.kill(pid, signal.SIGCONT)
    finally:
        os.kill(master, signal.SIGTERM)
        deadline = time.monotonic() + 60
        while os.path.exists("/proc/%d" % (master,)) and time.monotonic() < deadline:
            time.sleep(0.05)  # polling interval
    assert not pidfile.exists()
    for pid in workers:
        assert not os.path.exists("/proc/%d" % (pid,))
    events = [json.loads(line) for line in logfile.read_text().splitlines()]
    assert {e.get("worker") for e in events if e.get("namespace") == "txregistry.access"} == {0, 1}
    assert any(e["message"].startswith("txregistry master (pid %d)" % (master,)) for e in events)


def test_a_page_session_made_by_one_worker_holds_on_the_other(tmp_path):
    import urllib.parse

    path = secure.writeConfig(str(tmp_path / "conf"), "basic")
    d = start(tmp_path, args=("--config", path, "--flavor", "secure"))
    try:
        first, second = children(d.pid)
        with only(d, first):
            status, headers, body = request(d, "GET", "/-/login")
            assert status == 200
            fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', body.decode()))
            cookie = headers.get("Set-Cookie", "").split(";")[0]
            form = urllib.parse.urlencode(dict(fields, user="alice", password=secure.PASSWORDS["alice"]))
            status, headers, body = request(d, "POST", "/-/login", body=form.encode(), headers=dict(
                {"Content-Type": "application/x-www-form-urlencoded", "Origin": d.url},
                **({"Cookie": cookie} if cookie else {})))
            assert status == 303, body
            session = headers["Set-Cookie"].split(";")[0]
        with only(d, second):
            status, _, body = request(d, "GET", "/", headers={"Cookie": session})
        assert status == 200 and b"/-/logout" in body
    finally:
        d.stop()
