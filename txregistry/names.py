"""The request grammar of the OCI distribution spec: repository names, tags,
references and byte ranges; and HTTP's host names.  Pure functions, no I/O."""

import re

# distribution-spec: <name> components separated by "/".
_NAME = re.compile(
    r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$"
)
_TAG = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
# RFC 9110 7.2 (Host = uri-host [ ":" port ]) with RFC 3986's uri-host: an
# IP-literal (IPv6, IPvFuture) or a reg-name (IPv4 addresses are reg-names).
_HOST = re.compile(
    r"(?:\[(?:[0-9A-Fa-f:.]+|v[0-9A-Fa-f]+\.[A-Za-z0-9\-._~!$&'()*+,;=:]+)\]"
    r"|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})+)"
    r"(?::[0-9]*)?"
)
# Distribution limits a repository name to 255 characters.
MAX_NAME_LENGTH = 255


def isValidName(name):
    return (
        isinstance(name, str)
        and 0 < len(name) <= MAX_NAME_LENGTH
        and _NAME.fullmatch(name) is not None
    )


def isValidTag(tag):
    return isinstance(tag, str) and _TAG.fullmatch(tag) is not None


def isValidHost(value):
    """Whether C{value} (str) is a valid Host header value: a host, not
    empty, and an optional port."""
    return isinstance(value, str) and _HOST.fullmatch(value) is not None


class RangeNotSatisfiable(ValueError):
    """The Range header is well formed but selects nothing in the resource."""


def parseRange(header, size):
    """Parse an HTTP C{Range} header value against a resource of C{size} bytes.

    Returns C{None} when the whole resource should be served (no header, a
    header we ignore per RFC 9110 such as several ranges or another unit, or a
    malformed one), else C{(start, end)} inclusive.  Raises
    L{RangeNotSatisfiable} for a single well-formed range outside the resource.
    """
    if header is None:
        return None
    header = header.strip()
    m = re.fullmatch(r"bytes\s*=\s*(\d*)\s*-\s*(\d*)$", header)
    if m is None:
        return None
    first, last = m.group(1), m.group(2)
    if first == "" and last == "":
        return None
    if first == "":
        suffix = int(last)
        if suffix == 0:
            raise RangeNotSatisfiable()
        if size == 0:
            raise RangeNotSatisfiable()
        return (max(0, size - suffix), size - 1)
    start = int(first)
    end = int(last) if last != "" else size - 1
    if last != "" and end < start:
        return None
    if start >= size:
        raise RangeNotSatisfiable()
    return (start, min(end, size - 1))


def parseContentRange(header):
    """Parse the C{Content-Range} of an upload chunk: C{start-end} (the spec's
    form) or C{bytes start-end[/total]}.  Returns C{(start, end)} inclusive or
    raises C{ValueError}."""
    m = re.fullmatch(r"(?:bytes[ =])?\s*(\d+)\s*-\s*(\d+)(?:/(?:\d+|\*))?$", header.strip())
    if m is None:
        raise ValueError("malformed Content-Range %r" % (header[:80],))
    start, end = int(m.group(1)), int(m.group(2))
    if end < start:
        raise ValueError("Content-Range end is before its start")
    return start, end
