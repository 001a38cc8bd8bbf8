"""The daemon as users start it: twistd -n, daemonized twistd, twistd -ny
registry.tac, --help, and configuration errors at start."""

import json
import os
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.support import procs

TWISTD = os.path.join(procs.BIN, "twistd")


def run(args, env=None, cwd=None, timeout=60):
    return subprocess.run(
        [TWISTD] + args, env=procs.twistdEnv(env), cwd=cwd or procs.REPO, capture_output=True, text=True, timeout=timeout
    )


def assertConfigurationError(r, expected):
    """C{r} (a finished twistd) stopped at start with one line on stderr
    naming C{expected}, and no traceback."""
    assert r.returncode != 0
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("txregistry: configuration error: ")
    assert expected in lines[0], lines[0]
    assert "Traceback" not in r.stdout + r.stderr
    return lines[0]


def waitForPidfile(pidfile, timeout=30):
    """The pid a daemonized twistd wrote to C{pidfile} (polled for)."""
    deadline = time.monotonic() + timeout
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # polling for the pidfile
    return int(pidfile.read_text())


def test_help_documents_each_option():
    out = run(["txregistry", "--help"]).stdout
    for option in ("--port", "--storage-path", "--config", "--flavor", "strports", "STORAGE_PATH"):
        assert option in out


def test_foreground_logs_address_storage_and_flavor(tmp_path):
    d = procs.startTxregistry(str(tmp_path / "data"), str(tmp_path))
    try:
        with urllib.request.urlopen(d.url + "/v2/") as r:
            assert r.status == 200
            assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
            assert json.load(r) == {}
        log = d.log()
        line = [x for x in log.splitlines() if "txregistry listening on" in x]
        assert line, log
        assert "127.0.0.1:%d" % d.port in line[0]
        assert str(tmp_path / "data") in line[0]
        assert "flavor dev" in line[0]
        assert "/tmp" not in str(tmp_path) or "will not survive a reboot" in log
        # the access log has a line per request
        assert "GET /v2/ HTTP/1.1" in d.syncLog()
    finally:
        d.stop()
    # twistd re-raises the SIGTERM it handled, after a clean shutdown
    assert d.proc.returncode in (0, -15)
    assert "Server Shut Down." in d.log()


def test_daemonized_with_pidfile_and_logfile(tmp_path):
    port = procs.freePort()
    pidfile, logfile = tmp_path / "twistd.pid", tmp_path / "twistd.log"
    r = run(
        [
            "--pidfile", str(pidfile), "--logfile", str(logfile), "txregistry",
            "--port", "tcp:%d:interface=127.0.0.1" % port, "--storage-path", str(tmp_path / "data"),
        ]
    )
    assert r.returncode == 0, r.stderr
    pid = waitForPidfile(pidfile)
    try:
        procs.waitFor("http://127.0.0.1:%d/v2/" % port)
        assert "txregistry listening on" in logfile.read_text()
    finally:
        os.kill(pid, 15)
    deadline = time.monotonic() + 30
    while pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # polling for the daemon to remove its pidfile
    assert not pidfile.exists()


def test_tac_file(tmp_path):
    port = procs.freePort()
    env = {"REGISTRY_PORT": "tcp:%d:interface=127.0.0.1" % port, "STORAGE_PATH": str(tmp_path / "tac-data")}
    d = procs.Daemon(
        [TWISTD, "-ny", os.path.join(procs.REPO, "registry.tac"), "--pidfile="],
        port,
        str(tmp_path / "tac.log"),
        env=procs.twistdEnv(env),
        cwd=str(tmp_path),
    )
    try:
        assert str(tmp_path / "tac-data") in d.log()
    finally:
        d.stop()


def test_bare_port_number_means_tcp(tmp_path):
    port = procs.freePort()
    d = procs.Daemon(
        [TWISTD, "-n", "--pidfile=", "txregistry", "--port", str(port), "--storage-path", str(tmp_path / "d")],
        port,
        str(tmp_path / "bare.log"),
        env=procs.twistdEnv(),
    )
    d.stop()


def test_config_file_and_env(tmp_path):
    cfg = tmp_path / "config.yml"
    cfg.write_text(
        "common: &common\n  loglevel: info\n"
        "mine:\n  <<: *common\n  storage: local\n  storage_path: _env:MY_PATH:/nonexistent/default\n"
    )
    port = procs.freePort()
    env = {"DOCKER_REGISTRY_CONFIG": str(cfg), "SETTINGS_FLAVOR": "mine", "MY_PATH": str(tmp_path / "from-env")}
    d = procs.Daemon(
        [TWISTD, "-n", "--pidfile=", "txregistry", "--port", "tcp:%d:interface=127.0.0.1" % port],
        port,
        str(tmp_path / "cfg.log"),
        env=procs.twistdEnv(env),
    )
    try:
        assert "flavor mine" in d.log()
        assert str(tmp_path / "from-env") in d.log()
    finally:
        d.stop()


