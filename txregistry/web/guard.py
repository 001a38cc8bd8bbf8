"""The registry's error envelope for answers given below the Klein app: by
the HTTP channel (a request refused before its body is read, such as one
without a valid Host: L{hostProblem}) and by L{URLGuard} (a request whose
URL Klein cannot decode)."""

import json

from twisted.web.http import RESPONSES
from twisted.web.resource import Resource

from txregistry import names
from txregistry.errors import RegistryError
from txregistry.storage import StorageFull

# How long a client is told to wait when storage refuses writes.
STORAGE_RETRY_AFTER = 60

API_VERSION = b"registry/2.0"


def _reason(status):
    # twisted.web's table lacks the newer ones (RFC 6585, RFC 9110 names).
    return {413: b"Content Too Large", 431: b"Request Header Fields Too Large", 507: b"Insufficient Storage"}.get(
        status, RESPONSES.get(status, b"Error"))


def errorBody(error):
    """C{{"errors":[{"code","message","detail"}]}} for a L{RegistryError}."""
    return json.dumps({"errors": [error.asDict()]}, separators=(",", ":")).encode("utf-8")


def storageUnavailableError(e):
    """The answer to a L{StorageUnavailable}: 507 Insufficient Storage for a
    full disk or a quota reached, else (read-only) 503; both pass."""
    headers = {b"Retry-After": b"%d" % (STORAGE_RETRY_AFTER,)}
    if isinstance(e, StorageFull):
        return RegistryError("UNAVAILABLE", "insufficient storage: the registry's storage is full",
                             status=507, headers=headers)
    return RegistryError("UNAVAILABLE", "the registry's storage does not take writes now", headers=headers)


def writeError(request, error):
    """Set up C{request}'s answer to C{error}, the spec's JSON envelope;
    returns the body to send (nothing for a HEAD)."""
    body = errorBody(error)
    request.setResponseCode(error.status)
    request.setHeader(b"Docker-Distribution-API-Version", API_VERSION)
    for name, value in error.headers.items():
        request.setHeader(name, value)
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Content-Length", b"%d" % (len(body),))
    return body if request.method != b"HEAD" else b""


def rawErrorResponse(error):
    """A whole HTTP/1.1 response carrying C{error}, ending the connection:
    for the channel to write itself when no L{Request} will answer."""
    body = errorBody(error)
    return b"".join([
        b"HTTP/1.1 %d %s\r\n" % (error.status, _reason(error.status)),
        b"Content-Type: application/json\r\n",
        b"Content-Length: %d\r\n" % (len(body),),
        b"Docker-Distribution-API-Version: %s\r\n" % (API_VERSION,),
    ] + [
        b"%s: %s\r\n" % (name, value) for name, value in error.headers.items()
    ] + [
        b"Connection: close\r\n\r\n",
        body,
    ])


def hostProblem(values, version):
    """The L{RegistryError} (400) for a request whose Host header lines are
    C{values} (a list, or C{None}) and whose HTTP version is C{version}, or
    C{None}.  RFC 9112 3.2: an HTTP/1.1 request has exactly one Host, with a
    valid value.  An HTTP/1.0 request may have none (then the registry's
    own address or public URL stands in); one with several or an invalid
    one is refused too, for which of them a front end routed on is as
    unknowable as in 1.1."""
    values = values or []
    if not values:
        if version == b"HTTP/1.0":
            return None
        return RegistryError("UNSUPPORTED", "the request has no Host header", status=400)
    if len(values) > 1:
        return RegistryError("UNSUPPORTED", "the request has %d Host headers" % (len(values),), status=400)
    value = values[0]
    if not names.isValidHost(value.decode("latin-1") if isinstance(value, bytes) else value):
        return RegistryError("UNSUPPORTED", "the Host header is not a host name and port", status=400)
    return None


def urlProblem(request):
    """The L{RegistryError} for a request whose Host header or
    percent-decoded path is not UTF-8, or whose host name is not one IDNA can
    encode (what Klein needs to route it), or C{None}.  Checks the same bytes
    Klein decodes: the host name and the request's prepath and postpath."""
    try:
        host = request.getRequestHostname().decode("utf-8")
    except UnicodeDecodeError:
        return RegistryError("UNSUPPORTED", "the Host header is not UTF-8", status=400)
    try:
        # What Klein's router (werkzeug) does with it.
        host.lower().partition(":")[0].encode("idna")
    except UnicodeError:
        return RegistryError("UNSUPPORTED", "the Host header is not a host name", status=400)
    try:
        b"/".join(request.prepath).decode("utf-8")
        b"/".join(request.postpath).decode("utf-8")
    except UnicodeDecodeError:
        if request.path.startswith(b"/v2"):
            return RegistryError("NAME_INVALID", "the path is not UTF-8 once percent-decoded")
        return RegistryError("UNSUPPORTED", "the path is not UTF-8 once percent-decoded", status=400)
    return None


class URLGuard(Resource):
    """Wraps the Klein resource: a request Klein could not decode (it would
    answer a text/plain 400 and log a traceback) gets the registry's error
    envelope instead; every other request goes to the wrapped resource
    untouched (this is a leaf, so the path is not consumed)."""

    isLeaf = True

    def __init__(self, wrapped):
        Resource.__init__(self)
        self.wrapped = wrapped

    def render(self, request):
        error = urlProblem(request)
        if error is None:
            return self.wrapped.render(request)
        return writeError(request, error)
