"""A storage driver on Amazon S3 or any S3-compatible server (Ceph RGW,
MinIO, ...), in rooms of its own:

- L{client}: signed requests (botocore SigV4) over a Twisted Agent, retries,
  typed errors (L{errors}), one public C{call}/C{send} interface;
- L{xml}: the XML documents read and written (listings, multipart uploads,
  error documents);
- L{transfer}: request bodies sent in pieces, response bodies collected or
  streamed with backpressure (the reader);
- L{bucket}: the S3 operations on keys (objects, listings, multipart
  uploads, copies) on top of the client;
- L{writer}: appendable files as multipart uploads plus a C{.partial};
- L{driver}: the L{IStorageDriver};
- L{credentials}: static keys or botocore's chain, resolved off the reactor.
"""

from txregistry.storage.s3.bucket import COPY_PART, MAX_COPY  # noqa: F401
from txregistry.storage.s3.client import QuietConnectionPool, S3Client, UNSIGNED  # noqa: F401
from txregistry.storage.s3.credentials import resolveCredentials  # noqa: F401
from txregistry.storage.s3.driver import S3Driver  # noqa: F401
from txregistry.storage.s3.errors import S3Error, S3Full, S3Unavailable  # noqa: F401
from txregistry.storage.s3.writer import MIN_PART, PART_SIZE, PARTIAL_SUFFIX  # noqa: F401
