"""A client of one upstream registry (OCI distribution API) on treq /
Twisted's Agent.

Authentication as Docker Hub does it: a request answered 401 with
C{WWW-Authenticate: Bearer realm=...,service=...,scope=...} is followed by a
token request to the realm (anonymous, or with the configured credentials
as Basic), and sent again with the token; tokens are kept per scope until
they expire.  An upstream answering C{Basic} gets the credentials as Basic.
A static C{token} is sent as a bearer token.

What the callers see: an L{IResponse} for 2xx, 3xx-followed and 404
answers; L{UpstreamUnavailable} for no answer, a 5xx or a timeout;
C{RegistryError("TOOMANYREQUESTS", retryAfter=...)} for a 429 (the client
of the mirror gets a 429 too, with C{Retry-After}); a 401/403 the
credentials cannot get past is a 404 (as Docker Hub answers for a
repository that does not exist).
"""

from __future__ import annotations

import base64
import json
import math
import re
from urllib.parse import urlencode

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.web.client import Agent, HTTPConnectionPool, ResponseDone
from twisted.web.http_headers import Headers
from twisted.web.iweb import IPolicyForHTTPS
from zope.interface import implementer

from txregistry.errors import RegistryError, StreamCut

MAX_SMALL_BODY = 64 * 1024  # a token or error answer, at most
TOKEN_MARGIN = 10.0  # seconds before its expiry a token is no longer used
DEFAULT_TOKEN_LIFETIME = 60.0  # (the token spec's default)
MAX_BLOCK = 3600.0  # seconds a Retry-After holds requests back at most
_PARAM = re.compile(r'(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


class UpstreamUnavailable(StreamCut):
    """No usable answer: connection refused or lost, a timeout, a 5xx."""


class BodyTooLarge(Exception):
    pass


def parseChallenge(value: str):
    """C{(scheme, {param: value})} of a C{WWW-Authenticate} value."""
    scheme, _, rest = value.strip().partition(" ")
    params = {}
    for m in _PARAM.finditer(rest):
        params[m.group(1).lower()] = m.group(2) if m.group(2) is not None else m.group(3)
    return scheme.lower(), params


def retryAfter(headers: Headers):
    """The seconds a C{Retry-After} header says (an integer), or C{None}."""
    value = headers.getRawHeaders(b"retry-after", [None])[0]
    if value is None:
        return None
    try:
        return max(0, int(value.strip()))
    except ValueError:
        return None  # (an HTTP date: not worth parsing)


class _Collect(Protocol):
    def __init__(self, limit, done):
        self.limit = limit
        self.done = done
        self.parts = []
        self.size = 0

    def dataReceived(self, data):
        if self.done.called:
            return
        self.size += len(data)
        if self.size > self.limit:
            self.transport.stopProducing()
            self.done.errback(BodyTooLarge(self.limit))
            return
        self.parts.append(data)

    def connectionLost(self, reason):
        if self.done.called:
            return
        if reason.check(ResponseDone):
            self.done.callback(b"".join(self.parts))
        else:
            self.done.errback(UpstreamUnavailable("the answer was cut short: %s" % (reason.getErrorMessage(),)))


def collect(response, limit):
    """The body of C{response}, at most C{limit} bytes (else L{BodyTooLarge})."""
    if response.length is not None and isinstance(response.length, int) and response.length > limit:
        discard(response)
        raise BodyTooLarge(limit)
    done = Deferred()
    response.deliverBody(_Collect(limit, done))
    return done


class _Discard(Protocol):
    def dataReceived(self, data):
        pass


def discard(response):
    """Read C{response}'s body into nothing (so its connection is reused,
    or closed)."""
    try:
        response.deliverBody(_Discard())
    except Exception:
        pass


@implementer(IPolicyForHTTPS)
class BundleTrust:
    """TLS to an upstream verified against a CA bundle (PEM)."""

    def __init__(self, pem: bytes):
        from twisted.internet.ssl import Certificate, trustRootFromCertificates

        self.root = trustRootFromCertificates([Certificate.loadPEM(b) for b in _PEM.findall(pem)])

    def creatorForNetloc(self, hostname, port):
        from twisted.internet.ssl import optionsForClientTLS

        return optionsForClientTLS(hostname.decode("ascii"), trustRoot=self.root)


class UpstreamClient:
    """Requests to one upstream (its L{UpstreamSettings}), authenticated."""

    log = Logger()

    def __init__(self, settings, reactor, metrics=None, agent=None, clock=None):
        """C{clock}: what tells the time of token expiries and of a
        C{Retry-After} (default: C{reactor})."""
        import treq.client

        self.settings = settings
        self.reactor = reactor
        self.clock = clock or reactor
        self.metrics = metrics  # a L{txregistry.mirror.metrics.MirrorMetrics}, or None
        if agent is None:
            pool = HTTPConnectionPool(reactor, persistent=True)
            pool.maxPersistentPerHost = 16
            kw = {"pool": pool, "connectTimeout": settings.timeout}
            if settings.caBundle:
                kw["contextFactory"] = BundleTrust(settings.caBundle)
            agent = Agent(reactor, **kw)
            self.pool = pool
        else:
            self.pool = None
        self.http = treq.client.HTTPClient(agent)
        self._tokens = {}  # scope -> (token, expires at)
        self._challenge = None  # (realm, service) of the last Bearer challenge
        self._basic = False  # the upstream asked for Basic
        self._blockedUntil = 0.0  # no request before (a 429's Retry-After)

    def close(self):
        """Close the idle persistent connections (a Deferred)."""
        if self.pool is not None:
            return self.pool.closeCachedConnections()
        from twisted.internet.defer import succeed

        return succeed(None)

    # --- requests ---

    async def request(self, method: str, path: str, remoteName: str, accept=None):
        """An L{IResponse} to C{method} C{path} (below the upstream's URL)
        for repository C{remoteName} (its pull scope), authenticated; see the
        module's description of what is raised.  The caller reads (or
        L{discard}s) the body."""
        wait = self._blockedUntil - self.clock.seconds()
        if wait > 0:
            # Rate-limited: the upstream's Retry-After is honoured, not
            # hammered.
            raise RegistryError("TOOMANYREQUESTS", "the upstream registry rate-limits this registry",
                                {"upstream": self.settings.name}, retryAfter=int(math.ceil(wait)))
        scope = "repository:%s:pull" % (remoteName,)
        headers = {}
        if accept:
            headers[b"Accept"] = [accept]
        url = self.settings.url + path
        auth = await self._authorization(scope)
        for attempt in range(2):
            h = Headers(dict(headers))
            if auth is not None:
                h.setRawHeaders(b"Authorization", [auth])
            response = await self._send(method, url, h)
            if response.code != 401 or attempt == 1:
                break
            challenge = response.headers.getRawHeaders(b"www-authenticate", [""])[0]
            if isinstance(challenge, bytes):
                challenge = challenge.decode("latin-1")
            scheme, params = parseChallenge(challenge)
            if scheme == "bearer" and params.get("realm"):
                self._challenge = (params["realm"], params.get("service"))
                self._tokens.pop(scope, None)
                token = await self._fetchToken(scope, params.get("scope") or scope)
                if not token:
                    break  # (refused: the 401 stands)
                auth = b"Bearer " + token.encode("ascii")
            elif scheme == "basic" and self.settings.username and not self._basic:
                self._basic = True
                auth = self._basicValue()
            else:
                break
            discard(response)  # (asked again)
        return self._checked(response, method, path)

    def _checked(self, response, method, path):
        code = response.code
        if code == 429:
            discard(response)
            self._failed("ratelimited")
            after = retryAfter(response.headers)
            if after:
                self._blockedUntil = self.clock.seconds() + min(after, MAX_BLOCK)
            self.log.warn("upstream {upstream} rate-limits {method} {path} (Retry-After: {after})",
                          upstream=self.settings.name, method=method, path=path, after=after)
            raise RegistryError("TOOMANYREQUESTS", "the upstream registry rate-limits this registry",
                                {"upstream": self.settings.name}, retryAfter=after)
        if code >= 500:
            discard(response)
            self._failed("5xx")
            raise UpstreamUnavailable("%s answered %d to %s %s" % (self.settings.name, code, method, path))
        if code in (401, 403):
            # (The caller reads or discards the body of what it takes for a 404.)
            self.log.warn("upstream {upstream} refused {method} {path} ({code}): answered as not found",
                          upstream=self.settings.name, method=method, path=path, code=code)
            response.code = 404  # (what the caller answers)
        return response

    async def _send(self, method, url, headers):
        try:
            d = self.http.request(method, url, headers=headers, allow_redirects=True,
                                  timeout=self.settings.timeout, unbuffered=True)
            return await d
        except RegistryError:
            raise
        except Exception as e:
            self._failed("unreachable")
            raise UpstreamUnavailable("%s %s: %s" % (method, url, e.__class__.__name__ + ": " + str(e)))

    def _failed(self, kind):
        if self.metrics is not None:
            self.metrics.upstreamError(self.settings.name, kind)

    # --- credentials ---

    async def _authorization(self, scope):
        s = self.settings
        if s.token:
            return b"Bearer " + s.token.encode("utf-8")
        if self._basic:
            return self._basicValue()
        token = self._tokens.get(scope)
        if token is not None and token[1] > self.clock.seconds():
            return b"Bearer " + token[0].encode("ascii")
        if self._challenge is not None:
            # The upstream wants tokens: ask for this scope's before asking.
            token = await self._fetchToken(scope, scope)
            return b"Bearer " + token.encode("ascii") if token else None
        return None

    def _basicValue(self):
        s = self.settings
        return b"Basic " + base64.b64encode(("%s:%s" % (s.username, s.password)).encode("utf-8"))

    async def _fetchToken(self, key, scope):
        realm, service = self._challenge
        query = {"scope": scope}
        if service:
            query["service"] = service
        if self.settings.username:
            query["account"] = self.settings.username
        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        h = Headers()
        if self.settings.username:
            h.setRawHeaders(b"Authorization", [self._basicValue()])
        response = await self._send("GET", url, h)
        if response.code == 429:
            self._checked(response, "GET", realm)
        if response.code != 200:
            discard(response)
            self._failed("token")
            if response.code >= 500:
                raise UpstreamUnavailable("the token service %s answered %d" % (realm, response.code))
            # Refused: go on without a token (the request is answered 401,
            # which the caller takes for not found).
            self.log.warn("token service {realm} refused {scope} ({code})", realm=realm, scope=scope,
                          code=response.code)
            return ""
        try:
            doc = json.loads(await collect(response, MAX_SMALL_BODY))
            token = doc.get("token") or doc.get("access_token")
            lifetime = float(doc.get("expires_in") or DEFAULT_TOKEN_LIFETIME)
        except (ValueError, AttributeError, BodyTooLarge) as e:
            self._failed("token")
            raise UpstreamUnavailable("the token service %s answered no token: %s" % (realm, e))
        if not isinstance(token, str) or not token.isascii():
            self._failed("token")
            raise UpstreamUnavailable("the token service %s answered no token" % (realm,))
        self._tokens[key] = (token, self.clock.seconds() + max(0.0, lifetime - TOKEN_MARGIN))
        if len(self._tokens) > 10000:
            self._tokens.pop(next(iter(self._tokens)))
        return token
