"""POSTing envelopes of events to an endpoint, with a deadline."""

from io import BytesIO

from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.protocol import Protocol
from twisted.web.client import Agent, FileBodyProducer, HTTPConnectionPool
from twisted.web.http_headers import Headers

ENVELOPE_TYPE = "application/vnd.docker.distribution.events.v1+json"
MAX_RESPONSE = 64 * 1024  # bytes of a receiver's answer read (then the connection is dropped)


class _Discard(Protocol):
    """Reads a response body to its end (so the connection can be used
    again), keeping none of it; gives up past L{MAX_RESPONSE}."""

    def __init__(self, done):
        self.done = done
        self.seen = 0

    def dataReceived(self, data):
        self.seen += len(data)
        if self.seen > MAX_RESPONSE:
            self.transport.stopProducing()

    def connectionLost(self, reason):
        if not self.done.called:
            self.done.callback(None)


class Delivery(Exception):
    """A delivery that failed: the message says how (one line)."""


class Sender:
    def __init__(self, reactor, url, headers, timeout):
        self._reactor = reactor
        self.url = url.encode("ascii")
        self.timeout = timeout
        h = Headers()
        h.setRawHeaders(b"content-type", [ENVELOPE_TYPE.encode("ascii")])
        h.setRawHeaders(b"user-agent", [b"txregistry"])
        for name, value in headers:
            h.addRawHeader(name.encode("ascii"), value.encode("utf-8"))
        self.headers = h
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = 1
        self.pool.retryAutomatically = False  # a POST is not sent twice behind our back
        self.agent = Agent(reactor, pool=self.pool, connectTimeout=max(1, int(timeout + 0.999)))

    async def send(self, body):
        """POST C{body}; return the status code of a 2xx answer, else raise
        L{Delivery}.  Gives up after the timeout (connection, request and
        answer together)."""
        d = self.agent.request(b"POST", self.url, self.headers.copy(), FileBodyProducer(BytesIO(body)))

        async def exchange():
            response = await d
            protocol = None

            def abandon(_):
                if protocol.transport is not None:
                    protocol.transport.stopProducing()

            done = Deferred(abandon)
            protocol = _Discard(done)
            response.deliverBody(protocol)
            await done
            return response.code

        attempt = Deferred.fromCoroutine(exchange())
        attempt.addTimeout(self.timeout, self._reactor)
        try:
            code = await attempt
        except Exception as e:
            if isinstance(e, TimeoutError):
                raise Delivery("no answer within %gs" % (self.timeout,))
            reasons = getattr(e, "reasons", None)
            detail = reasons[0].getErrorMessage() if reasons else (str(e) or e.__class__.__name__)
            raise Delivery(detail.splitlines()[0] if detail else repr(e))
        if not 200 <= code < 300:
            raise Delivery("answered %d" % (code,))
        return code

    def close(self):
        return self.pool.closeCachedConnections()
