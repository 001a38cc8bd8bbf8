"""The web pages' pure parts: sessions and CSRF tokens, sizes and times,
the ui: settings, where a login may send the browser next."""

import pytest

from txregistry import config
from txregistry.ui import format as fmt
from txregistry.ui.forms import safeNext as _safeNext
from txregistry.ui.session import Sessions
from txregistry.ui.settings import UIConfigError, UISettings, parseUI


class Clock:
    now = 1_700_000_000.0

    def __call__(self):
        return self.now


def test_sessionRoundTrip():
    clock = Clock()
    s = Sessions(b"secret" * 4, hours=1, clock=clock)
    session = s.new("alice")
    value = s.encode(session)
    assert s.decode(value) == session
    assert s.decode(value.encode()) == session
    assert s.decode(s.encode(s.new())).user is None
    unicode = s.new("jörg.ü|x")
    assert s.decode(s.encode(unicode)).user == "jörg.ü|x"
    assert "alice" not in value  # (encoded, not readable at a glance; signed, not secret)


def test_sessionForgedOrExpired():
    clock = Clock()
    s = Sessions(b"secret" * 4, hours=1, clock=clock)
    value = s.encode(s.new("alice"))
    sid, expires, user, mac = value.split(".")
    assert s.decode(".".join([sid, str(int(expires) + 1), user, mac])) is None
    assert s.decode(".".join(["x" + sid, expires, user, mac])) is None
    assert s.decode("") is None and s.decode("a.b") is None and s.decode(b"\xff\xfe") is None
    assert Sessions(b"other" * 4, clock=clock).decode(value) is None
    clock.now += 3601
    assert s.decode(value) is None


def test_csrf():
    s = Sessions(b"secret" * 4)
    a, b = s.new(), s.new()
    assert s.checkCSRF(a, s.csrf(a))
    assert not s.checkCSRF(a, s.csrf(b))
    assert not s.checkCSRF(a, "")
    assert not s.checkCSRF(None, s.csrf(a))
    assert not s.checkCSRF(a, "\u00e9" + s.csrf(a)[1:])


def test_cookieAttributes():
    clock = Clock()
    s = Sessions(b"secret" * 4, hours=2, clock=clock)
    cookie = s.cookie(s.new("bob"), "/ui/", secure=True).decode()
    assert cookie.startswith("txr_session=")
    for part in ("Path=/ui/", "Max-Age=7200", "HttpOnly", "SameSite=Strict", "Secure"):
        assert part in cookie.split("; ")
    assert "Secure" not in s.cookie(s.new(), "/", secure=False).decode()


@pytest.mark.parametrize("n, text", [(None, "–"), (0, "0 B"), (999, "999 B"), (1000, "1.0 kB"), (1536, "1.5 kB"),
                                     (123_456_789, "123 MB"), (5 * 10 ** 9, "5.0 GB"), (10 ** 18, "1000 PB")])
def test_size(n, text):
    assert fmt.size(n) == text


def test_ago():
    now = 1_700_000_000
    assert fmt.ago(0, now) == "never"
    assert fmt.ago(now - 5, now) == "just now"
    assert fmt.ago(now - 60, now) == "1 minute ago"
    assert fmt.ago(now - 7200, now) == "2 hours ago"
    assert fmt.ago(now - 3 * 86400, now) == "3 days ago"
    assert fmt.ago(now - 100 * 86400, now) == "3 months ago"
    assert fmt.ago(now - 800 * 86400, now) == "2021-09-05"
    assert fmt.ago(now + 100, now) == "in the future"


def test_parseTime():
    assert fmt.parseTime("2024-01-02T03:04:05Z") == 1704164645
    assert fmt.parseTime("2024-01-02T03:04:05.123456789Z") == 1704164645
    assert fmt.parseTime("2024-01-02T04:04:05+01:00") == 1704164645
    for bad in (None, 42, "", "yesterday", "2024-13-02T03:04:05Z", "2024-01-02T03:04:05+xx"):
        assert fmt.parseTime(bad) is None
    assert fmt.isoTime(1704164645) == "2024-01-02T03:04:05Z"


def test_settings():
    assert parseUI(None, "t") == UISettings()
    assert parseUI(False, "t").enabled is False
    assert parseUI("off", "t").enabled is False
    s = parseUI({"path": "/ui", "session_secret": "x" * 20, "session_hours": 2, "page_size": 20}, "t")
    assert (s.path, s.sessionHours, s.pageSize, s.secret()) == ("/ui/", 2.0, 20, b"x" * 20)
    assert len(UISettings().secret()) == 32 and UISettings().secret() != UISettings().secret()


@pytest.mark.parametrize("value, message", [
    ("maybe", "ui must be true or false"),
    ({"colour": "red"}, "unknown ui keys: colour"),
    ({"path": "ui"}, "ui.path must be"),
    ({"path": "/v2/ui"}, "ui.path must be"),
    ({"path": "/a b"}, "ui.path must be"),
    ({"session_secret": "short"}, "ui.session_secret must be"),
    ({"session_hours": 0}, "ui.session_hours must be"),
    ({"page_size": 0}, "ui.page_size must be"),
    ({"enabled": "perhaps"}, "ui.enabled must be"),
])
def test_badSettings(value, message):
    with pytest.raises(UIConfigError, match=message):
        parseUI(value, "t")


def test_configKey(tmp_path):
    p = tmp_path / "config.yml"
    p.write_text("dev:\n  ui:\n    path: /browse/\n    page_size: 10\n")
    s = config.load(configFile=str(p), environ={})
    assert (s.ui.path, s.ui.pageSize) == ("/browse/", 10)
    assert "ui" not in s.ignoredKeys
    p.write_text("dev:\n  ui: false\n")
    assert config.load(configFile=str(p), environ={}).ui.enabled is False
    p.write_text("dev:\n  ui: {page_size: 9999}\n")
    with pytest.raises(config.ConfigError, match="ui.page_size"):
        config.load(configFile=str(p), environ={})


def test_safeNext():
    assert _safeNext("/", "/r/team/app?sort=name") == "/r/team/app?sort=name"
    assert _safeNext("/ui/", "/ui/r/x") == "/ui/r/x"
    for bad in ("", "//evil.example", "http://evil.example/", "/\\evil", "/ok\r\nSet-Cookie: x", "/v2/"):
        assert _safeNext("/ui/" if bad == "/v2/" else "/", bad) in ("/", "/ui/")


def test_deletedNotice():
    from txregistry.ui.forms import deletedNotice as _deletedNotice

    d = "sha256:" + "a" * 64
    assert _deletedNotice("tag v1") == "tag v1"
    assert _deletedNotice("manifest " + d) == "manifest " + d
    for made_up in ("", "tag", "everything", "tag not a tag!", "manifest sha256:nope", "repository x"):
        assert _deletedNotice(made_up) is None


def test_secretFromEnvironment(tmp_path):
    p = tmp_path / "config.yml"
    p.write_text("dev:\n  ui:\n    session_secret: _env:UI_SECRET\n")
    s = config.load(configFile=str(p), environ={"UI_SECRET": "a-long-secret-from-env"})
    assert s.ui.secret() == b"a-long-secret-from-env"
    assert "a-long-secret" not in repr(s.ui) and "a-long-secret" not in repr(s)  # (settings get logged)
