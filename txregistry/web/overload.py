"""The bound on connections open at once (C{limits.max_connections}).

A connection over the bound is answered C{503} with the spec's JSON error
and closed, without parsing anything it sends: each one costs a descriptor
for at most L{Overloaded.LINGER} seconds, and beyond L{MAX_LINGERING} of
those at once they are closed without an answer.
"""

from twisted.internet.interfaces import ITCPTransport
from twisted.internet.protocol import Protocol
from twisted.logger import Logger

from txregistry.errors import RegistryError
from txregistry.web.errors import rawErrorResponse

MAX_LINGERING = 100
WARN_INTERVAL = 60  # seconds between two warnings about the bound


class ConnectionLimit:
    """Counts the connections of one site; C{limit} 0: no bound.
    C{clock}: for the linger and the warnings' interval."""

    log = Logger()

    def __init__(self, limit, clock):
        self.limit = limit
        self.clock = clock
        self.open = 0
        self.lingering = 0
        self.refused = 0  # refused since the last warning
        self._warned = None

    def admit(self):
        """Count a new connection in; C{False} if it is over the bound."""
        if self.limit and self.open >= self.limit:
            self._refusedOne()
            return False
        self.open += 1
        return True

    def closed(self):
        self.open -= 1

    def _refusedOne(self):
        self.refused += 1
        now = self.clock.seconds() if self.clock is not None else 0
        if self._warned is None or now - self._warned >= WARN_INTERVAL:
            self.log.warn(
                "{open} connections open (limits.max_connections): refused {refused} new connection(s)",
                open=self.open, refused=self.refused,
            )
            self._warned = now
            self.refused = 0


class Overloaded(Protocol):
    """A connection over the bound: answered 503, then closed."""

    LINGER = 1.0
    _call = None

    def __init__(self, limit):
        self._limit = limit

    def connectionMade(self):
        limit = self._limit
        transport = self.transport
        if limit.lingering >= MAX_LINGERING or limit.clock is None or not ITCPTransport.providedBy(transport):
            transport.abortConnection()
            return
        limit.lingering += 1
        self._counted = True
        transport.write(rawErrorResponse(RegistryError(
            "UNAVAILABLE", "too many connections; retry later", retryAfter=1,
        )))
        # Read (and drop) what the client sends for a moment, so that it
        # sees the answer rather than a reset.
        transport.loseWriteConnection()
        self._call = limit.clock.callLater(self.LINGER, transport.abortConnection)

    def dataReceived(self, data):
        pass

    def connectionLost(self, reason):
        if self._call is not None and self._call.active():
            self._call.cancel()
        if getattr(self, "_counted", False):
            self._limit.lingering -= 1
