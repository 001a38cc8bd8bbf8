"""Errors as HTTP answers: the spec's JSON envelope
(C{{"errors":[{"code","message","detail"}]}}) with the status and headers
HTTP gives it.

L{errorAnswer} is the one place any exception becomes an answer: a
L{RegistryError} of the model (status from its code, 413 when it carries a
C{limit}, C{Retry-After} from its C{retryAfter}), an L{HTTPError} of the web
layer's own, the authorizer's refusals, the storage's unavailability, and
anything else (a bug: 500).  L{writeError} answers with it through a
request, L{rawErrorResponse} writes a whole response for the channel to send
itself (a request refused at its headers, a connection over the limit)."""

import json

from twisted.web.http import RESPONSES

from txregistry.auth import Forbidden, LoginThrottled, TokenRequestError, Unauthorized
from txregistry.errors import RegistryError
from txregistry.storage import StorageFull, StorageUnavailable

API_VERSION = b"registry/2.0"

# How long a client is told to wait when storage refuses writes.
STORAGE_RETRY_AFTER = 60

# The spec's code -> HTTP status.
STATUS = {
    "BLOB_UNKNOWN": 404,
    "BLOB_UPLOAD_INVALID": 400,
    "BLOB_UPLOAD_UNKNOWN": 404,
    "DIGEST_INVALID": 400,
    "MANIFEST_BLOB_UNKNOWN": 400,
    "MANIFEST_INVALID": 400,
    "MANIFEST_UNKNOWN": 404,
    "NAME_INVALID": 400,
    "NAME_UNKNOWN": 404,
    "SIZE_INVALID": 400,
    "TAG_INVALID": 400,
    "UNAUTHORIZED": 401,
    "DENIED": 403,
    "UNSUPPORTED": 405,
    "TOOMANYREQUESTS": 429,
    "RANGE_INVALID": 416,
    "PAGINATION_NUMBER_INVALID": 400,
    "UNAVAILABLE": 503,
}
TOO_LARGE = 413  # a RegistryError with a limit: the content is over it


class HTTPError(RegistryError):
    """A L{RegistryError} the web layer raises itself, with a status other
    than its code's (C{None}: its code's) and extra response C{headers}
    ({bytes: bytes})."""

    def __init__(self, code, message=None, detail=None, status=None, headers=None, retryAfter=None, limit=None):
        RegistryError.__init__(self, code, message, detail, retryAfter=retryAfter, limit=limit)
        self.status = status
        self.headers = dict(headers or {})

    @classmethod
    def adding(cls, error, headers):
        """C{error} (a L{RegistryError}) answered with C{headers} too."""
        status = getattr(error, "status", None)
        more = dict(getattr(error, "headers", {}))
        more.update(headers)
        return cls(error.code, error.message, error.detail, status, more, error.retryAfter, error.limit)


class ErrorAnswer:
    """The answer to an error: C{status}, C{headers} ({bytes: bytes}, besides
    the envelope's own), C{body} (the envelope) and C{error} (the
    L{RegistryError} it tells)."""

    def __init__(self, error, status, headers):
        self.error = error
        self.status = status
        self.headers = headers
        self.body = json.dumps({"errors": [error.asDict()]}, separators=(",", ":")).encode("utf-8")


def asRegistryError(exc):
    """The L{RegistryError} that tells the client of C{exc} (any exception)."""
    if isinstance(exc, RegistryError):
        return exc
    if isinstance(exc, LoginThrottled):
        return RegistryError("TOOMANYREQUESTS", exc.message, retryAfter=exc.retryAfter)
    if isinstance(exc, Unauthorized):
        return HTTPError("UNAUTHORIZED", exc.message, headers={b"WWW-Authenticate": exc.challenge.encode("latin-1")})
    if isinstance(exc, Forbidden):
        return RegistryError("DENIED", exc.message)
    if isinstance(exc, TokenRequestError):
        return HTTPError("UNSUPPORTED", exc.message, status=400)
    if isinstance(exc, StorageFull):
        # A full disk or a quota reached: 507 Insufficient Storage; it passes.
        return HTTPError("UNAVAILABLE", "insufficient storage: the registry's storage is full", status=507,
                         retryAfter=STORAGE_RETRY_AFTER)
    if isinstance(exc, StorageUnavailable):
        return RegistryError("UNAVAILABLE", "the registry's storage does not take writes now",
                             retryAfter=STORAGE_RETRY_AFTER)
    return HTTPError("UNAVAILABLE", "internal server error", status=500)


def errorAnswer(exc):
    """The L{ErrorAnswer} to C{exc}, any exception."""
    error = asRegistryError(exc)
    status = getattr(error, "status", None)
    if status is None:
        status = TOO_LARGE if error.limit is not None else STATUS[error.code]
    headers = {}
    if error.retryAfter is not None:
        headers[b"Retry-After"] = b"%d" % (error.retryAfter,)
    headers.update(getattr(error, "headers", {}))
    return ErrorAnswer(error, status, headers)


def statusOf(exc):
    """The HTTP status of the answer to C{exc}."""
    return errorAnswer(exc).status


def writeError(request, exc):
    """Set up C{request}'s answer to C{exc} (any exception); returns the body
    to send (nothing for a HEAD)."""
    answer = errorAnswer(exc)
    request.setResponseCode(answer.status)
    request.setHeader(b"Docker-Distribution-API-Version", API_VERSION)
    for name, value in answer.headers.items():
        request.setHeader(name, value)
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Content-Length", b"%d" % (len(answer.body),))
    return answer.body if request.method != b"HEAD" else b""


def _reason(status):
    # twisted.web's table lacks the newer ones (RFC 6585, RFC 9110 names).
    return {413: b"Content Too Large", 431: b"Request Header Fields Too Large", 507: b"Insufficient Storage"}.get(
        status, RESPONSES.get(status, b"Error"))


def rawErrorResponse(exc):
    """A whole HTTP/1.1 response answering C{exc} and ending the connection,
    for the channel to write itself when no L{Request} will answer."""
    answer = errorAnswer(exc)
    return b"".join([
        b"HTTP/1.1 %d %s\r\n" % (answer.status, _reason(answer.status)),
        b"Content-Type: application/json\r\n",
        b"Content-Length: %d\r\n" % (len(answer.body),),
        b"Docker-Distribution-API-Version: %s\r\n" % (API_VERSION,),
    ] + [
        b"%s: %s\r\n" % (name, value) for name, value in answer.headers.items()
    ] + [
        b"Connection: close\r\n\r\n",
        answer.body,
    ])


# The exceptions that are answers to give, not faults: any other one a
# handler raises is a bug (logged, and answered 500 where the handler's
# caller does so).
ANSWERED = (RegistryError, Unauthorized, Forbidden, TokenRequestError)
