"""Who is calling, and may they: the run-time half of L{txregistry.auth}
(failed-login counts: L{txregistry.auth.throttle}).  One room at ~500
lines, kept whole: Basic and bearer checks share its caches and policy."""

import base64
import binascii
import hashlib
import hmac
import os
from collections import OrderedDict
from dataclasses import dataclass

import bcrypt
from cryptography.hazmat.primitives.asymmetric import ec
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from txregistry.auth import keys as _keys
from txregistry.auth import tokens as _tokens
from txregistry.auth.htpasswd import BCRYPT_MAX_PASSWORD, bcryptCost
from txregistry.auth.policy import ACTIONS
from txregistry.auth.scopes import formatScope, normalizeScopes, parseScope
from txregistry.auth.settings import AuthSettings
from txregistry.auth.throttle import LoginThrottle
from txregistry.observe import OneShot

MAX_CACHE_ENTRIES = 1024
TOKEN_CACHE_SECONDS = 60
CHALLENGE_ERRORS = ("invalid_request", "invalid_token", "insufficient_scope")
CATALOG = ("registry", "catalog")


@dataclass(frozen=True)
class Identity:
    """The caller of one request.

    C{name} is None for an anonymous caller (no credentials, or a token with
    an empty subject).  C{groups} and C{admin} come from the policy.
    C{tokenAccess} is None unless the caller presented a bearer token; then
    it maps C{(type, name)} to the frozenset of actions the token grants.
    C{scheme} is "anonymous", "basic" or "bearer".  C{external} is true for
    a token of an external token server (not of the built-in endpoint).
    """

    name: str = None
    groups: frozenset = frozenset()
    admin: bool = False
    tokenAccess: dict = None
    scheme: str = "anonymous"
    external: bool = False

    def __hash__(self):
        return hash((self.name, self.scheme))

    @property
    def anonymous(self):
        return self.name is None


ANONYMOUS = Identity()


class Unauthorized(Exception):
    """401: send C{challenge} as ``WWW-Authenticate`` with the spec's
    ``UNAUTHORIZED`` error and C{message}."""

    def __init__(self, challenge, message):
        Exception.__init__(self, message)
        self.challenge = challenge
        self.message = message


class Forbidden(Exception):
    """403 ``DENIED``: a logged-in (Basic) user lacks the permission; new
    credentials would not help."""

    def __init__(self, message):
        Exception.__init__(self, message)
        self.message = message


class LoginThrottled(Forbidden):
    """429 ``TOOMANYREQUESTS``: this client address failed to log in too
    often lately; no password of it is checked for C{retryAfter} seconds."""

    def __init__(self, retryAfter):
        Forbidden.__init__(self, "too many failed logins from this address: retry in %d s" % (retryAfter,))
        self.retryAfter = retryAfter


class TokenRequestError(Exception):
    """400 from the token endpoint: unknown service, malformed scope, or no
    built-in endpoint."""

    def __init__(self, message):
        Exception.__init__(self, message)
        self.message = message


def _checkPassword(password, hashed):
    """In the thread pool: bcrypt, which reads only 72 bytes of a password
    (as ``htpasswd -B`` did when it made the hash)."""
    try:
        return bcrypt.checkpw(password[:BCRYPT_MAX_PASSWORD], hashed)
    except ValueError:
        return False


def _splitAuthorization(authorization):
    """C{(lower-case scheme, credentials)} of a header value."""
    if isinstance(authorization, bytes):
        authorization = authorization.decode("latin-1")
    scheme, _, credentials = authorization.strip().partition(" ")
    return scheme.lower(), credentials.strip()


