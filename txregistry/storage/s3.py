"""A storage driver on Amazon S3 or any S3-compatible server (Ceph RGW,
MinIO, ...).

botocore does what it is good at: the credential chain and SigV4 signing
(headers, and query strings for presigned URLs).  Twisted does the transport:
an Agent with persistent connections, request bodies of known length, and
response bodies streamed with backpressure.  Nothing here blocks the reactor.

Keys are ``<prefix>/<path>`` where the prefix is the configured root (the
classic ``storage_path``), so the bucket layout is Distribution's.

Appendable files (uploads) keep their state in the bucket, so that another
process can continue them: a multipart upload of parts of C{partSize}
bytes, plus the bytes that do not fill a part yet in a small side object
(``<key>.partial``, never larger than a part) that records how many parts
it follows.  Appending never copies what is already stored.
"""

import hashlib
import mmap
import time
import xml.etree.ElementTree as ET
from datetime import datetime
from email.utils import parsedate_to_datetime
from urllib.parse import quote

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from treq import content as readBody
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from txregistry.storage.interface import (
    checkPath,
    ContentTooLarge,
    FileInfo,
    followChain,
    InvalidOffset,
    IReader,
    IStorageDriver,
    IWriter,
    PathNotFound,
    StorageError,
    StorageFull,
    StorageUnavailable,
)

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
MIN_PART = 5 * 1024 * 1024
PART_SIZE = 16 * 1024 * 1024
MAX_COPY = 5 * 1024 * 1024 * 1024
COPY_PART = 1024 * 1024 * 1024
PARTIAL_SUFFIX = ".partial"
UNSIGNED = "UNSIGNED-PAYLOAD"
READ_HIGH = 4 * 1024 * 1024
READ_LOW = 1024 * 1024
SEND_CHUNK = 128 * 1024
SMALL_BUFFER = 1024 * 1024  # a writer holding more keeps it in a mapping of PART_SIZE
RETRIES = 4


_PAYLOAD_HASH = "txregistry_payload_hash"


def _payloadHashSigner():
    """botocore's S3 SigV4 signer, taking the payload hash from the request
    context instead of hashing a body."""
    from botocore.auth import S3SigV4Auth

    class PayloadHashSigner(S3SigV4Auth):
        def payload(self, request):
            given = request.context.get(_PAYLOAD_HASH)
            return given if given else S3SigV4Auth.payload(self, request)

    return PayloadHashSigner


class S3Error(StorageError):
    def __init__(self, status, code, message, key=None):
        self.status = status
        self.code = code
        StorageError.__init__(self, "S3 %s %s: %s%s" % (status, code, message, " (%s)" % key if key else ""))


def _q(value):
    return quote(str(value), safe="-_.~")


def _xml(body):
    try:
        return ET.fromstring(body)
    except ET.ParseError:
        return None


def _find(node, name):
    found = node.find(NS + name)
    if found is None:
        found = node.find(name)
    return found


def _findall(node, name):
    return node.findall(NS + name) or node.findall(name)


def _text(node, name, default=None):
    found = _find(node, name)
    return found.text if found is not None and found.text is not None else default


class S3Full(S3Error, StorageFull):
    """The server (MinIO: XMinioStorageFull, 507) or a quota (Ceph RGW:
    QuotaExceeded) has no room for the write."""


class S3Unavailable(S3Error, StorageUnavailable):
    """The server is throttling or unavailable (503 SlowDown, still so after
    the retries)."""


_FULL_CODES = frozenset(("XMinioStorageFull", "QuotaExceeded", "XMinioAdminBucketQuotaExceeded"))
_UNAVAILABLE_CODES = frozenset(("SlowDown", "ServiceUnavailable"))


def _errorOf(status, body, key):
    doc = _xml(body) if body else None
    if doc is not None and doc.tag.split("}")[-1] == "Error":
        code, message = _text(doc, "Code", "Unknown"), _text(doc, "Message", "")
    else:
        code, message = "HTTP%d" % status, (body or b"")[:200].decode("utf-8", "replace")
    if status == 507 or code in _FULL_CODES:
        return S3Full(status, code, message, key)
    if status == 503 or code in _UNAVAILABLE_CODES:
        return S3Unavailable(status, code, message, key)
    return S3Error(status, code, message, key)


class _Credentials:
    """Frozen credentials, refreshed off the reactor when they can expire."""

    def __init__(self, credentials):
        self._source = credentials
        self.frozen = credentials.get_frozen_credentials()

    def refreshable(self):
        return hasattr(self._source, "refresh_needed")

    def refresh(self):
        self.frozen = self._source.get_frozen_credentials()


