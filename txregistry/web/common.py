"""What every handler uses: the request's query and headers, parsed so that
bad input raises the spec's error; the answers (JSON, empty); the request
body; L{shield}."""

import json
from urllib.parse import parse_qs, unquote

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from txregistry import digest as digests
from txregistry import names
from txregistry.errors import RegistryError
from txregistry.web.bodies import PendingBody
from txregistry.web.errors import API_VERSION, HTTPError


def query(request):
    """The query string as {str: [str]} (decoded by hand so that invalid
    bytes give a 400, not a 500)."""
    uri = request.uri
    if b"?" not in uri:
        return {}
    try:
        return parse_qs(uri.split(b"?", 1)[1].decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise HTTPError("UNSUPPORTED", "query string is not UTF-8", status=400)


def one(query, key):
    values = query.get(key)
    return values[-1] if values else None


def header(request, name):
    value = request.getHeader(name)
    if value is None:
        return None
    return value.decode("latin-1") if isinstance(value, bytes) else value


def declaredLength(request):
    """The request's Content-Length (C{None}: a chunked body)."""
    value = request.getHeader(b"content-length")
    return int(value) if value is not None and value.strip().isdigit() else None


def checkName(name):
    if not names.isValidName(name):
        raise RegistryError("NAME_INVALID", "invalid repository name", {"name": name[:300]})
    return name


def parseDigest(value):
    try:
        return digests.parse(unquote(value))
    except digests.InvalidDigest as e:
        raise RegistryError("DIGEST_INVALID", str(e), {"digest": value[:200]})


def pageSize(query, default=None):
    raw = one(query, "n")
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise RegistryError("PAGINATION_NUMBER_INVALID", "n must be a non-negative integer", {"n": raw[:20]})
    return int(raw)


def body(request):
    """The request body, through the L{PendingBody} it may have waited in."""
    content = request.content
    return content.target if isinstance(content, PendingBody) else content


def setCommon(request):
    request.setHeader(b"Docker-Distribution-API-Version", API_VERSION)


def jsonAnswer(request, status, doc, contentType=b"application/json"):
    data = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", contentType)
    request.setHeader(b"Content-Length", b"%d" % (len(data),))
    return data if request.method != b"HEAD" else b""


def emptyAnswer(request, status, headers):
    request.setResponseCode(status)
    for k, v in headers.items():
        request.setHeader(k, v)
    request.setHeader(b"Content-Length", b"0")
    return b""


def shield(coroutine):
    """Run C{coroutine} to completion even if the returned Deferred is
    cancelled (on client disconnect): a half-done write to storage must not
    be abandoned between two steps."""
    inner = Deferred.fromCoroutine(coroutine)
    outer = Deferred(lambda d: None)

    def relay(result):
        if not outer.called:
            if isinstance(result, Failure):
                outer.errback(result)
            else:
                outer.callback(result)
        elif isinstance(result, Failure) and not result.check(CancelledError):
            Logger().failure("request failed after the client left", result)

    inner.addBoth(relay)
    return outer
