"""What S3 answers, as the drivers' error types."""

from txregistry.storage.interface import StorageError, StorageFull, StorageUnavailable
from txregistry.storage.s3 import xml


class S3Error(StorageError):
    def __init__(self, status, code, message, key=None):
        self.status = status
        self.code = code
        StorageError.__init__(self, "S3 %s %s: %s%s" % (status, code, message, " (%s)" % key if key else ""))


class S3Full(S3Error, StorageFull):
    """The server (MinIO: XMinioStorageFull, 507) or a quota (Ceph RGW:
    QuotaExceeded) has no room for the write."""


class S3Unavailable(S3Error, StorageUnavailable):
    """The server is throttling or unavailable (503 SlowDown, still so after
    the retries)."""


_FULL_CODES = frozenset(("XMinioStorageFull", "QuotaExceeded", "XMinioAdminBucketQuotaExceeded"))
_UNAVAILABLE_CODES = frozenset(("SlowDown", "ServiceUnavailable"))


def errorFor(status, body, key=None):
    """The error of a response of C{status} with C{body} (an S3 error
    document, or anything else)."""
    code, message = xml.errorCodeAndMessage(status, body)
    if status == 507 or code in _FULL_CODES:
        return S3Full(status, code, message, key)
    if status == 503 or code in _UNAVAILABLE_CODES:
        return S3Unavailable(status, code, message, key)
    return S3Error(status, code, message, key)