@implementer(IBodyProducer)
class _BytesProducer:
    """A request body from bytes or a bytearray, handed to the transport
    SEND_CHUNK bytes at a time while it asks for more (it pauses us when
    its buffer is full), so that a part is never copied whole: the
    transport holds one piece, not the part.  A new producer is made for
    each attempt of a request (see L{S3Driver._sendRetrying})."""

    def __init__(self, data, chunkSize=SEND_CHUNK):
        self._view = memoryview(data)
        self.length = self._view.nbytes
        self._chunkSize = chunkSize
        self._offset = 0
        self._paused = False
        self._consumer = None
        self._done = None
        self._writing = False

    def startProducing(self, consumer):
        self._consumer = consumer
        self._done = Deferred()
        self._produce()
        return self._done

    def _produce(self):
        if self._writing:  # (a write made the transport resume us)
            return
        self._writing = True
        try:
            while not self._paused and self._consumer is not None and self._offset < self.length:
                end = min(self._offset + self._chunkSize, self.length)
                piece = self._view[self._offset:end].tobytes()  # transports take bytes only
                self._offset = end
                self._consumer.write(piece)
        finally:
            self._writing = False
        if self._consumer is not None and self._offset >= self.length:
            self._consumer = None
            self._view.release()  # the buffer may be resized again
            self._done.callback(None)

    def pauseProducing(self):
        self._paused = True

    def resumeProducing(self):
        self._paused = False
        self._produce()

    def stopProducing(self):
        # (The Deferred of startProducing need not fire after this.)
        if self._consumer is not None:
            self._consumer = None
            self._view.release()


class _IntoBytearray(Protocol):
    """Collects a (small) response body into one bytearray, without the
    list and join of L{readBody}."""

    def __init__(self, finished):
        self.data = bytearray()
        self._finished = finished

    def dataReceived(self, data):
        self.data += data

    def connectionLost(self, reason):
        if reason.check(ResponseDone):
            self._finished.callback(self.data)
        else:
            self._finished.errback(reason)


def _readIntoBytearray(response):
    d = Deferred()
    response.deliverBody(_IntoBytearray(d))
    return d


class _AtMost(_IntoBytearray):
    """Collects a response body of at most C{maxSize} bytes; past that, the
    connection is dropped (nothing more is read) and C{finished} fails with
    L{ContentTooLarge}."""

    def __init__(self, finished, maxSize, path):
        _IntoBytearray.__init__(self, finished)
        self._maxSize = maxSize
        self._path = path

    def dataReceived(self, data):
        if self._finished is None:
            return
        self.data += data
        if len(self.data) > self._maxSize:
            finished, self._finished = self._finished, None
            self.data = bytearray()
            self.transport.stopProducing()
            finished.errback(ContentTooLarge(self._path, self._maxSize))

    def connectionLost(self, reason):
        if self._finished is not None:
            _IntoBytearray.connectionLost(self, reason)


class _BufferingProtocol(Protocol):
    """Receives a response body, buffering at most about READ_HIGH bytes: it
    pauses the connection above that and resumes below READ_LOW."""

    def __init__(self):
        self.buffer = bytearray()
        self.done = False
        self.error = None
        self.waiting = None
        self.paused = False

    def dataReceived(self, data):
        self.buffer += data
        if len(self.buffer) > READ_HIGH and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pauseProducing()
        self._wake()

    def connectionLost(self, reason):
        self.done = True
        if not reason.check(ResponseDone):
            self.error = reason
        self._wake()

    def _wake(self):
        d, self.waiting = self.waiting, None
        if d is not None:
            d.callback(None)

    def take(self, n):
        chunk = bytes(self.buffer[:n])
        del self.buffer[:n]
        if self.paused and len(self.buffer) < READ_LOW:
            self.paused = False
            self.transport.resumeProducing()
        return chunk

    def stop(self):
        if not self.done and self.transport is not None:
            self.transport.stopProducing()


@implementer(IReader)
class _S3Reader:
    def __init__(self, protocol, size):
        self._protocol = protocol
        self.size = size

    def read(self, n):
        p = self._protocol
        if p.buffer:
            return succeed(p.take(n))
        if p.done:
            if p.error is not None:
                return Deferred.fromCoroutine(_raise(StorageError("S3 read failed: %s" % (p.error.value,))))
            return succeed(b"")
        d = Deferred()
        p.waiting = d
        return d.addCallback(lambda _: self.read(n))

    def close(self):
        self._protocol.stop()


async def _raise(e):
    raise e


