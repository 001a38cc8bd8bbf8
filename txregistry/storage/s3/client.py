"""Signed S3 requests over Twisted's HTTP client.

botocore signs (SigV4 headers, and query strings for presigned URLs);
an Agent with persistent connections sends, with request bodies of known
length sent in pieces and response bodies left to the caller to stream.
Server errors and lost connections are retried; answers become typed
errors (L{txregistry.storage.s3.errors}) in one place, L{S3Client.check},
which also finds the error documents S3 may send with a 200.

Nothing here blocks the reactor: the payload hash of a large body is
computed in a thread pool (when one is given), and credentials are
resolved elsewhere (L{txregistry.storage.s3.credentials})."""

import hashlib
from urllib.parse import quote

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectError
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.web.client import (
    Agent,
    HTTPConnectionPool,
    RequestTransmissionFailed,
    ResponseNeverReceived,
)
from twisted.web.http_headers import Headers
from treq import content as readBody

from txregistry.storage.interface import PathNotFound, StorageError
from txregistry.storage.s3 import xml
from txregistry.storage.s3.errors import S3Error, errorFor
from txregistry.storage.s3.transfer import BytesProducer

UNSIGNED = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
RETRIES = 4
HASH_IN_THREAD = 256 * 1024  # a body this large is hashed in the thread pool

_PAYLOAD_HASH = "txregistry_payload_hash"


def quoted(value):
    """C{value} quoted for a query string."""
    return quote(str(value), safe="-_.~")


def _payloadHashSigner():
    """botocore's S3 SigV4 signer, taking the payload hash from the request
    context instead of hashing a body."""
    from botocore.auth import S3SigV4Auth

    class PayloadHashSigner(S3SigV4Auth):
        def payload(self, request):
            given = request.context.get(_PAYLOAD_HASH)
            return given if given else S3SigV4Auth.payload(self, request)

    return PayloadHashSigner


def _sha256(data):
    return hashlib.sha256(data).hexdigest()


class QuietConnectionPool(HTTPConnectionPool):
    """A connection pool whose connections are not logged one by one (a
    server that closes each connection, as moto's does, would put a
    "Starting factory" / "Stopping factory" pair in the log per request).
    The one place that reaches into the pool's private C{_factory}."""

    class _factory(HTTPConnectionPool._factory):
        noisy = False


class S3Client:
    """Requests to one bucket at C{base} (its URL: virtual-hosted or
    path-style).  C{credentials}: a L{txregistry.storage.s3.credentials.
    Credentials}.  C{metrics} (a L{txregistry.metrics.Metrics}, or C{None})
    is told of every request sent and every retry."""

    log = Logger()
    metrics = None

    def __init__(self, reactor, base, region, credentials, encrypt=False, pool=None, threadpool=None):
        from botocore.auth import S3SigV4QueryAuth

        self._reactor = reactor
        self.base = base
        self.region = region
        self.credentials = credentials
        self.encrypt = encrypt
        self.threadpool = threadpool
        self._authClass = _payloadHashSigner()
        self._queryAuthClass = S3SigV4QueryAuth
        self.pool = pool or QuietConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = 16
        self.agent = Agent(reactor, pool=self.pool)

    def url(self, key, query=""):
        url = "%s/%s" % (self.base, quote(key, safe="/-_.~"))
        return url + ("?" + query if query else "")

    def presign(self, key, method, expires):
        """A URL that lets its holder C{method} C{key} for C{expires} seconds."""
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=self.url(key))
        self._queryAuthClass(self.credentials.frozen, "s3", self.region, expires=expires).add_auth(request)
        return request.url

    # --- one request ---

    def send(self, method, key, query="", body=None, headers=None, payloadHash=None, contentType=None):
        """Send one signed request; a Deferred of its Response (body
        unread).  Server errors (5xx) and lost connections are retried a
        few times with a short backoff: every request we send is
        idempotent.  C{body}: bytes-like, sent again on each attempt;
        C{payloadHash}: its SHA-256 (computed when not given), or
        L{UNSIGNED}."""
        return Deferred.fromCoroutine(self._send(method, key, query, body, headers, payloadHash, contentType))

    async def _send(self, method, key, query, body, headers, payloadHash, contentType):
        if payloadHash is None:
            payloadHash = await self._hash(body)
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

    async def _hash(self, body):
        if body is None:
            return EMPTY_SHA256
        if self.threadpool is not None and len(body) >= HASH_IN_THREAD:
            return await deferToThreadPool(self._reactor, self.threadpool, _sha256, body)
        return _sha256(body)

    def _sendOnce(self, method, key, query, body, headers, payloadHash, contentType):
        url = self.url(key, query)
        headers = dict(headers or {})
        producer = None
        if body is not None:
            headers["Content-Type"] = contentType or "application/octet-stream"
            producer = BytesProducer(body)
            if method == "PUT" and self.encrypt and "partNumber=" not in query:
                headers["x-amz-server-side-encryption"] = "AES256"
        elif method in ("PUT", "POST"):
            headers["Content-Type"] = contentType or "application/octet-stream"
            producer = BytesProducer(b"")
        signed = self._sign(method, url, headers, payloadHash)
        raw = Headers({k.encode("latin-1"): [v.encode("latin-1")] for k, v in signed.items()})
        return self.agent.request(method.encode("ascii"), url.encode("ascii"), raw, producer)

    def _sign(self, method, url, headers, payloadHash):
        from botocore.awsrequest import AWSRequest

        request = AWSRequest(method=method, url=url, headers=dict(headers))
        # The body is not given to botocore (it would hash it here, on the
        # reactor thread): the signer takes the hash we computed, or
        # UNSIGNED-PAYLOAD.
        request.context[_PAYLOAD_HASH] = payloadHash
        self._authClass(self.credentials.frozen, "s3", self.region).add_auth(request)
        return dict(request.headers.items())

    # --- answers ---

    async def check(self, response, expect, key, body=None):
        """Raise the error C{response} (its body read, or given as C{body})
        stands for, if its status is not in C{expect}: L{PathNotFound} for
        a 404, else L{errorFor}'s."""
        if response.code in expect:
            return
        if body is None:
            body = await readBody(response)
        if response.code == 404:
            raise PathNotFound(key)
        raise errorFor(response.code, body, key)

    async def call(self, method, key, query="", body=None, headers=None, expect=(200,), contentType=None,
                   payloadHash=None):
        """Send a request and return its (small) response body, once its
        status is one of C{expect} (else see L{check})."""
        response = await self.send(method, key, query, body, headers, payloadHash=payloadHash,
                                   contentType=contentType)
        data = await readBody(response)
        await self.check(response, expect, key, data)
        return data

    async def callForDocument(self, method, key, query="", body=None, headers=None, contentType=None,
                              required=True):
        """L{call} for an XML answer: its root element.  S3 may answer a
        200 and send an error document (a copy or a completion that failed
        after it began): that is an error as well.  Unless C{required}, a
        200 without XML is C{None} rather than an error."""
        data = await self.call(method, key, query, body, headers, contentType=contentType)
        doc = xml.parse(data)
        if xml.isError(doc):
            raise errorFor(200, data, key)
        if doc is None and required:
            raise S3Error(200, "MalformedResponse", "not an XML document: %r" % (bytes(data[:100]),), key)
        return doc
