"""The ``auth:`` section of a config flavor, checked once at start.

No ``auth`` key (or ``auth: null``): no authentication, everybody may do
everything.  Otherwise::

    auth:
      realm: txregistry                    # realm of Basic challenges (default txregistry)
      htpasswd: /etc/txregistry/htpasswd   # Apache htpasswd file, bcrypt only (htpasswd -B)
      mode: bearer                         # basic | bearer; default bearer
      cache_seconds: 60                    # remember a good password this long (0: never)
      login_failures: 10                   # failed logins per client address and window (0: no limit)
      login_failure_window: 60             #   then 429 until the oldest is this many seconds old
      client_address_header: X-Forwarded-For   # behind a proxy: the client is its last entry
      token:                               # bearer mode only
        service: txregistry                # the aud of tokens; default txregistry
        issuer: txregistry                 # iss; a list accepts several, the first is used to sign
        realm: /auth/token                 # token endpoint URL; relative = served by this registry
        issue: true                        # built-in endpoint; default: on when htpasswd is set
        key: /etc/txregistry/token.pem     # its EC or RSA private key; absent: made at start
        expiration: 300                    # token lifetime, 60..86400 s
        rootcertbundle: /etc/txregistry/token-certs.pem   # keys of EXTERNAL token servers
        jwks: /etc/txregistry/jwks.json                   #   (either or both)
      policy:
        admins: [root]                     # may do everything
        anonymous:                         # for everybody, logged in or not
          - {repository: "public/*", actions: [pull]}
        users:
          alice:
            - {repository: "team-a/*", actions: [pull, push]}
        groups:
          devs:
            members: [bob, carol]
            rules:
              - {repository: "team-b/*", actions: [pull, push, delete]}

``mode: basic``: clients send the password with each request (``Basic``).
``mode: bearer``: clients get a token from ``token.realm`` (Docker's token
authentication), from the built-in endpoint (which checks the htpasswd file)
and/or from an external token server whose keys are in ``rootcertbundle``
(PEM certificates or public keys) or ``jwks``.  Bearer mode needs htpasswd
or external keys; basic mode needs htpasswd.

Globs and actions are described in L{txregistry.auth.policy}: ``*`` matches
any characters including ``/``; actions are pull, push, delete or ``*``.
Without a ``policy`` key every logged-in user may do everything and
anonymous callers nothing (as Distribution with htpasswd), and tokens of
external servers are trusted for whatever they grant.  With one (even an
empty ``policy:``, which grants nothing), a token grants only what it lists
*and* the policy allows its subject (``sub``, matched to ``users``,
``groups`` and ``admins`` by name).

Relative paths are relative to the config file's directory.  Every problem
(unknown key, unreadable file, a non-bcrypt htpasswd line, a bad glob or
action, an unusable key) is an L{AuthConfigError} of one line naming the key.
"""

import os
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from txregistry.auth import keys as _keys
from txregistry.auth.htpasswd import HtpasswdError, parseHtpasswd
from txregistry.auth.policy import Group, Policy, Rule, expandActions

MODES = ("basic", "bearer")
SECTION_KEYS = (
    "realm", "htpasswd", "mode", "cache_seconds", "login_failures", "login_failure_window",
    "client_address_header", "token", "policy",
)
TOKEN_KEYS = ("service", "issuer", "realm", "issue", "key", "expiration", "rootcertbundle", "jwks")
POLICY_KEYS = ("admins", "anonymous", "users", "groups")
RULE_KEYS = ("repository", "actions")
GROUP_KEYS = ("members", "rules")

DEFAULT_REALM = "txregistry"
DEFAULT_SERVICE = "txregistry"
DEFAULT_ISSUER = "txregistry"
DEFAULT_TOKEN_REALM = "/auth/token"
DEFAULT_EXPIRATION = 300
EXPIRATION_RANGE = (60, 86400)  # the spec: never less than 60 s
DEFAULT_CACHE_SECONDS = 60
CACHE_RANGE = (0, 3600)
DEFAULT_LOGIN_FAILURES = 10
LOGIN_FAILURES_RANGE = (0, 100000)
DEFAULT_LOGIN_FAILURE_WINDOW = 60
LOGIN_FAILURE_WINDOW_RANGE = (1, 86400)
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
LEEWAY = 30  # seconds of clock skew tolerated on exp/nbf

