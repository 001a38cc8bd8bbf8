"""The ``notifications:`` section: Distribution's, plus ``state_dir``.

    notifications:
      state_dir: /var/lib/txregistry/notify   # where queued events wait
      events:
        includereferences: true
      endpoints:
        - name: alistener
          url: https://listener.example.com/event
          headers: {Authorization: [Bearer TOKEN]}
          timeout: 1s
          threshold: 10
          backoff: 1s
          maxbackoff: 1m                        # (txregistry's) cap of the growing backoff
          ignoredmediatypes: [application/octet-stream]
          ignore: {mediatypes: [...], actions: [pull]}
          batch: 1                              # (txregistry's) events per request at most

Durations are Go's (``500ms``, ``1s``, ``1m30s``).
"""

import os
import re
from dataclasses import dataclass

from txregistry.events import ACTIONS

_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
ENDPOINT_KEYS = ("name", "disabled", "url", "headers", "timeout", "threshold", "backoff", "maxbackoff",
                 "ignoredmediatypes", "ignore", "batch")
MAX_BATCH = 1000
KEYS = ("endpoints", "events", "state_dir")


class NotifyConfigError(Exception):
    pass


@dataclass(frozen=True)
class EndpointSettings:
    name: str
    url: str
    headers: tuple = ()  # (name, value) pairs, in order
    timeout: float = 1.0
    threshold: int = 10
    backoff: float = 1.0
    maxBackoff: float = 60.0
    ignoredMediaTypes: frozenset = frozenset()
    ignoredActions: frozenset = frozenset()
    batch: int = 1  # (txregistry's) events per envelope at most; Distribution sends one

    def wants(self, event):
        return event.action not in self.ignoredActions and event.mediaType not in self.ignoredMediaTypes


@dataclass(frozen=True)
class NotifySettings:
    endpoints: tuple  # EndpointSettings of the endpoints not disabled
    stateDir: str
    includeReferences: bool = False


def parseDuration(value):
    """Seconds of a Go duration string (C{"1m30s"}, C{"500ms"}, C{"0"}); C{None} if it is not one."""
    if not isinstance(value, str):
        return 0.0 if value == 0 and not isinstance(value, bool) else None
    text = value.strip()
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for m in _PART.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return total if pos == len(text) and pos else None


def _strings(value, where, source):
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise NotifyConfigError("%s: %s must be a list of strings, not %r" % (source, where, value))
    return value


def _duration(e, key, default, where, source, minimum=0.0):
    value = e.get(key)
    if value is None:
        return default
    seconds = parseDuration(value)
    if seconds is None or seconds < minimum:
        raise NotifyConfigError("%s: %s.%s must be a duration like 500ms, 1s or 1m (at least %gs), not %r"
                                % (source, where, key, minimum, value))
    return seconds


def _headers(value, where, source):
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise NotifyConfigError("%s: %s.headers must be a mapping of header names to lists of values" % (source, where))
    out = []
    for name, values in value.items():
        if not isinstance(name, str) or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
            raise NotifyConfigError("%s: %s.headers: %r is not a header name" % (source, where, name))
        for v in _strings(values, "%s.headers.%s" % (where, name), source):
            if "\r" in v or "\n" in v:
                raise NotifyConfigError("%s: %s.headers.%s: a value holds a line break" % (source, where, name))
            out.append((name, v))
    return tuple(out)


