"""The log observers (txregistry.logs), the access log event
(txregistry.web.accesslog) and the log settings."""

import io
import json

import pytest
from twisted.internet.address import IPv4Address
from twisted.logger import Logger, LogLevel, LogPublisher
from twisted.python.failure import Failure
from twisted.web.test.requesthelper import DummyRequest

from txregistry import config, logs
from txregistry.web import accesslog


def publish(observer):
    publisher = LogPublisher(observer)
    return Logger(namespace="test.ns", observer=publisher)


def jsonLines(out):
    return [json.loads(line) for line in out.getvalue().splitlines()]


class Odd:
    def __str__(self):
        return "an odd one"


class Unprintable:
    def __str__(self):
        raise RuntimeError("no")


def test_jsonLineHasTheFieldsAndSkipsOrStringifiesOddValues():
    out = io.StringIO()
    log = publish(logs.jsonFileLogObserver(out))
    circular = []
    circular.append(circular)
    log.info(
        "hello {who} {n}", who="world", n=3, odd=Odd(), bad=Unprintable(), raw=b"by\xfftes", nan=float("nan"),
        circular=circular, nested={"a": [1, 2, Odd()]}, message="mine", time="mine too",
    )
    [line] = jsonLines(out)
    assert line["message"] == "hello world 3"
    assert line["level"] == "info"
    assert line["namespace"] == "test.ns"
    assert line["time"].endswith("Z") and line["time"][10] == "T" and len(line["time"]) == 24
    assert (line["who"], line["n"]) == ("world", 3)
    assert line["odd"] == "an odd one"
    assert line["bad"] == "<unprintable Unprintable>"
    assert line["raw"] == "by\\xfftes"
    assert line["nan"] == "nan"
    assert isinstance(line["circular"], str)
    assert line["nested"] == {"a": [1, 2, "an odd one"]}
    assert (line["field_message"], line["field_time"]) == ("mine", "mine too")


def test_jsonFailureHasTheTraceback():
    out = io.StringIO()
    log = publish(logs.jsonFileLogObserver(out))
    try:
        1 / 0
    except ZeroDivisionError:
        log.failure("it broke on {what}", Failure(), what="purpose")
    [line] = jsonLines(out)
    assert line["level"] == "critical"
    assert line["message"] == "it broke on purpose"
    assert line["exception"] == "ZeroDivisionError: division by zero"
    assert line["traceback"].startswith("Traceback (most recent call last):")
    assert "1 / 0" in line["traceback"]


def test_jsonNeverWritesSecretFields():
    out = io.StringIO()
    log = publish(logs.jsonFileLogObserver(out))
    log.info("x", password="hunter2", authorization="Basic YWxpY2U6aHVudGVyMg==", token="tok", Secret_Key="k")
    text = out.getvalue()
    for secret in ("hunter2", "YWxpY2U6aHVudGVyMg", '"tok"', '"k"'):
        assert secret not in text


def test_unformattableEventStillOneLine():
    out = io.StringIO()
    log = publish(logs.jsonFileLogObserver(out))
    log.info("{missing} {0}", present=1)
    [line] = jsonLines(out)
    assert "Unable to format event" in line["message"]


@pytest.mark.parametrize("fmt", ["text", "json"])
@pytest.mark.parametrize(
    "loglevel,shown",
    [
        ("debug", ["debug", "info", "warn", "error", "critical"]),
        ("info", ["info", "warn", "error", "critical"]),
        ("warning", ["warn", "error", "critical"]),
        ("warn", ["warn", "error", "critical"]),
        ("error", ["error", "critical"]),
        ("critical", ["critical"]),
    ],
)
def test_levelFilter(fmt, loglevel, shown):
    out = io.StringIO()
    observer = logs.jsonFileLogObserver(out) if fmt == "json" else logs.textLogObserver(out)
    log = publish(logs.filtered(observer, loglevel))
    for level in LogLevel.iterconstants():
        log.emit(level, "event at {name}", name=level.name)
    seen = [name for name in ("debug", "info", "warn", "error", "critical") if "event at %s" % name in out.getvalue()]
    assert seen == shown
    # but for the line saying where the registry listens
    Logger(namespace=logs.STARTUP_NAMESPACE, observer=log.observer).info("listening")
    assert "listening" in out.getvalue()


