"""txregistry.mail: its settings (the classic keys), the mail's text, the
request line it shows, and the observer's filtering, de-duplication and
bounded memory."""

import email
import email.policy

import pytest
from twisted.internet import reactor
from twisted.logger import Logger, LogLevel, LogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.web.server import Request
from twisted.web.test.requesthelper import DummyChannel

from txregistry import config, mail

CLASSIC = """
common: &common
    loglevel: info
    email_exceptions:
        smtp_host: _env:SMTP_HOST
        smtp_port: _env:SMTP_PORT:25
        smtp_login: _env:SMTP_LOGIN
        smtp_password: _env:SMTP_PASSWORD
        smtp_secure: _env:SMTP_SECURE:false
        from_addr: _env:SMTP_FROM_ADDR:docker-registry@localdomain.local
        to_addr: _env:SMTP_TO_ADDR:noise+dockerregistry@localdomain.local
local:
    <<: *common
    storage: local
prod:
    <<: *common
    storage: local
    smtp_host: mail.example.com
    smtp_port: 587
    from_addr: docker@example.com
    to_addr: a@example.com, b@example.com
"""


@pytest.fixture
def classic(tmp_path):
    p = tmp_path / "config.yml"
    p.write_text(CLASSIC)
    return str(p)


def load(path, flavor, environ=None):
    return config.load(configFile=path, flavor=flavor, storagePath="/tmp/x", environ=environ or {})


def test_off_without_smtp_host(classic):
    s = load(classic, "local")
    assert s.mail is None and s.ignoredKeys == ()
    assert config.load(environ={}).mail is None


def test_top_level_keys_as_in_the_old_prod_flavor(classic):
    s = load(classic, "prod")
    assert s.mail == mail.MailSettings(host="mail.example.com", port=587, fromAddr="docker@example.com",
                                       toAddrs=("a@example.com", "b@example.com"), interval=60.0)
    assert s.ignoredKeys == ()


def test_email_exceptions_section_and_its_variables(classic):
    s = load(classic, "local", {"SMTP_HOST": "smtp.example.com", "SMTP_PORT": "2525", "SMTP_LOGIN": "me",
                                "SMTP_PASSWORD": "pw", "SMTP_SECURE": "true"})
    assert s.mail == mail.MailSettings(host="smtp.example.com", port=2525, login="me", password="pw", secure=True,
                                       fromAddr="docker-registry@localdomain.local",
                                       toAddrs=("noise+dockerregistry@localdomain.local",))


def test_variables_with_the_built_in_configuration():
    s = config.load(environ={"SMTP_HOST": "127.0.0.1", "SMTP_TO_ADDR": "ops@example.com"})
    assert (s.mail.host, s.mail.port, s.mail.toAddrs, s.mail.secure) == ("127.0.0.1", 25, ("ops@example.com",), False)


@pytest.mark.parametrize("extra,expected", [
    ({"SMTP_PORT": "abc"}, "smtp_port must be a port number (1 to 65535), not 'abc'"),
    ({"SMTP_PORT": "70000"}, "smtp_port must be a port number"),
    ({"SMTP_SECURE": "perhaps"}, "smtp_secure must be true or false, not 'perhaps'"),
    ({"SMTP_TO_ADDR": "nobody"}, "to_addr must be an e-mail address"),
    ({"SMTP_TO_ADDR": "a@b.example\r\nBcc: x@y.example"}, "to_addr must be an e-mail address"),
    ({"SMTP_FROM_ADDR": "me"}, "from_addr must be an e-mail address"),
    ({"SMTP_LOGIN": "me"}, "give both smtp_login and smtp_password, or neither"),
    ({"SMTP_HOST": "bad host"}, "smtp_host must be a host name"),
])
def test_bad_values_are_one_line_errors(classic, extra, expected):
    environ = {"SMTP_HOST": "smtp.example.com"}
    environ.update(extra)
    with pytest.raises(config.ConfigError) as e:
        load(classic, "local", environ)
    assert expected in str(e.value) and "\n" not in str(e.value)


def test_to_addr_needed_and_password_never_shown():
    with pytest.raises(config.ConfigError, match="smtp_host is set but to_addr is not"):
        config.load(environ={"SMTP_HOST": "h"})
    with pytest.raises(mail.MailConfigError) as e:
        mail.parseMailSettings({"smtp_host": "h", "to_addr": "a@b.c", "smtp_password": ["hunter2-secret"]}, "f")
    assert "hunter2-secret" not in str(e.value)


