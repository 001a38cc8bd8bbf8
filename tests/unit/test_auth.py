"""The Authorizer with a real thread pool: Basic logins and their cache, the
built-in token endpoint, and the access-policy matrix for both schemes."""

import base64
import dataclasses
import os
import threading
import time

import jwt
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.internet.task import Clock
from twisted.trial import unittest

from tests.unit.test_auth_helpers import (
    async_test,
    basic,
    bcryptLine,
    bearer,
    settingsFrom,
    startPool,
    writeHtpasswd,
)
from txregistry.auth import ACTIONS, Authorizer, Forbidden, Identity, LoginThrottled, TokenRequestError, Unauthorized
from txregistry.auth import authorizer as module
from txregistry.auth import throttle
from txregistry.auth.policy import Policy

PASSWORDS = {
    "alice": "alice-pw",
    "bob": "bob-pw",
    "carol": "carol-pw",
    "dave": "dave-pw",
    "root": "root-pw",
}

POLICY = """
  policy:
    admins: [root]
    anonymous:
      - {repository: "public/*", actions: [pull]}
    users:
      alice:
        - {repository: "team-a/*", actions: [pull, push]}
        - {repository: alice, actions: ["*"]}
    groups:
      devs:
        members: [bob, carol]
        rules:
          - {repository: "team-b/*", actions: [pull, push, delete]}
      readers:
        members: [carol, dave]
        rules:
          - {repository: ["team-a/*", "lib?/x"], actions: [pull]}
"""

REPOSITORIES = [
    "public/app", "team-a/app", "team-a/x/y", "team-a", "team-b/app",
    "alice", "secret/app", "lib1/x", "libx/x", "lib10/x",
]

# Written out by hand, not computed: who may do what.  Absent = nothing.
EXPECTED = {
    None: {"public/app": "pull"},
    "alice": {
        "public/app": "pull",
        "team-a/app": "pull push",
        "team-a/x/y": "pull push",
        "alice": "pull push delete",
    },
    "bob": {"public/app": "pull", "team-b/app": "pull push delete"},
    "carol": {
        "public/app": "pull",
        "team-a/app": "pull",
        "team-a/x/y": "pull",
        "team-b/app": "pull push delete",
        "lib1/x": "pull",
        "libx/x": "pull",
    },
    "dave": {"public/app": "pull", "team-a/app": "pull", "team-a/x/y": "pull", "lib1/x": "pull", "libx/x": "pull"},
    "root": {repo: "pull push delete" for repo in REPOSITORIES},
}


def expected(user, repository):
    return set(EXPECTED[user].get(repository, "").split())


class AuthTestCase(unittest.TestCase):
    mode = "bearer"
    extra = POLICY

    def setUp(self):
        self.tmp = self.mktemp()
        os.makedirs(self.tmp)
        writeHtpasswd(os.path.join(self.tmp, "htpasswd"), PASSWORDS)
        self.settings = settingsFrom(self.tmp, "auth:\n  htpasswd: htpasswd\n  mode: %s\n%s" % (self.mode, self.extra))
        self.pool = startPool(self)
        self.clock = Clock()
        self.clock.advance(time.time())
        self.authorizer = Authorizer(self.settings, reactor, self.pool, clock=self.clock)

    def header(self, user):
        return None if user is None else basic(user, PASSWORDS[user])