class _EmptyReader:
    size = 0

    def read(self, n):
        return succeed(b"")

    def close(self):
        pass


@implementer(IWriter)
class _S3Writer:
    """See the module docstring.  C{parts} are C{(number, etag, size)};
    C{tail} (a bytearray, or bytes) is what follows them.  C{partialSaved}:
    whether a C{.partial} may exist for this file (C{False} only for a
    writer that found none, until it saves one).

    Memory: one buffer, of the part being filled.  Up to SMALL_BUFFER bytes
    it is a bytearray of what was written (a small file takes its size);
    beyond, an anonymous mapping of PART_SIZE bytes, filled in place and
    reused for every later part: no copy of a part is made, and the part
    buffers of successive uploads do not come and go through malloc (whose
    heap would keep growing with them: glibc raises its mmap threshold once
    such a buffer is freed, and part-sized buffers then fragment its heap).
    A part is sent from the buffer in pieces (L{_BytesProducer}), one part
    in flight at a time; L{write} fires only once its data is in the buffer
    or sent.  L{close} gives the buffer back."""

    def __init__(self, driver, path, uploadID, parts, tail, partialSaved=True):
        self._driver = driver
        self._path = path
        self._key = driver._key(path)
        self._uploadID = uploadID
        self._parts = parts
        self._buffer = tail if isinstance(tail, bytearray) else bytearray(tail)
        self._filled = len(self._buffer)  # the bytes of the buffer in use (the rest is stale)
        self._partialSaved = partialSaved
        self._dirty = False
        self._finished = False
        self._closed = False

    @property
    def size(self):
        return sum(p[2] for p in self._parts) + self._filled

    def _put(self, view):
        """Copy what fits of C{view} into the buffer; returns the rest."""
        piece = view[:PART_SIZE - self._filled]
        n = len(piece)
        if isinstance(self._buffer, bytearray):
            if self._filled + n <= SMALL_BUFFER:
                try:
                    self._buffer += piece
                except BufferError:  # a request not yet started still looks at it
                    self._buffer = self._buffer + piece
                self._filled += n
                return view[n:]
            big = mmap.mmap(-1, PART_SIZE)
            big[:self._filled] = self._buffer
            self._buffer = big
        self._buffer[self._filled:self._filled + n] = piece
        self._filled += n
        return view[n:]

    def write(self, data):
        if self._closed or self._finished:
            return Deferred.fromCoroutine(_raise(StorageError("%s: write after close" % (self._path,))))
        self._dirty = True
        if self._filled + len(data) < PART_SIZE:
            self._put(memoryview(data))
            return succeed(None)
        return Deferred.fromCoroutine(self._fill(data))

    async def _fill(self, data):
        view = memoryview(data)
        while len(view):
            view = self._put(view)
            if self._filled >= PART_SIZE:
                await self._uploadPart()
                self._filled = 0

    def _held(self):
        """A view of the bytes held (release it once sent)."""
        return memoryview(self._buffer)[:self._filled]

    def _release(self):
        """Give the buffer back (L{size} stays what it was)."""
        self._buffer = bytearray()  # a mapping is unmapped once no request looks at it

    async def _uploadPart(self):
        d = self._driver
        if self._uploadID is None:
            body = await d._call("POST", self._key, query="uploads", expect=(200,))
            self._uploadID = _text(_xml(body), "UploadId")
            if not self._uploadID:
                raise S3Error(200, "NoUploadId", "CreateMultipartUpload gave no UploadId", self._key)
        number = len(self._parts) + 1
        with self._held() as data:
            response = await d._send(
                "PUT",
                self._key,
                query="partNumber=%d&uploadId=%s" % (number, _q(self._uploadID)),
                body=data,
                payloadHash=UNSIGNED,
            )
            await d._check(response, (200,), self._key)
        etag = response.headers.getRawHeaders(b"etag", [b""])[0].decode("ascii")
        self._parts.append((number, etag, self._filled))

    async def _saveTail(self):
        d = self._driver
        headers = {"x-amz-meta-parts": str(len(self._parts))}
        if self._uploadID:
            headers["x-amz-meta-uploadid"] = self._uploadID
        self._partialSaved = True
        try:
            with self._held() as tail:
                await d._call("PUT", self._key + PARTIAL_SUFFIX, body=tail, headers=headers, expect=(200,),
                              payloadHash=UNSIGNED)
        finally:
            self._release()

    def close(self):
        if self._finished or self._closed:
            return succeed(None)
        self._closed = True
        if not self._dirty:
            self._release()
            return succeed(None)
        return Deferred.fromCoroutine(self._saveTail())

    def commit(self):
        if self._closed:
            return Deferred.fromCoroutine(_raise(StorageError("%s: commit after close" % (self._path,))))
        self._finished = True
        return Deferred.fromCoroutine(self._commit())

    async def _commit(self):
        d = self._driver
        if self._uploadID is None:
            with self._held() as data:
                await d._call("PUT", self._key, body=data, expect=(200,), payloadHash=UNSIGNED)
        else:
            if self._filled:
                await self._uploadPart()
                self._filled = 0  # (now the last part)
            parts = "".join(
                "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>" % (n, etag.replace("&", "&amp;").replace("<", "&lt;"))
                for n, etag, _ in self._parts
            )
            xml = ("<CompleteMultipartUpload>%s</CompleteMultipartUpload>" % parts).encode("utf-8")
            body = await d._call(
                "POST", self._key, query="uploadId=%s" % _q(self._uploadID), body=xml, expect=(200,),
                contentType="application/xml",
            )
            doc = _xml(body)
            if doc is not None and doc.tag.split("}")[-1] == "Error":  # a 200 can carry an error
                raise _errorOf(200, body, self._key)
        self._release()
        if self._partialSaved:
            await d._deleteKey(self._key + PARTIAL_SUFFIX)

    def cancel(self):
        self._finished = True
        return Deferred.fromCoroutine(self._cancel())

    async def _cancel(self):
        d = self._driver
        if self._uploadID is not None:
            await d._abort(self._key, self._uploadID)
        await d._deleteKey(self._key + PARTIAL_SUFFIX)
        await d._deleteKey(self._key)


