"""Requests refused for their Host or URL before any route sees them: by
the HTTP channel (before the body is read: L{hostProblem}) and by
L{URLGuard} (a request whose URL or Host cannot be decoded)."""

from twisted.web.resource import Resource

from txregistry import names
from txregistry.web.errors import HTTPError, writeError


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
        return HTTPError("UNSUPPORTED", "the request has no Host header", status=400)
    if len(values) > 1:
        return HTTPError("UNSUPPORTED", "the request has %d Host headers" % (len(values),), status=400)
    value = values[0]
    if not names.isValidHost(value.decode("latin-1") if isinstance(value, bytes) else value):
        return HTTPError("UNSUPPORTED", "the Host header is not a host name and port", status=400)
    return None


def urlProblem(request):
    """The L{RegistryError} for a request whose Host header or
    percent-decoded path is not UTF-8, or whose host name is not one IDNA can
    encode (what Klein needs to route it), or C{None}.  Checks the same bytes
    Klein decodes: the host name and the request's prepath and postpath."""
    try:
        host = request.getRequestHostname().decode("utf-8")
    except UnicodeDecodeError:
        return HTTPError("UNSUPPORTED", "the Host header is not UTF-8", status=400)
    try:
        # What Klein's router (werkzeug) does with it.
        host.lower().partition(":")[0].encode("idna")
    except UnicodeError:
        return HTTPError("UNSUPPORTED", "the Host header is not a host name", status=400)
    try:
        b"/".join(request.prepath).decode("utf-8")
        b"/".join(request.postpath).decode("utf-8")
    except UnicodeDecodeError:
        if request.path.startswith(b"/v2"):
            return HTTPError("NAME_INVALID", "the path is not UTF-8 once percent-decoded")
        return HTTPError("UNSUPPORTED", "the path is not UTF-8 once percent-decoded", status=400)
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
