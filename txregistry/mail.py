"""Error e-mails: a log observer that mails unexpected server errors.

L{ErrorMailer} watches the log for error events that carry a failure (the
daemon logs an unexpected 5xx with C{log.failure("internal error on
{method} {uri}", ...)}) and mails them through Twisted's own SMTP client
(C{twisted.mail.smtp.ESMTPSenderFactory}: STARTTLS when C{smtp_secure},
AUTH with C{smtp_login}/C{smtp_password}).

It never blocks the code that logged: an event is only noted (under a
lock: events come from any thread) and the sending happens later on the
reactor.  At most one mail goes out per C{interval} seconds: the errors of
a burst become one mail with their count and the first L{MAX_DETAILED} of
them in full, so memory stays bounded whatever the rate of errors.  A mail
that cannot be sent (the SMTP server is down) is kept, merged with what
follows, and tried again an interval later; the failure is logged once, as
a warning (not as an error with a failure, which would be mailed again),
and its end once, when a mail gets through again.
"""

import re
import socket
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from io import BytesIO

from twisted.internet.defer import Deferred
from twisted.logger import Logger, LogLevel, formatEvent
from twisted.python.failure import Failure

NAMESPACE = "txregistry.mail"
MAX_DETAILED = 5  # errors of a mail given in full; the others are counted
MAX_TRACEBACK = 16 * 1024  # characters of one traceback kept (its end)
MAX_LINE = 2048  # characters of a request line or message kept
SEND_TIMEOUT = 30  # seconds a connection to the SMTP server may take, and each reply


@dataclass(frozen=True)
class MailSettings:
    host: str
    port: int = 25
    login: str = ""
    password: str = ""
    secure: bool = False  # STARTTLS, required (the server's certificate verified)
    fromAddr: str = "docker-registry@localdomain.local"
    toAddrs: tuple = ()
    interval: float = 60.0  # seconds between two mails at least


def _text(value, limit=MAX_LINE):
    if isinstance(value, bytes):
        value = value.decode("utf-8", "backslashreplace")
    try:
        value = str(value)
    except Exception:
        value = "<unprintable %s>" % (type(value).__name__,)
    return value if len(value) <= limit else value[:limit] + "..."


def requestLine(event):
    """C{"METHOD /path"} of the request an error event is about (the path
    with secret query values redacted, as in the access log), or C{None}:
    from the event's C{method} and C{uri} fields, else from its source when
    that is a request (twisted.web's own "processing failed" event)."""
    from txregistry.web.accesslog import safePath

    method, uri = event.get("method"), event.get("uri")
    if method is None or uri is None:
        source = event.get("log_source")
        method, uri = getattr(source, "method", None), getattr(source, "uri", None)
        if not isinstance(method, (bytes, str)) or not isinstance(uri, (bytes, str)):
            return None
    return "%s %s" % (_text(method, 32), _text(safePath(uri)))


def _summary(event, line):
    """The event's own message, unless it is about a request: then our
    words (its own text may hold the unredacted URI)."""
    if line is not None:
        return "internal error on %s" % (line,)
    try:
        text = formatEvent(event)
    except Exception:
        text = ""
    return _text(text.splitlines()[0] if text.strip() else "error logged with a failure")


@dataclass
class _Error:
    when: float
    summary: str
    request: str  # "" when not about a request
    exception: str
    traceback: str


def _traceback(failure):
    try:
        text = failure.getTraceback()
    except Exception as e:
        text = "(no traceback: %s)" % (_text(e),)
    if len(text) > MAX_TRACEBACK:
        text = "[... %d characters cut ...]\n" % (len(text) - MAX_TRACEBACK,) + text[-MAX_TRACEBACK:]
    return text


def _utc(when):
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(when))


