"""The OCI Distribution Spec v1.1 HTTP API as a Klein app."""

import base64
import json
from urllib.parse import parse_qs, quote, unquote

from klein import Klein
from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from txregistry import digest as digests
from txregistry import names
from txregistry.auth import Forbidden, LoginThrottled, TokenRequestError, Unauthorized
from txregistry.errors import RegistryError
from txregistry.registry import manifests as M
from txregistry.registry.catalog import catalog
from txregistry.registry.chunks import rangeMismatch
from txregistry.search.index import IndexUnavailable
from txregistry.storage import StorageUnavailable
from txregistry.web import conditional, eventinfo, routes
from txregistry.web.access import Authentication, routeScopes
from txregistry.web.accesslog import safePath
from txregistry.web.bodies import PendingBody, RefusedBody, UploadBody
from txregistry.web.guard import API_VERSION, storageUnavailableError, writeError
from txregistry.web.producer import ReaderProducer

DEFAULT_CATALOG_PAGE = 1000
# Searching for a caller who may not see every repository: how many ranked
# matches are read and filtered at most.
MAX_FILTERED_SEARCH = 5000
SEARCH_RETRY_AFTER = 5  # seconds, with a 503 of /v1/search
MAX_CLIENT_ADDRESS = 128  # bytes of a client address taken from a proxy's header

