"""The registry's log: text (twistd's classic lines) or JSON (one object a
line), filtered by level, written where twistd would have written.

How it is hooked into twistd
----------------------------

twistd builds its log observer in C{AppLogger.start}, from its own options
(C{--nodaemon}, C{--logfile}, C{--syslog}), after it has loaded the
application (and so after our C{makeService} ran); a plugin never sees
that observer.  What C{AppLogger.start} does look at first is an
C{ILogObserver} component on the application: when one is set it is used
instead of the one twistd would build.  So:

- L{makeObserver} builds our observer over the destination twistd itself
  would have used (L{destination} follows C{UnixAppLogger._getLogObserver}:
  stdout with C{-n} and no C{--logfile} or C{--logfile -}, else the file,
  C{twistd.log} by default, as a L{LogFile} that rotates by size exactly
  as twistd's does; C{--syslog} goes to syslog, as text);
- the service sets it as the application's C{ILogObserver} when it is
  added to the application (L{RegistryService.setServiceParent}), which
  happens both for C{twistd txregistry} and for C{twistd -y registry.tac}.

The plugin reads twistd's options from its own options' C{parent} (the
twistd command line the plugin's options hang under); a .tac file has no
such parent, so it reads them again from C{sys.argv} with twistd's own
option table (L{serverOptionsFromArgv}).  C{twistd --logger=...} still
wins over all this: twistd then ignores the component, so neither our
format nor our level filter applies.

This replaces rather than wraps twistd's observer: twistd has no public
way to hand us the file it opens, and replacing it means the very first
lines (twistd's own "starting up") are already in the chosen format and
level.  twistd would also rotate its log file on SIGUSR1; the registry
uses SIGUSR1 and SIGUSR2 for read-only mode, so (as before) the log file
rotates by size only.
"""

import getopt
import json
import sys
import threading
import time
from datetime import datetime, timezone

from twisted.logger import (
    FilteringLogObserver,
    LegacyLogObserverWrapper,
    LogLevel,
    LogLevelFilterPredicate,
    formatEvent,
    formatEventAsClassicLogText,
    formatTime,
)
from twisted.python.threadable import isInIOThread
from twisted.python.util import untilConcludes

from txregistry.auth.redact import REDACTED, SECRET_HEADERS

LEVELS = {
    "debug": LogLevel.debug,
    "info": LogLevel.info,
    "warn": LogLevel.warn,
    "warning": LogLevel.warn,
    "error": LogLevel.error,
    "critical": LogLevel.critical,
}
FORMATS = ("text", "json")
# The namespace of the line that says where the registry listens: shown
# whatever the loglevel (an operator always needs it, and warn showed it
# before the loglevel filtered everything).
STARTUP_NAMESPACE = "txregistry.startup"
# The access log's: its lines may be held briefly and written together.
ACCESS_NAMESPACE = "txregistry.access"

# Top-level keys of a JSON line; an event field of one of these names is
# written as "field_<name>" instead.
_RESERVED = frozenset(["time", "level", "namespace", "message", "system", "exception", "traceback"])
# Keys of old-style (twisted.python.log) events that are not fields.
_LEGACY = frozenset(["message", "format", "isError", "system", "time", "printed", "why", "failure", "logLevel"])
# Field names whose values are never written (besides SECRET_HEADERS).
_SECRET_FIELDS = frozenset(
    ["password", "passwd", "secret", "token", "access_token", "refresh_token", "credentials", "secret_key",
     "secretkey", "private_key"]
)


def _level(event):
    level = event.get("log_level")
    return getattr(level, "name", None) or "info"