# Values that end up inside a quoted WWW-Authenticate parameter.
_HEADER_SAFE = re.compile(r'^[^"\\\x00-\x1f\x7f]+$')


class AuthConfigError(ValueError):
    """Bad auth configuration; the message is one line naming the key."""


@dataclass(frozen=True)
class TokenSettings:
    service: str
    issuers: tuple  # accepted iss values; issuers[0] signs
    realm: str  # token endpoint URL, possibly relative ("/auth/token")
    issue: bool  # built-in token endpoint on
    expiration: int
    signingKey: object = field(default=None, repr=False)  # private key, None: made at start
    keyFile: str = None
    trustedKeys: tuple = ()  # TrustedKeys of external token servers
    rootCerts: tuple = field(default=(), repr=False)  # certificates of rootcertbundle (x5c chains)
    leeway: int = LEEWAY

    @property
    def issuer(self):
        return self.issuers[0]


@dataclass(frozen=True)
class AuthSettings:
    mode: str  # "basic" or "bearer"
    realm: str  # Basic realm
    htpasswd: str = None  # path, or None
    users: dict = field(default_factory=dict, repr=False)  # user -> bcrypt hash (bytes)
    token: TokenSettings = None  # bearer mode only
    policy: Policy = None  # None: logged-in users may do everything
    cacheSeconds: int = DEFAULT_CACHE_SECONDS
    # Password checks that failed, per client address, before more get 429
    # (0: no limit), counted over the last loginFailureWindow seconds.
    loginFailures: int = DEFAULT_LOGIN_FAILURES
    loginFailureWindow: int = DEFAULT_LOGIN_FAILURE_WINDOW
    # A header whose last entry is the client's address (set by a proxy in
    # front); None: the TCP peer is the client.
    clientAddressHeader: str = None
    warnings: tuple = ()  # lines to log at start

    @property
    def tokenEndpointPath(self):
        """The path the web app must route to the built-in token endpoint
        (GET, parameters service and scope), or None when it is off."""
        if self.token is None or not self.token.issue:
            return None
        return urlsplit(self.token.realm).path or "/"