class Authorizer:
    """Authentication and access policy for one registry.

    Password checks are throttled per client address: once
    C{settings.loginFailures} of them failed within
    C{settings.loginFailureWindow} seconds (or that many are under way at
    once), further ones get L{LoginThrottled} without costing a bcrypt check,
    until the oldest failure is that old.  Passwords remembered after a
    success and bearer tokens are not affected.

    @param settings: an L{AuthSettings} from L{parseAuth}.
    @param reactor: delivers thread-pool results (C{callFromThread}).
    @param threadpool: a started L{twisted.python.threadpool.ThreadPool}
        owned by the caller; bcrypt runs there, never on the reactor thread.
    @param clock: C{seconds()} for token times and the login cache;
        the reactor by default.
    """

    log = Logger()

    def __init__(self, settings, reactor, threadpool, clock=None):
        if not isinstance(settings, AuthSettings):
            raise TypeError("settings must be an AuthSettings, not %r" % (settings,))
        self.settings = settings
        self._reactor = reactor
        self._threadpool = threadpool
        self._clock = clock if clock is not None else reactor
        self._cacheKey = os.urandom(32)
        self._cache = OrderedDict()  # hmac(credentials) -> (user, expires)
        self._pending = {}  # hmac(credentials) -> OneShot of the check under way
        self._tokenCache = OrderedDict()  # sha256(token) -> (valid until, identity parts)
        self.throttle = LoginThrottle(settings.loginFailures, settings.loginFailureWindow)
        costs = [bcryptCost(h) for h in settings.users.values()]
        cost = max(set(costs), key=costs.count) if costs else 10
        # Unknown users cost a bcrypt check too, so timing does not tell
        # which user names exist.
        self._dummyHash = b"$2b$%02d$" % cost + b"." * 53
        self._signingKey = None
        self._ownPublicKey = None
        self._trusted = ()
        token = settings.token
        if token is not None:
            self._trusted = tuple(token.trustedKeys)
            if token.issue:
                key = token.signingKey
                if key is None:
                    key = ec.generate_private_key(ec.SECP256R1())
                self._signingKey = key
                self._signingKid = _keys.keyID(key.public_key())
                self._ownPublicKey = key.public_key()
                own = _keys.TrustedKey(self._signingKid, self._ownPublicKey, "the built-in signing key")
                self._trusted = (own,) + self._trusted

    # -- challenges -----------------------------------------------------

    @property
    def throttledClients(self) -> int:
        """How many client addresses have failed logins counted (bounded by
        MAX_THROTTLED_CLIENTS)."""
        return self.throttle.clients

    def forgetFailures(self) -> None:
        """Forget every failed login counted so far (as if each client's
        window had passed)."""
        self.throttle.forget()

    def _tokenRealm(self, baseURL):
        realm = self.settings.token.realm
        if realm.startswith("/") and baseURL:
            realm = _safeBaseURL(baseURL) + realm
        return realm

    def challenge(self, scopes=(), error=None, *, baseURL=None):
        """The ``WWW-Authenticate`` value for a 401.

        Basic mode: ``Basic realm="..."``.  Bearer mode: ``Bearer
        realm="...",service="...",scope="..."`` with the scopes space-separated
        in one quoted value, and ``error="..."`` (``invalid_token``,
        ``insufficient_scope``) when given.  A relative token realm is made
        absolute with C{baseURL} (``scheme://host[:port]`` of the request),
        when it is a plausible one.
        """
        if self.settings.mode == "basic":
            return 'Basic realm="%s"' % (self.settings.realm,)
        parts = [
            'realm="%s"' % (self._tokenRealm(baseURL),),
            'service="%s"' % (self.settings.token.service,),
        ]
        try:
            scopes = normalizeScopes(scopes)
        except ValueError:
            scopes = []
        if scopes:
            parts.append('scope="%s"' % " ".join(formatScope(s) for s in scopes))
        if error is not None:
            if error not in CHALLENGE_ERRORS:
                raise ValueError("unknown challenge error %r" % (error,))
            parts.append('error="%s"' % (error,))
        return "Bearer " + ",".join(parts)

    def _basicChallenge(self):
        return 'Basic realm="%s"' % (self.settings.realm,)

    # -- authentication -------------------------------------------------

    async def authenticate(self, authorization, scopes=(), *, baseURL=None, passwords=False, client=None):
        """The L{Identity} of a request from its ``Authorization`` header.

        No header: anonymous.  ``Basic`` (basic mode): the htpasswd password,
        checked in the thread pool and remembered for C{cacheSeconds} after a
        success.  ``Bearer`` (bearer mode): a token, verified.  Anything else,
        a wrong password, or a bad, expired or foreign token raises
        L{Unauthorized} whose challenge names C{scopes} (what the request
        needs: scope strings or C{(type, name, actions)}).  With
        C{passwords}, ``Basic`` is checked in bearer mode too (for the V1
        search endpoint, where clients send the password itself).  C{client}
        (the caller's address) is what failed logins are counted by; a
        throttled one gets L{LoginThrottled}.
        """
        if not authorization or not authorization.strip():
            return ANONYMOUS
        scheme, credentials = _splitAuthorization(authorization)
        if scheme == "basic":
            if self.settings.mode != "basic" and not (passwords and self.settings.users):
                raise Unauthorized(
                    self.challenge(scopes, baseURL=baseURL),
                    "this registry takes bearer tokens: get one from the token endpoint",
                )
            user = await self._checkBasic(credentials, client)
            if user is None:
                raise Unauthorized(self.challenge(scopes, baseURL=baseURL), "invalid username or password")
            return self._identityOf(user, "basic")
        if scheme == "bearer":
            if self.settings.mode != "bearer":
                raise Unauthorized(self._basicChallenge(), "bearer tokens are not accepted here: log in with a password")
            return self._identityOf(*self._verifyToken(credentials, scopes, baseURL))
        raise Unauthorized(self.challenge(scopes, baseURL=baseURL), "unsupported authorization scheme")

    def _verifyToken(self, credentials, scopes, baseURL):
        """C{(subject, "bearer", access, external)} of a good token.  A
        token that verified is remembered (by its hash) until it expires, at
        most L{TOKEN_CACHE_SECONDS}: clients send the same one with every
        request, and checking a signature is most of a request's work."""
        now = self._clock.seconds()
        key = hashlib.sha256(credentials.encode("utf-8", "surrogatepass")).digest()
        hit = self._tokenCache.get(key)
        if hit is not None:
            if hit[0] > now:
                return hit[1]
            del self._tokenCache[key]
        token = self.settings.token
        try:
            claims, access, verifiedBy = _tokens.verify(
                credentials, self._trusted, token.rootCerts, token.issuers, token.service, now, token.leeway
            )
        except _tokens.TokenError as e:
            raise Unauthorized(
                self.challenge(scopes, error="invalid_token", baseURL=baseURL), "invalid token: %s" % (e,)
            )
        result = (claims.get("sub") or None, "bearer", access, verifiedBy is not self._ownPublicKey)
        self._tokenCache[key] = (min(claims["exp"] + token.leeway, now + TOKEN_CACHE_SECONDS), result)
        while len(self._tokenCache) > MAX_CACHE_ENTRIES:
            self._tokenCache.popitem(last=False)
        return result

    def _identityOf(self, user, scheme, access=None, external=False):
        policy = self.settings.policy
        if policy is None:
            return Identity(user, frozenset(), False, access, scheme, external)
        return Identity(user, policy.groupsOf(user), policy.isAdmin(user), access, scheme, external)

    metrics = None  # a txregistry.metrics.Metrics, told of failures and throttled checks

    def _mayTry(self, client, now):
        """Raise L{LoginThrottled} if C{client} may not try a password now."""
        wait = self.throttle.wait(client, now)
        if wait is not None:
            if self.metrics is not None:
                self.metrics.loginThrottled()
            raise LoginThrottled(wait)

    def _failed(self, client, now):
        """Count a failed password check of C{client}."""
        if self.metrics is not None:
            self.metrics.loginFailed()
        self.throttle.failed(client, now)

    async def _checkBasic(self, credentials, client=None):
        """The user name if C{credentials} (base64 of ``user:password``)
        are right, else None.  Raises L{LoginThrottled} when C{client} may
        not try now."""
        try:
            raw = base64.b64decode(credentials, validate=True)
        except (binascii.Error, ValueError):
            return None
        user, sep, password = raw.partition(b":")
        if not sep:
            return None
        try:
            name = user.decode("utf-8")
        except UnicodeDecodeError:
            return None
        # The cache is keyed by a keyed hash of the exact credentials: a
        # different password is a different key, so only a check that
        # succeeded for these very bytes can be reused.
        key = hmac.new(self._cacheKey, raw, hashlib.sha256).digest()
        now = self._clock.seconds()
        hit = self._cache.get(key)
        if hit is not None:
            if hit[1] > now:
                return hit[0]
            del self._cache[key]
        checking = self._pending.get(key)
        if checking is not None:
            # The same credentials are being checked: share that result.
            return name if await checking.wait() else None
        self._mayTry(client, now)
        checking = self._pending[key] = OneShot()
        stored = self.settings.users.get(name)
        self.throttle.started(client)
        try:
            ok = await deferToThreadPool(
                self._reactor, self._threadpool, _checkPassword, password, stored or self._dummyHash
            )
            ok = bool(ok) and stored is not None
        except BaseException:
            del self._pending[key]
            checking.fire(False)
            raise
        finally:
            self.throttle.ended(client)
        del self._pending[key]
        if not ok:
            self._failed(client, self._clock.seconds())
        if ok and self.settings.cacheSeconds > 0:
            self._cache[key] = (name, self._clock.seconds() + self.settings.cacheSeconds)
            while len(self._cache) > MAX_CACHE_ENTRIES:
                self._cache.popitem(last=False)
        checking.fire(ok)
        return name if ok else None

    # -- access policy --------------------------------------------------

    def _policyAllows(self, user, rtype, name, action, authenticated):
        if (rtype, name) == CATALOG:
            # Listing is open; what it lists is filtered with visible().
            return action == "*"
        if rtype != "repository" or action not in ACTIONS:
            return False
        policy = self.settings.policy
        if policy is None:
            return authenticated
        return policy.allows(user, name, action)

    def allowedScope(self, identity, rtype, name, action):
        """Whether C{identity} may do C{action} on resource C{rtype}:C{name}.

        A bearer identity needs the token to grant it (or ``*``) and the
        policy to allow its subject; others (no header, or Basic) need the
        policy only, so the anonymous rules hold without a token in bearer
        mode too.  Without a policy, any logged-in user and any holder of an
        external token is allowed (the token's grants still apply), and an
        anonymous caller nothing.  The catalog (``registry:catalog:*``) is
        open to all: filter its entries with L{visible}.
        """
        if identity.tokenAccess is not None:
            granted = identity.tokenAccess.get((rtype, name), frozenset())
            if action not in granted and "*" not in granted:
                return False
        return self._policyAllows(identity.name, rtype, name, action, _authenticated(identity))

    def allowed(self, identity, repository, action):
        """Whether C{identity} may C{action} (pull, push, delete) C{repository}."""
        return self.allowedScope(identity, "repository", repository, action)

    def visible(self, identity, repository):
        """Whether the catalog and search show C{repository} to C{identity}:
        its subject may pull it by policy (whatever its token grants, since a
        catalog token only grants ``registry:catalog:*``)."""
        return self._policyAllows(identity.name, "repository", repository, "pull", _authenticated(identity))

    def require(self, identity, scopes, *, baseURL=None):
        """Raise unless C{identity} may do everything C{scopes} ask for.

        Bearer identity: L{Unauthorized} with ``error="insufficient_scope"``
        (the client then asks for a token with these scopes).  Anonymous
        caller: L{Unauthorized} with a challenge, so the client logs in.
        Logged-in Basic user: L{Forbidden}.
        """
        scopes = normalizeScopes(scopes)
        denied = [
            "%s:%s:%s" % (rtype, name, action)
            for rtype, name, actions in scopes
            for action in actions
            if not self.allowedScope(identity, rtype, name, action)
        ]
        if not denied:
            return
        if identity.tokenAccess is not None:
            raise Unauthorized(
                self.challenge(scopes, error="insufficient_scope", baseURL=baseURL),
                "insufficient scope: %s" % " ".join(denied),
            )
        if identity.name is None:
            raise Unauthorized(self.challenge(scopes, baseURL=baseURL), "authentication required")
        raise Forbidden("access to %s denied for %s" % (" ".join(denied), identity.name))

    # -- the built-in token endpoint --------------------------------------

    async def issueToken(self, authorization, service, scopes, client=None):
        """Answer a token request (``GET <token realm>?service=...&scope=...``).

        Authenticates with ``Basic`` (or none: anonymous), grants for each
        requested scope the actions the policy allows (maybe none: an empty
        list, which is not an error), and returns C{{"token", "access_token",
        "expires_in", "issued_at"}}.  Wrong credentials or another scheme:
        L{Unauthorized} with a Basic challenge.  Unknown C{service},
        malformed scope, or no built-in endpoint: L{TokenRequestError}.
        """
        token = self.settings.token
        if token is None or not token.issue:
            raise TokenRequestError("this registry does not issue tokens")
        if service is not None and service != token.service:
            raise TokenRequestError("unknown service %r (this is %r)" % (service, token.service))
        requested = []
        for text in scopes or ():
            try:
                requested.extend(parseScope(text))
            except ValueError as e:
                raise TokenRequestError(str(e))
        user = None
        if authorization and authorization.strip():
            scheme, credentials = _splitAuthorization(authorization)
            if scheme != "basic":
                raise Unauthorized(self._basicChallenge(), "the token endpoint takes a user name and password")
            user = await self._checkBasic(credentials, client)
            if user is None:
                raise Unauthorized(self._basicChallenge(), "invalid username or password")
        grants = OrderedDict()
        for rtype, name, actions in requested:
            granted = grants.setdefault((rtype, name), [])
            for action in actions:
                wanted = ACTIONS if (action == "*" and rtype == "repository") else (action,)
                for one in wanted:
                    if one not in granted and self._policyAllows(user, rtype, name, one, user is not None):
                        granted.append(one)
        now = self._clock.seconds()
        claims = _tokens.makeClaims(
            token.issuer, user or "", token.service, now, token.expiration,
            [(rtype, name, actions) for (rtype, name), actions in grants.items()],
        )
        signed = _tokens.sign(self._signingKey, self._signingKid, claims)
        return {
            "token": signed,
            "access_token": signed,
            "expires_in": token.expiration,
            "issued_at": _tokens.rfc3339(now),
        }

    def publicJWKS(self):
        """The built-in signing key as a JWKS (for other services that
        should trust our tokens); None when there is no built-in endpoint."""
        if self._signingKey is None:
            return None
        return {"keys": [_keys.publicJWK(self._signingKey.public_key(), self._signingKid)]}


def _authenticated(identity):
    """Whether a caller counts as logged in when there is no policy: a
    user, or the holder of an external token (its server vouches for it)."""
    return identity.name is not None or identity.external


def _safeBaseURL(baseURL):
    """C{baseURL} without a trailing slash if it is ``http(s)://host[:port]``
    with nothing that could break out of a quoted header value, else ""."""
    if isinstance(baseURL, bytes):
        baseURL = baseURL.decode("latin-1")
    baseURL = baseURL.rstrip("/")
    scheme, sep, host = baseURL.partition("://")
    if scheme not in ("http", "https") or not sep or not host:
        return ""
    allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]")
    if not set(host) <= allowed:
        return ""
    return baseURL
