"""The OCI distribution spec's error codes, raised by the registry layer and
rendered as ``{"errors": [{"code", "message", "detail"}]}`` by the web layer."""

# code -> (HTTP status, default message)
CODES = {
    "BLOB_UNKNOWN": (404, "blob unknown to registry"),
    "BLOB_UPLOAD_INVALID": (400, "blob upload invalid"),
    "BLOB_UPLOAD_UNKNOWN": (404, "blob upload unknown to registry"),
    "DIGEST_INVALID": (400, "provided digest did not match uploaded content"),
    "MANIFEST_BLOB_UNKNOWN": (400, "manifest references a manifest or blob unknown to registry"),
    "MANIFEST_INVALID": (400, "manifest invalid"),
    "MANIFEST_UNKNOWN": (404, "manifest unknown to registry"),
    "NAME_INVALID": (400, "invalid repository name"),
    "NAME_UNKNOWN": (404, "repository name not known to registry"),
    "SIZE_INVALID": (400, "provided length did not match content length"),
    "TAG_INVALID": (400, "manifest tag did not match URI"),
    "UNAUTHORIZED": (401, "authentication required"),
    "DENIED": (403, "requested access to the resource is denied"),
    "UNSUPPORTED": (405, "the operation is unsupported"),
    "TOOMANYREQUESTS": (429, "too many requests"),
    "RANGE_INVALID": (416, "invalid content range"),
    "PAGINATION_NUMBER_INVALID": (400, "invalid number of results requested"),
    "UNAVAILABLE": (503, "service unavailable"),
}


class RegistryError(Exception):
    """An error the client caused (or a well-defined unavailability), with
    the spec's code.  C{headers} are extra response headers."""

    def __init__(self, code, message=None, detail=None, status=None, headers=None):
        defaultStatus, defaultMessage = CODES[code]
        self.code = code
        self.message = message or defaultMessage
        self.detail = detail
        self.status = status or defaultStatus
        self.headers = headers or {}
        Exception.__init__(self, code, self.message)

    def asDict(self):
        out = {"code": self.code, "message": self.message}
        out["detail"] = self.detail if self.detail is not None else {}
        return out
