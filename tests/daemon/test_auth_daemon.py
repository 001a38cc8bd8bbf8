"""Authentication in a running daemon: the ``auth:`` section of a config
file, one-line errors at start, the start-up line, and logs that name the
user but never hold a password or a token."""

import base64
import hashlib
import json
import os
import re
import urllib.error
import urllib.request

import pytest

from tests.daemon.test_twistd import assertConfigurationError, run
from tests.support import procs, secure

PASSWORDS = secure.PASSWORDS
CONFIG = secure.CONFIG


def configDir(tmp_path, mode="bearer", flag="-B"):
    conf = tmp_path / "conf"
    secure.writeConfig(str(conf), mode, flag)
    return conf


def call(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def startSecure(tmp_path, conf):
    return procs.startTxregistry(
        str(tmp_path / "data"), str(tmp_path), args=("--config", str(conf / "config.yml"), "--flavor", "secure"),
    )


def test_bearer_daemon_logs_users_never_secrets(tmp_path):
    conf = configDir(tmp_path)
    d = startSecure(tmp_path, conf)
    try:
        status, headers, _ = call("GET", d.url + "/v2/")
        assert status == 401
        challenge = headers["WWW-Authenticate"]
        assert challenge == 'Bearer realm="%s/auth/token",service="txregistry"' % d.url
        # a token for alice, then a push with it
        scope = "repository:alice/app:pull,push"
        status, _, body = call("GET", d.url + "/auth/token?service=txregistry&scope=" + scope,
                               headers={"Authorization": basic("alice", PASSWORDS["alice"])})
        assert status == 200, body
        token = json.loads(body)["token"]
        data = b'{"architecture":"amd64","os":"linux"}'
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        status, _, body = call("POST", "%s/v2/alice/app/blobs/uploads/?digest=%s" % (d.url, digest), data,
                               {"Authorization": "Bearer " + token})
        assert status == 201, body
        # wrong password, and a password where a token is expected
        status, _, _ = call("GET", d.url + "/auth/token?service=txregistry",
                            headers={"Authorization": basic("alice", "wrong-secret-pw")})
        assert status == 401
        status, _, _ = call("GET", d.url + "/v2/alice/app/tags/list",
                            headers={"Authorization": basic("alice", PASSWORDS["alice"])})
        assert status == 401
        # alice cannot push elsewhere
        status, _, _ = call("POST", d.url + "/v2/bob/x/blobs/uploads/", None, {"Authorization": "Bearer " + token})
        assert status == 401
        log = d.syncLog()
        assert "authentication: bearer mode, 3 user(s) from %s" % (conf / "users.htpasswd") in log
        assert "token endpoint /auth/token" in log
        assert '" - alice ' in log  # the access log names the user
        for secret in list(PASSWORDS.values()) + ["wrong-secret-pw", token, token.split(".")[2]]:
            assert secret not in log
        assert base64.b64encode(b"alice:" + PASSWORDS["alice"].encode()).decode() not in log
    finally:
        d.stop()


def test_basic_daemon(tmp_path):
    conf = configDir(tmp_path, mode="basic")
    d = startSecure(tmp_path, conf)
    try:
        status, headers, _ = call("GET", d.url + "/v2/")
        assert (status, headers["WWW-Authenticate"]) == (401, 'Basic realm="txregistry"')
        status, _, _ = call("GET", d.url + "/v2/", headers={"Authorization": basic("admin", PASSWORDS["admin"])})
        assert status == 200
        status, _, body = call("GET", d.url + "/v2/_catalog", headers={"Authorization": basic("alice", "nope")})
        assert status == 401 and json.loads(body)["errors"][0]["code"] == "UNAUTHORIZED"
        status, _, body = call("GET", d.url + "/v2/bob/x/tags/list",
                               headers={"Authorization": basic("alice", PASSWORDS["alice"])})
        assert status == 403 and json.loads(body)["errors"][0]["code"] == "DENIED"
        # the built-in token endpoint is off in basic mode
        status, _, _ = call("GET", d.url + "/auth/token?service=txregistry")
        assert status == 404
        assert PASSWORDS["alice"] not in d.syncLog()
    finally:
        d.stop()


def test_failed_logins_are_throttled(tmp_path):
    from tests.e2e.clients import skopeo

    conf = tmp_path / "conf"
    secure.writeConfig(str(conf), "basic", config=CONFIG.replace(
        "        mode: %(mode)s\n", "        mode: %(mode)s\n        login_failures: 3\n        login_failure_window: 3\n"))
    d = startSecure(tmp_path, conf)
    try:
        authfile = str(tmp_path / "auth.json")
        host = d.url.split("//", 1)[1]
        for attempt in range(3):
            r = skopeo("login", "--tls-verify=false", "--authfile", authfile, "-u", "alice", "-p",
                       "guess-%d" % attempt, host, check=False)
            assert r.returncode != 0
        # Now even the right password is refused for a while.
        status, headers, body = call("GET", d.url + "/v2/", headers={"Authorization": basic("bob", PASSWORDS["bob"])})
        assert status == 429 and json.loads(body)["errors"][0]["code"] == "TOOMANYREQUESTS"
        assert 1 <= int(headers["Retry-After"]) <= 3
        # Anonymous pulls need no password: still served.
        status, _, _ = call("GET", d.url + "/v2/public/app/tags/list")
        assert status == 404
        # skopeo honours Retry-After: its login waits out the window, then succeeds.
        skopeo("login", "--tls-verify=false", "--authfile", authfile, "-u", "alice", "-p", PASSWORDS["alice"], host)
        log = d.syncLog()
        assert "login throttled: 3 failed logins from 127.0.0.1 within 3 s" in log
        assert re.search(r'"GET /v2/ HTTP/1\.1" 429 \d+ "-" "skopeo/', log), log[-3000:]
        assert '- alice [' in log
        for secret in ["guess-%d" % i for i in range(3)] + [PASSWORDS["alice"], PASSWORDS["bob"]]:
            assert secret not in log
    finally:
        d.stop()


@pytest.mark.parametrize(
    "mutate,expected",
    [
        (lambda conf: configDir(conf, flag="-m"), "bcrypt"),  # MD5 (apr1) hashes
        (lambda conf: (configDir(conf), os.unlink(str(conf / "conf" / "users.htpasswd"))), "auth.htpasswd cannot read"),
        (lambda conf: (configDir(conf), (conf / "conf" / "config.yml").write_text(
            CONFIG.replace("mode: %(mode)s", "mode: magic") % {})), "auth.mode must be basic or bearer"),
        (lambda conf: (configDir(conf), (conf / "conf" / "config.yml").write_text(
            (CONFIG % {"mode": "bearer"}).replace('actions: ["*"]', "actions: [fly]"))), "unknown action 'fly'"),
    ],
)
def test_auth_configuration_errors_fail_at_start_with_one_line(tmp_path, mutate, expected):
    mutate(tmp_path)
    r = run(["-n", "--pidfile=", "txregistry", "--port", "tcp:0:interface=127.0.0.1",
             "--config", str(tmp_path / "conf" / "config.yml"), "--flavor", "secure",
             "--storage-path", str(tmp_path / "data")])
    assertConfigurationError(r, expected)
