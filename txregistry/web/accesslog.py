"""The access log: one info-level event per request, namespace
C{txregistry.access}.

Its text is the combined log format line, with the authenticated user in
its user field; its fields are the same facts, structured (what the JSON
log writes): client, user, method, path, protocol, status, bytes, referer,
user_agent and duration (seconds from the end of the request head to the
end of the response).

Never a password or token: credentials headers are not in it at all, and
the values of query parameters that may carry one (C{token}, C{password},
S3-style signatures, ...) are replaced by C{[redacted]} in the path.
"""

import re

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.logger import Logger

from txregistry.auth.redact import REDACTED
from txregistry.logs import ACCESS_NAMESPACE

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")
# Query parameters whose values may be credentials.
SECRET_QUERY_NAMES = frozenset(
    [
        "token", "access_token", "refresh_token", "id_token", "password", "passwd", "secret", "client_secret",
        "signature", "sig", "x-amz-signature", "x-amz-credential", "x-amz-security-token",
        "awsaccesskeyid", "x-goog-signature", "x-goog-credential",
    ]
)
_QUERY_PAIR = re.compile(r"([^&=]*)(=?)([^&]*)")

log = Logger(namespace=ACCESS_NAMESPACE)


def _user(name):
    return _UNSAFE.sub(lambda m: "\\x%02x" % (ord(m.group()) & 0xFF), name)[:100]


def _decode(value):
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return str(value)


_PLAIN = re.compile(r'[ !#-\[\]-~]*')  # printable ASCII but " and \


def _quote(text):
    """C{text} as it may stand between double quotes in the line:
    backslashes, quotes and non-printable characters escaped."""
    if _PLAIN.fullmatch(text):
        return text  # nearly always: nothing to escape
    out = []
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif " " <= ch <= "~":
            out.append(ch)
        else:
            code = ord(ch)
            out.append("\\x%02x" % code if code < 0x100 else "\\u%04x" % code if code < 0x10000 else "\\U%08x" % code)
    return "".join(out)


def safePath(uri):
    """The request target C{uri} (str or bytes) with the values of secret
    query parameters replaced by C{[redacted]}; a str."""
    uri = _decode(uri) or ""
    path, sep, query = uri.partition("?")
    if not sep:
        return uri

    def replace(m):
        name = m.group(1)
        plain = name.lower().replace("%2d", "-").replace("%5f", "_")
        if m.group(2) and plain in SECRET_QUERY_NAMES:
            return "%s=%s" % (name, REDACTED)
        return m.group(0)

    return path + "?" + _QUERY_PAIR.sub(replace, query)


def accessFields(request, now=None):
    """The structured facts of a finished C{request}; C{now}: the time
    (reactor seconds) it finished, for the duration."""
    address = request.getClientAddress()
    client = address.host if isinstance(address, (IPv4Address, IPv6Address)) else None
    started = getattr(request, "txrStarted", None)
    duration = None
    if started is not None and now is not None:
        duration = round(max(0.0, now - started), 6)
    user = getattr(request, "txrUser", None)
    return {
        "client": _decode(client),
        "user": user or None,
        "method": _decode(request.method),
        "path": safePath(request.uri),
        "protocol": _decode(request.clientproto),
        "status": request.code,
        "bytes": request.sentLength,
        "referer": _decode(request.getHeader(b"referer")),
        "user_agent": _decode(request.getHeader(b"user-agent")),
        "duration": duration,
    }


def accessLine(timestamp, fields):
    """The combined log format line of C{fields} (L{accessFields});
    C{timestamp}: the date as the combined format writes it."""
    return '"%s" - %s %s "%s %s %s" %d %s "%s" "%s"' % (
        _quote(fields["client"] or "-"),
        _user(fields["user"]) if fields["user"] else "-",
        timestamp,
        _quote(fields["method"] or "-"),
        _quote(fields["path"]),
        _quote(fields["protocol"] or "-"),
        fields["status"],
        fields["bytes"] or "-",
        _quote(fields["referer"] or "-"),
        _quote(fields["user_agent"] or "-"),
    )


def logRefusal(timestamp, client, requestLine, headers, status, sent, logger=log):
    """Emit the access event of a request the channel answered itself
    (refused before a handler saw it): C{requestLine} is C{(method, target,
    protocol)} as far as it was read (bytes or None), C{headers} the
    request's headers read so far (or None), C{sent} the body bytes."""
    method, target, protocol = requestLine

    def header(name):
        values = headers.getRawHeaders(name) if headers is not None else None
        return _decode(values[0]) if values else None

    _emit(timestamp, {
        "client": _decode(client),
        "user": None,
        "method": _decode(method),
        "path": safePath(target) if target is not None else "-",
        "protocol": _decode(protocol),
        "status": status,
        "bytes": sent,
        "referer": header(b"referer"),
        "user_agent": header(b"user-agent"),
        "duration": None,
    }, logger)


def logAccess(timestamp, request, now=None, logger=log):
    """Emit the access event of C{request}."""
    _emit(timestamp, accessFields(request, now), logger)


def _emit(timestamp, fields, logger):
    line = accessLine(timestamp, fields)
    # The line is the event's text: braces doubled, so that it is not read
    # as a format; the facts themselves are the event's fields.
    logger.info(line.replace("{", "{{").replace("}", "}}"), **fields)
