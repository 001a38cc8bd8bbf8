"""Where a request body goes, as twisted.web sees it: file-like objects fed
the body as it arrives (C{write}), told its end (C{seek(0)}) or that the
client left (C{close}).

- L{BoundedBody}: kept in memory up to a limit (a manifest, a token form),
  its bytes reserved from a L{BodyBudget} shared by all requests;
- L{DiscardBody}: counted, not kept (a body no handler reads);
- L{UploadBody}: into an upload in storage, through an L{Appender};
- L{RefusedBody}: the request is answered at once, none of the body kept;
- L{PendingBody}: the connection paused while the caller's login is checked,
  then everything handed to one of the above.

L{txregistry.web.bodyrouter} decides which, when the headers arrive.
"""

import io

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from txregistry.errors import RegistryError


class BodyBudget:
    """The bytes of request bodies held in memory, all requests together,
    bounded by C{limit} (0: no bound)."""

    def __init__(self, limit=0):
        self.limit = limit
        self.held = 0

    def reserve(self, n):
        """Take C{n} bytes of the budget; C{False} (nothing taken) if that
        would exceed it."""
        if self.limit and self.held + n > self.limit:
            return False
        self.held += n
        return True

    def release(self, n):
        self.held -= n

    def refusal(self):
        """The answer to a request whose body does not fit the budget now."""
        return RegistryError(
            "TOOMANYREQUESTS", "too many request bodies in memory at once (limits.max_body_memory); retry later",
            retryAfter=1,
        )


class BoundedBody:
    """A file-like body keeping at most C{limit} bytes in memory; past that it
    only counts (C{overflow} tells the handler to answer 413).  C{budget}
    and C{reserved}: the bytes reserved for it in a L{BodyBudget}, given
    back by L{release} (when the request is done)."""

    def __init__(self, limit, budget=None, reserved=0):
        self._limit = limit
        self._buffer = io.BytesIO()
        self.size = 0
        self.overflow = False
        self._budget = budget
        self._reserved = reserved

    def release(self):
        """The request is done: give back the reservation (the bytes go
        with the request)."""
        if self._budget is not None:
            budget, self._budget = self._budget, None
            budget.release(self._reserved)

    @property
    def maxLength(self):
        return self._limit

    def write(self, data):
        self.size += len(data)
        if self.overflow:
            return
        if self.size > self._limit:
            self.overflow = True
            self._buffer = io.BytesIO()
            return
        self._buffer.write(data)

    def tell(self):
        return self.size

    def seek(self, offset, whence=0):
        return self._buffer.seek(offset, whence)

    def read(self, n=-1):
        return self._buffer.read(n)

    def getvalue(self):
        return self._buffer.getvalue()

    def close(self):
        pass


@implementer(IPushProducer)
class UploadBody:
    """The file-like face of an L{Appender} for twisted.web: C{write} is fed
    the body; C{seek(0)} from C{requestReceived} marks its end; C{close}
    before that means the client went away mid-body.  To the appender it is
    the body's producer: it pauses and resumes the connection while the body
    arrives (once it is complete, the channel owns the connection's state)."""

    def __init__(self, appender, transport):
        self.appender = appender
        self._transport = transport
        self.complete = False
        appender.registerProducer(self, True)
        self._paused = False
        self.pauses = 0  # times the connection was paused for storage

    @property
    def maxLength(self):
        return self.appender.limit

    @property
    def paused(self):
        return self._paused

    def refuse(self, error):
        """The request is refused before its body: write none of it."""
        self.complete = True
        self.appender.refuse(error)

    def pauseProducing(self):
        if not self.complete and self._transport is not None:
            self._paused = True
            self.pauses += 1
            self._transport.pauseProducing()

    def resumeProducing(self):
        # Once the body is complete the channel owns the transport's state
        # (it resumes reading when the response is done).
        if self._paused and not self.complete and self._transport is not None:
            self._paused = False
            self._transport.resumeProducing()

    def write(self, data):
        self.appender.write(data)

    def tell(self):
        return self.appender.received

    def seek(self, offset, whence=0):
        if offset == 0 and whence == 0 and not self.complete:
            self.complete = True
            self.appender.end()
        return 0

    def read(self, n=-1):
        return b""

    def close(self):
        if not self.complete:
            self.complete = True
            self.appender.abort()


class DiscardBody(BoundedBody):
    """The body of a request whose handler reads none: counted, not kept."""

    def __init__(self):
        BoundedBody.__init__(self, 0)

    def write(self, data):
        self.size += len(data)


class RefusedBody(BoundedBody):
    """The body of a request refused before its body (C{refusal}: the
    error to answer at once, any exception L{errorAnswer} takes): nothing
    of it is kept."""

    def __init__(self, refusal):
        BoundedBody.__init__(self, 0)
        self.refusal = refusal



class PendingBody:
    """A request body whose destination is not decided yet.

    The connection is paused at once; the little that arrives meanwhile (the
    rest of the read that carried the headers) is held in memory.  L{decide}
    hands everything to the real body (an upload, or a sink that discards)
    and lets the connection go on.  A file-like object as twisted.web wants
    one: C{write}, C{seek(0)} at the end of the body, C{close} if the client
    went away first."""

    def __init__(self, transport, maxLength=None):
        self._transport = transport
        self._chunks = []
        self._ended = False
        self._closed = False
        self._refusal = None
        self.target = None
        # The most bytes the body may have, whatever it turns out to go to
        # (a request declaring more is refused at once).
        self.maxLength = maxLength
        if transport is not None:
            transport.pauseProducing()

    @property
    def paused(self):
        """Whether the connection is paused for the body's sake (it is
        while undecided): the slow-body watch does not count that time."""
        return self.target is None or getattr(self.target, "paused", False)

    @property
    def pauses(self):
        return 1 + getattr(self.target, "pauses", 0)

    def refuse(self, error):
        """The request is refused before its body: the target gets none of
        it (and is told, if it can be)."""
        if self.target is not None:
            if hasattr(self.target, "refuse"):
                self.target.refuse(error)
        else:
            self._refusal = error

    def write(self, data):
        if self.target is not None:
            self.target.write(data)
        else:
            self._chunks.append(data)

    def tell(self):
        if self.target is not None:
            return self.target.tell()
        return sum(len(c) for c in self._chunks)

    def seek(self, offset, whence=0):
        if self.target is not None:
            return self.target.seek(offset, whence)
        if offset == 0 and whence == 0:
            self._ended = True
        return 0

    def read(self, n=-1):
        return self.target.read(n) if self.target is not None else b""

    def close(self):
        if self.target is not None:
            self.target.close()
        else:
            self._closed = True

    @property
    def ended(self):
        """Whether all of the body arrived before its destination was decided."""
        return self._ended

    def release(self):
        self._chunks = []
        release = getattr(self.target, "release", None)
        if release is not None:
            release()

    def decide(self, body):
        """From now on the body goes to C{body}."""
        if self.target is not None:
            raise RuntimeError("decided already")
        self.target = body
        if self._refusal is not None:
            if hasattr(body, "refuse"):
                body.refuse(self._refusal)
            self._chunks = []
            return
        if self._transport is not None and not self._ended and not self._closed:
            # Resume first: the target may pause again as it takes the
            # buffered bytes (the reading itself starts on the next turn).
            self._transport.resumeProducing()
        chunks, self._chunks = self._chunks, []
        for chunk in chunks:
            body.write(chunk)
        if self._closed:
            body.close()
        elif self._ended:
            body.seek(0)