def _timestamp(event):
    when = event.get("log_time")
    if not isinstance(when, (int, float)):
        when = time.time()
    # RFC 3339, UTC, milliseconds.
    return datetime.fromtimestamp(when, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _fallback(value):
    """For json.dumps: anything it cannot write, as text."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return _text(value)


def _text(value):
    try:
        return str(value)
    except Exception:
        return "<unprintable %s>" % (type(value).__name__,)


def _jsonValue(value):
    """C{value} if json can write it, else its text; never raises."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    try:
        json.dumps(value, default=_fallback, allow_nan=False)
        return value
    except Exception:
        return _text(value)


def _secretName(key):
    name = key.lower().replace("-", "_")
    return name in _SECRET_FIELDS or name.replace("_", "-") in SECRET_HEADERS


def eventAsJSON(event):
    """One log event as one line of JSON (with its newline); never raises."""
    try:
        return _eventAsJSON(event)
    except Exception as e:
        # Only if something above is broken: still one valid line.
        return json.dumps(
            {"time": _timestamp({}), "level": "error", "namespace": "txregistry.logs",
             "message": "unable to write a log event as JSON: %s" % (_text(e),)}
        ) + "\n"


def _eventAsJSON(event):
    out = {
        "time": _timestamp(event),
        "level": _level(event),
        "namespace": event.get("log_namespace") or "-",
        "message": formatEvent(event),
    }
    system = event.get("log_system")
    if system and system != "-":
        out["system"] = _text(system)
    failure = event.get("log_failure")
    if failure is None and event.get("isError"):
        failure = event.get("failure")
    if failure is not None:
        value = getattr(failure, "value", failure)
        out["exception"] = "%s: %s" % (type(value).__name__, _text(value))
        if not out["message"]:
            out["message"] = out["exception"]
        try:
            out["traceback"] = failure.getTraceback()
        except Exception as e:
            out["traceback"] = "(no traceback: %s)" % (_text(e),)
    legacy = "log_legacy" in event or ("isError" in event and "message" in event)
    for key, value in event.items():
        if not isinstance(key, str) or key.startswith("log_") or (legacy and key in _LEGACY):
            continue
        name = "field_" + key if key in _RESERVED else key
        out[name] = REDACTED if _secretName(key) else _jsonValue(value)
    return json.dumps(out, default=_fallback, allow_nan=False, ensure_ascii=False) + "\n"


class BatchingFileLogObserver:
    """Writes each event, formatted by C{format}, to C{outFile}, as
    twisted's C{FileLogObserver} does, but access-log lines
    (L{ACCESS_NAMESPACE}) emitted on the reactor thread while it runs are
    held for up to L{DELAY} seconds and written (and flushed) together: under load, one write for many access lines
    instead of a write and a flush for each (the write was a tenth of a
    manifest GET's time on the reactor; a reactor turn rarely holds more
    than one request, so the end of the turn would be too soon).  Other
    events, access lines from other threads, and every event when there is
    no running C{reactor}, are written at once (after what is held, in
    order); so is what is pending at shutdown.
    """

    MAX_PENDING = 256  # lines held at most
    DELAY = 0.05  # seconds a line is held at most

    def __init__(self, outFile, format, reactor=None):
        self._out = outFile
        self._format = format
        self._reactor = reactor
        self._pending = []
        self._scheduled = False
        self._lock = threading.RLock()
        if reactor is not None:
            reactor.addSystemEventTrigger("after", "shutdown", self.flush)

    def __call__(self, event):
        self.writeText(self._format(event), event.get("log_namespace") == ACCESS_NAMESPACE)

    def writeText(self, text, access=False):
        """Write C{text}, lines formatted already (by a worker process, see
        L{txregistry.workers.channel}); C{access}: access-log lines, held
        as the events of L{ACCESS_NAMESPACE} are."""
        if not text:
            return
        reactor = self._reactor
        hold = access and reactor is not None and getattr(reactor, "running", False) and isInIOThread()
        with self._lock:
            self._pending.append(text)
            if hold and len(self._pending) < self.MAX_PENDING:
                if not self._scheduled:
                    self._scheduled = True
                    reactor.callLater(self.DELAY, self.flush)
                return
            self._write()

    def flush(self):
        """Write what is pending."""
        with self._lock:
            self._scheduled = False
            self._write()

    _writing = False

    def _write(self):
        # A signal handler logging (Twisted's "Received SIGTERM") runs on
        # the main thread between any two steps of a write under way there:
        # its line waits in _pending for that write to end, which then
        # writes it (a file's write cannot be re-entered).
        if self._writing:
            return
        while self._pending:
            self._writing = True
            try:
                text, self._pending = "".join(self._pending), []
                untilConcludes(self._out.write, text)
                untilConcludes(self._out.flush)
            finally:
                self._writing = False


def jsonFileLogObserver(outFile, reactor=None):
    """An observer writing each event to C{outFile} as a line of JSON."""
    return BatchingFileLogObserver(outFile, eventAsJSON, reactor)


class _ClassicText:
    """twisted's C{textFileLogObserver} format (time, [system], text), with
    the time formatted once per second rather than for every line."""

    def __init__(self):
        self._second = None
        self._stamp = ""

    def __call__(self, event):
        when = event.get("log_time")
        if isinstance(when, (int, float)):
            second = int(when)
            if second != self._second:
                self._stamp, self._second = formatTime(second), second
            stamp = self._stamp
            return formatEventAsClassicLogText(event, formatTime=lambda _: stamp)
        return formatEventAsClassicLogText(event)


def formatter(logFormat):
    """The function making an event's line(s) in C{logFormat} (text, json)."""
    return eventAsJSON if logFormat == "json" else _ClassicText()


def textLogObserver(outFile, reactor=None):
    """An observer writing twistd's classic text lines to C{outFile}."""
    return BatchingFileLogObserver(outFile, _ClassicText(), reactor)


def filtered(observer, loglevel):
    """C{observer}, seeing only events at C{loglevel} (a L{LEVELS} name) or
    above, but for the startup line (L{STARTUP_NAMESPACE})."""
    level = LEVELS[loglevel]
    predicate = LogLevelFilterPredicate(defaultLogLevel=level)
    predicate.setLogLevelForNamespace(STARTUP_NAMESPACE, min(level, LogLevel.info))
    return FilteringLogObserver(observer, [predicate])


def serverOptionsFromArgv(argv=None):
    """twistd's logging options (and its pidfile, rundir and chroot) as
    given on this process's command line (for a .tac file, which twistd
    does not hand its options to): the
    arguments read again with twistd's own option table, but none of its
    option handlers run (C{--reactor} does not install a reactor again).
    C{None} if they cannot be read."""
    argv = sys.argv[1:] if argv is None else argv
    from twisted.scripts.twistd import ServerOptions

    table = ServerOptions()
    try:
        opts, _ = getopt.getopt(argv, table.shortOpt, table.longOpt)
    except getopt.error:
        return None
    found = {"nodaemon": False, "logfile": None, "syslog": False, "prefix": "twisted", "logger": None,
             "pidfile": "twistd.pid", "rundir": ".", "chroot": None}
    for opt, value in opts:
        name = table.synonyms.get(opt.lstrip("-"))
        if name in ("nodaemon", "syslog"):
            found[name] = True
        elif name in found:
            found[name] = value
    return found


def destination(serverOptions):
    """Where twistd would write its log with C{serverOptions}: C{("file",
    fileObject)}, C{("syslog", prefix)}, or C{None} when C{--logger} names
    an observer of its own (twistd then uses it, whatever we do)."""
    opts = serverOptions or {}
    if opts.get("logger"):
        return None
    if opts.get("syslog"):
        return ("syslog", opts.get("prefix") or "twisted")
    logfile = opts.get("logfile") or ""
    nodaemon = bool(opts.get("nodaemon"))
    if logfile == "-":
        if not nodaemon:
            raise SystemExit("Daemons cannot log to stdout, exiting!")
        return ("file", sys.stdout)
    if nodaemon and not logfile:
        return ("file", sys.stdout)
    from twisted.python.logfile import LogFile

    return ("file", LogFile.fromFullPath(logfile or "twistd.log"))


def installObserver(parent, observer):
    """Make C{observer} (L{makeObserver}'s, or C{None}: twistd's own) the
    log observer of twistd's application C{parent}: twistd's
    C{AppLogger.start} uses the application's C{ILogObserver} component
    when there is one.  The application is only seen when a service is
    added to it (twistd makes it after C{makeService}; a .tac before)."""
    from twisted.logger import ILogObserver

    if observer is not None and hasattr(parent, "setComponent"):
        if parent.getComponent(ILogObserver, None) is None:
            parent.setComponent(ILogObserver, observer)


def makeObserver(logFormat, loglevel, serverOptions, reactor=None):
    """The registry's observer for twistd's C{serverOptions} (a mapping with
    its keys nodaemon, logfile, syslog, prefix, logger), or C{None} if
    twistd's own must stay (C{--logger}).  With C{reactor}, lines logged on
    its thread are written once per turn (L{BatchingFileLogObserver})."""
    where = destination(serverOptions)
    if where is None:
        return None
    kind, target = where
    if kind == "syslog":
        from twisted.python import syslog

        observer = LegacyLogObserverWrapper(syslog.SyslogObserver(target).emit)
    elif logFormat == "json":
        observer = jsonFileLogObserver(target, reactor)
    else:
        observer = textLogObserver(target, reactor)
    out = filtered(observer, loglevel)
    # Where lines formatted elsewhere (by worker processes) are written.
    out.lines = observer if isinstance(observer, BatchingFileLogObserver) else None
    return out
