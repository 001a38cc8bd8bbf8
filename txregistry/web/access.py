"""Who may call which route: the web side of L{txregistry.auth}.

- L{routeScopes}: the token scopes a route needs (pure);
- L{Authentication}: a request's authentication, started as soon as its
  headers are in (so an upload body can be routed by it) and awaited by the
  handler;
- L{PendingBody}: where a request body waits, with the connection paused,
  while a password is being checked in the thread pool.
"""

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

# Writes need pull too, as clients ask for it (and as Distribution checks).
PULL = ("pull",)
PUSH = ("pull", "push")
DELETE = ("delete",)
CATALOG_SCOPE = ("registry", "catalog", ["*"])

_ROUTE_ACTIONS = {
    ("tags", "GET"): PULL,
    ("tags", "HEAD"): PULL,
    ("referrers", "GET"): PULL,
    ("referrers", "HEAD"): PULL,
    ("manifest", "GET"): PULL,
    ("manifest", "HEAD"): PULL,
    ("manifest", "PUT"): PUSH,
    ("manifest", "DELETE"): DELETE,
    ("blob", "GET"): PULL,
    ("blob", "HEAD"): PULL,
    ("blob", "DELETE"): DELETE,
    ("uploadStart", "POST"): PUSH,
    ("upload", "GET"): PUSH,
    ("upload", "HEAD"): PUSH,
    ("upload", "PATCH"): PUSH,
    ("upload", "PUT"): PUSH,
    ("upload", "DELETE"): PUSH,
}


def routeScopes(route, method, name=None):
    """The scopes (C{[(type, name, [actions])]}) a request to C{route} with
    C{method} needs; C{[]} for the base route (which needs a login only).
    C{name} is the repository of a repository route."""
    if route == "base":
        return []
    if route == "catalog":
        return [CATALOG_SCOPE]
    actions = _ROUTE_ACTIONS.get((route, method))
    if actions is None or name is None:
        raise ValueError("no scope for %s %s" % (method, route))
    return [("repository", name, list(actions))]


class Authentication:
    """The outcome of one request's authentication: an L{Identity}, or the
    failure (L{Unauthorized}) to answer with.  Started once; L{wait} may be
    called any number of times."""

    def __init__(self, deferred):
        self.done = False
        self._result = None
        self._waiters = []
        deferred.addBoth(self._finished)

    def _finished(self, result):
        self.done = True
        self._result = result
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            self._deliver(waiter)
        return None

    def _deliver(self, waiter):
        if isinstance(self._result, Failure):
            waiter.errback(self._result)
        else:
            waiter.callback(self._result)

    @property
    def outcome(self):
        """Once L{done}: the identity, or the L{Failure}."""
        return self._result

    @property
    def identity(self):
        """The identity if authentication succeeded already, else None."""
        if self.done and not isinstance(self._result, Failure):
            return self._result
        return None

    def wait(self):
        """A new Deferred of the identity (or the failure)."""
        waiter = Deferred()
        if self.done:
            self._deliver(waiter)
        else:
            self._waiters.append(waiter)
        return waiter


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
