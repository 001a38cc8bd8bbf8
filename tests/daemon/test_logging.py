"""The daemon's log: JSON lines where twistd writes (stdout with -n, the
--logfile, twistd.log when daemonized, and with a .tac file), the access
event's fields, tracebacks, no secrets, loglevel filtering in both
formats, and bad settings refused at start."""

import json
import os
import time
import urllib.request

import pytest

from tests.daemon.test_auth_daemon import basic, call, configDir
from tests.daemon.test_twistd import TWISTD, assertConfigurationError, run, waitForPidfile
from tests.support import procs, secure

ACCESS_FIELDS = ("client", "user", "method", "path", "protocol", "status", "bytes", "referer", "user_agent",
                 "duration")


def waitForText(read, text, timeout=30):
    deadline = time.monotonic() + timeout
    while text not in read() and time.monotonic() < deadline:
        time.sleep(0.05)  # polling for the log line
    assert text in read(), read()[-3000:]


def parse(text):
    """Every line of C{text} as JSON (fails on any other line)."""
    lines = [x for x in text.splitlines() if x.strip()]
    assert lines
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            pytest.fail("not a JSON line: %r" % (line,))
    for event in out:
        for key in ("time", "level", "namespace", "message"):
            assert key in event, event
        assert event["time"].endswith("Z")
    return out


def accessEvents(events, path=None):
    return [e for e in events if e["namespace"] == "txregistry.access" and (path is None or e["path"] == path)]


def brokenManifest(storage):
    """A tag whose manifest's data is a directory: reading it fails with an
    exception nobody expects (an internal error, logged with its
    traceback)."""
    digest = "a" * 64
    root = os.path.join(storage, "docker", "registry", "v2")
    os.makedirs(os.path.join(root, "blobs", "sha256", "aa", digest, "data"))
    for link in ("_manifests/tags/t/current", "_manifests/revisions/sha256/" + digest):
        os.makedirs(os.path.join(root, "repositories", "broken", link))
        with open(os.path.join(root, "repositories", "broken", link, "link"), "w") as f:
            f.write("sha256:" + digest)


def test_json_on_stdout_with_access_fields_tracebacks_and_no_secrets(tmp_path):
    conf = configDir(tmp_path, mode="basic")
    storage = str(tmp_path / "data")
    brokenManifest(storage)
    d = procs.startTxregistry(storage, str(tmp_path), args=(
        "--config", str(conf / "config.yml"), "--flavor", "secure", "--log-format", "json"))
    try:
        password = secure.PASSWORDS["admin"]
        status, _, _ = call("GET", d.url + "/v2/?n=1", headers={
            "Authorization": basic("admin", password), "User-Agent": 'tester "7"', "Referer": "http://x/"})
        assert status == 200
        status, _, _ = call("GET", d.url + "/v2/", headers={"Authorization": basic("alice", "wrong-secret-pw")})
        assert status == 401
        status, _, _ = call("GET", d.url + "/v2/", headers={"Authorization": "Bearer bearer-secret-token"})
        assert status == 401
        status, _, _ = call("GET", d.url + "/v2/_catalog?token=query-secret-token",
                            headers={"Authorization": basic("admin", password)})
        assert status == 200
        status, _, _ = call("GET", d.url + "/v2/broken/manifests/t", headers={"Authorization": basic("admin", password)})
        assert status == 500
        waitForText(d.log, "/v2/broken/manifests/t")
    finally:
        d.stop()
    text = d.log()
    events = parse(text)
    # startup lines are still there, as events
    listening = [e for e in events if e["message"].startswith("txregistry listening on")]
    assert listening and listening[0]["flavor"] == "secure" and listening[0]["path"] == storage
    assert "127.0.0.1:%d" % d.port in listening[0]["message"]
    assert any(e["message"] == "Server Shut Down." for e in events)
    # loglevel debug in this flavor: the debug event is there
    assert any(e["level"] == "debug" and e["message"].startswith("settings: loglevel debug, log_format json,")
               for e in events)
    [ok] = accessEvents(events, "/v2/?n=1")
    assert all(k in ok for k in ACCESS_FIELDS), ok
    assert (ok["level"], ok["client"], ok["user"], ok["method"], ok["protocol"], ok["status"]) == (
        "info", "127.0.0.1", "admin", "GET", "HTTP/1.1", 200)
    assert ok["bytes"] == 2 and ok["referer"] == "http://x/" and ok["user_agent"] == 'tester "7"'
    assert isinstance(ok["duration"], float) and 0 <= ok["duration"] < 30
    assert '"GET /v2/?n=1 HTTP/1.1" 200 2' in ok["message"]
    # (the first: the readiness poll)
    assert [e["status"] for e in accessEvents(events, "/v2/")] == [401, 401, 401]
    [catalog] = accessEvents(events, "/v2/_catalog?token=[redacted]")
    assert catalog["status"] == 200
    [failure] = [e for e in events if e["message"] == "internal error on GET /v2/broken/manifests/t"]
    assert failure["level"] == "critical"
    assert failure["traceback"].startswith("Traceback (most recent call last):")
    assert "IsADirectoryError" in failure["traceback"] and "IsADirectoryError" in failure["exception"]
    import base64

    for secret in (password, "wrong-secret-pw", "bearer-secret-token", "query-secret-token",
                   base64.b64encode(("admin:" + password).encode()).decode()):
        assert secret not in text


