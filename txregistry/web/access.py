"""Who may call which route: the web side of L{txregistry.auth}.

- L{routeScopes}: the token scopes a route needs (pure);
- L{Authentication}: a request's authentication, started as soon as its
  headers are in (so an upload body can be routed by it) and awaited by the
  handler (a request body waits for it in a
  L{txregistry.web.bodies.PendingBody}).
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
