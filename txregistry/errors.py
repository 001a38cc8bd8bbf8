"""The OCI distribution spec's errors, as the registry model raises them:
the spec's code, a message, a detail, and plain fields the client may act on.

What HTTP makes of them (status codes, headers) is the web layer's
business: L{txregistry.web.errors}."""

# code -> default message
MESSAGES = {
    "BLOB_UNKNOWN": "blob unknown to registry",
    "BLOB_UPLOAD_INVALID": "blob upload invalid",
    "BLOB_UPLOAD_UNKNOWN": "blob upload unknown to registry",
    "DIGEST_INVALID": "provided digest did not match uploaded content",
    "MANIFEST_BLOB_UNKNOWN": "manifest references a manifest or blob unknown to registry",
    "MANIFEST_INVALID": "manifest invalid",
    "MANIFEST_UNKNOWN": "manifest unknown to registry",
    "NAME_INVALID": "invalid repository name",
    "NAME_UNKNOWN": "repository name not known to registry",
    "SIZE_INVALID": "provided length did not match content length",
    "TAG_INVALID": "manifest tag did not match URI",
    "UNAUTHORIZED": "authentication required",
    "DENIED": "requested access to the resource is denied",
    "UNSUPPORTED": "the operation is unsupported",
    "TOOMANYREQUESTS": "too many requests",
    "RANGE_INVALID": "invalid content range",
    "PAGINATION_NUMBER_INVALID": "invalid number of results requested",
    "UNAVAILABLE": "service unavailable",
}


class StreamCut(Exception):
    """A body could not be sent whole for a reason that was logged where it
    arose (an upstream sent wrong bytes, or stopped): the response is cut
    short, and no traceback is logged for it as a server fault."""


class RegistryError(Exception):
    """An error the client caused (or a well-defined unavailability), with
    the spec's C{code}, C{message} and C{detail}, and plain fields:

    - C{retryAfter}: seconds after which the client may try again, or
      C{None};
    - C{limit}: the bytes the content went beyond (it is too large, not
      malformed), or C{None}.
    """

    def __init__(self, code, message=None, detail=None, retryAfter=None, limit=None):
        self.code = code
        self.message = message or MESSAGES[code]
        self.detail = detail
        self.retryAfter = retryAfter
        self.limit = limit
        Exception.__init__(self, code, self.message)

    def asDict(self):
        out = {"code": self.code, "message": self.message}
        out["detail"] = self.detail if self.detail is not None else {}
        return out
