"""The access log line: the combined log format, with the authenticated
user in its user field (never a password or token: those are never in the
line at all)."""

import re

from twisted.web.http import combinedLogFormatter

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]")


def _user(name):
    return _UNSAFE.sub(lambda m: "\\x%02x" % (ord(m.group()) & 0xFF), name)[:100]


def accessLogFormatter(timestamp, request):
    line = combinedLogFormatter(timestamp, request)
    user = getattr(request, "txrUser", None)
    if user:
        line = line.replace('" - - ', '" - %s ' % (_user(user),), 1)
    return line
