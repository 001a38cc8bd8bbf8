"""Who the caller is and what they may do: the web side of
L{txregistry.auth}.

- L{routeScopes}: the token scopes a route needs (pure);
- L{Authentication}: a request's authentication, started as soon as its
  headers are in (so an upload body can be routed by it) and awaited by the
  handler (a request body waits for it in a
  L{txregistry.web.bodies.PendingBody});
- L{Access}: the caller of a request (address, identity) and what they may
  do: call a route, see a repository, list them all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Union

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from txregistry.auth import Forbidden, Unauthorized
from txregistry.observe import OneShot

if TYPE_CHECKING:
    from twisted.web.server import Request

    from txregistry.auth.authorizer import Authorizer, Identity
    from txregistry.web.routes import Route

MAX_CLIENT_ADDRESS = 128  # bytes of a client address taken from a proxy's header

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


def routeScopes(route: Route, method: str, name: Optional[str] = None) -> list[tuple[str, str, list[str]]]:
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

    def __init__(self, deferred: Deferred[Identity]) -> None:
        self._outcome = OneShot()
        deferred.addBoth(self._outcome.fire)

    @property
    def done(self) -> bool:
        return self._outcome.fired

    @property
    def outcome(self) -> Union[Identity, Failure, None]:
        """Once L{done}: the identity, or the L{Failure}."""
        return self._outcome.result if self.done else None

    @property
    def identity(self) -> Optional[Identity]:
        """The identity if authentication succeeded already, else None."""
        if self.done and not isinstance(self._outcome.result, Failure):
            return self._outcome.result
        return None

    def wait(self) -> Deferred[Identity]:
        """A new Deferred of the identity (or the failure)."""
        return self._outcome.wait()


class Access:
    """Who calls, and what they may do, by C{auth} (an L{Authorizer}, or
    C{None}: everybody may do everything); C{publicURL} is the
    "scheme://host[:port]" clients reach the registry at, or C{None}."""

    def __init__(self, auth: Optional[Authorizer], publicURL: Optional[str] = None) -> None:
        self.auth = auth
        self.publicURL = publicURL or None

    def baseURL(self, request: Request) -> str:
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

    def client(self, request: Request) -> str:
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

    def authentication(self, request: Request, scopes: list[Any]) -> Authentication:
        """The request's L{Authentication}, started now if not yet."""
        authentication = getattr(request, "txrAuthentication", None)
        if authentication is None:
            d = Deferred.fromCoroutine(
                self.auth.authenticate(
                    request.getHeader(b"authorization"), scopes, baseURL=self.baseURL(request),
                    client=self.client(request),
                )
            )
            authentication = request.txrAuthentication = Authentication(d)
        return authentication

    async def authorize(self, request: Request, route: Route, method: str, name: Optional[str]) -> Optional[Identity]:
        """The caller's identity if it may do C{method} on C{route}; raises
        L{Unauthorized} or L{Forbidden} otherwise."""
        scopes = routeScopes(route, method, name)
        identity = await self.authentication(request, scopes).wait()
        request.txrUser = identity.name
        self.checkAccess(request, route, method, name, identity)
        return identity

    def checkAccess(self, request: Request, route: Route, method: str, name: Optional[str],
                    identity: Optional[Identity]) -> None:
        """Raise L{Unauthorized} or L{Forbidden} unless C{identity} may do
        C{method} on C{route} (of repository C{name})."""
        scopes = routeScopes(route, method, name)
        if route == "base" or (route == "catalog" and not self.mayListAnonymously()):
            # A login (or any valid token) is needed; the challenge is what
            # makes clients log in at all.
            self._requireLogin(request, identity, scopes)
        if scopes:
            self.auth.require(identity, scopes, baseURL=self.baseURL(request))

    def _requireLogin(self, request, identity, scopes):
        if identity.anonymous and identity.tokenAccess is None:
            raise Unauthorized(self.auth.challenge(scopes, baseURL=self.baseURL(request)), "authentication required")

    async def searcher(self, request: Request) -> Optional[Identity]:
        """The identity of a caller of V1 search (C{None}: no authorizer);
        raises L{Unauthorized} for an anonymous one when nothing is public
        (podman then lists the catalog with a login instead)."""
        if self.auth is None:
            return None
        identity = await Deferred.fromCoroutine(
            self.auth.authenticate(
                request.getHeader(b"authorization"), baseURL=self.baseURL(request), passwords=True,
                client=self.client(request),
            )
        )
        request.txrUser = identity.name
        if not self.mayListAnonymously():
            self._requireLogin(request, identity, [("registry", "catalog", ["search"])])
        return identity

    def mayListAnonymously(self) -> bool:
        policy = self.auth.settings.policy
        return policy is not None and any("pull" in rule.actions for rule in policy.anonymous)

    def mayPull(self, identity: Optional[Identity], name: str) -> bool:
        """Whether the caller may read C{name} (the source of a mount: else
        the mount would tell whether that repository has the blob)."""
        if self.auth is None:
            return True
        try:
            self.auth.require(identity, routeScopes("blob", "GET", name))
        except (Unauthorized, Forbidden):
            return False
        return True

    def visible(self, identity: Optional[Identity], name: str) -> bool:
        return identity is None or self.auth.visible(identity, name)

    def seesEverything(self, identity: Optional[Identity]) -> bool:
        if identity is None or identity.admin:
            return True
        return self.auth.settings.policy is None and not identity.anonymous
