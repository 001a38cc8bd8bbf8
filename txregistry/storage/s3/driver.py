"""The storage driver on Amazon S3 or any S3-compatible server (Ceph RGW,
MinIO, ...): paths become keys, ``<prefix>/<path>`` where the prefix is the
configured root (the classic ``storage_path``), so the bucket layout is
Distribution's.  Requests go through L{S3Client} and L{Bucket}; appendable
files are L{txregistry.storage.s3.writer}'s."""

import math
import time
from datetime import datetime
from email.utils import parsedate_to_datetime

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from treq import content as readBody
from zope.interface import implementer

from txregistry.limits import StorageLimits
from txregistry.storage.interface import (
    checkBelow,
    checkPath,
    ContentTooLarge,
    FileInfo,
    followChain,
    InvalidOffset,
    IStatChildren,
    IStorageDriver,
    PathNotFound,
)
from txregistry.storage.s3.bucket import COPY_PART, MAX_COPY, Bucket
from txregistry.storage.s3.client import S3Client
from txregistry.storage.s3.credentials import asCredentials, resolveCredentials
from txregistry.storage.s3.errors import S3Error
from txregistry.storage.s3.transfer import BufferingProtocol, EmptyReader, readAtMost, S3Reader
from txregistry.storage.s3.writer import contentLength, openWriter, PartBuffers, partialState, PARTIAL_SUFFIX


