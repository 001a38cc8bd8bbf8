"""Sizes and times as people read them (pure functions)."""

import time
from datetime import datetime, timezone

_UNITS = ("kB", "MB", "GB", "TB", "PB")


def size(n):
    """C{n} bytes as "512 B", "1.5 MB", "23 GB" (decimal units, as docker
    shows them)."""
    if n is None:
        return "–"
    if n < 1000:
        return "%d B" % (n,)
    value = float(n)
    for unit in _UNITS:
        value /= 1000.0
        if value < 999.95 or unit == _UNITS[-1]:
            return ("%.1f %s" if value < 100 else "%.0f %s") % (value, unit)


def isoTime(seconds):
    if not seconds:
        return ""
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def ago(seconds, now=None):
    """How long ago C{seconds} (a Unix time) was: "just now", "5 minutes
    ago", "3 days ago", or the date for a year or more."""
    if not seconds:
        return "never"
    now = time.time() if now is None else now
    delta = now - seconds
    if delta < 0:
        return "in the future"
    for limit, unit, per in ((60, None, 1), (3600, "minute", 60), (86400, "hour", 3600), (86400 * 60, "day", 86400),
                             (86400 * 365, "month", 86400 * 30)):
        if delta < limit:
            if unit is None:
                return "just now"
            count = int(delta // per)
            return "%d %s%s ago" % (count, unit, "" if count == 1 else "s")
    return datetime.fromtimestamp(seconds, timezone.utc).strftime("%Y-%m-%d")


def parseTime(text):
    """An RFC 3339 time of an image config ("2024-01-02T03:04:05.123Z") as
    a Unix time, or None."""
    if not isinstance(text, str) or len(text) < 19:
        return None
    base = text[:19]
    rest = text[19:]
    while rest[:1] == "." or rest[:1].isdigit():
        rest = rest[1:]
    try:
        when = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        return None
    offset = 0
    if rest and rest not in ("Z", "z"):
        try:
            sign = -1 if rest[0] == "-" else 1
            hours, minutes = rest[1:].split(":")
            offset = sign * (int(hours) * 3600 + int(minutes) * 60)
        except (ValueError, IndexError):
            return None
    return when.replace(tzinfo=timezone.utc).timestamp() - offset