def _endpoint(e, index, source):
    where = "notifications.endpoints[%d]" % (index,)
    if not isinstance(e, dict):
        raise NotifyConfigError("%s: %s must be a mapping" % (source, where))
    unknown = sorted(str(k) for k in e if k not in ENDPOINT_KEYS)
    if unknown:
        raise NotifyConfigError("%s: %s: unknown keys: %s (known: %s)" % (source, where, ", ".join(unknown),
                                                                           ", ".join(ENDPOINT_KEYS)))
    name = e.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise NotifyConfigError("%s: %s.name must be letters, digits, '.', '_' or '-' (up to 100), not %r"
                                % (source, where, name))
    where = "notifications.endpoints[%s]" % (name,)
    disabled = e.get("disabled", False)
    if not isinstance(disabled, bool):
        raise NotifyConfigError("%s: %s.disabled must be true or false, not %r" % (source, where, disabled))
    url = e.get("url")
    if not isinstance(url, str) or not re.match(r"^https?://[^/?#\s]+", url) or re.search(r"\s", url):
        raise NotifyConfigError("%s: %s.url must be an http:// or https:// URL, not %r" % (source, where, url))
    threshold = e.get("threshold", 10)
    if isinstance(threshold, bool) or not isinstance(threshold, int) or threshold < 0:
        raise NotifyConfigError("%s: %s.threshold must be a whole number of failures, not %r" % (source, where, threshold))
    batch = e.get("batch", 1)
    if isinstance(batch, bool) or not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise NotifyConfigError("%s: %s.batch must be a number of events from 1 to %d, not %r"
                                % (source, where, MAX_BATCH, batch))
    ignore = e.get("ignore") or {}
    if not isinstance(ignore, dict) or set(ignore) - {"mediatypes", "actions"}:
        raise NotifyConfigError("%s: %s.ignore must be a mapping of mediatypes and actions" % (source, where))
    actions = _strings(ignore.get("actions"), where + ".ignore.actions", source)
    bad = [a for a in actions if a not in ACTIONS]
    if bad:
        raise NotifyConfigError("%s: %s.ignore.actions: %s is not one of %s" % (source, where, bad[0], ", ".join(ACTIONS)))
    mediaTypes = _strings(e.get("ignoredmediatypes"), where + ".ignoredmediatypes", source)
    mediaTypes += _strings(ignore.get("mediatypes"), where + ".ignore.mediatypes", source)
    backoff = _duration(e, "backoff", 1.0, where, source)
    settings = EndpointSettings(
        name=name, url=url, headers=_headers(e.get("headers"), where, source),
        timeout=_duration(e, "timeout", 1.0, where, source, minimum=0.001), threshold=threshold,
        backoff=backoff, maxBackoff=max(backoff, _duration(e, "maxbackoff", 60.0, where, source)),
        ignoredMediaTypes=frozenset(mediaTypes), ignoredActions=frozenset(actions), batch=batch,
    )
    return None if disabled else settings


def parseNotifications(value, source, storagePath, remoteStorage):
    """L{NotifySettings} of the section C{value}, or C{None} when no endpoint
    is on; L{NotifyConfigError} with one line for a bad value."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise NotifyConfigError("%s: notifications must be a mapping (endpoints, events, state_dir)" % (source,))
    unknown = sorted(str(k) for k in value if k not in KEYS)
    if unknown:
        raise NotifyConfigError("%s: notifications: unknown keys: %s (known: %s)" % (source, ", ".join(unknown),
                                                                                      ", ".join(KEYS)))
    endpoints = value.get("endpoints") or []
    if not isinstance(endpoints, list):
        raise NotifyConfigError("%s: notifications.endpoints must be a list" % (source,))
    parsed, names = [], set()
    for i, e in enumerate(endpoints):
        ep = _endpoint(e, i, source)
        name = e["name"]
        if name in names:
            raise NotifyConfigError("%s: notifications.endpoints: the name %r is used twice" % (source, name))
        names.add(name)
        if ep is not None:
            parsed.append(ep)
    events = value.get("events") or {}
    if not isinstance(events, dict) or set(events) - {"includereferences"}:
        raise NotifyConfigError("%s: notifications.events must be a mapping with includereferences" % (source,))
    include = events.get("includereferences", False)
    if not isinstance(include, bool):
        raise NotifyConfigError("%s: notifications.events.includereferences must be true or false" % (source,))
    stateDir = value.get("state_dir")
    if stateDir is not None and (not isinstance(stateDir, str) or not stateDir or "\0" in stateDir):
        raise NotifyConfigError("%s: notifications.state_dir must be a directory path, not %r" % (source, stateDir))
    if not parsed:
        return None
    if stateDir is None:
        if remoteStorage:
            raise NotifyConfigError(
                "%s: notifications.state_dir must be set with storage s3 (queued events wait on local disk)" % (source,))
        stateDir = os.path.join(storagePath, "txregistry", "notify")
    return NotifySettings(endpoints=tuple(parsed), stateDir=os.path.abspath(stateDir), includeReferences=include)