def composeMessage(settings, hostname, errors, count):
    """The mail (bytes, lines ending in LF as Twisted's SMTP client wants)
    for C{count} errors, the first of which are C{errors}."""
    first = errors[0]
    subject = "[txregistry %s] %s: %s" % (hostname, first.summary, first.exception.split(":")[0])
    if count > 1:
        subject += " (and %d more)" % (count - 1,)
    body = ["%d unexpected error(s) on %s" % (count, hostname)]
    if count > 1:
        body[0] += ", %s to %s" % (_utc(first.when), _utc(errors[-1].when) if count == len(errors) else "now")
    if count > len(errors):
        body.append("The first %d follow; the other %d are in the log." % (len(errors), count - len(errors)))
    for e in errors:
        body += ["", "-" * 72, e.summary]
        if e.request:
            body.append("request: %s" % (e.request,))
        body += ["host: %s" % (hostname,), "time: %s" % (_utc(e.when),), "", e.traceback.rstrip("\n")]
    msg = EmailMessage()
    msg["Subject"] = _text(subject, 200)
    msg["From"] = settings.fromAddr
    msg["To"] = ", ".join(settings.toAddrs)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(domain=hostname if "." in hostname else None)
    msg["X-Mailer"] = "txregistry"
    msg["X-Txregistry-Errors"] = str(count)
    msg.set_content("\n".join(body) + "\n", charset="utf-8")
    return msg.as_bytes()


