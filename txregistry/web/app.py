"""The registry's HTTP resource: the app object and its dispatch.

Below C{/v2} (the OCI Distribution API: every pull and push) requests are
routed by L{txregistry.web.routes}, whose table names each route's handlers,
not by Klein: the same table routes a request's body when its headers
arrive, before Klein could see the request (L{txregistry.web.bodyrouter}),
and it matches the raw path (a repository name has slashes, and Klein's
werkzeug would decode it first).  L{_V2Resource} runs those requests, and
shields storage writes from a client's disconnect.  The rest (V1 ping and
search, the token endpoint, everything unknown) goes through Klein."""

from klein import Klein
from twisted.internet.defer import CancelledError
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from txregistry.storage import StorageUnavailable
from txregistry.web import admin, eventinfo, routes, token, v1
from txregistry.web.caller import Access
from txregistry.web.accesslog import safePath
from txregistry.web.blobs import ResponseCut
from txregistry.web.common import body, setCommon, shield
from txregistry.web.errors import ANSWERED, HTTPError, writeError
from txregistry.web.uploads import discardBody


class _V2Resource(Resource):
    """The root resource: C{/v2} and below to L{RegistryApp.handle}, the
    rest through Klein."""

    isLeaf = True

    def __init__(self, app):
        Resource.__init__(self)
        self.app = app
        self.klein = app.app.resource()

    def render(self, request):
        if not routes.isV2(request.path):
            if self.app.ui is not None and self.app.ui.handles(request.path):
                return self.app.ui.render(request)  # the web pages (txregistry.ui)
            return self.klein.render(request)
        gone = []
        request.notifyFinish().addBoth(gone.append)
        d = shield(self.app.handle(request))

        def write(data):
            if gone:
                return
            if data:
                request.write(data)
            request.finish()

        def failed(failure):
            if gone:
                if not failure.check(CancelledError):
                    self.app.log.failure("request failed after it ended", failure)
                return
            if failure.check(ResponseCut):
                return  # the connection was ended: logged where it was cut
            self.app.log.failure("internal error on {method} {uri}", failure, method=request.method, uri=request.uri)
            request.processingFailed(failure)

        d.addCallbacks(write, failed)
        if not gone:
            # The client left: stop waiting (shield lets storage writes end).
            request.notifyFinish().addErrback(lambda _: d.cancel())
        return NOT_DONE_YET


class RegistryApp:
    """What the handlers share: C{registry}, C{search} (an IndexUpdater, or
    None when search is off), C{access} (who calls and what they may do),
    C{readonly} (pushes and deletes refused; settable while running) and
    C{maxBodySize} (of a manifest)."""

    app = Klein()
    log = Logger()
    ui = None  # the web pages (a txregistry.ui.app.WebUI), or None

    def __init__(self, registry, search=None, maxManifestSize=None, readonly=False, authorizer=None,
                 publicURL=None):
        self.registry = registry
        self.search = search
        # (By default the model's own limit.)
        self.maxBodySize = registry.manifests.maxSize if maxManifestSize is None else maxManifestSize
        self.readonly = readonly
        # (route, method, name) -> the error refusing a push, or None (a mirror's)
        self.pushRefusal = None
        self.access = Access(authorizer, publicURL)
        self.tokenPath = None
        if authorizer is not None and authorizer.settings.tokenEndpointPath:
            self.tokenPath = authorizer.settings.tokenEndpointPath.encode("ascii")

    @property
    def auth(self):
        """The L{Authorizer}, or None: everybody may do everything."""
        return self.access.auth

    @auth.setter
    def auth(self, authorizer):
        self.access.auth = authorizer

    def resource(self):
        return _V2Resource(self)

    def location(self, path):
        """A Location header for C{path}: absolute with the public URL when
        set, else relative (RFC 9110 10.2.2 allows both)."""
        return ((self.access.publicURL or "") + path).encode("ascii")

    # --- below /v2: one route table ---

    async def handle(self, request):
        try:
            setCommon(request)
            # Matched once: by the body router when the request has a body.
            route, method, args = getattr(request, "txrMatch", None) or routes.match(request.path, request.method)
            request.txrRoute = route.name  # (unmatched: routes.label finds the label when it is logged)
            refusal = getattr(body(request), "refusal", None)
            if refusal is not None:
                # Refused at the headers, but the body was in before the
                # refusal could be answered there.
                raise refusal
            request.txrIdentity = None
            if self.auth is not None:
                request.txrIdentity = await self.access.authorize(request, route.name, method, args.get("name"))
            if self.readonly and method in routes.WRITES:
                raise readonlyError()
            if self.pushRefusal is not None:
                refused = self.pushRefusal(route.name, method, args.get("name"))
                if refused is not None:
                    raise refused
            if getattr(self.registry, "events", None):  # someone listens: events say who asked
                eventinfo.bindRequest(request, self.access.baseURL(request))
            return await route.handlers[method](self, request, **args)
        except ResponseCut:
            raise  # the headers are out: nothing to answer
        except Exception as e:
            discardBody(request)
            self._logFault(request, e)
            return writeError(request, e)

    def _logFault(self, request, e):
        method, uri = request.method.decode("ascii", "replace"), safePath(request.uri)
        if isinstance(e, ANSWERED):
            return
        if isinstance(e, StorageUnavailable):
            self.log.warn("storage refused {method} {uri}: {error}", method=method, uri=uri, error=str(e))
        else:
            self.log.failure("internal error on {method} {uri}", method=method, uri=uri)

    # --- the rest: Klein ---

    @app.route("/", branch=True)
    def other(self, request):
        if self.tokenPath is not None and request.path == self.tokenPath:
            request.txrRoute = "token"
            return shield(token.token(self, request))
        setCommon(request)
        return writeError(request, HTTPError("UNSUPPORTED", "no such endpoint", status=404))

    @app.route("/v1/_ping", branch=False)
    def v1ping(self, request):
        return v1.ping(self, request)

    @app.route("/v1/search", branch=False)
    def v1search(self, request):
        return shield(v1.search(self, request))

    @app.route("/admin/v1/repositories/<path:name>", methods=["DELETE"])
    def adminDeleteRepository(self, request, name):
        return shield(admin.deleteRepositoryRoute(self, request, name))


def readonlyError():
    """The refusal of a write in read-only mode."""
    return HTTPError("UNSUPPORTED", "the registry is read-only: pulls only")
