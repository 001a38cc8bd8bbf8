"""Keep secrets out of logs."""

import re

SECRET_HEADERS = frozenset(
    ["authorization", "proxy-authorization", "cookie", "set-cookie", "x-registry-auth", "x-auth-token"]
)
REDACTED = "[redacted]"
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9!#$%&'*+.^_`|~-]*$")


def redact(headerName, value):
    """C{value} of header C{headerName} as it may be logged.

    For ``Authorization`` and ``Proxy-Authorization`` the scheme stays (it
    helps to see that a client sent ``Basic`` or ``Bearer``) and the
    credentials go; cookies and other credential headers go entirely; other
    headers are returned unchanged.  Bytes in, bytes out; str in, str out.
    """
    name = headerName.decode("latin-1") if isinstance(headerName, bytes) else str(headerName)
    if name.strip().lower() not in SECRET_HEADERS:
        return value
    asBytes = isinstance(value, bytes)
    text = value.decode("latin-1") if asBytes else str(value)
    result = REDACTED
    if name.strip().lower() in ("authorization", "proxy-authorization"):
        scheme, sep, rest = text.strip().partition(" ")
        if sep and _SCHEME.match(scheme):
            result = "%s %s" % (scheme, REDACTED)
    return result.encode("latin-1") if asBytes else result


def redactHeaders(headers):
    """C{[(name, value), ...]} with every value passed through L{redact}."""
    return [(name, redact(name, value)) for name, value in headers]