def test_destinationFollowsTwistd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert logs.destination({"logger": "some.factory"}) is None
    assert logs.destination({"syslog": True, "prefix": "reg"}) == ("syslog", "reg")
    import sys

    assert logs.destination({"nodaemon": True, "logfile": None}) == ("file", sys.stdout)
    assert logs.destination({"nodaemon": True, "logfile": "-"}) == ("file", sys.stdout)
    with pytest.raises(SystemExit):
        logs.destination({"nodaemon": False, "logfile": "-"})
    kind, f = logs.destination({"nodaemon": False, "logfile": None})
    assert f.path == str(tmp_path / "twistd.log")
    kind, f = logs.destination({"nodaemon": True, "logfile": "x.log"})
    assert f.path == str(tmp_path / "x.log")


def test_serverOptionsFromArgv():
    found = logs.serverOptionsFromArgv(["-ny", "registry.tac", "--pidfile=", "-l", "/var/log/r.log", "-r", "poll"])
    assert found["nodaemon"] is True and found["logfile"] == "/var/log/r.log" and found["syslog"] is False
    assert logs.serverOptionsFromArgv(["--syslog", "--prefix=reg", "-y", "x.tac"])["prefix"] == "reg"
    assert logs.serverOptionsFromArgv(["--no-such-option"]) is None


def test_safePath():
    assert accesslog.safePath(b"/v2/a/b/manifests/t") == "/v2/a/b/manifests/t"
    assert (
        accesslog.safePath(b"/auth/token?service=x&scope=repository:a:pull&access_token=abc&X-Amz-Signature=s&n=1")
        == "/auth/token?service=x&scope=repository:a:pull&access_token=[redacted]&X-Amz-Signature=[redacted]&n=1"
    )
    assert accesslog.safePath("/x?password") == "/x?password"


def test_accessEvent():
    request = DummyRequest([b""])
    request.method = b"GET"
    request.uri = b'/v2/x?token=sekrit&q="'
    request.clientproto = b"HTTP/1.1"
    request.code = 200
    request.sentLength = 12
    request.client = IPv4Address("TCP", "10.0.0.1", 1234)
    request.requestHeaders.setRawHeaders(b"user-agent", [b'curl "quoted"\x01'])
    request.requestHeaders.setRawHeaders(b"authorization", [b"Basic c2VjcmV0"])
    request.txrUser = "alice"
    request.txrStarted = 100.0
    events = []
    accesslog.logAccess("[01/Jan/2024:00:00:00 +0000]", request, 100.25, Logger(observer=events.append))
    [event] = events
    assert event["log_level"] == LogLevel.info
    fields = {k: event[k] for k in ("client", "user", "method", "path", "protocol", "status", "bytes", "referer",
                                    "user_agent", "duration")}
    assert fields == {
        "client": "10.0.0.1", "user": "alice", "method": "GET", "path": '/v2/x?token=[redacted]&q="',
        "protocol": "HTTP/1.1", "status": 200, "bytes": 12, "referer": None, "user_agent": 'curl "quoted"\x01',
        "duration": 0.25,
    }
    from twisted.logger import formatEvent

    assert formatEvent(event) == (
        '"10.0.0.1" - alice [01/Jan/2024:00:00:00 +0000] "GET /v2/x?token=[redacted]&q=\\" HTTP/1.1" 200 12 '
        '"-" "curl \\"quoted\\"\\x01"'
    )
    assert "c2VjcmV0" not in repr(event) and "sekrit" not in repr(event)


@pytest.mark.parametrize(
    "kw,env,expected",
    [
        ({}, {}, "text"),
        ({}, {"LOG_FORMAT": "JSON"}, "json"),
        ({"logFormat": "text"}, {"LOG_FORMAT": "json"}, "text"),
    ],
)
def test_logFormatSetting(kw, env, expected):
    assert config.load(environ=env, **kw).logFormat == expected