class BasicMatrixTests(AuthTestCase):
    """Basic scheme: every identity, every repository, every action."""

    mode = "basic"

    @async_test
    async def test_matrix(self):
        wrong, missing, checked = [], [], 0
        for user in EXPECTED:
            identity = await self.authorizer.authenticate(self.header(user), [])
            self.assertEqual(identity.name, user)
            self.assertEqual(identity.scheme, "anonymous" if user is None else "basic")
            for repository in REPOSITORIES:
                for action in ACTIONS:
                    checked += 1
                    want = action in expected(user, repository)
                    got = self.authorizer.allowed(identity, repository, action)
                    if got and not want:
                        wrong.append((user, repository, action))
                    if want and not got:
                        missing.append((user, repository, action))
                    scope = [("repository", repository, [action])]
                    if want:
                        self.authorizer.require(identity, scope)
                    elif user is None:
                        with self.assertRaises(Unauthorized) as info:
                            self.authorizer.require(identity, scope)
                        self.assertEqual(info.exception.challenge, 'Basic realm="txregistry"')
                    else:
                        self.assertRaises(Forbidden, self.authorizer.require, identity, scope)
        self.assertEqual(wrong, [], "wrong grants")
        self.assertEqual(missing, [], "missing grants")
        self.assertEqual(checked, len(EXPECTED) * len(REPOSITORIES) * len(ACTIONS))

    @async_test
    async def test_wrongPasswordAndUnknownUser(self):
        for header in (
            basic("alice", "bob-pw"),
            basic("alice", "alice-pw "),
            basic("alice", ""),
            basic("Alice", "alice-pw"),
            basic("mallory", "alice-pw"),
            basic("", ""),
            b"Basic !!!not-base64",
            b"Basic " + base64.b64encode(b"no-colon"),
            b"Basic " + base64.b64encode(b"\xff\xfe:alice-pw"),
            b"Basic",
            b"Digest username=alice",
            b"Bearer abc.def.ghi",  # basic mode takes no tokens
        ):
            with self.assertRaises(Unauthorized, msg=header) as info:
                await self.authorizer.authenticate(header, ["repository:team-a/app:pull"])
            self.assertEqual(info.exception.challenge, 'Basic realm="txregistry"')
            self.assertTrue(info.exception.message)

    @async_test
    async def test_headerAsStr(self):
        identity = await self.authorizer.authenticate(basic("alice", "alice-pw").decode(), [])
        self.assertEqual(identity.name, "alice")
        identity = await self.authorizer.authenticate("", [])
        self.assertIsNone(identity.name)

    @async_test
    async def test_identityCarriesGroupsAndAdmin(self):
        carol = await self.authorizer.authenticate(self.header("carol"), [])
        self.assertEqual((carol.groups, carol.admin, carol.tokenAccess), ({"devs", "readers"}, False, None))
        root = await self.authorizer.authenticate(self.header("root"), [])
        self.assertTrue(root.admin)

    @async_test
    async def test_visible(self):
        for user in EXPECTED:
            identity = await self.authorizer.authenticate(self.header(user), [])
            shown = [r for r in REPOSITORIES if self.authorizer.visible(identity, r)]
            self.assertEqual(shown, [r for r in REPOSITORIES if "pull" in expected(user, r)], user)

    def test_catalogScopeOpenToAll(self):
        self.assertTrue(self.authorizer.allowedScope(Identity(), "registry", "catalog", "*"))
        self.assertFalse(self.authorizer.allowedScope(Identity(), "registry", "catalog", "pull"))
        self.assertFalse(self.authorizer.allowedScope(Identity("root", admin=True), "other", "x", "pull"))

    def test_issueTokenNeedsBearerMode(self):
        d = ensureDeferred(self.authorizer.issueToken(None, None, []))
        self.failureResultOf(d, TokenRequestError)