@implementer(IStorageDriver, IStatChildren)
class S3Driver:
    """C{endpoint}: C{None} for AWS (virtual-hosted addressing), else the
    URL of an S3-compatible server (path-style addressing).
    C{credentials}: resolved ones (L{txregistry.storage.s3.credentials}),
    else they are resolved here from the keys or botocore's chain, which
    blocks: then make the driver before the reactor runs.  C{threadpool}:
    where large request bodies are hashed (else on the calling thread).
    C{maxCopy}, C{copyPart}: the largest source of a one-request copy, and
    the part size of copies of larger ones.  C{partMemory}: bytes of the
    buffers of parts being filled, all uploads together
    (L{txregistry.storage.s3.writer.PartBuffers})."""

    name = "s3"
    log = Logger()

    def __init__(
        self,
        reactor,
        bucket,
        region="us-east-1",
        endpoint=None,
        accessKey=None,
        secretKey=None,
        rootDirectory="",
        secure=True,
        encrypt=False,
        redirect=True,
        redirectExpiry=1200,
        credentials=None,
        pool=None,
        threadpool=None,
        maxCopy=MAX_COPY,
        copyPart=COPY_PART,
        partMemory=StorageLimits().maxPartMemory,
    ):
        self._reactor = reactor
        self.bucket = bucket
        self.region = region or "us-east-1"
        self.prefix = rootDirectory.strip("/")
        self.encrypt = encrypt
        self.redirect = redirect
        self.redirectExpiry = redirectExpiry
        self.maxCopy = maxCopy
        self.copyPart = copyPart
        self.parts = PartBuffers(partMemory)
        if endpoint:
            self.base = "%s/%s" % (endpoint.rstrip("/"), bucket)
        else:
            scheme = "https" if secure else "http"
            self.base = "%s://%s.s3.%s.amazonaws.com" % (scheme, bucket, self.region)
        if credentials is None:
            credentials = resolveCredentials(accessKey, secretKey)
        self.client = S3Client(reactor, self.base, self.region, asCredentials(credentials), encrypt, pool, threadpool)
        self.s3 = Bucket(self.client, bucket, encrypt)

    def __repr__(self):
        return "<S3Driver %s/%s>" % (self.base, self.prefix)

    @property
    def metrics(self):
        """A L{txregistry.metrics.Metrics} told of S3 requests and retries."""
        return self.client.metrics

    @metrics.setter
    def metrics(self, metrics):
        self.client.metrics = metrics
        if metrics is not None:
            metrics.watch(metrics.s3PartBuffers, lambda: self.parts.inUse)
            metrics.watch(metrics.s3PartBufferWaits, lambda: self.parts.waiting)

    def key(self, path):
        """The bucket key of the storage path C{path}."""
        checkPath(path)
        return (self.prefix + path) if self.prefix else path.lstrip("/")

    async def _besides(self, key):
        """What one listing shows at C{key}: C{{name: (size, mtime)}} with
        C{key} (a committed file), C{key + ".partial"} (a file being
        written) and C{key + "/"} (a directory) among the names when they
        exist.  With "/" as delimiter, only siblings named C{key} followed
        by "-" or "." come before C{key + "/"}."""
        files, dirs = await self.s3.objects(key, delimiter="/", until=key + "/")
        found = {k: (size, modified) for k, size, modified in files if k in (key, key + PARTIAL_SUFFIX)}
        if key + "/" in dirs:
            found[key + "/"] = (0, "")
        return found

    # --- IStorageDriver ---

    def getContent(self, path, maxSize=None):
        async def get():
            if maxSize is None:
                return await self.client.call("GET", self.key(path))
            return await self._getAtMost(path, maxSize)

        return Deferred.fromCoroutine(get())

    async def _getAtMost(self, path, maxSize):
        """One ranged GET of the first C{maxSize + 1} bytes: the stored size
        is the 206's Content-Range total."""
        key = self.key(path)
        response = await self.client.send("GET", key, headers={"Range": "bytes=0-%d" % (maxSize,)})
        if response.code == 416:  # no byte 0: an empty file
            await readBody(response)
            return b""
        await self.client.check(response, (200, 206), key)
        size = _rangeTotal(response) if response.code == 206 else response.length
        if isinstance(size, int) and size > maxSize:
            # At most maxSize + 1 bytes come (or the connection is dropped,
            # by a server that ignored the Range): read them, for the
            # connection to be reused.
            try:
                await readAtMost(response, maxSize + 1, path)
            except ContentTooLarge:
                pass
            raise ContentTooLarge(path, maxSize, size)
        return bytes(await readAtMost(response, maxSize, path))

    def getContentChain(self, path, follow, maxSize=None):
        return Deferred.fromCoroutine(followChain(self.getContent, path, follow, maxSize))

    def putContent(self, path, data):
        async def put():
            await self.s3.put(self.key(path), bytes(data))

        return Deferred.fromCoroutine(put())

    def reader(self, path, offset=0):
        async def open_():
            key = self.key(path)
            # From the start, no Range: the size is the response's length
            # (and an empty file is a 200, not a 416).
            response = await self.client.send("GET", key, headers={"Range": "bytes=%d-" % offset} if offset else None)
            if response.code == 416:
                await readBody(response)
                info = await self.stat(path)
                if offset == info.size:
                    return EmptyReader()
                raise InvalidOffset("%s: offset %d beyond size %d" % (path, offset, info.size))
            await self.client.check(response, (200, 206), key)
            size = response.length
            if not isinstance(size, int):  # no Content-Length (UNKNOWN_LENGTH)
                size = _rangeTotal(response)
                size = (size if size is not None else (await self.stat(path)).size) - offset
            protocol = BufferingProtocol()
            response.deliverBody(protocol)
            return S3Reader(protocol, size)

        return Deferred.fromCoroutine(open_())

    def writer(self, path, append=False):
        return Deferred.fromCoroutine(openWriter(self.s3, path, self.key(path), append, self.parts))

    def stat(self, path):
        async def stat():
            key = self.key(path)
            response = await self.s3.head(key)
            if response is not None:
                modified = response.headers.getRawHeaders(b"last-modified", [b""])[0].decode("latin-1")
                return FileInfo(path, contentLength(response), _mtime(modified), False)
            found = await self._besides(key)
            if key in found:  # committed since the HEAD
                size, modified = found[key]
                return FileInfo(path, size, _isoTime(modified), False)
            if key + PARTIAL_SUFFIX in found:
                state = await partialState(self.s3, key)
                if state is not None:
                    _, parts, tail = state
                    return FileInfo(path, sum(p[2] for p in parts) + tail, time.time(), False)
            if key + "/" in found:
                return FileInfo(path, 0, time.time(), True)
            raise PathNotFound(path)

        return Deferred.fromCoroutine(stat())

    def list(self, path):
        async def list_():
            key = "" if path == "/" else self.key(path)
            prefix = (key + "/") if key else (self.prefix + "/" if self.prefix else "")
            files, dirs = await self.s3.objects(prefix, delimiter="/")
            strip = len(self.prefix) if self.prefix else 0
            out = set()
            for k, _, _ in files:
                if k.endswith(PARTIAL_SUFFIX):
                    k = k[: -len(PARTIAL_SUFFIX)]
                out.add("/" + k[strip:].lstrip("/") if strip else "/" + k)
            for d in dirs:
                d = d.rstrip("/")
                out.add("/" + d[strip:].lstrip("/") if strip else "/" + d)
            if not out and path != "/":
                raise PathNotFound(path)
            return sorted(out)

        return Deferred.fromCoroutine(list_())

    def statChildren(self, path, below):
        """L{txregistry.storage.interface.IStatChildren}: one listing of
        every key below C{path} (ListObjectsV2 pages of up to 1,000 keys,
        each with its size and LastModified), not a HEAD a child."""

        async def stats():
            checkBelow(below)
            key = "" if path == "/" else self.key(path)
            prefix = (key + "/") if key else (self.prefix + "/" if self.prefix else "")
            files, _ = await self.s3.objects(prefix)
            if not files:
                raise PathNotFound(path)
            base = "" if path == "/" else path
            found = {}
            for k, size, modified in files:
                child, slash, rest = k[len(prefix):].partition("/")
                if slash and rest == below and child:
                    found[child] = FileInfo("%s/%s/%s" % (base, child, below), size, _isoTime(modified), False)
            return found

        return Deferred.fromCoroutine(stats())

    def move(self, source, dest):
        async def move():
            src, dst = self.key(source), self.key(dest)
            if src == dst:
                # S3 refuses a copy onto itself, and the delete after it
                # would lose the object: it stays as it is, if it is.
                if await self.s3.head(src) is None:
                    raise PathNotFound(source)
                return
            # One copy, without asking the size first: only a source larger
            # than a copy may be (5 GiB, then refused with a 400) is copied
            # in parts.
            try:
                await self.s3.copy(src, dst)
            except PathNotFound:
                raise PathNotFound(source)
            except S3Error as e:
                if e.status != 400:
                    raise
                head = await self.s3.head(src)
                if head is None:
                    raise PathNotFound(source)
                size = contentLength(head)
                if size <= self.maxCopy:
                    raise
                await self.s3.copyInParts(src, dst, size, self.copyPart)
            await self.s3.delete(src)

        return Deferred.fromCoroutine(move())

    def delete(self, path):
        async def delete():
            key = self.key(path)
            at = await self._besides(key)
            found = bool(at)
            if key in at:
                await self.s3.delete(key)
            if key + "/" in at:
                files, _ = await self.s3.objects(key + "/")
                for k, _, _ in files:
                    await self.s3.delete(k)
            # Multipart uploads of the key and below it, also those that no
            # .partial names yet (a writer stopped before saving one).
            for k, uploadID in await self.s3.uploads(key):
                if k == key or k.startswith(key + "/"):
                    found = True
                    await self.s3.abort(k, uploadID)
            if key + PARTIAL_SUFFIX in at:
                await self.s3.delete(key + PARTIAL_SUFFIX)
            if not found:
                raise PathNotFound(path)

        return Deferred.fromCoroutine(delete())

    def redirectURL(self, path, method="GET"):
        return maybeDeferred(self._presign, path, method)

    def _presign(self, path, method):
        if not self.redirect or method not in ("GET", "HEAD"):
            return None
        return self.client.presign(self.key(path), method, self.redirectExpiry)

    # --- credentials ---

    def refreshCredentials(self, threadpool):
        """Refresh expiring credentials in C{threadpool} (never on the
        reactor: it may call a metadata service)."""
        return self.client.credentials.refreshIn(self._reactor, threadpool)


def _rangeTotal(response):
    """The total of a 206's Content-Range (C{bytes a-b/total}), or C{None}."""
    value = response.headers.getRawHeaders(b"content-range", [b""])[0]
    total = value.rpartition(b"/")[2]
    return int(total) if total.isdigit() else None


def _isoTime(value):
    """A listing's LastModified (ISO 8601, maybe with milliseconds) as a
    timestamp in whole seconds: what a HEAD's Last-Modified (an HTTP date)
    says of the same object, so that a stat and a listing agree."""
    try:
        return float(math.floor(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()))
    except (AttributeError, ValueError):
        return time.time()


def _mtime(value):
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return time.time()
