"""The web pages' routes (Klein), mounted by the API's root resource for
the paths L{WebUI.handles}.

Every read goes through the API's own objects (the registry model, the
search index updater, the L{txregistry.web.caller.Access} and its
authorizer), with the same checks: a page lists only what the caller may
pull, and offers a delete only where the caller may delete and the
registry is not read-only."""

import base64
import hashlib
import os
import time

from klein import Klein
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.template import flattenString
from werkzeug.exceptions import HTTPException

from txregistry import digest as digests
from txregistry import names
from txregistry.auth import Forbidden, Unauthorized
from txregistry.auth.authorizer import ANONYMOUS, Identity, LoginThrottled
from txregistry.errors import RegistryError
from txregistry.search.index import IndexUnavailable
from txregistry.ui import forms, pages
from txregistry.ui.data import Browser
from txregistry.ui.layout import DOCTYPE, Context
from txregistry.ui.session import COOKIE, Sessions
from txregistry.web import eventinfo

STATIC = os.path.join(os.path.dirname(__file__), "static")
ASSETS = {"ui.css": b"text/css; charset=utf-8", "ui.js": b"text/javascript; charset=utf-8"}
CSP = (b"default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; connect-src 'self'; "
       b"form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
MAX_SUGGEST = 8


def _loadAssets():
    out = {}
    for name, contentType in ASSETS.items():
        with open(os.path.join(STATIC, name), "rb") as f:
            data = f.read()
        out[name] = (data, contentType, hashlib.sha256(data).hexdigest()[:16])
    return out


class WebUI:
    """The pages of C{api} (the L{txregistry.web.app.RegistryApp}: its
    registry, search, access and read-only state) under C{settings.path}."""

    app = Klein()
    log = Logger()

    def __init__(self, api, settings, clock=time.time):
        self.api = api
        self.settings = settings
        self.base = settings.path
        self._prefix = settings.path.encode("ascii")
        self.browser = Browser(api.registry, api.search)
        self.sessions = Sessions(settings.secret(), settings.sessionHours, clock)
        self._clock = clock
        self.assets = _loadAssets()  # (small files, read once before the reactor runs)
        self._resource = self.app.resource()

    # --- mounting ---

    def handles(self, path):
        """Whether a request path (bytes, no query) is a page's."""
        p = self._prefix
        return path == p or path == p[:-1] or path.startswith(p + b"r/") or path.startswith(p + b"-/")

    def render(self, request):
        request.txrRoute = "ui"
        path = request.path
        if path != self._prefix and path == self._prefix[:-1]:
            request.setResponseCode(308)
            request.setHeader(b"Location", self._prefix)
            return b""
        rest = path[len(self._prefix):]
        request.prepath = [s for s in self._prefix.split(b"/") if s]
        request.postpath = rest.split(b"/") if rest else [b""]
        return self._resource.render(request)

    # --- who calls ---

    def _session(self, request):
        value = request.getCookie(COOKIE)
        session = self.sessions.decode(value) if value else None
        if session is None:
            session = self.sessions.new()
            self._setCookie(request, session)
        return session

    def _setCookie(self, request, session):
        # (by hand: Twisted's addCookie has no SameSite)
        request.responseHeaders.addRawHeader(
            b"Set-Cookie", self.sessions.cookie(session, self.base, request.isSecure()))

    @property
    def auth(self):
        return self.api.access.auth

    def identityOf(self, session):
        """The L{Identity} of a session (None: no authentication, everybody
        may do everything)."""
        auth = self.auth
        if auth is None:
            return None
        user = session.user
        if user is None or user not in auth.settings.users:  # (a user removed since logs out)
            return ANONYMOUS
        policy = auth.settings.policy
        if policy is None:
            return Identity(user, frozenset(), False, None, "basic")
        return Identity(user, policy.groupsOf(user), policy.isAdmin(user), None, "basic")

    def mayPull(self, identity, name):
        return identity is None or self.auth.allowed(identity, name, "pull")

    def mayDelete(self, identity, name):
        if self.api.readonly:
            return False
        return identity is None or self.auth.allowed(identity, name, "delete")

    def _context(self, request, session, identity, query=""):
        host = self.api.access.baseURL(request).decode("latin-1").partition("://")[2]
        logins = self.auth is not None
        return Context(
            self.base, self.staticURL, user=None if identity is None or identity.anonymous else identity.name,
            logins=logins, csrf=self.sessions.csrf(session), readonly=self.api.readonly, host=host, query=query,
            now=self._clock())

    def staticURL(self, name):
        return "%s-/static/%s?v=%s" % (self.base, name, self.assets[name][2])

    # --- answering ---

    def _headers(self, request):
        request.setHeader(b"Content-Security-Policy", CSP)
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"X-Frame-Options", b"DENY")
        request.setHeader(b"Referrer-Policy", b"same-origin")

    async def _html(self, request, tree, status=200):
        request.setResponseCode(status)
        self._headers(request)
        request.setHeader(b"Content-Type", b"text/html; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        return DOCTYPE + await flattenString(None, tree)

    def _run(self, request, handler, *args):
        return Deferred.fromCoroutine(self._guarded(request, handler, *args))

    async def _guarded(self, request, handler, *args):
        session = self._session(request)
        identity = self.identityOf(session)
        request.txrIdentity = identity
        if identity is not None and identity.name:
            request.txrUser = identity.name  # (the access log's user)
        try:
            return await handler(request, session, identity, *args)
        except forms.Redirect as r:
            request.setResponseCode(303)
            request.setHeader(b"Location", r.location.encode("ascii"))
            request.setHeader(b"Cache-Control", b"no-store")
            return b""
        except forms.PageError as e:
            return await self._html(request, pages.error(self._context(request, session, identity), e.status,
                                                         e.message), e.status)
        except RegistryError as e:
            if e.code in ("NAME_UNKNOWN", "MANIFEST_UNKNOWN", "NAME_INVALID", "DIGEST_INVALID", "BLOB_UNKNOWN"):
                return await self._html(request, pages.error(self._context(request, session, identity), 404,
                                                             "No such repository or manifest."), 404)
            if e.code == "UNAVAILABLE":
                return await self._html(request, pages.error(self._context(request, session, identity), 503,
                                                             "Storage is unavailable; retry later."), 503)
            raise
        except IndexUnavailable:
            return await self._html(request, pages.error(self._context(request, session, identity), 503,
                                                         "The search index is unavailable; retry later."), 503)

    def _checkPost(self, request, session, form):
        """A form post must carry this session's CSRF token, and come from
        this origin when the browser says where it comes from."""
        origin = request.getHeader(b"origin")
        if origin is not None and origin != self.api.access.baseURL(request):
            raise forms.PageError(403, "The form came from another site.")
        if not self.sessions.checkCSRF(session, forms.one(form, "csrf")):
            raise forms.PageError(403, "The form expired or came from another site: reload the page and try again.")

    def _requirePull(self, request, identity, name):
        if not names.isValidName(name):
            raise forms.PageError(404, "No such repository.")
        if not self.mayPull(identity, name):
            if identity is not None and identity.anonymous:
                raise forms.Redirect(self.base + "-/login?" + forms.encode(next=request.uri.decode("ascii", "replace")))
            raise forms.PageError(404, "No such repository, or you may not pull it.")

    # --- the routes ---

    @app.route("/", methods=["GET", "HEAD"])
    def homeRoute(self, request):
        return self._run(request, self.home)

    @app.route("/r/<path:name>", methods=["GET", "HEAD"])
    def repositoryRoute(self, request, name):
        return self._run(request, self.repository, name)

    @app.route("/r/<path:name>/-/manifest/<digest>", methods=["GET", "HEAD"])
    def imageRoute(self, request, name, digest):
        return self._run(request, self.image, name, digest)

    @app.route("/r/<path:name>/-/delete", methods=["GET", "POST"])
    def deleteRoute(self, request, name):
        return self._run(request, self.delete, name)

    @app.route("/-/login", methods=["GET", "POST"])
    def loginRoute(self, request):
        return self._run(request, self.login)

    @app.route("/-/logout", methods=["POST"])
    def logoutRoute(self, request):
        return self._run(request, self.logout)

    @app.route("/-/suggest", methods=["GET"])
    def suggestRoute(self, request):
        return self._run(request, self.suggest)

    @app.route("/-/static/<name>", methods=["GET", "HEAD"])
    def staticRoute(self, request, name):
        asset = self.assets.get(name)
        if asset is None:
            request.setResponseCode(404)
            return b"not found"
        data, contentType, etag = asset
        request.setHeader(b"Content-Type", contentType)
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"ETag", b'"%s"' % (etag.encode("ascii"),))
        request.setHeader(b"Cache-Control", b"public, max-age=31536000, immutable")
        match = request.getHeader(b"if-none-match")
        if match is not None and etag.encode("ascii") in match:
            request.setResponseCode(304)
            return b""
        return data

    @app.handle_errors(Exception)
    def failed(self, request, failure):
        if failure.check(HTTPException):  # no route (404), or not this method (405)
            request.setResponseCode(failure.value.code)
            self._headers(request)
            request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
            return failure.value.name.encode("ascii")
        self.log.failure("web page {uri} failed", failure, uri=request.uri)
        request.setResponseCode(500)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"internal error"

    # --- pages ---

    async def home(self, request, session, identity):
        fields = forms.query(request)
        term = forms.one(fields, "q").strip()[:255]
        access = self.api.access
        visible = (lambda name: True) if identity is None else (lambda name: access.visible(identity, name))
        everything = access.seesEverything(identity) if identity is not None else True
        n = self.settings.pageSize
        ctx = self._context(request, session, identity, term)
        hidden = identity is not None and identity.anonymous and self.auth is not None
        if term:
            if self.api.search is None:
                return await self._html(request, pages.home(ctx, [], {}, term=term, searchOff=True))
            pageNo = forms.pageNumber(fields)
            total, rows, complete = await self.browser.searchRepositories(term, visible, everything, pageNo, n)
            found = [name for name, _ in rows]
            summaries = await self.browser.summaries(found, {k: v[1] for k, v in (await self._indexRows(found)).items()})
            prev = pages.searchLink(ctx, term, pageNo - 1) if pageNo > 1 else None
            nxt = pages.searchLink(ctx, term, pageNo + 1) if pageNo * n < total else None
            return await self._html(request, pages.home(ctx, rows, summaries, nxt, prev, total, term,
                                                        hiddenHint=hidden, incomplete=not complete))
        last = forms.one(fields, "last")
        if last and len(last) > 255:
            raise forms.PageError(400, "last is too long.")
        found, more = await self.browser.repositories(visible, last, n)
        indexed = await self._indexRows(found)
        summaries = await self.browser.summaries(found, {k: v[1] for k, v in indexed.items()})
        rows = [(name, indexed.get(name, ("", 0))[0]) for name in found]
        nxt = self.base + "?" + forms.encode(last=found[-1]) if more and found else None
        prev = self.base if last else None
        return await self._html(request, pages.home(ctx, rows, summaries, nxt, prev, hiddenHint=hidden))

    async def _indexRows(self, found):
        """{name: (description, last push)} of the index (empty without)."""
        search = self.api.search
        if search is None or not found:
            return {}
        try:
            return await search.index.rows(found)
        except IndexUnavailable:
            return {}

    async def repository(self, request, session, identity, name):
        self._requirePull(request, identity, name)
        fields = forms.query(request)
        sort = forms.one(fields, "sort", "pushed")
        if sort not in ("pushed", "name"):
            raise forms.PageError(400, "sort is pushed or name.")
        pageNo = forms.pageNumber(fields)
        if not await self.api.registry.manifests.repositoryExists(name):
            raise forms.PageError(404, "No such repository.")
        n = self.settings.pageSize
        total, rows = await self.browser.tags(name, sort, pageNo, n)
        deleted = forms.deletedNotice(forms.one(fields, "deleted"))
        ctx = self._context(request, session, identity)
        return await self._html(request, pages.repository(ctx, name, rows, total, sort, pageNo, n,
                                                          self.mayDelete(identity, name), deleted))

    async def image(self, request, session, identity, name, digest):
        self._requirePull(request, identity, name)
        try:
            digest = digests.parse(digest)
        except digests.InvalidDigest:
            raise forms.PageError(404, "No such manifest.")
        img = await self.browser.image(name, digest)
        tagNames = await self.browser.tagsOf(name, img.digest)
        ctx = self._context(request, session, identity)
        return await self._html(request, pages.image(ctx, img, tagNames, self.mayDelete(identity, name)))

    async def delete(self, request, session, identity, name):
        self._requirePull(request, identity, name)
        if self.api.readonly:
            raise forms.PageError(403, "The registry is read-only: nothing can be deleted.")
        if not self.mayDelete(identity, name):
            if identity is not None and identity.anonymous:
                raise forms.Redirect(self.base + "-/login?" + forms.encode(next=request.uri.decode("ascii", "replace")))
            raise forms.PageError(403, "You may not delete in this repository.")
        if request.method == b"POST":
            form = forms.form(request)
            self._checkPost(request, session, form)
            reference = forms.one(form, "ref")
        else:
            reference = forms.one(forms.query(request), "ref")
        isTag = forms.isTag(reference)
        if not isTag:
            try:
                reference = digests.parse(reference)
            except digests.InvalidDigest:
                raise forms.PageError(400, "ref must be a tag or a digest.")
        manifests = self.api.registry.manifests
        if request.method != b"POST":
            await manifests.resolve(name, reference)  # (MANIFEST_UNKNOWN: 404)
            tagsToo = None if isTag else await self.browser.tagsOf(name, reference)
            ctx = self._context(request, session, identity)
            return await self._html(request, pages.confirmDelete(ctx, name, reference, isTag, tagsToo))
        if self.api.registry.events:  # someone listens: the events say who deleted
            eventinfo.bindRequest(request, self.api.access.baseURL(request))
        await manifests.delete(name, reference)
        self.browser.tagTimes.forget(name)
        self.log.info("web page: {user} deleted {name} {reference}", user=getattr(identity, "name", None) or "-",
                      name=name, reference=reference)
        raise forms.Redirect(self.base + "r/" + name + "?" + forms.encode(deleted="%s %s" % (
            "tag" if isTag else "manifest", reference)))

    async def login(self, request, session, identity):
        auth = self.auth
        ctx = self._context(request, session, identity)
        if auth is None:
            raise forms.Redirect(self.base)
        available = bool(auth.settings.users)
        fields = forms.query(request)
        if request.method != b"POST":
            return await self._html(request, pages.login(ctx, forms.safeNext(self.base, forms.one(fields, "next")),
                                                         available=available))
        form = forms.form(request)
        self._checkPost(request, session, form)
        nextURL = forms.safeNext(self.base, forms.one(form, "next"))
        user = forms.one(form, "user")[:256]
        password = forms.one(form, "password")[:1024]
        if not available:
            raise forms.PageError(400, "Logging in with a password is not possible here.")
        credentials = base64.b64encode(("%s:%s" % (user, password)).encode("utf-8"))
        try:
            found = await auth.authenticate(b"Basic " + credentials, passwords=True,
                                            client=self.api.access.client(request))
        except LoginThrottled:
            return await self._html(request, pages.login(ctx, nextURL, "Too many failed logins: wait a while.",
                                                         user), 429)
        except (Unauthorized, Forbidden):
            found = None
        if found is None or found.anonymous:
            return await self._html(request, pages.login(ctx, nextURL, "Wrong user name or password.", user), 401)
        self._setCookie(request, self.sessions.new(found.name))  # a new session id: no fixation
        request.txrUser = found.name
        raise forms.Redirect(nextURL)

    async def logout(self, request, session, identity):
        form = forms.form(request)
        self._checkPost(request, session, form)
        self._setCookie(request, self.sessions.new())
        raise forms.Redirect(self.base)

    async def suggest(self, request, session, identity):
        """Names for the search box as one types (JSON): the first ranked
        matches the caller may see."""
        import json

        term = forms.one(forms.query(request), "q").strip()[:255]
        out = []
        if term and self.api.search is not None:
            access = self.api.access
            visible = (lambda name: True) if identity is None else (lambda name: access.visible(identity, name))
            everything = identity is None or access.seesEverything(identity)
            _, rows, _ = await self.browser.searchRepositories(term, visible, everything, 1, MAX_SUGGEST)
            out = [{"name": name, "url": self.base + "r/" + name} for name, _ in rows]
        self._headers(request)
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        return json.dumps(out).encode("utf-8")