def test_interval_and_unknown_section_keys():
    base = {"smtp_host": "h", "to_addr": "a@b.c"}
    assert mail.parseMailSettings(dict(base, email_interval=5), "f").interval == 5.0
    for bad in (0, -1, "soon", True, 10 ** 6):
        with pytest.raises(mail.MailConfigError, match="email_interval must be a number of seconds"):
            mail.parseMailSettings(dict(base, email_interval=bad), "f")
    with pytest.raises(mail.MailConfigError, match="unknown email_exceptions keys: smtp_hots"):
        mail.parseMailSettings({"email_exceptions": {"smtp_hots": "h"}}, "f")


def failure():
    try:
        raise IsADirectoryError(21, "Is a directory")
    except OSError:
        return Failure()


def test_request_line_redacted_from_fields_or_from_the_request():
    assert mail.requestLine({"method": b"GET", "uri": b"/v2/a/blobs/x?token=s3cret&n=1"}) == \
        "GET /v2/a/blobs/x?token=[redacted]&n=1"
    request = Request(DummyChannel())
    request.method, request.uri = b"POST", b"/token?password=pw"
    assert mail.requestLine({"log_source": request}) == "POST /token?password=[redacted]"
    assert mail.requestLine({"log_source": object()}) is None


def test_message_has_the_count_request_host_and_traceback():
    settings = mail.MailSettings(host="h", toAddrs=("a@b.example", "c@d.example"), fromAddr="r@e.example")
    f = failure()
    errors = [mail._Error(when=0, summary="internal error on GET /v2/x", request="GET /v2/x",
                          exception="IsADirectoryError: [Errno 21] Is a directory", traceback=f.getTraceback())]
    m = email.message_from_bytes(mail.composeMessage(settings, "node1", errors, 7), policy=email.policy.default)
    assert m["Subject"] == "[txregistry node1] internal error on GET /v2/x: IsADirectoryError (and 6 more)"
    assert (m["From"], m["To"], m["X-Txregistry-Errors"]) == ("r@e.example", "a@b.example, c@d.example", "7")
    body = m.get_content()
    assert body.startswith("7 unexpected error(s) on node1")
    assert "the other 6 are in the log" in body
    assert "request: GET /v2/x\nhost: node1\ntime: 1970-01-01 00:00:00 UTC\n" in body
    assert "Traceback (most recent call last):" in body and "IsADirectoryError" in body


class ObserverTests(TestCase):
    def setUp(self):
        settings = mail.MailSettings(host="127.0.0.1", port=9, toAddrs=("a@b.example",))
        self.mailer = mail.ErrorMailer(settings, reactor, hostname="node1")
        self.publisher = LogPublisher()
        # (observing, not started: nothing is sent)
        self.publisher.addObserver(self.mailer)
        self.log = Logger(observer=self.publisher)

    def test_only_errors_with_a_failure(self):
        self.log.error("an error without a failure")
        self.log.warn("a warning")
        self.log.failure("a failure at warn level", failure(), level=LogLevel.warn)
        Logger(namespace=mail.NAMESPACE, observer=self.publisher).failure("our own", failure())
        Logger(namespace="twisted.mail.smtp", observer=self.publisher).failure("the client's", failure())
        self.assertEqual(self.mailer.held, 0)
        self.log.failure("indexing {name} failed", failure(), name="x")
        self.log.failure("an error", failure(), level=LogLevel.error)
        self.assertEqual(self.mailer.held, 2)
        self.assertEqual([e.summary for e in self.mailer.detailed], ["indexing x failed", "an error"])

    def test_same_failure_logged_twice_is_one_error(self):
        f = failure()
        self.log.failure("internal error on {method} {uri}", f, method=b"GET", uri=b"/v2/x")
        request = Request(DummyChannel())
        request.method, request.uri = b"GET", b"/v2/x"
        Logger(observer=self.publisher, source=request).failure("", failure=f)
        self.assertEqual(self.mailer.held, 1)

    def test_memory_is_bounded_whatever_the_rate(self):
        for i in range(5000):
            self.log.failure("internal error on {method} {uri}", failure(), method="GET", uri="/v2/x/%d" % (i,))
        self.assertEqual(self.mailer.held, 5000)
        self.assertEqual(len(self.mailer.detailed), mail.MAX_DETAILED)
        self.assertEqual(self.mailer.detailed[0].request, "GET /v2/x/0")
        self.assertLessEqual(self.mailer.remembered, 16)

    def test_traceback_is_cut_to_its_end(self):
        f = failure()
        f.getTraceback = lambda: "x" * (mail.MAX_TRACEBACK * 3) + "THE END"
        self.log.failure("big", f)
        [e] = self.mailer.detailed
        self.assertTrue(e.traceback.endswith("THE END"))
        self.assertLess(len(e.traceback), mail.MAX_TRACEBACK + 100)
