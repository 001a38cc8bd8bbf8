"""Error e-mails from the running daemon, through a real SMTP server
(Twisted's, in a subprocess on loopback): one mail for an internal error,
with the request line (redacted), the traceback and the host; a burst
becomes one or two mails with the count; an SMTP server that is down
changes nothing for requests and is warned about once, and the held
errors are mailed when it comes up; AUTH and STARTTLS; with twistd
daemonized and with registry.tac."""

import email
import email.policy
import os
import signal
import socket
import time

import pytest

from tests.daemon.test_auth_daemon import call
from tests.daemon.test_logging import brokenManifest
from tests.daemon.test_twistd import TWISTD, assertConfigurationError, run, waitForPidfile
from tests.support import pki, procs
from tests.support.smtpserver import SMTPServer

BROKEN = "/v2/broken/manifests/t"
HOST = socket.gethostname()


def writeConfig(tmp_path, smtpPort, interval=1, **extra):
    lines = ["mail:", "    loglevel: info", "    search_backend: none", "    smtp_host: 127.0.0.1",
             "    smtp_port: %d" % (smtpPort,), "    from_addr: registry@example.com",
             "    to_addr: ops@example.com", "    email_interval: %s" % (interval,)]
    lines += ["    %s: %s" % item for item in extra.items()]
    path = tmp_path / "config.yml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def startDaemon(tmp_path, smtpPort, env=None, **extra):
    storage = str(tmp_path / "data")
    brokenManifest(storage)
    return procs.startTxregistry(storage, str(tmp_path), env=env, args=(
        "--config", writeConfig(tmp_path, smtpPort, **extra), "--flavor", "mail"))


def parse(data):
    return email.message_from_bytes(data, policy=email.policy.default)


def waitForMails(server, count, timeout=30):
    """The messages once at least C{count} are there (polled for)."""
    deadline = time.monotonic() + timeout
    while len(server.messages()) < count and time.monotonic() < deadline:
        time.sleep(0.05)  # polling for the mail
    messages = server.messages()
    assert len(messages) >= count, messages
    return [(envelope, parse(data)) for envelope, data in messages]


def errorCount(mails):
    return sum(int(m["X-Txregistry-Errors"]) for _, m in mails)


def fail(d, query=""):
    """One request that is an internal error; answered promptly."""
    start = time.monotonic()
    status, _, _ = call("GET", d.url + BROKEN + query)
    assert status == 500
    assert time.monotonic() - start < 5
    return time.monotonic() - start


def test_one_error_one_mail_with_request_traceback_and_host(tmp_path):
    smtp = SMTPServer(procs.freePort(), str(tmp_path / "mails"), str(tmp_path / "smtp.log"))
    d = startDaemon(tmp_path, smtp.port)
    try:
        assert "error mails to ops@example.com through 127.0.0.1:%d" % (smtp.port,) in d.log()
        fail(d, "?token=query-secret-token")
        [(envelope, mail)] = waitForMails(smtp, 1)
        assert "from: registry@example.com" in envelope and "to: ops@example.com" in envelope
        # (logged twice, by us and by twisted.web: one error)
        assert mail["X-Txregistry-Errors"] == "1"
        assert mail["From"] == "registry@example.com" and mail["To"] == "ops@example.com"
        subject = mail["Subject"]
        assert HOST in subject and "GET %s" % (BROKEN,) in subject and "IsADirectoryError" in subject
        body = mail.get_content()
        assert "request: GET %s?token=[redacted]" % (BROKEN,) in body
        assert "host: %s" % (HOST,) in body
        assert "Traceback (most recent call last):" in body and "IsADirectoryError" in body
        assert "query-secret-token" not in body + subject
    finally:
        d.stop()
        smtp.stop()


def test_burst_is_one_or_two_mails_with_the_count(tmp_path):
    smtp = SMTPServer(procs.freePort(), str(tmp_path / "mails"), str(tmp_path / "smtp.log"))
    d = startDaemon(tmp_path, smtp.port, interval=3)
    try:
        start = time.monotonic()
        for _ in range(20):
            fail(d)
        assert time.monotonic() - start < 3, "the burst took longer than the window"
        deadline = time.monotonic() + 30
        while errorCount(waitForMails(smtp, 1)) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)  # polling for the second mail
        mails = waitForMails(smtp, 1)
        assert errorCount(mails) == 20 and len(mails) <= 2
        last = mails[-1][1]
        n = int(last["X-Txregistry-Errors"])
        if n > 1:
            assert "(and %d more)" % (n - 1,) in last["Subject"]
            assert "%d unexpected error(s) on %s" % (n, HOST) in last.get_content()
        for _, mail in mails:
            # at most 5 given in full: memory is bounded, whatever the rate
            assert 1 <= mail.get_content().count("Traceback (most recent call last):") <= 5
        if n > 5:
            assert "the other %d are in the log" % (n - 5,) in last.get_content()
    finally:
        d.stop()
        smtp.stop()