class ErrorMailer:
    """A twisted.logger observer (call it with an event); L{start} it on a
    publisher, L{stop} it at shutdown."""

    log = Logger(namespace=NAMESPACE)

    def __init__(self, settings, reactor, hostname=None):
        self.settings = settings
        self._reactor = reactor
        self.hostname = hostname or socket.gethostname() or "localhost"
        self._lock = threading.Lock()
        self._pending = []  # _Error, at most MAX_DETAILED
        self._count = 0  # errors not yet mailed (pending and beyond)
        self._recent = []  # exception objects seen lately (one error logged twice)
        self._woken = False  # a wake-up is on its way to the reactor
        self._timer = None
        self._sending = None  # the Deferred of the mail being sent
        self._lastSent = None  # when the last mail was attempted (reactor.seconds())
        self._failing = False  # the last attempt failed (warned once)
        self._publisher = None
        self.sent = 0  # mails sent

    @property
    def held(self) -> int:
        """Errors noted and not mailed yet (detailed or only counted)."""
        return self._count

    @property
    def detailed(self) -> tuple:
        """The errors the next mail gives in full (at most L{MAX_DETAILED})."""
        with self._lock:
            return tuple(self._pending)

    @property
    def remembered(self) -> int:
        """How many exceptions are remembered to tell one logged twice (bounded)."""
        return len(self._recent)

    # The observer: only notes the error, on whatever thread logged it.

    def __call__(self, event):
        failure = event.get("log_failure")
        if failure is None or str(event.get("log_namespace", "")).startswith((NAMESPACE, "twisted.mail")):
            return
        level = event.get("log_level")
        if not isinstance(level, type(LogLevel.error)) or level < LogLevel.error:
            return
        value = getattr(failure, "value", None)
        with self._lock:
            if value is not None and any(v is value for v in self._recent):
                return  # the same error again (e.g. twisted.web's "processing failed" after ours)
            if value is not None:
                self._recent = self._recent[-15:] + [value]
            self._count += 1
            if len(self._pending) < MAX_DETAILED:
                line = requestLine(event)
                when = event.get("log_time")
                self._pending.append(_Error(
                    when=when if isinstance(when, (int, float)) else time.time(),
                    summary=_summary(event, line),
                    request=line or "",
                    exception=_text("%s: %s" % (type(value).__name__, _text(value))),
                    traceback=_traceback(failure),
                ))
            if self._woken:
                return
            self._woken = True
        self._reactor.callFromThread(self._wake)

    # The rest runs on the reactor.

    def _wake(self):
        with self._lock:
            self._woken = False
        self._schedule()

    def _schedule(self):
        if self._publisher is None or self._sending is not None or self._timer is not None:
            return
        with self._lock:
            if not self._count:
                return
        now = self._reactor.seconds()
        delay = 0 if self._lastSent is None else max(0, self._lastSent + self.settings.interval - now)
        self._timer = self._reactor.callLater(delay, self._send)

    def _send(self):
        self._timer = None
        with self._lock:
            errors, count = self._pending, self._count
            self._pending, self._count = [], 0
        if not count:
            return
        self._lastSent = self._reactor.seconds()
        message = composeMessage(self.settings, self.hostname, errors, count)
        d = self._sending = self._deliver(message)

        def sent(_):
            self.sent += 1
            if self._failing:
                self._failing = False
                self.log.info("error mail sent again through {server}", server=self._server())

        def failed(reason):
            if self._publisher is None:
                return  # stopped
            # Kept for the next attempt, with what came meanwhile (bounded).
            with self._lock:
                self._pending = (errors + self._pending)[:MAX_DETAILED]
                self._count += count
                held = self._count
            if not self._failing:
                self._failing = True
                self.log.warn(
                    "cannot send error mail through {server}: {reason}; {held} error(s) held, "
                    "tried again every {interval} s (warned once)",
                    server=self._server(), reason=_text(reason.getErrorMessage(), 300), held=held,
                    interval=self.settings.interval)

        def done(_):
            if self._sending is d:
                self._sending = None
            self._schedule()

        d.addCallbacks(sent, failed).addBoth(done)

    def _server(self):
        return "%s:%d" % (self.settings.host, self.settings.port)

    def _deliver(self, message):
        """Send C{message}; a Deferred (cancellable)."""
        from twisted.mail.smtp import ESMTPSenderFactory

        s = self.settings
        context = None
        if s.secure:
            from twisted.internet.ssl import optionsForClientTLS

            context = optionsForClientTLS(s.host)
        result = Deferred()
        factory = ESMTPSenderFactory(
            s.login.encode("utf-8") if s.login else None,
            s.password.encode("utf-8") if s.login else None,
            s.fromAddr,
            list(s.toAddrs),
            BytesIO(message),
            result,
            retries=0,
            timeout=SEND_TIMEOUT,
            contextFactory=context,
            heloFallback=True,
            requireAuthentication=bool(s.login),
            requireTransportSecurity=s.secure,
        )
        factory.domain = self.hostname.encode("idna") if self.hostname.isascii() else b"localhost"
        factory.noisy = False
        connector = self._reactor.connectTCP(s.host, s.port, factory, timeout=SEND_TIMEOUT)

        def cancel(_):
            factory.sendFinished = True
            protocol = getattr(factory, "currentProtocol", None)
            if protocol is not None and protocol.transport is not None:
                protocol.transport.abortConnection()
            else:
                connector.disconnect()

        outer = Deferred(cancel)

        def relay(r):
            if not outer.called:  # (else cancelled: the abort's error is of no interest)
                outer.errback(r) if isinstance(r, Failure) else outer.callback(r)

        result.addBoth(relay)
        return outer

    def start(self, publisher):
        """Watch C{publisher} (a twisted.logger publisher)."""
        self._publisher = publisher
        publisher.addObserver(self)
        self._schedule()

    def stop(self):
        """Stop watching; what is not mailed yet is dropped (said in the log)."""
        if self._publisher is not None:
            self._publisher.removeObserver(self)
            self._publisher = None
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        sending, self._sending = self._sending, None
        if sending is not None:
            sending.cancel()
        with self._lock:
            held, self._count, self._pending = self._count, 0, []
        if held:
            self.log.warn("{held} error(s) not mailed at shutdown", held=held)

    def describe(self):
        """One line for the startup log."""
        s = self.settings
        how = ["STARTTLS" if s.secure else "no TLS"]
        if s.login:
            how.append("login %s" % (s.login,))
        return "error mails to %s through %s (%s), at most one every %g s" % (
            ", ".join(s.toAddrs), self._server(), ", ".join(how), s.interval)


# Configuration: the classic docker-registry's keys, at the top of a flavor
# (as its early prod flavor had them) or in its email_exceptions mapping.

KEYS = ("smtp_host", "smtp_port", "smtp_login", "smtp_password", "smtp_secure", "from_addr", "to_addr",
        "email_interval")
SECTION = "email_exceptions"
# The classic sample config's variables (they win over the file, as AWS_* do).
ENVIRON = {"smtp_host": "SMTP_HOST", "smtp_port": "SMTP_PORT", "smtp_login": "SMTP_LOGIN",
           "smtp_password": "SMTP_PASSWORD", "smtp_secure": "SMTP_SECURE", "from_addr": "SMTP_FROM_ADDR",
           "to_addr": "SMTP_TO_ADDR"}