def test_requests_refused_before_a_handler_are_logged(tmp_path):
    # Answered by the connection itself (framing, header size, declared
    # length): an access line each, as for any other request.
    from tests.hostile import rawhttp

    d = procs.startTxregistry(str(tmp_path / "data"), str(tmp_path))
    try:
        for data in (
            b"POST /v2/a/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nUser-Agent: smuggler\r\n"
            b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n",
            b"GET /v2/?token=hush HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n",
            b"PUT /v2/a/manifests/t HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999\r\n\r\n",
        ):
            rawhttp.converse(d.port, data, timeout=10)
        log = d.syncLog()
        assert '"POST /v2/a/blobs/uploads/ HTTP/1.1" 400 ' in log and '"smuggler"' in log, log[-3000:]
        assert '"GET /v2/?token=[redacted] HTTP/1.1" 431 ' in log, log[-3000:]
        assert '"PUT /v2/a/manifests/t HTTP/1.1" 413 ' in log, log[-3000:]
        assert "hush" not in log
    finally:
        d.stop()


def test_loglevel_warn_silences_access_log(tmp_path):
    d = procs.startTxregistry(str(tmp_path / "data"), str(tmp_path), env={"LOGLEVEL": "warn"})
    try:
        urllib.request.urlopen(d.url + "/v2/").close()
        assert "txregistry listening on" in d.log()
    finally:
        d.stop()
    assert "GET /v2/ HTTP/1.1" not in d.log()  # stopped: nothing is held any more


@pytest.mark.parametrize(
    "args,env,expected",
    [
        (["--flavor", "nope"], {}, "unknown flavor 'nope'"),
        (["--config", "/no/such.yml"], {}, "cannot read config file /no/such.yml"),
        ([], {"LOGLEVEL": "shouty"}, "loglevel must be one of"),
        (["--storage-path", "/proc/forbidden"], {}, "cannot create storage path /proc/forbidden"),
        ([], {"REGISTRY_PUBLIC_URL": "https://registry.example/v2"}, "REGISTRY_PUBLIC_URL: public_url must be"),
    ],
)
def test_configuration_errors_fail_at_start_with_one_line(tmp_path, args, env, expected):
    r = run(["-n", "--pidfile=", "txregistry", "--port", "tcp:0:interface=127.0.0.1"] + args, env=env)
    assertConfigurationError(r, expected)


@pytest.mark.parametrize("url", ["nosuchdialect://indexer:s3cret-pw@127.0.0.1/index",
                                 "postgresql+nosuchdriver://indexer:s3cret-pw@127.0.0.1/index"])
def test_database_error_does_not_show_the_password(tmp_path, url):
    r = run(["-n", "--pidfile=", "txregistry", "--port", "tcp:0:interface=127.0.0.1",
             "--storage-path", str(tmp_path / "data")],
            env={"SEARCH_BACKEND": "sqlalchemy", "SQLALCHEMY_INDEX_DATABASE": url})
    line = assertConfigurationError(r, "sqlalchemy_index_database ")
    assert "indexer:***@127.0.0.1" in line
    assert "s3cret-pw" not in r.stdout + r.stderr


def test_readonly_mode_and_signals(tmp_path):
    import signal

    d = procs.startTxregistry(str(tmp_path / "data"), str(tmp_path), env={"READONLY": "true"})

    def post():
        req = urllib.request.Request(d.url + "/v2/ro/blobs/uploads/", method="POST", data=b"")
        try:
            with urllib.request.urlopen(req) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def waitForLog(text, count):
        deadline = time.monotonic() + 30
        while d.log().count(text) < count and time.monotonic() < deadline:
            time.sleep(0.05)  # polling for the log line
        assert d.log().count(text) >= count, d.log()[-3000:]

    try:
        assert "read-only mode" in d.log()
        assert post() == 405
        with urllib.request.urlopen(d.url + "/v2/") as r:
            assert r.status == 200  # pulls still served
        os.kill(d.pid, signal.SIGUSR2)
        waitForLog("read-only mode off", 1)
        assert post() == 202
        os.kill(d.pid, signal.SIGUSR1)
        waitForLog("read-only mode on", 1)
        assert post() == 405
    finally:
        d.stop()