class BearerMatrixTests(AuthTestCase):
    """Bearer scheme through the built-in token endpoint: token grants and
    what the registry then allows, for every identity, repository, action."""

    async def tokenFor(self, user, scopes):
        answer = await self.authorizer.issueToken(self.header(user), "txregistry", scopes)
        return answer["token"]

    @async_test
    async def test_matrix(self):
        wrong, missing = [], []
        for user in EXPECTED:
            for repository in REPOSITORIES:
                for asked in ("pull,push,delete", "*"):
                    token = await self.tokenFor(user, ["repository:%s:%s" % (repository, asked)])
                    claims = jwt.decode(token, options={"verify_signature": False})
                    self.assertEqual(claims["sub"], user or "")
                    [entry] = claims["access"]
                    self.assertEqual((entry["type"], entry["name"]), ("repository", repository))
                    self.assertEqual(set(entry["actions"]), expected(user, repository), (user, repository))
                    identity = await self.authorizer.authenticate(bearer(token), [])
                    self.assertEqual((identity.name, identity.scheme), (user, "bearer"))
                    for other in REPOSITORIES:
                        for action in ACTIONS:
                            want = other == repository and action in expected(user, repository)
                            got = self.authorizer.allowed(identity, other, action)
                            if got and not want:
                                wrong.append((user, repository, other, action))
                            if want and not got:
                                missing.append((user, repository, other, action))
                            scope = [("repository", other, [action])]
                            if want:
                                self.authorizer.require(identity, scope)
                            else:
                                with self.assertRaises(Unauthorized) as info:
                                    self.authorizer.require(identity, scope)
                                self.assertIn('error="insufficient_scope"', info.exception.challenge)
                                self.assertIn('scope="repository:%s:%s"' % (other, action), info.exception.challenge)
        self.assertEqual(wrong, [], "wrong grants")
        self.assertEqual(missing, [], "missing grants")

    @async_test
    async def test_wrongPasswordGetsNoToken(self):
        for header in (basic("alice", "bob-pw"), basic("mallory", "x"), b"Basic ###", b"Bearer x.y.z"):
            with self.assertRaises(Unauthorized) as info:
                await self.authorizer.issueToken(header, "txregistry", ["repository:team-a/app:pull"])
            self.assertEqual(info.exception.challenge, 'Basic realm="txregistry"')

    @async_test
    async def test_basicRejectedOnRegistryInBearerMode(self):
        with self.assertRaises(Unauthorized) as info:
            await self.authorizer.authenticate(self.header("alice"), ["repository:team-a/app:push"],
                                               baseURL="http://reg:5000")
        self.assertEqual(
            info.exception.challenge,
            'Bearer realm="http://reg:5000/auth/token",service="txregistry",scope="repository:team-a/app:push"',
        )

    @async_test
    async def test_anonymousWithoutHeaderIsChallenged(self):
        identity = await self.authorizer.authenticate(None, [])
        self.assertIsNone(identity.tokenAccess)
        # The anonymous rules hold without a token too (curl can pull public images) ...
        self.assertTrue(self.authorizer.allowed(identity, "public/app", "pull"))
        self.authorizer.require(identity, ["repository:public/app:pull"])
        # ... and the rest gets a challenge, so that the client fetches a token.
        with self.assertRaises(Unauthorized) as info:
            self.authorizer.require(identity, ["repository:team-a/app:pull"])
        self.assertNotIn("error=", info.exception.challenge)
        self.assertIn('scope="repository:team-a/app:pull"', info.exception.challenge)

    @async_test
    async def test_severalScopesAndCatalog(self):
        token = await self.tokenFor("alice", [
            "repository:team-a/app:pull repository:team-b/app:pull",
            "repository:team-a/app:push,delete",
            "registry:catalog:*",
            "repository(plugin):team-a/app:pull",
            "repository:alice:frobnicate",
        ])
        claims = jwt.decode(token, options={"verify_signature": False})
        self.assertEqual(claims["access"], [
            {"type": "repository", "name": "team-a/app", "actions": ["pull", "push"]},
            {"type": "repository", "name": "team-b/app", "actions": []},
            {"type": "registry", "name": "catalog", "actions": ["*"]},
            {"type": "repository(plugin)", "name": "team-a/app", "actions": []},
            {"type": "repository", "name": "alice", "actions": []},
        ])
        identity = await self.authorizer.authenticate(bearer(token), [])
        self.assertTrue(self.authorizer.allowedScope(identity, "registry", "catalog", "*"))
        # A catalog token lists what the subject may pull, whatever else it grants.
        self.assertTrue(self.authorizer.visible(identity, "alice"))
        self.assertFalse(self.authorizer.visible(identity, "team-b/app"))
        # Without the catalog grant, a bearer identity may not list.
        other = await self.authorizer.authenticate(bearer(await self.tokenFor("alice", [])), [])
        self.assertFalse(self.authorizer.allowedScope(other, "registry", "catalog", "*"))

    @async_test
    async def test_loginTokenWithoutScope(self):
        # docker login: GET <realm>?service=...&account=alice (no scope)
        answer = await self.authorizer.issueToken(self.header("alice"), "txregistry", [])
        self.assertEqual(set(answer), {"token", "access_token", "expires_in", "issued_at"})
        self.assertEqual(answer["token"], answer["access_token"])
        self.assertEqual(answer["expires_in"], 300)
        self.assertEqual(answer["issued_at"], time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(self.clock.seconds()))))
        identity = await self.authorizer.authenticate(bearer(answer["token"]), [])
        self.assertEqual((identity.name, identity.tokenAccess), ("alice", {}))

    @async_test
    async def test_tokenRequestErrors(self):
        for service, scopes in (("elsewhere", []), (None, ["repository:a"]), ("txregistry", ["repository:a:pull,"])):
            with self.assertRaises(TokenRequestError):
                await self.authorizer.issueToken(None, service, scopes)
        # service is optional
        answer = await self.authorizer.issueToken(None, None, ["repository:public/app:pull"])
        self.assertTrue(answer["token"])

    @async_test
    async def test_policyChangeLimitsOldTokens(self):
        # A token granted by one configuration is limited by the policy in
        # force when it is used (same signing key, new settings).
        token = await self.tokenFor("alice", ["repository:team-a/app:pull,push"])

        tokenSettings = dataclasses.replace(self.settings.token, signingKey=self.authorizer._signingKey)
        stricter = dataclasses.replace(self.settings, token=tokenSettings, policy=Policy())
        other = Authorizer(stricter, reactor, self.pool, clock=self.clock)
        identity = await other.authenticate(bearer(token), [])
        self.assertEqual(identity.tokenAccess[("repository", "team-a/app")], {"pull", "push"})
        self.assertFalse(other.allowed(identity, "team-a/app", "pull"))