_ADDRESS = re.compile(r"[^\s<>,;\"()@]+@[^\s<>,;\"()@]+")


class MailConfigError(ValueError):
    """Bad mail settings: the message is the one line shown at start."""


def _value(values, section, key, environ):
    raw = environ.get(ENVIRON.get(key, ""), "")
    if raw != "":
        import yaml

        try:
            return yaml.safe_load(raw)
        except yaml.YAMLError:
            return raw
    # A key at the top of the flavor wins over the section (which often
    # only holds the classic sample's defaults, inherited from common).
    if values.get(key) not in (None, ""):
        return values[key]
    value = section.get(key) if isinstance(section, dict) else None
    return None if value == "" else value


def _flag(value, key, source):
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.lower() in ("true", "yes", "on", "1")
    raise MailConfigError("%s: %s must be true or false, not %r" % (source, key, value))


def _addresses(value, key, source):
    if isinstance(value, str):
        items = value.replace(";", " ").replace(",", " ").split()
    else:
        items = value if isinstance(value, list) else None
    if not items or not all(isinstance(a, str) and _ADDRESS.fullmatch(a) for a in items):
        raise MailConfigError("%s: %s must be an e-mail address (or a list of them), not %r" % (source, key, value))
    return tuple(items)


def parseMailSettings(values, source, environ=None):
    """L{MailSettings} from a flavor's C{values} and C{environ} (L{ENVIRON}),
    or C{None} when no C{smtp_host} is set (no mails); L{MailConfigError}
    for a bad value."""
    environ = environ or {}
    section = values.get(SECTION)
    if section is not None and not isinstance(section, dict):
        raise MailConfigError("%s: %s must be a mapping of %s" % (source, SECTION, ", ".join(KEYS)))
    unknown = sorted(str(k) for k in (section or {}) if k not in KEYS)
    if unknown:
        raise MailConfigError("%s: unknown %s keys: %s (known: %s)" % (source, SECTION, ", ".join(unknown),
                                                                     ", ".join(KEYS)))
    get = lambda key: _value(values, section, key, environ)  # noqa: E731
    host = get("smtp_host")
    if host is None or host is False:
        return None
    if not isinstance(host, str) or not re.fullmatch(r"[A-Za-z0-9.\-:\[\]_]+", host):
        raise MailConfigError("%s: smtp_host must be a host name or address, not %r" % (source, host))
    port = get("smtp_port")
    port = 25 if port is None else port
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise MailConfigError("%s: smtp_port must be a port number (1 to 65535), not %r" % (source, port))
    login, password = get("smtp_login"), get("smtp_password")
    for key, value in (("smtp_login", login), ("smtp_password", password)):
        if isinstance(value, bool) or not isinstance(value, (str, int, type(None))):
            raise MailConfigError("%s: %s must be a string" % (source, key))  # (never the value: a secret)
    if bool(login) != bool(password):
        raise MailConfigError("%s: give both smtp_login and smtp_password, or neither" % (source,))
    secure = _flag(get("smtp_secure"), "smtp_secure", source)
    fromAddr = get("from_addr") or "docker-registry@localdomain.local"
    if not isinstance(fromAddr, str) or not _ADDRESS.fullmatch(fromAddr):
        raise MailConfigError("%s: from_addr must be an e-mail address, not %r" % (source, fromAddr))
    toAddr = get("to_addr")
    if toAddr is None:
        raise MailConfigError("%s: smtp_host is set but to_addr is not: give the address error mails go to"
                              % (source,))
    interval = get("email_interval")
    interval = 60 if interval is None else interval
    if isinstance(interval, bool) or not isinstance(interval, (int, float)) or not 1 <= interval <= 86400:
        raise MailConfigError("%s: email_interval must be a number of seconds from 1 to 86400, not %r"
                              % (source, interval))
    return MailSettings(host=host.strip("[]"), port=port, login=str(login or ""), password=str(password or ""),
                        secure=secure, fromAddr=fromAddr, toAddrs=_addresses(toAddr, "to_addr", source),
                        interval=float(interval))