def test_json_to_logfile_with_nodaemon(tmp_path):
    logfile = tmp_path / "reg.log"
    port = procs.freePort()
    d = procs.Daemon(
        [TWISTD, "-n", "--pidfile=", "--logfile", str(logfile), "txregistry",
         "--port", "tcp:%d:interface=127.0.0.1" % port, "--storage-path", str(tmp_path / "data")],
        port, str(tmp_path / "stdout.log"), env=procs.twistdEnv({"LOG_FORMAT": "json"}),
    )
    try:
        urllib.request.urlopen(d.url + "/v2/").close()
        waitForText(lambda: logfile.read_text(), '"path": "/v2/"')
    finally:
        d.stop()
    events = parse(logfile.read_text())
    assert any(e["message"].startswith("txregistry listening on") for e in events)
    assert len(accessEvents(events, "/v2/")) == 2  # waitFor's request and ours
    assert d.log().strip() == ""  # nothing on stdout


def test_json_daemonized_to_twistd_log(tmp_path):
    port = procs.freePort()
    pidfile = tmp_path / "twistd.pid"
    r = run(["--pidfile", str(pidfile), "txregistry", "--port", "tcp:%d:interface=127.0.0.1" % port,
             "--storage-path", str(tmp_path / "data"), "--log-format", "json"], cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    pid = waitForPidfile(pidfile)
    try:
        procs.waitFor("http://127.0.0.1:%d/v2/" % port)
        logfile = tmp_path / "twistd.log"
        waitForText(lambda: logfile.read_text() if logfile.exists() else "", '"path": "/v2/"')
    finally:
        os.kill(pid, 15)
    deadline = time.monotonic() + 30
    while pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)  # polling for the daemon to remove its pidfile
    events = parse(logfile.read_text())
    assert any(e["message"].startswith("txregistry listening on") for e in events)


def test_json_with_tac_file_and_logfile(tmp_path):
    port = procs.freePort()
    logfile = tmp_path / "tac.log"
    env = {"REGISTRY_PORT": "tcp:%d:interface=127.0.0.1" % port, "STORAGE_PATH": str(tmp_path / "tac-data"),
           "LOG_FORMAT": "json", "LOGLEVEL": "warn"}
    d = procs.Daemon(
        [TWISTD, "-ny", os.path.join(procs.REPO, "registry.tac"), "--pidfile=", "-l", str(logfile)],
        port, str(tmp_path / "stdout.log"), env=procs.twistdEnv(env), cwd=str(tmp_path),
    )
    try:
        urllib.request.urlopen(d.url + "/v2/").close()
        waitForText(lambda: logfile.read_text(), "will not survive a reboot")
    finally:
        d.stop()
    events = parse(logfile.read_text())
    assert {e["level"] for e in events if e["namespace"] != "txregistry.startup"} <= {"warn", "error", "critical"}
    assert any(e["message"].startswith("txregistry listening on") for e in events)
    assert not accessEvents(events)
    assert d.log().strip() == ""


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_loglevel_filters_every_event(tmp_path, fmt):
    seen = {}
    for level in ("debug", "info", "warn"):
        d = procs.startTxregistry(str(tmp_path / ("data-" + level)), str(tmp_path),
                                  env={"LOGLEVEL": level, "LOG_FORMAT": fmt})
        try:
            urllib.request.urlopen(d.url + "/v2/").close()
            # the /tmp warning comes after the listening line: once it is
            # there, so is everything logged at start
            waitForText(d.log, "will not survive a reboot")
            if level != "warn":
                waitForText(d.log, "GET /v2/ HTTP/1.1")
        finally:
            d.stop()
        seen[level] = d.log()
    if fmt == "json":
        levels = {name: {e["level"] for e in parse(text)} for name, text in seen.items()}
        assert "debug" in levels["debug"]
        assert "debug" not in levels["info"] and "info" in levels["info"]
        assert {e["level"] for e in parse(seen["warn"]) if e["namespace"] != "txregistry.startup"} == {"warn"}
    for name, text in seen.items():
        assert ("settings: loglevel debug, log_format %s," % fmt in text) == (name == "debug")
        assert ("GET /v2/ HTTP/1.1" in text) == (name != "warn")
        assert "txregistry listening on" in text  # whatever the level
        assert ("twistd" in text and "starting up" in text) == (name != "warn")
        assert "will not survive a reboot" in text


@pytest.mark.parametrize(
    "args,env,config,expected",
    [
        (["--log-format", "xml"], {}, None, "--log-format: log_format must be one of text, json, not 'xml'"),
        ([], {"LOG_FORMAT": "yaml"}, None, "LOG_FORMAT: log_format must be one of text, json, not 'yaml'"),
        ([], {}, "mine:\n  log_format: 7\n", "log_format must be one of text, json, not 7"),
        ([], {}, "mine:\n  loglevel: chatty\n", "loglevel must be one of debug, info, warn, warning, error, critical"),
    ],
)
def test_bad_log_settings_fail_at_start_with_one_line(tmp_path, args, env, config, expected):
    if config is not None:
        (tmp_path / "c.yml").write_text(config)
        args = args + ["--config", str(tmp_path / "c.yml"), "--flavor", "mine"]
    r = run(["-n", "--pidfile=", "txregistry", "--port", "tcp:0:interface=127.0.0.1",
             "--storage-path", str(tmp_path / "d")] + args, env=env)
    assertConfigurationError(r, expected)