class NoPolicyTests(AuthTestCase):
    """Without a policy, logged-in users may do everything, anonymous nothing."""

    extra = ""

    @async_test
    async def test_bearer(self):
        token = (await self.authorizer.issueToken(self.header("dave"), None, ["repository:any/thing:*"]))["token"]
        claims = jwt.decode(token, options={"verify_signature": False})
        self.assertEqual(claims["access"][0]["actions"], ["pull", "push", "delete"])
        identity = await self.authorizer.authenticate(bearer(token), [])
        self.assertTrue(self.authorizer.allowed(identity, "any/thing", "delete"))
        self.assertFalse(self.authorizer.allowed(identity, "any/other", "pull"))
        anonymous = (await self.authorizer.issueToken(None, None, ["repository:any/thing:pull"]))["token"]
        claims = jwt.decode(anonymous, options={"verify_signature": False})
        self.assertEqual((claims["sub"], claims["access"][0]["actions"]), ("", []))

    @async_test
    async def test_anonymousCatalogTokenSeesNothing(self):
        token = (await self.authorizer.issueToken(None, None, ["registry:catalog:*"]))["token"]
        identity = await self.authorizer.authenticate(bearer(token), [])
        self.assertEqual((identity.name, identity.external), (None, False))
        self.assertTrue(self.authorizer.allowedScope(identity, "registry", "catalog", "*"))
        self.assertFalse(self.authorizer.visible(identity, "any/thing"))
        token = (await self.authorizer.issueToken(self.header("dave"), None, ["registry:catalog:*"]))["token"]
        identity = await self.authorizer.authenticate(bearer(token), [])
        self.assertTrue(self.authorizer.visible(identity, "any/thing"))


class NoPolicyBasicTests(AuthTestCase):
    mode = "basic"
    extra = ""

    @async_test
    async def test_basic(self):
        identity = await self.authorizer.authenticate(self.header("dave"), [])
        for action in ACTIONS:
            self.assertTrue(self.authorizer.allowed(identity, "any/thing", action))
            self.assertFalse(self.authorizer.allowed(Identity(), "any/thing", action))
        self.assertTrue(self.authorizer.visible(identity, "x"))
        self.assertFalse(self.authorizer.visible(Identity(), "x"))