@implementer(IWriter)
class _CommittedWriter:
    """An append writer on a file already committed: it can be committed
    again (a retried completion) but not written to."""

    def __init__(self, path, size):
        self._path = path
        self.size = size

    def write(self, data):
        return Deferred.fromCoroutine(_raise(StorageError("%s is committed: no more appends" % (self._path,))))

    def commit(self):
        return succeed(None)

    def close(self):
        return succeed(None)

    def cancel(self):
        return Deferred.fromCoroutine(_raise(StorageError("cancel a committed file with delete")))


class QuietConnectionPool(HTTPConnectionPool):
    """A connection pool whose connections are not logged one by one (a
    server that closes each connection, as moto's does, would put a
    "Starting factory" / "Stopping factory" pair in the log per request).
    The one place that reaches into the pool's private C{_factory}."""

    class _factory(HTTPConnectionPool._factory):
        noisy = False


@implementer(IStorageDriver)
class S3Driver:
    """C{endpoint}: C{None} for AWS (virtual-hosted addressing), else the
    URL of an S3-compatible server (path-style addressing)."""

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
    ):
        from botocore.auth import S3SigV4QueryAuth

        self._reactor = reactor
        self.bucket = bucket
        self.region = region or "us-east-1"
        self.prefix = rootDirectory.strip("/")
        self.encrypt = encrypt
        self.redirect = redirect
        self.redirectExpiry = redirectExpiry
        if endpoint:
            self.base = "%s/%s" % (endpoint.rstrip("/"), bucket)
        else:
            scheme = "https" if secure else "http"
            self.base = "%s://%s.s3.%s.amazonaws.com" % (scheme, bucket, self.region)
        if credentials is None:
            credentials = resolveCredentials(accessKey, secretKey)
        self._credentials = _Credentials(credentials)
        self._authClass = _payloadHashSigner()
        self._queryAuthClass = S3SigV4QueryAuth
        self._pool = pool or QuietConnectionPool(reactor, persistent=True)
        self._pool.maxPersistentPerHost = 16
        self._agent = Agent(reactor, pool=self._pool)

    def __repr__(self):
        return "<S3Driver %s/%s>" % (self.base, self.prefix)

    # --- plumbing ---

    def _key(self, path):
        checkPath(path)
        return (self.prefix + path) if self.prefix else path.lstrip("/")

    def _url(self, key, query=""):
        url = "%s/%s" % (self.base, quote(key, safe="/-_.~"))
        return url + ("?" + query if query else "")

    def _sign(self, method, url, headers, payloadHash):
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=url, headers=dict(headers))
        # The body is not given to botocore (it would hash it here, on the
        # reactor thread): the signer takes the hash we computed, or
        # UNSIGNED-PAYLOAD.
        request.context[_PAYLOAD_HASH] = payloadHash
        self._authClass(self._credentials.frozen, "s3", self.region).add_auth(request)
        return dict(request.headers.items())

    metrics = None  # a txregistry.metrics.Metrics: requests and retries counted

    def _send(self, method, key, query="", body=None, headers=None, payloadHash=None, contentType=None):
        """Send one signed request; returns the Response (body unread).
        Server errors (5xx) and lost connections are retried a few times
        with a short backoff: every request we send is idempotent."""
        return Deferred.fromCoroutine(self._sendRetrying(method, key, query, body, headers, payloadHash, contentType))

    async def _sendRetrying(self, method, key, query, body, headers, payloadHash, contentType):
        from twisted.internet.error import ConnectError
        from twisted.internet.task import deferLater
        from twisted.web._newclient import RequestTransmissionFailed, ResponseNeverReceived

        delay = 0.05
        for attempt in range(RETRIES + 1):
            last = attempt == RETRIES
            if attempt and self.metrics is not None:
                self.metrics.s3Retry(method)
            try:
                response = await self._sendOnce(method, key, query, body, headers, payloadHash, contentType)
            except (ConnectError, ResponseNeverReceived, RequestTransmissionFailed) as e:
                if self.metrics is not None:
                    self.metrics.s3Request(method, 0)
                if last:
                    raise StorageError("S3 %s %s: %s" % (method, key, e))
            else:
                if self.metrics is not None:
                    self.metrics.s3Request(method, response.code)
                if response.code < 500 or last:
                    return response
                await readBody(response)
            self.log.debug("retrying S3 {method} {key}", method=method, key=key)
            await deferLater(self._reactor, delay, lambda: None)
            delay *= 4

    def _sendOnce(self, method, key, query, body, headers, payloadHash, contentType):
        url = self._url(key, query)
        headers = dict(headers or {})
        producer = None
        if body is not None:
            if payloadHash is None:
                payloadHash = hashlib.sha256(body).hexdigest()
            headers["Content-Type"] = contentType or "application/octet-stream"
            producer = _BytesProducer(body)
            if method == "PUT" and self.encrypt and "partNumber=" not in query:
                headers["x-amz-server-side-encryption"] = "AES256"
        elif method in ("PUT", "POST"):
            headers["Content-Type"] = contentType or "application/octet-stream"
            producer = _BytesProducer(b"")
        signed = self._sign(method, url, headers, payloadHash or hashlib.sha256(b"").hexdigest())
        raw = Headers({k.encode("latin-1"): [v.encode("latin-1")] for k, v in signed.items()})
        return self._agent.request(method.encode("ascii"), url.encode("ascii"), raw, producer)

    async def _check(self, response, expect, key):
        if response.code not in expect:
            body = await readBody(response)
            if response.code == 404:
                raise PathNotFound(key)
            raise _errorOf(response.code, body, key)

    async def _call(self, method, key, query="", body=None, headers=None, expect=(200,), contentType=None,
                    payloadHash=None):
        """Send a request and return its (small) response body."""
        response = await self._send(method, key, query, body, headers, payloadHash=payloadHash,
                                    contentType=contentType)
        data = await readBody(response)
        if response.code not in expect:
            if response.code == 404:
                raise PathNotFound(key)
            raise _errorOf(response.code, data, key)
        return data

    async def _head(self, key):
        response = await self._send("HEAD", key)
        await readBody(response)
        if response.code == 404:
            return None
        if response.code != 200:
            raise S3Error(response.code, "HTTP%d" % response.code, "HEAD failed", key)
        return response

    async def _deleteKey(self, key):
        response = await self._send("DELETE", key)
        body = await readBody(response)
        if response.code not in (200, 204, 404):
            raise _errorOf(response.code, body, key)

    async def _abort(self, key, uploadID):
        response = await self._send("DELETE", key, "uploadId=%s" % _q(uploadID))
        body = await readBody(response)
        if response.code not in (200, 204, 404):
            raise _errorOf(response.code, body, key)

    async def _listObjects(self, prefix, delimiter=None, limit=None, until=None):
        """C{([(key, size, mtime)], [commonPrefix])} under C{prefix}; with
        C{until}, pages stop once they have reached that key (keys and
        common prefixes come in order: a later page has only greater
        ones)."""
        files, dirs, token = [], [], None
        while True:
            query = "list-type=2&prefix=%s" % _q(prefix)
            if delimiter:
                query += "&delimiter=%s" % _q(delimiter)
            if limit:
                query += "&max-keys=%d" % limit
            if token:
                query += "&continuation-token=%s" % _q(token)
            # the bucket itself: key ""
            doc = _xml(await self._call("GET", "", query))
            for c in _findall(doc, "Contents"):
                files.append((_text(c, "Key"), int(_text(c, "Size", "0")), _text(c, "LastModified", "")))
            for p in _findall(doc, "CommonPrefixes"):
                dirs.append(_text(p, "Prefix"))
            if limit or _text(doc, "IsTruncated", "false") != "true":
                return files, dirs
            if until is not None and max([f[0] for f in files] + dirs + [""]) >= until:
                return files, dirs
            token = _text(doc, "NextContinuationToken")
            if not token:
                return files, dirs

    async def _multipartUploads(self, prefix):
        """C{[(key, uploadID)]} of the multipart uploads under C{prefix}."""
        out, keyMarker, idMarker = [], None, None
        while True:
            query = "uploads&prefix=%s" % _q(prefix)
            if keyMarker:
                query += "&key-marker=%s&upload-id-marker=%s" % (_q(keyMarker), _q(idMarker or ""))
            doc = _xml(await self._call("GET", "", query))
            for u in _findall(doc, "Upload"):
                out.append((_text(u, "Key"), _text(u, "UploadId")))
            if _text(doc, "IsTruncated", "false") != "true":
                return out
            keyMarker = _text(doc, "NextKeyMarker")
            idMarker = _text(doc, "NextUploadIdMarker")
            if not keyMarker:
                return out

    async def _listParts(self, key, uploadID):
        parts, marker = [], None
        while True:
            query = "uploadId=%s" % _q(uploadID)
            if marker:
                query += "&part-number-marker=%s" % _q(marker)
            doc = _xml(await self._call("GET", key, query))
            for p in _findall(doc, "Part"):
                parts.append((int(_text(p, "PartNumber")), _text(p, "ETag"), int(_text(p, "Size", "0"))))
            if _text(doc, "IsTruncated", "false") != "true":
                break
            marker = _text(doc, "NextPartNumberMarker")
            if not marker:
                break
        parts.sort()
        return parts

    async def _partialState(self, key):
        """C{(uploadID, parts, tail)} of an appendable file, or C{None}."""
        response = await self._send("GET", key + PARTIAL_SUFFIX)
        tail = await _readIntoBytearray(response)
        if response.code == 404:
            return None
        if response.code != 200:
            raise _errorOf(response.code, bytes(tail), key)
        meta = response.headers
        count = int((meta.getRawHeaders(b"x-amz-meta-parts") or [b"0"])[0])
        uploadID = (meta.getRawHeaders(b"x-amz-meta-uploadid") or [b""])[0].decode("ascii") or None
        parts = []
        if uploadID:
            try:
                parts = await self._listParts(key, uploadID)
            except PathNotFound:
                if await self._head(key) is not None:
                    # Completed, and the daemon stopped before it deleted the
                    # .partial: the file is committed; what is left is debris.
                    await self._deleteKey(key + PARTIAL_SUFFIX)
                    return None
                raise StorageError("multipart upload of %s is gone" % (key,))
        if len(parts) > count:
            # A part was stored after the tail was saved: parts always begin
            # with the whole tail, so the tail is already in that part.
            tail = bytearray()
        elif len(parts) < count:
            raise StorageError("multipart upload of %s lost parts" % (key,))
        return uploadID, parts, tail

    async def _besides(self, key):
        """What one listing shows at C{key}: C{{name: (size, mtime)}} with
        C{key} (a committed file), C{key + ".partial"} (a file being
        written) and C{key + "/"} (a directory) among the names when they
        exist.  With "/" as delimiter, only siblings named C{key} followed
        by "-" or "." come before C{key + "/"}."""
        files, dirs = await self._listObjects(key, delimiter="/", until=key + "/")
        found = {k: (size, modified) for k, size, modified in files if k in (key, key + PARTIAL_SUFFIX)}
        if key + "/" in dirs:
            found[key + "/"] = (0, "")
        return found

    # --- IStorageDriver ---

    def getContent(self, path, maxSize=None):
        async def get():
            if maxSize is None:
                return await self._call("GET", self._key(path))
            return await self._getAtMost(path, maxSize)

        return Deferred.fromCoroutine(get())

    async def _getAtMost(self, path, maxSize):
        """One ranged GET of the first C{maxSize + 1} bytes: the stored size
        is the 206's Content-Range total."""
        key = self._key(path)
        response = await self._send("GET", key, headers={"Range": "bytes=0-%d" % (maxSize,)})
        if response.code == 416:  # no byte 0: an empty file
            await readBody(response)
            return b""
        await self._check(response, (200, 206), key)
        size = _rangeTotal(response) if response.code == 206 else response.length
        if isinstance(size, int) and size > maxSize:
            # At most maxSize + 1 bytes come (or the connection is dropped,
            # by a server that ignored the Range): read them, for the
            # connection to be reused.
            try:
                await self._readAtMost(response, maxSize + 1, path)
            except ContentTooLarge:
                pass
            raise ContentTooLarge(path, maxSize, size)
        return bytes(await self._readAtMost(response, maxSize, path))

    def _readAtMost(self, response, maxSize, path):
        d = Deferred()
        response.deliverBody(_AtMost(d, maxSize, path))
        return d

    def getContentChain(self, path, follow, maxSize=None):
        return Deferred.fromCoroutine(followChain(self.getContent, path, follow, maxSize))

    def putContent(self, path, data):
        async def put():
            await self._call("PUT", self._key(path), body=bytes(data), expect=(200,))

        return Deferred.fromCoroutine(put())

    def reader(self, path, offset=0):
        async def open_():
            key = self._key(path)
            # From the start, no Range: the size is the response's length
            # (and an empty file is a 200, not a 416).
            response = await self._send("GET", key, headers={"Range": "bytes=%d-" % offset} if offset else None)
            if response.code == 416:
                await readBody(response)
                info = await self.stat(path)
                if offset == info.size:
                    return _EmptyReader()
                raise InvalidOffset("%s: offset %d beyond size %d" % (path, offset, info.size))
            if response.code not in (200, 206):
                await self._check(response, (200, 206), key)
            size = response.length
            if not isinstance(size, int):  # no Content-Length (UNKNOWN_LENGTH)
                size = _rangeTotal(response)
                size = (size if size is not None else (await self.stat(path)).size) - offset
            protocol = _BufferingProtocol()
            response.deliverBody(protocol)
            return _S3Reader(protocol, size)

        return Deferred.fromCoroutine(open_())

    def writer(self, path, append=False):
        async def open_():
            key = self._key(path)
            if not append:
                await self._discardPartial(key)
                await self._deleteKey(key)
                writer = _S3Writer(self, path, None, [], b"", partialSaved=False)
                writer._dirty = True  # the file exists (empty) once closed
                return writer
            state = await self._partialState(key)
            if state is None:
                existing = await self._head(key)
                if existing is not None:
                    return _CommittedWriter(path, _contentLength(existing))
                return _S3Writer(self, path, None, [], b"", partialSaved=False)
            uploadID, parts, tail = state
            return _S3Writer(self, path, uploadID, parts, tail)

        return Deferred.fromCoroutine(open_())

    async def _discardPartial(self, key):
        for k, uploadID in await self._multipartUploads(key):
            if k == key:
                await self._abort(key, uploadID)
        await self._deleteKey(key + PARTIAL_SUFFIX)

    def stat(self, path):
        async def stat():
            key = self._key(path)
            response = await self._head(key)
            if response is not None:
                modified = response.headers.getRawHeaders(b"last-modified", [b""])[0].decode("latin-1")
                return FileInfo(path, _contentLength(response), _mtime(modified), False)
            found = await self._besides(key)
            if key in found:  # committed since the HEAD
                size, modified = found[key]
                return FileInfo(path, size, _isoTime(modified), False)
            if key + PARTIAL_SUFFIX in found:
                state = await self._partialState(key)
                if state is not None:
                    _, parts, tail = state
                    return FileInfo(path, sum(p[2] for p in parts) + len(tail), time.time(), False)
            if key + "/" in found:
                return FileInfo(path, 0, time.time(), True)
            raise PathNotFound(path)

        return Deferred.fromCoroutine(stat())

    def list(self, path):
        async def list_():
            key = "" if path == "/" else self._key(path)
            prefix = (key + "/") if key else (self.prefix + "/" if self.prefix else "")
            files, dirs = await self._listObjects(prefix, delimiter="/")
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

    def move(self, source, dest):
        async def move():
            src, dst = self._key(source), self._key(dest)
            copySource = "/%s/%s" % (self.bucket, quote(src, safe="/-_.~"))
            # One copy, without asking the size first: only a source larger
            # than a copy may be (5 GiB, then refused with a 400) is copied
            # in parts.
            try:
                body = await self._call("PUT", dst, headers=self._copyHeaders(copySource), expect=(200,))
            except PathNotFound:
                raise PathNotFound(source)
            except S3Error as e:
                if e.status != 400:
                    raise
                head = await self._head(src)
                if head is None:
                    raise PathNotFound(source)
                size = _contentLength(head)
                if size <= MAX_COPY:
                    raise
                await self._multipartCopy(copySource, dst, size)
            else:
                doc = _xml(body)
                if doc is not None and doc.tag.split("}")[-1] == "Error":
                    raise _errorOf(200, body, dst)
            await self._deleteKey(src)

        return Deferred.fromCoroutine(move())

    def _copyHeaders(self, copySource, rangeHeader=None):
        headers = {"x-amz-copy-source": copySource}
        if rangeHeader:
            headers["x-amz-copy-source-range"] = rangeHeader
        elif self.encrypt:
            headers["x-amz-server-side-encryption"] = "AES256"
        return headers

    async def _multipartCopy(self, copySource, dst, size):
        doc = _xml(await self._call("POST", dst, query="uploads"))
        uploadID = _text(doc, "UploadId")
        try:
            parts = []
            for number, start in enumerate(range(0, size, COPY_PART), 1):
                end = min(start + COPY_PART, size) - 1
                body = await self._call(
                    "PUT", dst, query="partNumber=%d&uploadId=%s" % (number, _q(uploadID)),
                    headers=self._copyHeaders(copySource, "bytes=%d-%d" % (start, end)),
                )
                result = _xml(body)
                if result is None or result.tag.split("}")[-1] == "Error":
                    raise _errorOf(200, body, dst)
                parts.append((number, _text(result, "ETag")))
            xml = "<CompleteMultipartUpload>%s</CompleteMultipartUpload>" % "".join(
                "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>" % p for p in parts
            )
            body = await self._call(
                "POST", dst, query="uploadId=%s" % _q(uploadID), body=xml.encode("utf-8"),
                contentType="application/xml",
            )
            doc = _xml(body)
            if doc is not None and doc.tag.split("}")[-1] == "Error":
                raise _errorOf(200, body, dst)
        except BaseException:
            await self._abort(dst, uploadID)
            raise

    def delete(self, path):
        async def delete():
            key = self._key(path)
            at = await self._besides(key)
            found = bool(at)
            if key in at:
                await self._deleteKey(key)
            if key + "/" in at:
                files, _ = await self._listObjects(key + "/")
                for k, _, _ in files:
                    await self._deleteKey(k)
            # Multipart uploads of the key and below it, also those that no
            # .partial names yet (a writer stopped before saving one).
            for k, uploadID in await self._multipartUploads(key):
                if k == key or k.startswith(key + "/"):
                    found = True
                    await self._abort(k, uploadID)
            if key + PARTIAL_SUFFIX in at:
                await self._deleteKey(key + PARTIAL_SUFFIX)
            if not found:
                raise PathNotFound(path)

        return Deferred.fromCoroutine(delete())

    def redirectURL(self, path, method="GET"):
        return maybeDeferred(self._presign, path, method)

    def _presign(self, path, method):
        if not self.redirect or method not in ("GET", "HEAD"):
            return None
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=self._url(self._key(path)))
        self._queryAuthClass(self._credentials.frozen, "s3", self.region, expires=self.redirectExpiry).add_auth(
            request
        )
        return request.url

    # --- credentials ---

    def refreshCredentials(self, threadpool):
        """Refresh expiring credentials in C{threadpool} (never on the
        reactor: it may call a metadata service)."""
        from twisted.internet.threads import deferToThreadPool

        if not self._credentials.refreshable():
            return succeed(None)
        return deferToThreadPool(self._reactor, threadpool, self._credentials.refresh)


def _contentLength(response):
    """Content-Length of a HEAD response (Twisted says a HEAD has no body)."""
    return int(response.headers.getRawHeaders(b"content-length", [b"0"])[0])


def _rangeTotal(response):
    """The total of a 206's Content-Range (C{bytes a-b/total}), or C{None}."""
    value = response.headers.getRawHeaders(b"content-range", [b""])[0]
    total = value.rpartition(b"/")[2]
    return int(total) if total.isdigit() else None


def _isoTime(value):
    """A listing's LastModified (ISO 8601) as a timestamp."""
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except (AttributeError, ValueError):
        return time.time()


def _mtime(value):
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return time.time()


def resolveCredentials(accessKey=None, secretKey=None):
    """Static keys when given, else botocore's credential chain (environment,
    shared files, instance metadata...).  Call before the reactor starts."""
    import botocore.session
    from botocore.credentials import Credentials

    if accessKey and secretKey:
        return Credentials(accessKey, secretKey)
    found = botocore.session.get_session().get_credentials()
    if found is None:
        raise StorageError("no AWS credentials: set s3_access_key/s3_secret_key (AWS_KEY/AWS_SECRET) "
                           "or configure the AWS credential chain")
    return found