def _query(request):
    """The query string as {str: [str]} (decoded by hand so that invalid
    bytes give a 400, not a 500)."""
    uri = request.uri
    if b"?" not in uri:
        return {}
    try:
        return parse_qs(uri.split(b"?", 1)[1].decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise RegistryError("UNSUPPORTED", "query string is not UTF-8", status=400)


def _one(query, key):
    values = query.get(key)
    return values[-1] if values else None


def _header(request, name):
    value = request.getHeader(name)
    if value is None:
        return None
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _declaredLength(request):
    """The request's Content-Length (C{None}: a chunked body)."""
    value = request.getHeader(b"content-length")
    return int(value) if value is not None and value.strip().isdigit() else None


_checkName = routes.checkName


def _parseDigest(value):
    try:
        return digests.parse(unquote(value))
    except digests.InvalidDigest as e:
        raise RegistryError("DIGEST_INVALID", str(e), {"digest": value[:200]})


def _pageSize(query, default=None):
    raw = _one(query, "n")
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise RegistryError("PAGINATION_NUMBER_INVALID", "n must be a non-negative integer", {"n": raw[:20]})
    return int(raw)


def paginate(items, n, last):
    """Items after C{last}, at most C{n} (C{None}: all); and whether more
    remain."""
    if last:
        items = [i for i in items if i > last]
    if n is None or n >= len(items):
        return items, False
    if n == 0:
        return [], False
    return items[:n], True


def uploadPlan(method, rawName, uploadID, query, contentRange):
    """Where the body of an upload request goes: C{(name, uploadID, span,
    algorithms)}, C{uploadID} being C{None} for a new (monolithic) upload,
    C{span} the Content-Range C{(start, end)} or C{None}.  Raises the
    L{RegistryError} the request deserves."""
    name = _checkName(rawName)
    algorithms = ["sha256"]
    expected = _one(query, "digest")
    if expected is not None:
        d = _parseDigest(expected)
        if d.algorithm not in algorithms:
            algorithms.append(d.algorithm)
    if method == "POST":
        if expected is None:
            return None
        return name, None, None, tuple(algorithms)
    if method not in ("PATCH", "PUT"):
        return None
    if method == "PUT" and expected is None:
        raise RegistryError("DIGEST_INVALID", "PUT needs a digest query parameter")
    span = None
    if contentRange:
        try:
            span = names.parseContentRange(contentRange)
        except ValueError as e:
            raise RegistryError("RANGE_INVALID", str(e), status=416)
    return name, unquote(uploadID), span, tuple(algorithms)


def _accessRegistryError(e):
    """The L{RegistryError} of an L{Unauthorized} or L{Forbidden}."""
    if isinstance(e, LoginThrottled):
        return RegistryError("TOOMANYREQUESTS", e.message, headers={b"Retry-After": b"%d" % (e.retryAfter,)})
    if isinstance(e, Unauthorized):
        return RegistryError("UNAUTHORIZED", e.message, headers={b"WWW-Authenticate": e.challenge.encode("latin-1")})
    return RegistryError("DENIED", e.message)


def _readonlyError():
    return RegistryError("UNSUPPORTED", "the registry is read-only: pulls only")


def _body(request):
    """The request body, through the L{PendingBody} it may have waited in."""
    content = request.content
    return content.target if isinstance(content, PendingBody) else content


def shield(coroutine):
    """Run C{coroutine} to completion even if the returned Deferred is
    cancelled (Klein cancels on client disconnect): a half-done write to
    storage must not be abandoned between two steps."""
    inner = Deferred.fromCoroutine(coroutine)
    outer = Deferred(lambda d: None)

    def relay(result):
        if not outer.called:
            if isinstance(result, Failure):
                outer.errback(result)
            else:
                outer.callback(result)
        elif isinstance(result, Failure) and not result.check(CancelledError):
            Logger().failure("request failed after the client left", result)

    inner.addBoth(relay)
    return outer


class _V2Resource(Resource):
    """The root resource: C{/v2} and below go straight to
    L{RegistryApp._handle}, which routes them itself (every pull and push;
    Klein's URL map would only match them a second time), the rest (V1
    search, the token endpoint) through Klein."""

    isLeaf = True

    def __init__(self, app):
        Resource.__init__(self)
        self.app = app
        self.klein = app.app.resource()

    def render(self, request):
        path = request.path
        if path != b"/v2" and not path.startswith(b"/v2/"):
            return self.klein.render(request)
        gone = []
        request.notifyFinish().addBoth(gone.append)
        d = shield(self.app._handle(request))

        def write(body):
            if gone:
                return
            if body:
                request.write(body)
            request.finish()

        def failed(failure):
            if gone:
                if not failure.check(CancelledError):
                    self.app.log.failure("request failed after it ended", failure)
                return
            self.app.log.failure("internal error on {method} {uri}", failure, method=request.method, uri=request.uri)
            request.processingFailed(failure)

        d.addCallbacks(write, failed)
        if not gone:
            # The client left: stop waiting (shield lets storage writes end).
            request.notifyFinish().addErrback(lambda _: d.cancel())
        return NOT_DONE_YET


class RegistryApp:
    app = Klein()
    log = Logger()

    def __init__(self, registry, search=None, maxManifestSize=M.MAX_MANIFEST_SIZE, readonly=False, authorizer=None,
                 publicURL=None):
        self.registry = registry
        # "scheme://host[:port]" clients reach the registry at (config
        # public_url), or None: taken from each request's Host.
        self.publicURL = publicURL or None
        self.search = search  # an IndexUpdater, or None when search is off
        self.maxBodySize = maxManifestSize
        # Pushes and deletes refused, pulls served (settable while running).
        self.readonly = readonly
        # An Authorizer, or None: everybody may do everything.
        self.auth = authorizer
        self.tokenPath = None
        if authorizer is not None and authorizer.settings.tokenEndpointPath:
            self.tokenPath = authorizer.settings.tokenEndpointPath.encode("ascii")

    def resource(self):
        return _V2Resource(self)

    # --- what the body router (txregistry.web.bodyrouter) asks ---

    def uploadBody(self, request, plan):
        """The body of an upload request the caller may make: into the
        upload (a new one for a monolithic POST)."""
        name, uploadID, span, algorithms = plan
        transport = request.channel.transport if request.channel else None
        appender = self.registry.uploads.appender(name, uploadID or None, span, algorithms)
        refusal = appender.declare(_declaredLength(request))
        if refusal is not None:
            return RefusedBody(refusal)  # (a Content-Range the Content-Length contradicts)
        return UploadBody(appender, transport)

    def readonlyError(self):
        return _readonlyError()

    def accessError(self, e):
        return _accessRegistryError(e)

    # --- authentication and access ---

    def _baseURL(self, request):
        """Where clients reach the registry: the public URL when set, else
        the request's scheme and Host (the channel let in only requests with
        one valid Host, or an HTTP/1.0 one without: then the address it
        came to)."""
        if self.publicURL:
            return self.publicURL.encode("ascii")
        hosts = request.requestHeaders.getRawHeaders(b"host") or []
        if len(hosts) == 1:
            host = hosts[0]
        else:
            address = request.getHost()
            host = getattr(address, "host", "") or ""
            host = ("[%s]" % (host,) if ":" in host else host) + ":%s" % (getattr(address, "port", ""),)
            host = host.encode("ascii", "replace")
        return (b"https://" if request.isSecure() else b"http://") + host

    def _location(self, path):
        """A Location header for C{path}: absolute with the public URL when
        set, else relative (RFC 9110 10.2.2 allows both)."""
        return ((self.publicURL or "") + path).encode("ascii")

    def _client(self, request):
        """The caller's address, by which failed logins are counted: the
        last entry of C{auth.client_address_header} when that is set (a
        proxy in front adds it), else the TCP peer's host."""
        header = self.auth.settings.clientAddressHeader
        if header:
            values = request.requestHeaders.getRawHeaders(header.encode("ascii"))
            if values:
                last = values[-1].split(b",")[-1].strip()[:MAX_CLIENT_ADDRESS]
                if last:
                    return last.decode("latin-1")
        return getattr(request.getClientAddress(), "host", None) or "local"

    def authentication(self, request, scopes):
        """The request's L{Authentication}, started now if not yet."""
        authentication = getattr(request, "txrAuthentication", None)
        if authentication is None:
            d = Deferred.fromCoroutine(
                self.auth.authenticate(
                    request.getHeader(b"authorization"), scopes, baseURL=self._baseURL(request),
                    client=self._client(request),
                )
            )
            authentication = request.txrAuthentication = Authentication(d)
        return authentication

    def _permits(self, identity, scopes):
        try:
            self.auth.require(identity, scopes)
        except (Unauthorized, Forbidden):
            return False
        return True

    def _mayListAnonymously(self):
        policy = self.auth.settings.policy
        return policy is not None and any("pull" in rule.actions for rule in policy.anonymous)

    async def _authorize(self, request, route, method, name):
        """The caller's identity if it may do C{method} on C{route}; raises
        L{Unauthorized} or L{Forbidden} otherwise."""
        scopes = routeScopes(route, method, name)
        identity = await self.authentication(request, scopes).wait()
        request.txrUser = identity.name
        self.checkAccess(request, route, method, name, identity)
        return identity

    def checkAccess(self, request, route, method, name, identity):
        """Raise L{Unauthorized} or L{Forbidden} unless C{identity} may do
        C{method} on C{route} (of repository C{name})."""
        scopes = routeScopes(route, method, name)
        plainAnonymous = identity.anonymous and identity.tokenAccess is None
        if route == "base" or (route == "catalog" and not self._mayListAnonymously()):
            # A login (or any valid token) is needed; the challenge is what
            # makes clients log in at all.
            if plainAnonymous:
                raise Unauthorized(
                    self.auth.challenge(scopes, baseURL=self._baseURL(request)), "authentication required"
                )
        if scopes:
            self.auth.require(identity, scopes, baseURL=self._baseURL(request))

    def _visible(self, identity, name):
        return identity is None or self.auth.visible(identity, name)

    def _seesEverything(self, identity):
        if identity is None or identity.admin:
            return True
        return self.auth.settings.policy is None and not identity.anonymous

    # --- responses ---

    def _common(self, request):
        request.setHeader(b"Docker-Distribution-API-Version", API_VERSION)

    def _json(self, request, status, doc, contentType=b"application/json"):
        body = json.dumps(doc, separators=(",", ":")).encode("utf-8")
        request.setResponseCode(status)
        request.setHeader(b"Content-Type", contentType)
        request.setHeader(b"Content-Length", b"%d" % (len(body),))
        return body if request.method != b"HEAD" else b""

    def _empty(self, request, status, headers):
        request.setResponseCode(status)
        for k, v in headers.items():
            request.setHeader(k, v)
        request.setHeader(b"Content-Length", b"0")
        return b""

    def _error(self, request, err):
        return writeError(request, err)

    def _accessError(self, request, e):
        """The answer to an L{Unauthorized} or L{Forbidden}."""
        return self._error(request, _accessRegistryError(e))

    # --- entry points ---

    # /v2 and below: _V2Resource sends them to _handle.

    @app.route("/", branch=True)
    def other(self, request):
        if self.tokenPath is not None and request.path == self.tokenPath:
            request.txrRoute = "token"
            return shield(self._token(request))
        self._common(request)
        return self._error(request, RegistryError("UNSUPPORTED", "no such endpoint", status=404))

    async def _token(self, request):
        """The built-in token endpoint of Docker's token authentication:
        ``GET ?service=&scope=`` with Basic credentials (or none: an
        anonymous token), and the OAuth2 form ``POST`` with
        ``grant_type=password``."""
        request.setHeader(b"Cache-Control", b"no-store")
        try:
            method = request.method
            query = _query(request)
            authorization = request.getHeader(b"authorization")
            if method == b"POST":
                form = self._form(request)
                grant = _one(form, "grant_type")
                if grant != "password":
                    raise TokenRequestError("unsupported grant_type %r (this endpoint takes password)" % (grant,))
                user, password = _one(form, "username") or "", _one(form, "password") or ""
                authorization = b"Basic " + base64.b64encode(user.encode("utf-8") + b":" + password.encode("utf-8"))
                service, scopes = _one(form, "service"), form.get("scope", [])
            elif method in (b"GET", b"HEAD"):
                service, scopes = _one(query, "service"), query.get("scope", [])
            else:
                request.setHeader(b"Allow", b"GET, POST")
                raise RegistryError("UNSUPPORTED", "the token endpoint takes GET or POST")
            answer = await self.auth.issueToken(authorization, service, scopes, client=self._client(request))
        except TokenRequestError as e:
            return self._error(request, RegistryError("UNSUPPORTED", e.message, status=400))
        except (Unauthorized, Forbidden) as e:
            return self._accessError(request, e)
        except RegistryError as e:
            return self._error(request, e)
        if method == b"POST":
            answer = {k: answer[k] for k in ("access_token", "expires_in", "issued_at")}
        return self._json(request, 200, answer)

    def _form(self, request):
        content = _body(request)
        if getattr(content, "overflow", False):
            raise RegistryError("UNSUPPORTED", "request body too large", status=413)
        content.seek(0)
        try:
            return parse_qs(content.read().decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise RegistryError("UNSUPPORTED", "form is not UTF-8", status=400)

    @app.route("/v1/_ping", branch=False)
    def v1ping(self, request):
        self._common(request)
        request.setHeader(b"X-Docker-Registry-Version", b"0.9.1")
        request.setHeader(b"X-Docker-Registry-Standalone", b"true")
        return self._json(request, 200, {})

    @app.route("/v1/search", branch=False)
    def v1search(self, request):
        return shield(self._search(request))

    async def _search(self, request):
        """docker search: the V1 search API, from the SQL index."""
        self._common(request)
        try:
            query = _query(request)
            term = (_one(query, "q") or "").strip()
            if len(term) > 255:
                raise RegistryError("UNSUPPORTED", "q is longer than 255 characters", status=400)
            size, page = _one(query, "n") or "25", _one(query, "page") or "1"
            if not (size.isascii() and size.isdigit()) or len(size) > 6:
                raise RegistryError("PAGINATION_NUMBER_INVALID", "n must be a whole number from 1 to 100")
            if not (page.isascii() and page.isdigit()) or len(page) > 9 or int(page) < 1:
                raise RegistryError("PAGINATION_NUMBER_INVALID", "page must be a whole number from 1")
            size, page = min(max(int(size), 1), 100), int(page)
            if self.search is None:
                raise RegistryError("UNSUPPORTED", "search is turned off (search_backend: none)", status=404)
            identity = None
            if self.auth is not None:
                identity = await Deferred.fromCoroutine(
                    self.auth.authenticate(
                        request.getHeader(b"authorization"), baseURL=self._baseURL(request), passwords=True,
                        client=self._client(request),
                    )
                )
                request.txrUser = identity.name
                if identity.anonymous and identity.tokenAccess is None and not self._mayListAnonymously():
                    # Nothing is public: ask for a login (podman then lists
                    # the catalog with it instead).
                    raise Unauthorized(
                        self.auth.challenge([("registry", "catalog", ["search"])], baseURL=self._baseURL(request)),
                        "authentication required",
                    )
            try:
                if self._seesEverything(identity):
                    total, rows, complete = await self.search.search(term, size, (page - 1) * size)
                else:
                    # Ranked matches, filtered: what the caller may pull.
                    _, rows, complete = await self.search.search(term, MAX_FILTERED_SEARCH, 0)
                    rows = [row for row in rows if self._visible(identity, row[0])]
                    total, rows = len(rows), rows[(page - 1) * size : page * size]
            except IndexUnavailable:
                raise RegistryError("UNAVAILABLE", "the search index is unavailable; retry later",
                                    headers={b"Retry-After": b"%d" % (SEARCH_RETRY_AFTER,)})
        except RegistryError as e:
            return self._error(request, e)
        except (Unauthorized, Forbidden) as e:
            return self._accessError(request, e)
        results = [
            {"name": name, "description": description, "star_count": 0, "is_official": False, "is_automated": False}
            for name, description in rows
        ]
        doc = {
            "query": term,
            "num_results": total,
            "num_pages": (total + size - 1) // size,
            "page": page,
            "page_size": size,
            "results": results,
        }
        if not complete:  # a rebuild from storage is filling the index
            request.setHeader(b"Txregistry-Search-Index", b"rebuilding")
        return self._json(request, 200, doc)

    async def _handle(self, request):
        try:
            self._common(request)
            request.txrRoute = routes.label(request)
            route, method, args = routes.match(request.path, request.method)
            refusal = getattr(_body(request), "refusal", None)
            if refusal is not None:
                # Refused at the headers, but the body was in before the
                # refusal could be answered there.
                raise refusal
            request.txrIdentity = None
            if self.auth is not None:
                name = args.get("name")
                request.txrIdentity = await self._authorize(request, route, method, name)
            if self.readonly and method in routes.WRITES:
                raise _readonlyError()
            if getattr(self.registry, "events", None):  # someone listens: events say who asked
                eventinfo.bindRequest(request, self._baseURL(request))
            handler = getattr(self, "_%s_%s" % (route, method.lower()), None) or getattr(
                self, "_%s" % (route,)
            )
            return await handler(request, **args)
        except RegistryError as e:
            self._abortBody(request)
            return self._error(request, e)
        except (Unauthorized, Forbidden) as e:
            self._abortBody(request)
            return self._accessError(request, e)
        except StorageUnavailable as e:
            self._abortBody(request)
            self.log.warn("storage refused {method} {uri}: {error}", method=request.method.decode("ascii", "replace"),
                          uri=safePath(request.uri), error=str(e))
            return self._error(request, storageUnavailableError(e))
        except Exception:
            self._abortBody(request)
            self.log.failure(
                "internal error on {method} {uri}",
                method=request.method.decode("ascii", "replace"),
                uri=safePath(request.uri),
            )
            return self._error(request, RegistryError("UNAVAILABLE", "internal server error", status=500))

    def _abortBody(self, request):
        body = _body(request)
        if isinstance(body, UploadBody):
            # An upload the request created and did not complete is removed.
            body.appender.discard()

    # --- base, catalog ---

    async def _base(self, request):
        return self._json(request, 200, {})

    async def _catalog(self, request):
        query = _query(request)
        n = _pageSize(query, DEFAULT_CATALOG_PAGE)
        last = _one(query, "last")
        page = None
        # From the index when it lists every repository (and answers within
        # its bounded wait), else from storage.
        if self.search is not None and self.search.listingCurrent:
            try:
                page = await self.search.index.catalog(last or None, None if n is None else n + 1)
            except IndexUnavailable:
                page = None
        identity = request.txrIdentity
        if page is not None and not self._seesEverything(identity):
            page = await self._visibleIndexPage(identity, page, n)
        if page is not None:
            more = n is not None and n > 0 and len(page) > n
            page = page[:n] if n is not None else page
        else:
            names = await catalog(self.registry.driver)
            if not self._seesEverything(identity):
                names = [name for name in names if self._visible(identity, name)]
            page, more = paginate(names, n, last)
        if more:
            request.setHeader(
                b"Link", ('</v2/_catalog?n=%d&last=%s>; rel="next"' % (n, quote(page[-1], safe=""))).encode("ascii")
            )
        return self._json(request, 200, {"repositories": page})

    async def _visibleIndexPage(self, identity, page, n):
        """C{page} (the index's first C{n + 1} names after the last one
        asked for, or all of them when C{n} is None) filtered for
        C{identity}, read on until it holds C{n + 1} names or the index
        ends; C{None} if the index failed meanwhile."""
        visible = [name for name in page if self._visible(identity, name)]
        if n is None:
            return visible
        limit = n + 1
        batch = max(limit, 100)
        while len(visible) < n + 1 and len(page) == limit and page:
            try:
                page = await self.search.index.catalog(page[-1], batch)
            except IndexUnavailable:
                return None
            limit = batch
            visible.extend(name for name in page if self._visible(identity, name))
        return visible

    # --- tags, referrers ---

    async def _tags(self, request, name):
        _checkName(name)
        query = _query(request)
        n = _pageSize(query)
        last = _one(query, "last")
        tags = await self.registry.manifests.tags(name)
        page, more = paginate(tags, n, last)
        if more:
            link = '</v2/%s/tags/list?n=%d&last=%s>; rel="next"' % (name, n, quote(page[-1], safe=""))
            request.setHeader(b"Link", link.encode("ascii"))
        return self._json(request, 200, {"name": name, "tags": page})

    async def _referrers(self, request, name, digest):
        _checkName(name)
        subject = _parseDigest(digest)
        artifactType = _one(_query(request), "artifactType")
        found = await self.registry.manifests.referrers(name, subject, artifactType or None)
        if artifactType:
            request.setHeader(b"OCI-Filters-Applied", b"artifactType")
        index = {"schemaVersion": 2, "mediaType": M.OCI_INDEX, "manifests": found}
        return self._json(request, 200, index, M.OCI_INDEX.encode("ascii"))

    # --- manifests ---

    def _accepts(self, request, mediaType):
        return conditional.acceptsManifest(request.requestHeaders.getRawHeaders(b"accept"), mediaType, M.MEDIA_TYPES)

    async def _manifest_get(self, request, name, reference):
        _checkName(name)
        reference = unquote(reference)
        try:
            M.parseReference(reference)
        except RegistryError:
            # Nothing is ever stored under it (as Distribution answers).
            raise RegistryError("MANIFEST_UNKNOWN", "no manifest has this reference", {"reference": reference[:200]})
        body, mediaType, digest = await self.registry.manifests.get(name, reference)
        if not self._accepts(request, mediaType):
            raise RegistryError(
                "MANIFEST_UNKNOWN",
                "the manifest is a %s, which the Accept header does not allow" % (mediaType,),
                {"mediaType": mediaType},
            )
        etag = b'"%s"' % (digest.encode("ascii"),)
        request.setResponseCode(200)
        request.setHeader(b"Content-Type", mediaType.encode("ascii", "replace"))
        request.setHeader(b"Content-Length", b"%d" % (len(body),))
        request.setHeader(b"Docker-Content-Digest", digest.encode("ascii"))
        request.setHeader(b"ETag", etag)
        if conditional.noneMatch(request.requestHeaders.getRawHeaders(b"if-none-match"), etag):
            request.setResponseCode(304)  # (its Content-Length: what a 200 would send)
            return b""
        if request.method == b"HEAD":
            return b""
        return body

    _manifest_head = _manifest_get

    async def _manifest_put(self, request, name, reference):
        _checkName(name)
        content = _body(request)
        if getattr(content, "overflow", False):
            raise RegistryError(
                "MANIFEST_INVALID", "manifest exceeds %d bytes" % (self.maxBodySize,), status=413
            )
        content.seek(0)
        body = content.read()
        digest, manifest = await self.registry.manifests.put(
            name, unquote(reference), body, _header(request, b"content-type")
        )
        headers = {
            b"Location": self._location("/v2/%s/manifests/%s" % (name, digest)),
            b"Docker-Content-Digest": digest.encode("ascii"),
        }
        if manifest.subject is not None:
            headers[b"OCI-Subject"] = manifest.subject.encode("ascii")
        return self._empty(request, 201, headers)

    async def _manifest_delete(self, request, name, reference):
        _checkName(name)
        await self.registry.manifests.delete(name, unquote(reference))
        return self._empty(request, 202, {})

    # --- blobs ---

    async def _blob_get(self, request, name, digest):
        _checkName(name)
        d = _parseDigest(digest)
        etag = b'"%s"' % (d.encode("ascii"),)
        headers = request.requestHeaders
        notModified = conditional.noneMatch(headers.getRawHeaders(b"if-none-match"), etag)
        # A Range whose If-Range does not match asks for the whole blob.
        rangeHeader = _header(request, b"range")
        if not conditional.rangeApplies(headers.getRawHeaders(b"if-range"), etag):
            rangeHeader = None
        url = None if notModified else await self.registry.blobs.redirectURL(d, request.method.decode("ascii"))
        if request.method == b"GET" and not url and not notModified and rangeHeader is None:
            # The whole blob, streamed: its size is the reader's, so the
            # storage is asked once (on S3: one GET, no HEAD before it).
            reader = await self.registry.blobs.open(name, d)
            size = reader.size
            self._blobHeaders(request, etag)
            request.setResponseCode(200)
            request.setHeader(b"Content-Type", b"application/octet-stream")
            request.setHeader(b"Content-Length", b"%d" % (size,))
            return await self._stream(request, reader, size)
        size = await self.registry.blobs.size(name, d)
        self._blobHeaders(request, etag)
        if notModified:
            request.setResponseCode(304)
            request.setHeader(b"Content-Length", b"%d" % (size,))  # what a 200 would send
            return b""
        if url:
            return self._empty(request, 307, {b"Location": url.encode("ascii")})
        try:
            span = names.parseRange(rangeHeader, size)
        except names.RangeNotSatisfiable:
            raise RegistryError(
                "RANGE_INVALID",
                "range not satisfiable",
                {"size": size},
                headers={b"Content-Range": b"bytes */%d" % (size,)},
            )
        request.setHeader(b"Content-Type", b"application/octet-stream")
        start, length = 0, size
        if span is not None:
            start, end = span
            length = end - start + 1
            request.setResponseCode(206)
            request.setHeader(b"Content-Range", b"bytes %d-%d/%d" % (start, end, size))
        else:
            request.setResponseCode(200)
        request.setHeader(b"Content-Length", b"%d" % (length,))
        if request.method == b"HEAD" or length == 0:
            return b""
        reader = await self.registry.blobs.reader(name, d, start)
        return await self._stream(request, reader, length)

    def _blobHeaders(self, request, etag):
        request.setHeader(b"Docker-Content-Digest", etag[1:-1])
        request.setHeader(b"ETag", etag)
        request.setHeader(b"Accept-Ranges", b"bytes")
        request.setHeader(b"Cache-Control", b"max-age=31536000")

    async def _stream(self, request, reader, length):
        """Send C{length} bytes of C{reader} as the response body."""
        if length == 0:
            reader.close()
            return b""
        producer = ReaderProducer(reader, request, length)
        request.notifyFinish().addErrback(lambda _: producer.stopProducing())
        try:
            await producer.start()
        except Exception:
            # Headers (and maybe part of the body) are out: all we can do is
            # end the connection so the client sees a short response.
            if request.channel is not None:
                request.channel.transport.abortConnection()
            raise CancelledError()
        return None

    _blob_head = _blob_get

    async def _blob_delete(self, request, name, digest):
        _checkName(name)
        d = _parseDigest(digest)
        await self.registry.blobs.unlink(name, d)
        return self._empty(request, 202, {})

    # --- uploads ---

    def _uploadHeaders(self, name, uploadID, offset):
        return {
            b"Location": self._location("/v2/%s/blobs/uploads/%s" % (name, uploadID)),
            b"Range": b"0-%d" % (max(offset, 1) - 1,),
            b"Docker-Upload-UUID": uploadID.encode("ascii"),
        }

    def _blobCreated(self, request, name, d):
        return self._empty(
            request,
            201,
            {
                b"Location": self._location("/v2/%s/blobs/%s" % (name, d)),
                b"Docker-Content-Digest": d.encode("ascii"),
            },
        )

    async def _appendBody(self, request, method, name, uploadID, query):
        """Wait for the request body to be in the upload; returns the upload
        id (created for a monolithic POST, else C{uploadID}), the size of
        the upload after the body (C{None} if there was no body) and, for a
        monolithic POST, the upload's writer still open (L{Appender.takeWriter})."""
        plan = uploadPlan(method, name, uploadID or "", query, _header(request, b"content-range"))
        content = _body(request)
        if isinstance(content, UploadBody):
            size = await content.appender.finish()
            return content.appender.uploadID, size, content.appender.takeWriter()
        if getattr(content, "refusal", None) is not None:
            raise content.refusal  # (a channel that could not answer it at once)
        if plan is None:
            return uploadID, None, None
        # A body that did not come through RegistrySite (another Site, or an
        # in-memory test transport): feed it to an appender now.
        content.seek(0, 2)
        _, planID, span, algorithms = plan
        if content.tell() == 0:
            if span is not None:
                raise rangeMismatch(span, 0)
            return uploadID, None, None
        appender = self.registry.uploads.appender(name, planID or None, span, algorithms)
        refusal = appender.declare(content.tell())
        if refusal is not None:
            await appender.finish().addErrback(lambda _: None)
            raise refusal
        content.seek(0)
        while True:
            chunk = content.read(1024 * 1024)
            if not chunk:
                break
            appender.write(chunk)
        size = await appender.finish()
        return appender.uploadID, size, appender.takeWriter()

    async def _uploadStart(self, request, name):
        _checkName(name)
        query = _query(request)
        mount, source = _one(query, "mount"), _one(query, "from")
        if mount is not None and source:
            d = _parseDigest(mount)
            if (
                names.isValidName(source)
                and self._mayPull(request.txrIdentity, source)
                and await self.registry.blobs.mount(name, d, source)
            ):
                self._abortBody(request)
                return self._blobCreated(request, name, d)
        expected = _one(query, "digest")
        if expected is not None:
            d = _parseDigest(expected)
            uploadID, _, writer = await self._appendBody(request, "POST", name, None, query)
            if uploadID is None:
                uploadID = await self.registry.uploads.create(name)
            await self.registry.uploads.complete(name, uploadID, d, writer)
            return self._blobCreated(request, name, d)
        self._abortBody(request)
        uploadID = await self.registry.uploads.create(name)
        return self._empty(request, 202, self._uploadHeaders(name, uploadID, 0))

    def _mayPull(self, identity, name):
        """Whether the caller may read C{name} (the source of a mount: else
        the mount would tell whether that repository has the blob)."""
        if self.auth is None:
            return True
        return self._permits(identity, routeScopes("blob", "GET", name))

    async def _upload_get(self, request, name, upload):
        _checkName(name)
        offset = await self.registry.uploads.offset(name, unquote(upload))
        return self._empty(request, 204, self._uploadHeaders(name, unquote(upload), offset))

    _upload_head = _upload_get

    async def _upload_patch(self, request, name, upload):
        _checkName(name)
        uploadID = unquote(upload)
        offset = await self._appendToSession(request, "PATCH", name, uploadID, _query(request))
        if offset is None:  # no body
            offset = await self.registry.uploads.offset(name, uploadID)
        return self._empty(request, 202, self._uploadHeaders(name, uploadID, offset))

    async def _appendToSession(self, request, method, name, uploadID, query):
        """The upload's size after the request's body (C{None}: no body)."""
        try:
            _, size, _ = await self._appendBody(request, method, name, uploadID, query)
            return size
        except RegistryError as e:
            if e.code == "RANGE_INVALID":
                # Tell the client where the upload stands, so it can resume.
                offset = await self.registry.uploads.offset(name, uploadID)
                e.headers.update(self._uploadHeaders(name, uploadID, offset))
            raise

    async def _upload_put(self, request, name, upload):
        _checkName(name)
        uploadID = unquote(upload)
        query = _query(request)
        expected = _one(query, "digest")
        if expected is None:
            raise RegistryError("DIGEST_INVALID", "PUT needs a digest query parameter")
        d = _parseDigest(expected)
        await self._appendToSession(request, "PUT", name, uploadID, query)
        await self.registry.uploads.complete(name, uploadID, d)
        return self._blobCreated(request, name, d)

    async def _upload_delete(self, request, name, upload):
        _checkName(name)
        await self.registry.uploads.cancel(name, unquote(upload))
        return self._empty(request, 204, {})