class CacheTests(AuthTestCase):
    """Docker sends Basic credentials with every request: a success is
    remembered briefly, a failure never lets a wrong password through."""

    mode = "basic"

    @async_test
    async def test_successIsCached(self):
        for _ in range(5):
            identity = await self.authorizer.authenticate(self.header("alice"), [])
            self.assertEqual(identity.name, "alice")
        self.assertEqual(self.pool.calls, 1)

    @async_test
    async def test_cacheDoesNotLetAWrongPasswordThrough(self):
        await self.authorizer.authenticate(self.header("alice"), [])
        self.assertEqual(self.pool.calls, 1)
        for wrongHeader in (basic("alice", "alice-pw2"), basic("alice", "alice-p"), basic("bob", "alice-pw"),
                            basic("alice", "ALICE-PW")):
            with self.assertRaises(Unauthorized):
                await self.authorizer.authenticate(wrongHeader, [])
        self.assertEqual(self.pool.calls, 5)  # each wrong one was checked
        # Failures are not remembered as successes, nor do they spoil the good entry.
        with self.assertRaises(Unauthorized):
            await self.authorizer.authenticate(basic("alice", "alice-pw2"), [])
        self.assertEqual((await self.authorizer.authenticate(self.header("alice"), [])).name, "alice")
        self.assertEqual(self.pool.calls, 6)

    @async_test
    async def test_failureThenSuccess(self):
        with self.assertRaises(Unauthorized):
            await self.authorizer.authenticate(basic("bob", "nope"), [])
        self.assertEqual((await self.authorizer.authenticate(self.header("bob"), [])).name, "bob")

    @async_test
    async def test_expires(self):
        await self.authorizer.authenticate(self.header("alice"), [])
        self.clock.advance(59)
        await self.authorizer.authenticate(self.header("alice"), [])
        self.assertEqual(self.pool.calls, 1)
        self.clock.advance(2)
        await self.authorizer.authenticate(self.header("alice"), [])
        self.assertEqual(self.pool.calls, 2)

    @async_test
    async def test_concurrentChecksShareOneBcrypt(self):
        right = [ensureDeferred(self.authorizer.authenticate(self.header("carol"), [])) for _ in range(10)]
        wrong = [ensureDeferred(self.authorizer.authenticate(basic("carol", "x"), [])) for _ in range(3)]
        names = await gatherResults(right)
        self.assertEqual(names, [Identity("carol", frozenset({"devs", "readers"}), False, None, "basic")] * 10)
        for d in wrong:
            with self.assertRaises(Unauthorized):
                await d
        self.assertEqual(self.pool.calls, 2)

    @async_test
    async def test_noCache(self):
        authorizer = Authorizer(dataclasses.replace(self.settings, cacheSeconds=0), reactor, self.pool,
                                clock=self.clock)
        for _ in range(3):
            await authorizer.authenticate(self.header("alice"), [])
        self.assertEqual(self.pool.calls, 3)

    @async_test
    async def test_unknownUserCostsABcryptCheckToo(self):
        with self.assertRaises(Unauthorized):
            await self.authorizer.authenticate(basic("nobody", "x"), [])
        self.assertEqual(self.pool.calls, 1)

    @async_test
    async def test_bcryptRunsOffTheReactorThread(self):

        threads = []
        original = module._checkPassword

        def spy(password, hashed):
            threads.append(threading.current_thread())
            return original(password, hashed)

        self.patch(module, "_checkPassword", spy)
        await self.authorizer.authenticate(self.header("dave"), [])
        self.assertEqual(len(threads), 1)
        self.assertIsNot(threads[0], threading.main_thread())


class ThrottleTests(AuthTestCase):
    """Failed logins are counted per client address: past the limit, its
    password checks are refused (429) without running bcrypt, until the
    oldest failure leaves the window."""

    mode = "basic"
    extra = POLICY + "  login_failures: 3\n  login_failure_window: 60\n"

    async def guess(self, client, authorizer=None):
        with self.assertRaises(Unauthorized):
            await (authorizer or self.authorizer).authenticate(basic("alice", "guess"), [], client=client)

    @async_test
    async def test_limitThenRefusedWithoutBcrypt(self):
        for _ in range(3):
            await self.guess("10.0.0.1")
        self.assertEqual(self.pool.calls, 3)
        # Even the right password is not checked now: that would be a guess.
        with self.assertRaises(LoginThrottled) as caught:
            await self.authorizer.authenticate(self.header("alice"), [], client="10.0.0.1")
        self.assertEqual(caught.exception.retryAfter, 60)
        self.assertEqual(self.pool.calls, 3)
        # Other addresses are not affected.
        self.assertEqual((await self.authorizer.authenticate(self.header("bob"), [], client="10.0.0.2")).name, "bob")

    @async_test
    async def test_windowSlides(self):
        await self.guess("c")
        self.clock.advance(20)
        await self.guess("c")
        await self.guess("c")
        self.clock.advance(30)
        with self.assertRaises(LoginThrottled) as caught:
            await self.authorizer.authenticate(self.header("alice"), [], client="c")
        self.assertEqual(caught.exception.retryAfter, 10)  # the first failure is 50 s old
        self.clock.advance(10)
        self.assertEqual((await self.authorizer.authenticate(self.header("alice"), [], client="c")).name, "alice")
        # Two failures are still in the window: one more and it is closed again.
        await self.guess("c")
        with self.assertRaises(LoginThrottled):
            await self.authorizer.authenticate(basic("alice", "guess"), [], client="c")

    @async_test
    async def test_rememberedPasswordsStillWork(self):
        await self.authorizer.authenticate(self.header("carol"), [], client="nat")
        for _ in range(3):
            await self.guess("nat")
        # Carol's login was checked before: no guess, no bcrypt.
        self.assertEqual((await self.authorizer.authenticate(self.header("carol"), [], client="nat")).name, "carol")
        self.assertEqual(self.pool.calls, 4)

    @async_test
    async def test_checksUnderWayCount(self):
        # A burst of different guesses at once: no more than the limit are
        # checked, the rest refused at once.
        tries = [
            ensureDeferred(self.authorizer.authenticate(basic("alice", "guess%d" % i), [], client="burst"))
            for i in range(8)
        ]
        outcomes = []
        for d in tries:
            try:
                await d
            except LoginThrottled:
                outcomes.append("throttled")
            except Unauthorized:
                outcomes.append("wrong")
        self.assertEqual(sorted(outcomes), ["throttled"] * 5 + ["wrong"] * 3)
        self.assertEqual(self.pool.calls, 3)

    @async_test
    async def test_tokenEndpointToo(self):
        authorizer = Authorizer(
            settingsFrom(self.tmp, "auth:\n  htpasswd: htpasswd\n  login_failures: 2\n"), reactor, self.pool,
            clock=self.clock,
        )
        for _ in range(2):
            with self.assertRaises(Unauthorized):
                await authorizer.issueToken(basic("bob", "guess"), None, [], client="t")
        with self.assertRaises(LoginThrottled):
            await authorizer.issueToken(self.header("bob"), None, [], client="t")
        # Bearer mode takes Basic only at the token endpoint and /v1/search.
        with self.assertRaises(LoginThrottled):
            await authorizer.authenticate(self.header("bob"), [], passwords=True, client="t")
        token = await authorizer.issueToken(self.header("bob"), None, [], client="u")
        self.assertTrue(token["token"])

    @async_test
    async def test_noLimit(self):
        authorizer = Authorizer(dataclasses.replace(self.settings, loginFailures=0), reactor, self.pool,
                                clock=self.clock)
        for _ in range(6):
            await self.guess("x", authorizer)
        self.assertEqual((await authorizer.authenticate(self.header("alice"), [], client="x")).name, "alice")

    @async_test
    async def test_manyAddressesAreForgottenOldestFirst(self):
        self.patch(throttle, "MAX_THROTTLED_CLIENTS", 4)
        for _ in range(3):
            await self.guess("first")
        for client in ("b", "c", "d", "e"):
            await self.guess(client)
        self.assertEqual(self.authorizer.throttledClients, 4)
        self.assertEqual((await self.authorizer.authenticate(self.header("alice"), [], client="first")).name, "alice")