def test_smtp_server_down_then_up(tmp_path):
    smtpPort = procs.freePort()  # nothing listens there yet
    d = startDaemon(tmp_path, smtpPort)
    smtp = None
    try:
        for _ in range(3):
            fail(d)
        deadline = time.monotonic() + 30
        while "cannot send error mail" not in d.log() and time.monotonic() < deadline:
            time.sleep(0.05)  # polling for the warning
        # Several attempts fail (one every second) while requests go on as usual.
        until = time.monotonic() + 3
        while time.monotonic() < until:
            fail(d)
            time.sleep(0.2)  # pacing the requests over the outage, not waiting for anything
        assert d.proc.poll() is None
        smtp = SMTPServer(smtpPort, str(tmp_path / "mails"), str(tmp_path / "smtp.log"))
        mails = waitForMails(smtp, 1)
        assert errorCount(mails) >= 4  # what was held meanwhile, in one mail
        for _ in range(3):
            fail(d)
        deadline = time.monotonic() + 30
        while errorCount(waitForMails(smtp, 1)) < errorCount(mails) + 3 and time.monotonic() < deadline:
            time.sleep(0.05)  # polling for the next burst's mail
        assert errorCount(waitForMails(smtp, 2)) == errorCount(mails) + 3
        log = d.syncLog()
        warnings = [x for x in log.splitlines() if "cannot send error mail" in x]
        assert len(warnings) == 1, warnings
        assert "#warn" in warnings[0] and "127.0.0.1:%d" % (smtpPort,) in warnings[0]
        assert log.count("error mail sent again through 127.0.0.1:%d" % (smtpPort,)) == 1
        # the only tracebacks in the log are those of the requests themselves
        assert log.count("Traceback (most recent call last):") == log.count("internal error on GET " + BROKEN)
    finally:
        d.stop()
        if smtp is not None:
            smtp.stop()


def test_auth_and_starttls(tmp_path):
    tls = pki.makePKI(str(tmp_path / "pki"))
    smtp = SMTPServer(procs.freePort(), str(tmp_path / "mails"), str(tmp_path / "smtp.log"), user="mailer",
                      password="smtp-secret-pw", tls=tls)
    d = startDaemon(tmp_path, smtp.port, env={"SSL_CERT_FILE": tls["ca"]}, smtp_login="mailer",
                    smtp_password="smtp-secret-pw", smtp_secure="true")
    try:
        fail(d)
        [(envelope, mail)] = waitForMails(smtp, 1)
        assert "login: mailer" in envelope
        assert "GET %s" % (BROKEN,) in mail["Subject"]
        assert "smtp-secret-pw" not in d.syncLog()
    finally:
        d.stop()
        smtp.stop()


def test_starttls_required_and_unverified_is_warned_not_sent(tmp_path):
    # The server's certificate is not trusted: nothing is sent in clear.
    tls = pki.makePKI(str(tmp_path / "pki"))
    smtp = SMTPServer(procs.freePort(), str(tmp_path / "mails"), str(tmp_path / "smtp.log"), user="mailer",
                      password="smtp-secret-pw", tls=tls)
    d = startDaemon(tmp_path, smtp.port, smtp_login="mailer", smtp_password="smtp-secret-pw", smtp_secure="true")
    try:
        fail(d)
        deadline = time.monotonic() + 30
        while "cannot send error mail" not in d.log() and time.monotonic() < deadline:
            time.sleep(0.05)  # polling for the warning
        assert "cannot send error mail" in d.log()
        assert smtp.messages() == []
    finally:
        d.stop()
        smtp.stop()


@pytest.mark.parametrize("how", ["daemonized", "tac"])
def test_mails_when_daemonized_and_with_registry_tac(tmp_path, how):
    smtp = SMTPServer(procs.freePort(), str(tmp_path / "mails"), str(tmp_path / "smtp.log"))
    port = procs.freePort()
    listen = "tcp:%d:interface=127.0.0.1" % (port,)
    storage = str(tmp_path / "data")
    brokenManifest(storage)
    config = writeConfig(tmp_path, smtp.port)
    pidfile, logfile = tmp_path / "twistd.pid", tmp_path / "twistd.log"
    d = None
    try:
        if how == "daemonized":
            r = run(["--pidfile", str(pidfile), "--logfile", str(logfile), "txregistry", "--port", listen,
                     "--storage-path", storage, "--config", config, "--flavor", "mail"])
            assert r.returncode == 0, r.stderr
            pid = waitForPidfile(pidfile)
            procs.waitFor("http://127.0.0.1:%d/v2/" % (port,))
        else:
            env = {"REGISTRY_PORT": listen, "STORAGE_PATH": storage, "DOCKER_REGISTRY_CONFIG": config,
                   "SETTINGS_FLAVOR": "mail"}
            d = procs.Daemon([TWISTD, "-ny", os.path.join(procs.REPO, "registry.tac"), "--pidfile="], port,
                             str(logfile), env=procs.twistdEnv(env), cwd=str(tmp_path))
        status, _, _ = call("GET", "http://127.0.0.1:%d%s" % (port, BROKEN))
        assert status == 500
        [(_, mail)] = waitForMails(smtp, 1)
        assert "GET %s" % (BROKEN,) in mail["Subject"]
    finally:
        if d is not None:
            d.stop()
        elif pidfile.exists():
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
            deadline = time.monotonic() + 15
            while pidfile.exists() and time.monotonic() < deadline:
                time.sleep(0.05)  # polling for the daemon to stop
        smtp.stop()


@pytest.mark.parametrize("key,value,expected", [
    ("smtp_port", "twenty-five", "smtp_port must be a port number"),
    ("smtp_secure", "maybe", "smtp_secure must be true or false"),
    ("to_addr", "nobody", "to_addr must be an e-mail address"),
    ("email_interval", "0", "email_interval must be a number of seconds"),
    ("smtp_login", "someone", "give both smtp_login and smtp_password"),
])
def test_bad_mail_settings_fail_at_start_in_one_line(tmp_path, key, value, expected):
    r = run(["-n", "--pidfile=", "txregistry", "--port", "tcp:%d:interface=127.0.0.1" % procs.freePort(),
             "--storage-path", str(tmp_path / "data"), "--config", writeConfig(tmp_path, 25, **{key: value}),
             "--flavor", "mail"])
    assertConfigurationError(r, expected)
