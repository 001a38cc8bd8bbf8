"""The C{ui:} configuration key: the web pages' settings."""

import os
from dataclasses import dataclass, field

UI_KEYS = ("enabled", "path", "session_secret", "session_hours", "page_size")
MIN_SECRET = 16


class UIConfigError(ValueError):
    """A bad C{ui:} setting: the message is the one line shown at start."""


@dataclass(frozen=True)
class UISettings:
    enabled: bool = True
    path: str = "/"  # where the pages live: "/" or "/PREFIX/"
    # Signs the session cookies and CSRF tokens; "" makes a random one at
    # start (sessions then end with the daemon, and worker processes each
    # have their own: set one when running several).
    sessionSecret: str = field(default="", repr=False)
    sessionHours: float = 12.0
    pageSize: int = 50  # repositories or tags per page

    def secret(self):
        return self.sessionSecret.encode("utf-8") if self.sessionSecret else os.urandom(32)


def _flag(value, key, source):
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.lower() in ("true", "yes", "on", "1")
    raise UIConfigError("%s: %s must be true or false, not %r" % (source, key, value))


def parseUI(value, source):
    """The L{UISettings} of the C{ui:} value: absent or true (the pages on,
    at /), false (off), or a mapping of L{UI_KEYS}."""
    if value is None or value == "":
        return UISettings()
    if not isinstance(value, dict):
        return UISettings(enabled=_flag(value, "ui", source))
    unknown = sorted(str(k) for k in value if k not in UI_KEYS)
    if unknown:
        raise UIConfigError("%s: unknown ui keys: %s (known: %s)" % (source, ", ".join(unknown), ", ".join(UI_KEYS)))
    out = {}
    if value.get("enabled") is not None:
        out["enabled"] = _flag(value["enabled"], "ui.enabled", source)
    path = value.get("path")
    if path is not None:
        path = str(path)
        bad = (not path.startswith("/") or any(c in path for c in "?#%\\ ") or "//" in path
               or not path.isascii() or path.rstrip("/").startswith(("/v2", "/v1", "/admin")))
        if bad:
            raise UIConfigError("%s: ui.path must be / or /PREFIX (not below /v1, /v2 or /admin), not %r"
                                % (source, path))
        out["path"] = path.rstrip("/") + "/"
    secret = value.get("session_secret")
    if secret not in (None, ""):
        if not isinstance(secret, str) or len(secret) < MIN_SECRET:
            raise UIConfigError("%s: ui.session_secret must be a string of %d characters or more"
                                % (source, MIN_SECRET))
        out["sessionSecret"] = secret
    hours = value.get("session_hours")
    if hours is not None:
        if isinstance(hours, bool) or not isinstance(hours, (int, float)) or not 0 < hours <= 24 * 90:
            raise UIConfigError("%s: ui.session_hours must be a number of hours from 0 to 2160, not %r"
                                % (source, hours))
        out["sessionHours"] = float(hours)
    size = value.get("page_size")
    if size is not None:
        if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= 500:
            raise UIConfigError("%s: ui.page_size must be a whole number from 1 to 500, not %r" % (source, size))
        out["pageSize"] = size
    return UISettings(**out)