class LongPasswordTests(unittest.TestCase):
    """bcrypt reads 72 bytes of a password, as htpasswd -B did when it made
    the hash: a longer password matches on its first 72 bytes."""

    @async_test
    async def test_longPassword(self):
        tmp = self.mktemp()
        os.makedirs(tmp)
        long = "x" * 72
        with open(os.path.join(tmp, "h"), "w") as f:
            f.write(bcryptLine("u", long) + "\n")
        settings = settingsFrom(tmp, "auth: {htpasswd: h, mode: basic}")
        authorizer = Authorizer(settings, reactor, startPool(self))
        self.assertEqual((await authorizer.authenticate(basic("u", long + "yz"), [])).name, "u")
        with self.assertRaises(Unauthorized):
            await authorizer.authenticate(basic("u", long[:-1]), [])


class TokenCacheTests(AuthTestCase):
    """A verified token is remembered, never past its expiry, and only for
    exactly its own bytes."""

    async def token(self):
        answer = await self.authorizer.issueToken(self.header("alice"), "txregistry",
                                                  ["repository:team-a/app:pull"])
        return answer["token"]

    @async_test
    async def test_cachedUntilExpiry(self):
        token = await self.token()
        calls = []
        real = module._tokens.verify

        def counting(*args):
            calls.append(1)
            return real(*args)

        self.patch(module._tokens, "verify", counting)
        for _ in range(3):
            identity = await self.authorizer.authenticate(bearer(token), [])
            self.assertEqual(identity.name, "alice")
        self.assertEqual(len(calls), 1)
        self.clock.advance(61)  # past the cache's own limit: verified again
        await self.authorizer.authenticate(bearer(token), [])
        self.assertEqual(len(calls), 2)
        # past exp (300 s) and the leeway: refused although it was cached
        self.clock.advance(300)
        with self.assertRaises(Unauthorized):
            await self.authorizer.authenticate(bearer(token), [])

    @async_test
    async def test_otherBytesAreVerified(self):
        token = await self.token()
        await self.authorizer.authenticate(bearer(token), [])
        header, payload, signature = token.split(".")
        for forged in (header + "." + payload + "." + signature[:-2] + "AA", header + "." + payload + ".",
                       token + "x"):
            with self.assertRaises(Unauthorized):
                await self.authorizer.authenticate(bearer(forged), [])