class _Parser:
    def __init__(self, source, baseDir):
        self.source = source
        self.baseDir = baseDir or os.getcwd()
        self.warnings = []

    def fail(self, key, message):
        return AuthConfigError("%s: %s %s" % (self.source, key, message))

    def mapping(self, value, key, known):
        if not isinstance(value, dict):
            raise self.fail(key, "must be a mapping of %s" % ", ".join(known))
        unknown = sorted(str(k) for k in value if k not in known)
        if unknown:
            raise self.fail(key, "has unknown keys: %s (known: %s)" % (", ".join(unknown), ", ".join(known)))
        return {k: v for k, v in value.items() if v is not None}

    def string(self, value, key, headerSafe=False):
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "must be a non-empty string, not %r" % (value,))
        if headerSafe and not _HEADER_SAFE.match(value):
            raise self.fail(key, "must not contain quotes, backslashes or control characters")
        return value

    def integer(self, value, key, default, bounds):
        if value is None:
            return default
        low, high = bounds
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail(key, "must be an integer from %d to %d, not %r" % (low, high, value))
        return value

    def boolean(self, value, key, default):
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.fail(key, "must be true or false, not %r" % (value,))
        return value

    def path(self, value, key):
        value = self.string(value, key)
        path = os.path.expanduser(value)
        if not os.path.isabs(path):
            path = os.path.join(self.baseDir, path)
        return os.path.normpath(path)

    def readable(self, path, key, loader):
        try:
            return loader(path)
        except OSError as e:
            raise self.fail(key, "cannot read %s: %s" % (path, e.strerror or e))
        except ValueError as e:
            raise self.fail(key, "%s: %s" % (path, e))

    def names(self, value, key):
        if not isinstance(value, list) or not all(isinstance(n, str) and n for n in value):
            raise self.fail(key, "must be a list of user names, not %r" % (value,))
        return frozenset(value)

    def rules(self, value, key):
        if not isinstance(value, list):
            raise self.fail(key, "must be a list of {repository: GLOB, actions: [pull, push, delete]}")
        rules = []
        for index, item in enumerate(value):
            where = "%s[%d]" % (key, index)
            item = self.mapping(item, where, RULE_KEYS)
            for required in RULE_KEYS:
                if required not in item:
                    raise self.fail(where, "needs %s" % (required,))
            globs = item["repository"]
            if isinstance(globs, str):
                globs = [globs]
            if not isinstance(globs, list) or not globs:
                raise self.fail(where + ".repository", "must be a glob or a list of globs")
            actions = item["actions"]
            if not isinstance(actions, list) or not actions or not all(isinstance(a, str) for a in actions):
                raise self.fail(where + ".actions", "must be a list of pull, push, delete or *, not %r" % (actions,))
            try:
                expandActions(actions)
            except ValueError as e:
                raise self.fail(where + ".actions", "has an %s" % (e,))
            for glob in globs:
                try:
                    rules.append(Rule.make(glob, actions))
                except ValueError as e:
                    raise self.fail(where + ".repository", "glob %r %s" % (glob, e))
        return tuple(rules)

    def policy(self, value):
        value = self.mapping(value, "auth.policy", POLICY_KEYS)
        admins = self.names(value.get("admins", []), "auth.policy.admins")
        anonymous = self.rules(value.get("anonymous", []), "auth.policy.anonymous")
        users = {}
        rawUsers = value.get("users", {})
        if not isinstance(rawUsers, dict):
            raise self.fail("auth.policy.users", "must be a mapping of user name to rules")
        for name, rules in rawUsers.items():
            if not isinstance(name, str) or not name:
                raise self.fail("auth.policy.users", "has a user name that is not a string: %r" % (name,))
            users[name] = self.rules(rules if rules is not None else [], "auth.policy.users.%s" % name)
        groups = {}
        rawGroups = value.get("groups", {})
        if not isinstance(rawGroups, dict):
            raise self.fail("auth.policy.groups", "must be a mapping of group name to {members, rules}")
        for name, group in rawGroups.items():
            if not isinstance(name, str) or not name:
                raise self.fail("auth.policy.groups", "has a group name that is not a string: %r" % (name,))
            key = "auth.policy.groups.%s" % name
            group = self.mapping(group, key, GROUP_KEYS)
            members = self.names(group.get("members", []), key + ".members")
            groups[name] = Group(name, members, self.rules(group.get("rules", []), key + ".rules"))
        return Policy(admins=admins, anonymous=anonymous, users=users, groups=groups)

    def token(self, value, hasHtpasswd):
        value = self.mapping(value, "auth.token", TOKEN_KEYS)
        service = self.string(value.get("service", DEFAULT_SERVICE), "auth.token.service", headerSafe=True)
        issuers = value.get("issuer", DEFAULT_ISSUER)
        if isinstance(issuers, str):
            issuers = [issuers]
        if not isinstance(issuers, list) or not issuers:
            raise self.fail("auth.token.issuer", "must be a string or a list of strings")
        issuers = tuple(self.string(i, "auth.token.issuer") for i in issuers)
        issue = self.boolean(value.get("issue"), "auth.token.issue", hasHtpasswd)
        expiration = self.integer(value.get("expiration"), "auth.token.expiration", DEFAULT_EXPIRATION, EXPIRATION_RANGE)
        trusted = []
        certs = ()
        if "rootcertbundle" in value:
            path = self.path(value["rootcertbundle"], "auth.token.rootcertbundle")
            bundleKeys, certs = self.readable(path, "auth.token.rootcertbundle", _keys.loadPublicBundle)
            trusted.extend(bundleKeys)
        if "jwks" in value:
            path = self.path(value["jwks"], "auth.token.jwks")
            trusted.extend(self.readable(path, "auth.token.jwks", _keys.loadJWKS))
        signingKey = keyFile = None
        if "key" in value:
            if not issue:
                raise self.fail("auth.token.key", "is set but the built-in token endpoint is off (auth.token.issue)")
            keyFile = self.path(value["key"], "auth.token.key")
            signingKey = self.readable(keyFile, "auth.token.key", _keys.loadPrivateKey)
        if not issue and not trusted:
            raise self.fail(
                "auth.token",
                "needs rootcertbundle or jwks (the keys of the token server) when the built-in token endpoint is off",
            )
        if "realm" in value:
            realm = self.string(value["realm"], "auth.token.realm", headerSafe=True)
        elif issue:
            realm = DEFAULT_TOKEN_REALM
        else:
            raise self.fail("auth.token.realm", "must be given: the URL of the external token server")
        parts = urlsplit(realm)
        if realm.startswith("/"):
            if not issue:
                raise self.fail("auth.token.realm", "must be an absolute http(s) URL of the external token server")
            if parts.scheme or parts.netloc or parts.query or parts.fragment or " " in realm:
                raise self.fail("auth.token.realm", "must be a path such as /auth/token or an http(s) URL")
        elif parts.scheme not in ("http", "https") or not parts.netloc or " " in realm:
            raise self.fail("auth.token.realm", "must be a path such as /auth/token or an http(s) URL, not %r" % (realm,))
        return TokenSettings(
            service=service,
            issuers=issuers,
            realm=realm,
            issue=issue,
            expiration=expiration,
            signingKey=signingKey,
            keyFile=keyFile,
            trustedKeys=tuple(trusted),
            rootCerts=tuple(certs),
        )

    def parse(self, raw):
        section = self.mapping(raw, "auth", SECTION_KEYS)
        realm = self.string(section.get("realm", DEFAULT_REALM), "auth.realm", headerSafe=True)
        cacheSeconds = self.integer(section.get("cache_seconds"), "auth.cache_seconds", DEFAULT_CACHE_SECONDS, CACHE_RANGE)
        loginFailures = self.integer(
            section.get("login_failures"), "auth.login_failures", DEFAULT_LOGIN_FAILURES, LOGIN_FAILURES_RANGE
        )
        loginFailureWindow = self.integer(
            section.get("login_failure_window"), "auth.login_failure_window",
            DEFAULT_LOGIN_FAILURE_WINDOW, LOGIN_FAILURE_WINDOW_RANGE,
        )
        clientAddressHeader = section.get("client_address_header")
        if clientAddressHeader is not None:
            clientAddressHeader = self.string(clientAddressHeader, "auth.client_address_header")
            if not _HEADER_NAME.match(clientAddressHeader):
                raise self.fail("auth.client_address_header", "must be an HTTP header name, not %r" % (clientAddressHeader,))
        htpasswd = None
        users = {}
        if "htpasswd" in section:
            htpasswd = self.path(section["htpasswd"], "auth.htpasswd")
            users = self.readable(htpasswd, "auth.htpasswd", self._loadHtpasswd)
            if not users:
                self.warnings.append("%s: auth.htpasswd: %s has no users" % (self.source, htpasswd))
        mode = section.get("mode")
        if mode is not None and mode not in MODES:
            raise self.fail("auth.mode", "must be basic or bearer, not %r" % (mode,))
        if mode == "basic" and htpasswd is None:
            raise self.fail("auth.mode", "basic needs auth.htpasswd")
        if htpasswd is None and "token" not in section:
            raise self.fail("auth", "needs htpasswd (users and passwords) or token.rootcertbundle / token.jwks "
                                    "(keys of an external token server)")
        if mode is None:
            mode = "bearer"
        token = None
        if mode == "basic":
            if "token" in section:
                raise self.fail("auth.token", "is set but auth.mode is basic (use mode: bearer for tokens)")
        else:
            token = self.token(section.get("token", {}), htpasswd is not None)
        policy = None
        if "policy" in raw:
            # An empty (or all commented out) policy denies, it does not allow all.
            policy = self.policy(raw["policy"] if raw["policy"] is not None else {})
        if policy is not None and htpasswd is not None and (token is None or not token.trustedKeys):
            unknown = sorted(policy.mentionedUsers() - set(users))
            if unknown:
                self.warnings.append(
                    "%s: auth.policy names users who are not in %s: %s" % (self.source, htpasswd, ", ".join(unknown))
                )
        return AuthSettings(
            mode=mode,
            realm=realm,
            htpasswd=htpasswd,
            users=users,
            token=token,
            policy=policy,
            cacheSeconds=cacheSeconds,
            loginFailures=loginFailures,
            loginFailureWindow=loginFailureWindow,
            clientAddressHeader=clientAddressHeader,
            warnings=tuple(self.warnings),
        )

    @staticmethod
    def _loadHtpasswd(path):
        with open(path, "rb") as f:
            data = f.read()
        try:
            return parseHtpasswd(data)
        except HtpasswdError as e:
            raise ValueError(str(e))


def parseAuth(section, source, baseDir):
    """Check the ``auth:`` value of a flavor; C{None} (or C{False}) means
    authentication is off and gives C{None}.  C{source} (the config file's
    name) starts every error line; relative paths are taken from C{baseDir}.
    Reads the htpasswd and key files once, now."""
    if section is None or section is False:
        return None
    return _Parser(source, baseDir).parse(section)
