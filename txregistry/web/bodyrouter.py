"""Where each request's body goes, decided when its headers arrive.

For every request with a body, before any of the body is read or a
C{100 Continue} is sent: the route (from L{txregistry.web.routes}, the same
table the handlers are found by), the caller's login and permission on it
(the connection paused meanwhile), read-only mode, the declared length
against the route's limit, and the memory all in-memory bodies hold
together.  A request refused on any of these is answered at once
(L{RefusedBody}).  Otherwise the body goes into an upload (L{UploadBody}),
into memory (a manifest, a token form: L{BoundedBody}), or nowhere
(L{DiscardBody}: no handler reads it).
"""

from urllib.parse import parse_qs

from twisted.python.failure import Failure

from txregistry.auth import Forbidden, Unauthorized
from txregistry.errors import RegistryError
from txregistry.web import routes
from txregistry.web.caller import routeScopes
from txregistry.web.app import readonlyError
from txregistry.web.bodies import BoundedBody, DiscardBody, PendingBody, RefusedBody
from txregistry.web.uploads import uploadBody, uploadPlan

# The largest token request form (POST /auth/token) taken: a user name, a
# password and the scopes of one client operation fit many times over.
TOKEN_FORM_LIMIT = 64 * 1024


class BodyRouter:
    """C{choose(request, method, uri, length)} for L{RegistrySite}; C{app}
    is the L{RegistryApp} (its authorizer, read-only flag, limits and the
    registry's uploads), C{budget} the L{BodyBudget} of in-memory bodies."""

    def __init__(self, app, budget):
        self.app = app
        self.budget = budget

    def choose(self, request, method, uri, length):
        if length == 0:
            return None  # twisted.web's own (empty) body
        path, _, query = uri.partition(b"?")
        app = self.app
        if not routes.isV2(path):
            if app.tokenPath is not None and path == app.tokenPath and method == b"POST":
                return self._inMemory(TOKEN_FORM_LIMIT, length)
            if app.ui is not None and method == b"POST" and app.ui.handles(path):
                return self._inMemory(TOKEN_FORM_LIMIT, length)  # a web page's form
            return DiscardBody()  # no handler out there reads a body
        try:
            route, method, args = routes.match(path, method)
        except RegistryError as e:
            return RefusedBody(e)
        request.txrMatch = (route, method, args)  # for the handler, once the body is in
        route = route.name
        if app.auth is None:
            return self._destination(request, route, method, args, query, length)
        name = args.get("name")
        scopes = routeScopes(route, method, name)
        authentication = app.access.authentication(request, scopes)

        def decide(outcome):
            if isinstance(outcome, Failure):
                if outcome.check(Unauthorized, Forbidden):
                    return RefusedBody(outcome.value)
                return DiscardBody()  # the handler answers what went wrong
            try:
                app.access.checkAccess(request, route, method, name, outcome)
            except (Unauthorized, Forbidden) as e:
                return RefusedBody(e)
            return self._destination(request, route, method, args, query, length)

        if authentication.done:
            return decide(authentication.outcome)
        transport = request.channel.transport if request.channel else None
        pending = PendingBody(transport, self._maxLength(route, method))

        def decided(outcome):
            body = decide(outcome)
            pending.decide(body)
            refusal = getattr(body, "refusal", None)
            if pending.ended:
                return  # the handler runs already, and answers the refusal
            if refusal is not None:
                request.refuseBody(refusal)
            else:
                request.continueBody()

        authentication.wait().addBoth(decided)
        return pending

    def _maxLength(self, route, method):
        """The most bytes a body of C{route} may have, whatever the caller."""
        if route == "manifest" and method == "PUT":
            return self.app.maxBodySize
        if route in ("upload", "uploadStart"):
            return self.app.registry.uploads.maxBlobSize or None
        return None

    def _destination(self, request, route, method, args, query, length):
        """The body of a request the caller may make."""
        app = self.app
        if app.readonly and method in routes.WRITES:
            return RefusedBody(readonlyError())
        refused = app.pushRefusal and app.pushRefusal(route, method, args.get("name"))
        if refused:
            return RefusedBody(refused)
        if route == "manifest" and method == "PUT":
            return self._inMemory(app.maxBodySize, length)
        if route in ("upload", "uploadStart") and method in ("POST", "PATCH", "PUT"):
            try:
                fields = parse_qs(query.decode("utf-8"), keep_blank_values=True)
                contentRange = request.getHeader(b"content-range")
                plan = uploadPlan(method, args["name"], args.get("upload") or "", fields,
                                  None if contentRange is None else contentRange.decode("latin-1"))
            except (RegistryError, UnicodeDecodeError):
                plan = None  # the handler answers the error
            if plan is not None:
                return uploadBody(app.registry, request, plan)
        return DiscardBody()

    def _inMemory(self, limit, length):
        """A body kept in memory, up to C{limit} bytes, if the budget has
        room for it: its declared length, or the limit when it has none
        (chunked).  One declaring more than the limit is refused at the
        headers (by its C{maxLength}) and reserves nothing."""
        if length is not None and length > limit:
            return BoundedBody(limit)
        reserve = limit if length is None else length
        if not self.budget.reserve(reserve):
            return RefusedBody(self.budget.refusal())
        return BoundedBody(limit, self.budget, reserve)