def test_logFormatFromFlavorAndErrors(tmp_path):
    p = tmp_path / "c.yml"
    p.write_text("mine:\n  log_format: json\nbad:\n  log_format: xml\n")
    assert config.load(configFile=str(p), flavor="mine", environ={}).logFormat == "json"
    assert "log_format" not in config.load(configFile=str(p), flavor="mine", environ={}).ignoredKeys
    with pytest.raises(config.ConfigError, match="log_format must be one of text, json, not 'xml'"):
        config.load(configFile=str(p), flavor="bad", environ={})
    with pytest.raises(config.ConfigError, match="LOG_FORMAT: log_format must be one of"):
        config.load(environ={"LOG_FORMAT": "yaml"})


class _FakeReactor:
    running = True

    def __init__(self):
        self.calls = []
        self.triggers = []

    def callLater(self, delay, f, *args):
        self.calls.append((delay, f, args))

    def addSystemEventTrigger(self, phase, event, f):
        self.triggers.append((phase, event, f))


class _CountingFile(io.StringIO):
    writes = 0

    def write(self, text):
        self.writes += 1
        return io.StringIO.write(self, text)


@pytest.fixture
def batching(monkeypatch):
    monkeypatch.setattr(logs, "isInIOThread", lambda: True)
    reactor, out = _FakeReactor(), _CountingFile()
    return reactor, out, Logger(namespace=logs.ACCESS_NAMESPACE, observer=logs.textLogObserver(out, reactor))


def test_batchingWritesOncePerReactorTurn(batching):
    reactor, out, log = batching
    for i in range(3):
        log.info("line {i}", i=i)
    assert out.getvalue() == "" and len(reactor.calls) == 1  # one flush scheduled, for the end of the turn
    delay, flush, args = reactor.calls[0]
    assert delay == logs.BatchingFileLogObserver.DELAY
    flush(*args)
    assert out.writes == 1
    assert [line.rsplit(" ", 2)[-2:] for line in out.getvalue().splitlines()] == [["line", str(i)] for i in range(3)]


def test_batchingWritesOtherEventsAtOnceAndInOrder(batching):
    reactor, out, log = batching
    log.info("first")
    Logger(namespace="txregistry.service", observer=log.observer).info("search index rebuilt")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].endswith("first") and lines[1].endswith("search index rebuilt")


def test_batchingWritesOtherThreadsAtOnce(batching, monkeypatch):
    reactor, out, log = batching
    monkeypatch.setattr(logs, "isInIOThread", lambda: False)
    log.info("from a pool thread")
    assert out.getvalue().endswith("from a pool thread\n") and reactor.calls == []


def test_batchingFlushesAtShutdownAndWhenFull(batching, monkeypatch):
    reactor, out, log = batching
    log.info("pending")
    [(phase, event, flush)] = reactor.triggers
    assert (phase, event) == ("after", "shutdown")
    flush()
    assert out.getvalue().endswith("pending\n")
    monkeypatch.setattr(logs.BatchingFileLogObserver, "MAX_PENDING", 3)
    for i in range(3):
        log.info("many {i}", i=i)
    assert out.getvalue().endswith("many 2\n")


def test_batchingWithoutARunningReactorWritesAtOnce(monkeypatch):
    monkeypatch.setattr(logs, "isInIOThread", lambda: True)
    reactor, out = _FakeReactor(), _CountingFile()
    reactor.running = False
    Logger(namespace=logs.ACCESS_NAMESPACE, observer=logs.jsonFileLogObserver(out, reactor)).info("early")
    assert json.loads(out.getvalue())["message"] == "early"


def test_classicTextIsTwistedsFormat():
    from twisted.logger import formatEventAsClassicLogText

    text = logs._ClassicText()
    for when in (1796130000.25, 1796130000.75, 1796130001.5):
        event = {"log_format": "hello {who}", "who": "you", "log_time": when, "log_system": "sys",
                 "log_level": LogLevel.info, "log_namespace": "n"}
        assert text(event) == formatEventAsClassicLogText(event)
