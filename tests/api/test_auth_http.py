"""Authentication and access policy through HTTP, on an in-process registry
over a real socket (so upload bodies take the streaming path).

The matrix: anonymous, a wrong password, an unknown user and each user of
the policy, times every repository, times pull / push / delete done with
the real requests (several per action), in both schemes (Basic, and bearer
tokens from the built-in endpoint).  The expected grants are written out
by hand below, independently of the policy code; every request must be
granted exactly when the table says so, and a refused write must leave
storage as it was: zero wrong grants.
"""

import base64
import dataclasses
import json
import os
import socket

from twisted.internet import reactor
from twisted.internet.threads import deferToThread
from twisted.python.threadpool import ThreadPool

from tests.api.harness import ChunkedBody, RegistryTestCase, async_test
from tests.unit.test_auth_helpers import claimsFor, ecKey, settingsFrom, signToken, writeHtpasswd
from txregistry import digest as digests
from txregistry.auth import Authorizer

PASSWORDS = {"root": "root-pw", "alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
POLICY = """
  policy:
    admins: [root]
    anonymous:
      - {repository: "public/*", actions: [pull]}
    users:
      alice:
        - {repository: "team-a/*", actions: [pull, push]}
      carol:
        - {repository: "team-a/*", actions: [pull]}
    groups:
      devs:
        members: [bob]
        rules:
          - {repository: "team-b/*", actions: ["*"]}
"""
REPOSITORIES = ["public/app", "team-a/app", "team-b/app", "secret/app"]
ALL = {"pull", "push", "delete"}
# Who may do what, by hand.  "mallory" sends a wrong password for alice,
# "eve" a user name that does not exist: both get nothing, not even the
# anonymous grants (wrong credentials are an error, not anonymity).
EXPECTED = {
    None: {"public/app": {"pull"}},
    "alice": {"public/app": {"pull"}, "team-a/app": {"pull", "push"}},
    "bob": {"public/app": {"pull"}, "team-b/app": ALL},
    "carol": {"public/app": {"pull"}, "team-a/app": {"pull"}},
    "root": {name: ALL for name in REPOSITORIES},
    "mallory": {},
    "eve": {},
}
CREDENTIALS = {
    None: None,
    "alice": ("alice", "alice-pw"),
    "bob": ("bob", "bob-pw"),
    "carol": ("carol", "carol-pw"),
    "root": ("root", "root-pw"),
    "mallory": ("alice", "not-alice-pw"),
    "eve": ("eve", "eve-pw"),
}
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def basicHeader(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


class AuthTestCase(RegistryTestCase):
    """A registry with htpasswd users and the policy above."""

    __test__ = False
    authConfig = "auth:\n  htpasswd: htpasswd\n  mode: basic\n" + POLICY
    # The matrix sends many wrong passwords from 127.0.0.1: no throttling
    # here (ThrottleTests test it), unless the config sets it.
    loginFailures = 0

    def makeAuthorizer(self):
        self.authDir = self.mktemp()
        os.makedirs(self.authDir)
        writeHtpasswd(os.path.join(self.authDir, "htpasswd"), PASSWORDS)
        self.authPool = ThreadPool(0, 2, name="test-auth")
        self.authPool.start()
        self.addCleanup(self.authPool.stop)
        settings = settingsFrom(self.authDir, self.authConfig)
        if "login_failures" not in self.authConfig:
            settings = dataclasses.replace(settings, loginFailures=self.loginFailures)
        return Authorizer(settings, reactor, self.authPool)

    async def headersFor(self, who, repository=None):
        creds = CREDENTIALS[who]
        if creds is None:
            return {}
        return {"Authorization": basicHeader(*creds)}

    async def rootHeaders(self, repository):
        return await self.headersFor("root", repository)

    async def seed(self):
        """An image in every repository, pushed by root."""
        self.seeded = {}
        for name in REPOSITORIES:
            digest, body = await self.pushImage(name, "v1", layers=[b"layer of " + name.encode()],
                                                headers=await self.rootHeaders(name))
            self.seeded[name] = (digest, digests.of(b"layer of " + name.encode()), body)

    def visibleTo(self, who):
        return sorted(name for name, actions in EXPECTED[who].items() if "pull" in actions)

    def refusal(self, who):
        """The status a refused request of C{who} gets."""
        if who in (None, "mallory", "eve"):
            return 401
        return 403



class MatrixTests:
    """The tests every scheme runs (mixed into an L{AuthTestCase})."""

    # --- the matrix ---

    async def check(self, who, name, action, method, path, expected, body=None, headers=None):
        allowed = action in EXPECTED[who].get(name, set())
        h = dict(await self.headersFor(who, name))
        h.update(headers or {})
        r = await self.request(method, path, body, h)
        label = "%s %s %s as %s (%s)" % (method, path, action, who, r.body[:300])
        if allowed:
            self.assertEqual(r.code, expected, label)
        else:
            self.assertEqual(r.code, self.refusal(who), label)
            if method != "HEAD":
                doc = r.json()
                self.assertEqual(doc["errors"][0]["code"], "UNAUTHORIZED" if r.code == 401 else "DENIED", label)
            if r.code == 401:
                self.assertTrue(r.header("WWW-Authenticate"), label)
        return allowed, r

    async def exists(self, method, path, name):
        r = await self.request(method, path, headers=await self.rootHeaders(name))
        return r.code == 200

    async def checkPull(self, who, name):
        manifestDigest, layerDigest, _ = self.seeded[name]
        await self.check(who, name, "pull", "GET", "/v2/%s/manifests/v1" % name, 200,
                         headers={"Accept": OCI_MANIFEST})
        await self.check(who, name, "pull", "HEAD", "/v2/%s/manifests/%s" % (name, manifestDigest), 200)
        allowed, r = await self.check(who, name, "pull", "GET", "/v2/%s/blobs/%s" % (name, layerDigest), 200)
        if allowed:
            self.assertEqual(r.body, b"layer of " + name.encode())
        else:
            self.assertNotIn(b"layer of", r.body)
        await self.check(who, name, "pull", "GET", "/v2/%s/tags/list" % name, 200)
        await self.check(who, name, "pull", "GET", "/v2/%s/referrers/%s" % (name, manifestDigest), 200)

    async def checkPush(self, who, name):
        tag = "by-%s" % (who,)
        data = ("pushed by %s into %s" % (who, name)).encode() * 1000
        d = digests.of(data)
        blobPath = "/v2/%s/blobs/%s" % (name, d)
        # start an upload
        await self.check(who, name, "push", "POST", "/v2/%s/blobs/uploads/" % name, 202)
        # a monolithic upload, body streamed into storage
        allowed, _ = await self.check(who, name, "push", "POST", "/v2/%s/blobs/uploads/?digest=%s" % (name, d),
                                      201, data)
        self.assertEqual(await self.exists("HEAD", blobPath, name), allowed)
        # a chunked PATCH (no length) into an upload root started, then PUT
        r = await self.request("POST", "/v2/%s/blobs/uploads/" % name, headers=await self.rootHeaders(name))
        self.assertEqual(r.code, 202)
        location = r.header("Location").decode()
        data2 = data + b"2"
        allowed, _ = await self.check(who, name, "push", "PATCH", location, 202, ChunkedBody([data2[:5000], data2[5000:]]))
        r = await self.request("GET", location, headers=await self.rootHeaders(name))
        self.assertEqual(r.header("Range"), b"0-%d" % (len(data2) - 1,) if allowed else b"0-0", (who, name))
        if not allowed:
            r = await self.request("PATCH", location, data2, await self.rootHeaders(name))
            self.assertEqual(r.code, 202)
        await self.check(who, name, "push", "PUT", "%s?digest=%s" % (location, digests.of(data2)), 201)
        # a manifest, by tag
        _, _, body = self.seeded[name]
        h = {"Content-Type": OCI_MANIFEST}
        allowed, _ = await self.check(who, name, "push", "PUT", "/v2/%s/manifests/%s" % (name, tag), 201, body, h)
        self.assertEqual(await self.exists("HEAD", "/v2/%s/manifests/%s" % (name, tag), name), allowed)

    async def checkDelete(self, who, name):
        # Something of its own to delete, so the seeded image stays.
        data = ("to delete by %s" % (who,)).encode()
        d = await self.pushBlob(name, data, await self.rootHeaders(name))
        allowed, _ = await self.check(who, name, "delete", "DELETE", "/v2/%s/blobs/%s" % (name, d), 202)
        self.assertEqual(await self.exists("HEAD", "/v2/%s/blobs/%s" % (name, d), name), not allowed)
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": self.seeded[name][1],
                       "size": len(b"layer of " + name.encode())},
            "layers": [],
            "annotations": {"for": str(who)},
        }
        r, body = await self.pushManifest(name, "del", doc, headers=await self.rootHeaders(name))
        self.assertEqual(r.code, 201, r.body)
        path = "/v2/%s/manifests/%s" % (name, digests.of(body))
        allowed, _ = await self.check(who, name, "delete", "DELETE", path, 202)
        self.assertEqual(await self.exists("HEAD", path, name), not allowed)

    @async_test
    async def test_policyMatrix(self):
        await self.seed()
        for who in EXPECTED:
            for name in REPOSITORIES:
                await self.checkPull(who, name)
                await self.checkPush(who, name)
                await self.checkDelete(who, name)
        # the seeded images are all still there, unchanged
        for name, (manifestDigest, _, body) in self.seeded.items():
            r = await self.request("GET", "/v2/%s/manifests/v1" % name, headers=await self.rootHeaders(name))
            self.assertEqual(r.body, body)

    # --- listing ---

    async def catalogOf(self, who, n=None):
        names, path = [], "/v2/_catalog" + ("?n=%d" % n if n else "")
        while path:
            r = await self.request("GET", path, headers=await self.headersFor(who, "catalog"))
            if r.code != 200:
                return r.code
            names.extend(r.json()["repositories"])
            link = r.header("Link")
            path = link.decode().split(">")[0].lstrip("<") if link else None
        return names

    @async_test
    async def test_catalogListsWhatTheCallerMayPull(self):
        await self.seed()
        for who in ("alice", "bob", "carol", "root", None):
            for n in (None, 1, 2):
                self.assertEqual(await self.catalogOf(who, n), self.visibleTo(who), (who, n))
        self.assertEqual(await self.catalogOf("mallory"), 401)

    @async_test
    async def test_mountNeedsPullOnTheSource(self):
        await self.seed()
        secretLayer = self.seeded["secret/app"][1]
        publicLayer = self.seeded["public/app"][1]
        h = await self.headersFor("alice", ("team-a/app", "secret/app", "public/app"))
        # alice may not pull secret/app: no mount, an ordinary upload instead,
        # and the blob does not become readable through team-a/app
        r = await self.request("POST", "/v2/team-a/app/blobs/uploads/?mount=%s&from=secret/app" % secretLayer,
                               headers=h)
        self.assertEqual(r.code, 202)
        r = await self.request("HEAD", "/v2/team-a/app/blobs/%s" % secretLayer, headers=h)
        self.assertEqual(r.code, 404)
        # but she may pull public/app
        r = await self.request("POST", "/v2/team-a/app/blobs/uploads/?mount=%s&from=public/app" % publicLayer,
                               headers=h)
        self.assertEqual(r.code, 201)

    @async_test
    async def test_baseNeedsALogin(self):
        r = await self.request("GET", "/v2/")
        self.assertEqual(r.code, 401)
        self.assertEqual(r.error(), "UNAUTHORIZED")
        self.assertTrue(r.header("WWW-Authenticate"))
        r = await self.request("GET", "/v2/", headers=await self.headersFor("carol"))
        self.assertEqual(r.code, 200)
        r = await self.request("GET", "/v2/", headers=await self.headersFor("mallory"))
        self.assertEqual(r.code, 401)


class BasicTests(MatrixTests, AuthTestCase):
    __test__ = True

    @async_test
    async def test_challenge(self):
        r = await self.request("GET", "/v2/secret/app/tags/list")
        self.assertEqual(r.code, 401)
        self.assertEqual(r.header("WWW-Authenticate"), b'Basic realm="txregistry"')
        r = await self.request("GET", "/v2/secret/app/tags/list", headers=await self.headersFor("alice"))
        self.assertEqual((r.code, r.error()), (403, "DENIED"))

    @async_test
    async def test_uploadBodyWaitsForThePasswordCheck(self):
        # With no login cache every Basic request is checked in the thread
        # pool while its body arrives: the body waits, then goes where the
        # check says.
        self.authorizer = self.app.auth = Authorizer(
            settingsFrom(self.authDir, "auth:\n  htpasswd: htpasswd\n  mode: basic\n  cache_seconds: 0\n" + POLICY),
            reactor, self.authPool,
        )
        data = os.urandom(3 * 1024 * 1024)
        d = digests.of(data)
        h = await self.headersFor("alice")
        r = await self.request("POST", "/v2/team-a/app/blobs/uploads/?digest=%s" % d, data, h)
        self.assertEqual(r.code, 201, r.body)
        r = await self.request("GET", "/v2/team-a/app/blobs/%s" % d, headers=h)
        self.assertEqual(r.body, data)
        # chunked, no length
        r = await self.request("POST", "/v2/team-a/app/blobs/uploads/", headers=h)
        location = r.header("Location").decode()
        chunks = [data[i : i + 100000] for i in range(0, len(data), 100000)]
        r = await self.request("PATCH", location, ChunkedBody(chunks), h)
        self.assertEqual(r.code, 202, r.body)
        r = await self.request("PUT", location + "?digest=" + d, None, h)
        self.assertEqual(r.code, 201, r.body)
        # refused after the check: nothing stored
        other = os.urandom(2 * 1024 * 1024)
        r = await self.request("POST", "/v2/secret/app/blobs/uploads/?digest=%s" % digests.of(other), other, h)
        self.assertEqual(r.code, 403)
        r = await self.request("HEAD", "/v2/secret/app/blobs/%s" % digests.of(other),
                               headers=await self.headersFor("root"))
        self.assertEqual(r.code, 404)


    @async_test
    async def test_refusedUploadBodyIsAnsweredAtOnce(self):
        # A chunked body that never ends, from a caller who may not push
        # there: answered as soon as the caller is known, not read to the end.
        def send(port, authorization):
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            try:
                s.sendall(b"PATCH /v2/secret/app/blobs/uploads/x HTTP/1.1\r\nHost: x\r\n"
                          b"Authorization: " + authorization.encode() + b"\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n" + b"10000\r\n" + b"x" * 0x10000 + b"\r\n")
                out = b""
                while b"\r\n\r\n" not in out:
                    data = s.recv(65536)
                    if not data:
                        break
                    out += data
                return out
            finally:
                s.close()

        port = self.port.getHost().port
        for cache in (60, 0):  # known at once, and after the check in the pool
            self.app.auth = Authorizer(
                settingsFrom(self.authDir, "auth:\n  htpasswd: htpasswd\n  mode: basic\n  cache_seconds: %d\n"
                             % cache + POLICY), reactor, self.authPool)
            for who, status in (("alice", b"403"), ("mallory", b"401")):
                out = await deferToThread(send, port, basicHeader(*CREDENTIALS[who]))
                self.assertTrue(out.startswith(b"HTTP/1.1 " + status), (cache, who, out))
                if status == b"401":
                    self.assertIn(b"WWW-Authenticate: Basic", out)


class ThrottleTests(AuthTestCase):
    """Failed logins over HTTP: past auth.login_failures from one address,
    429 TOOMANYREQUESTS with Retry-After, the right password included, until
    the window has passed; other addresses are not affected."""

    __test__ = True
    authConfig = "auth:\n  htpasswd: htpasswd\n  mode: basic\n  login_failures: 3\n" + POLICY

    def assertThrottled(self, r):
        self.assertEqual(r.code, 429, r.body)
        self.assertEqual(r.error(), "TOOMANYREQUESTS")
        self.assertTrue(1 <= int(r.header("Retry-After")) <= 60, r.header("Retry-After"))
        self.assertIsNone(r.header("WWW-Authenticate"))

    @async_test
    async def test_basicLogins(self):
        wrong = {"Authorization": basicHeader("alice", "guess")}
        for _ in range(3):
            r = await self.request("GET", "/v2/", headers=wrong)
            self.assertEqual((r.code, r.error()), (401, "UNAUTHORIZED"))
        self.assertThrottled(await self.request("GET", "/v2/", headers=wrong))
        self.assertThrottled(await self.request("GET", "/v2/", headers={"Authorization": basicHeader("bob", "bob-pw")}))
        # An upload body of a throttled caller is refused, and nothing stored.
        data = os.urandom(1024 * 1024)
        r = await self.request("POST", "/v2/team-b/app/blobs/uploads/?digest=%s" % digests.of(data), data,
                               {"Authorization": basicHeader("bob", "bob-pw")})
        self.assertThrottled(r)
        # Anonymous requests need no password check: still answered.
        r = await self.request("GET", "/v2/public/app/tags/list")
        self.assertEqual(r.code, 404)
        self.app.auth.forgetFailures()  # as if the window had passed
        r = await self.request("POST", "/v2/team-b/app/blobs/uploads/?digest=%s" % digests.of(data), data,
                               {"Authorization": basicHeader("bob", "bob-pw")})
        self.assertEqual(r.code, 201, r.body)

    @async_test
    async def test_clientAddressFromTheProxyHeader(self):
        self.app.auth = Authorizer(
            settingsFrom(self.authDir, "auth:\n  htpasswd: htpasswd\n  mode: basic\n  login_failures: 2\n"
                         "  client_address_header: X-Forwarded-For\n" + POLICY),
            reactor, self.authPool,
        )

        def via(address, user="alice", password="guess"):
            # What a client sends is kept; the proxy appends the address it saw.
            return {"Authorization": basicHeader(user, password), "X-Forwarded-For": "1.2.3.4, " + address}

        for _ in range(2):
            self.assertEqual((await self.request("GET", "/v2/", headers=via("10.0.0.5"))).code, 401)
        self.assertThrottled(await self.request("GET", "/v2/", headers=via("10.0.0.5", "bob", "bob-pw")))
        r = await self.request("GET", "/v2/", headers=via("10.0.0.6", "bob", "bob-pw"))
        self.assertEqual(r.code, 200)
        # Without the header: the TCP peer.
        r = await self.request("GET", "/v2/", headers={"Authorization": basicHeader("bob", "bob-pw")})
        self.assertEqual(r.code, 200)


class ThrottleBearerTests(ThrottleTests):
    """The same at the token endpoint (GET and POST)."""

    authConfig = "auth:\n  htpasswd: htpasswd\n  login_failures: 2\n" + POLICY
    test_basicLogins = test_clientAddressFromTheProxyHeader = None

    @async_test
    async def test_tokenEndpoint(self):
        r = await self.request("GET", "/auth/token?service=txregistry",
                               headers={"Authorization": basicHeader("carol", "carol-pw")})
        self.token = r.json()["token"]
        wrong = {"Authorization": basicHeader("carol", "guess")}
        for _ in range(2):
            r = await self.request("GET", "/auth/token?service=txregistry&scope=repository:team-a/app:pull",
                                   headers=wrong)
            self.assertEqual(r.code, 401)
        self.assertThrottled(await self.request("GET", "/auth/token?service=txregistry", headers=wrong))
        form = b"grant_type=password&username=bob&password=bob-pw&service=txregistry"
        self.assertThrottled(await self.request(
            "POST", "/auth/token", form, {"Content-Type": "application/x-www-form-urlencoded"}))
        # /v2/ takes tokens only: a token got before is not throttled.
        r = await self.request("GET", "/v2/", headers={"Authorization": "Bearer " + self.token})
        self.assertEqual(r.code, 200)


class BearerTests(MatrixTests, AuthTestCase):
    __test__ = True
    authConfig = "auth:\n  htpasswd: htpasswd\n  mode: bearer\n" + POLICY

    async def tokenFor(self, who, scopes):
        query = "service=txregistry&" + "&".join("scope=" + s for s in scopes)
        creds = CREDENTIALS[who]
        h = {"Authorization": basicHeader(*creds)} if creds else {}
        r = await self.request("GET", "/auth/token?" + query, headers=h)
        return r

    async def headersFor(self, who, repository=None):
        if repository is None:
            scopes = []
        elif repository == "catalog":
            scopes = ["registry:catalog:*"]
        else:
            names = (repository,) if isinstance(repository, str) else repository
            scopes = ["repository:%s:pull,push,delete" % name for name in names]
        r = await self.tokenFor(who, scopes)
        if who in ("mallory", "eve"):
            self.assertEqual(r.code, 401, r.body)
            # what such a client then has: no token at all
            return {"Authorization": "Bearer " + "x" * 20}
        self.assertEqual(r.code, 200, r.body)
        return {"Authorization": "Bearer " + r.json()["token"]}

    def refusal(self, who):
        return 401

    @async_test
    async def test_challengeNamesTheTokenEndpointAndScope(self):
        r = await self.request("GET", "/v2/team-a/app/tags/list")
        self.assertEqual(r.code, 401)
        self.assertEqual(
            r.header("WWW-Authenticate").decode(),
            'Bearer realm="%s/auth/token",service="txregistry",scope="repository:team-a/app:pull"' % self.base,
        )
        r = await self.request("PUT", "/v2/team-a/app/manifests/x", b"{}", {"Content-Type": OCI_MANIFEST})
        self.assertIn(b'scope="repository:team-a/app:pull,push"', r.header("WWW-Authenticate"))

    @async_test
    async def test_tokenForOneRepositoryDoesNotOpenAnother(self):
        await self.seed()
        h = await self.headersFor("bob", "team-b/app")
        r = await self.request("GET", "/v2/public/app/tags/list", headers=h)
        # bob may pull public/app, but this token does not say so: ask for one
        self.assertEqual(r.code, 401)
        self.assertIn(b'error="insufficient_scope"', r.header("WWW-Authenticate"))
        r = await self.request("GET", "/v2/team-b/app/tags/list", headers=h)
        self.assertEqual(r.code, 200)

    @async_test
    async def test_tokenGrantsOnlyWhatThePolicyAllows(self):
        r = await self.tokenFor("carol", ["repository:team-a/app:pull,push,delete", "repository:secret/app:pull"])
        token = r.json()["token"]
        payload = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
        self.assertEqual(payload["sub"], "carol")
        self.assertEqual(
            sorted((a["name"], a["actions"]) for a in payload["access"]),
            [("secret/app", []), ("team-a/app", ["pull"])],
        )
        self.assertEqual(r.json()["expires_in"], 300)

    @async_test
    async def test_oauthPasswordGrant(self):
        form = b"grant_type=password&username=alice&password=alice-pw&service=txregistry&scope=repository:team-a/app:push"
        r = await self.request("POST", "/auth/token", form, {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(r.code, 200, r.body)
        self.assertIn("access_token", r.json())
        r = await self.request("POST", "/auth/token", form.replace(b"alice-pw", b"wrong"),
                               {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(r.code, 401)
        r = await self.request("POST", "/auth/token", b"grant_type=refresh_token&refresh_token=x",
                               {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual(r.code, 400)

    @async_test
    async def test_foreignAndExpiredTokensAreRefused(self):
        now = reactor.seconds()
        access = [("repository", "team-a/app", ["pull"])]
        forged = signToken(ecKey(), claimsFor(now, sub="alice", access=access))
        r = await self.request("GET", "/v2/team-a/app/tags/list", headers={"Authorization": "Bearer " + forged})
        self.assertEqual(r.code, 401)
        self.assertIn(b'error="invalid_token"', r.header("WWW-Authenticate"))
        own = self.authorizer._signingKey
        expired = signToken(own, claimsFor(now - 1000, sub="alice", access=access, lifetime=300))
        r = await self.request("GET", "/v2/team-a/app/tags/list", headers={"Authorization": "Bearer " + expired})
        self.assertEqual(r.code, 401)
        r = await self.request("GET", "/v2/team-a/app/tags/list", headers={"Authorization": basicHeader("alice", "alice-pw")})
        self.assertEqual(r.code, 401)
        self.assertTrue(r.header("WWW-Authenticate").startswith(b"Bearer "))

    @async_test
    async def test_anonymousTokenPullsPublicOnly(self):
        await self.seed()
        r = await self.tokenFor(None, ["repository:public/app:pull", "repository:secret/app:pull"])
        h = {"Authorization": "Bearer " + r.json()["token"]}
        self.assertEqual((await self.request("GET", "/v2/public/app/tags/list", headers=h)).code, 200)
        self.assertEqual((await self.request("GET", "/v2/secret/app/tags/list", headers=h)).code, 401)
        # and without any token, the anonymous rules hold too
        self.assertEqual((await self.request("GET", "/v2/public/app/tags/list")).code, 200)


class SearchFilterTests(AuthTestCase):
    """/v1/search and the catalog from the index list only what the caller
    may pull; V1 search takes the password itself (podman sends it so) in
    both modes."""

    __test__ = True
    authConfig = "auth:\n  htpasswd: htpasswd\n  mode: bearer\n" + POLICY

    def makeSearch(self):
        from tests.api.test_search import SearchTestsMixin

        return SearchTestsMixin.makeSearch(self)

    def databaseURL(self):
        from tests.api.test_search import SearchTestsMixin

        return SearchTestsMixin.databaseURL(self)

    async def rootHeaders(self, repository):
        r = await self.request("GET", "/auth/token?service=txregistry&scope=repository:%s:pull,push" % repository,
                               headers={"Authorization": basicHeader("root", "root-pw")})
        return {"Authorization": "Bearer " + r.json()["token"]}

    @async_test
    async def test_searchAndCatalogAreFiltered(self):
        await self.updater.start()
        await self.seed()
        for i in range(30):  # more private repositories than one catalog page
            await self.pushImage("secret/app%02d" % i, "v1", headers=await self.rootHeaders("secret/app%02d" % i))
        for who in ("alice", "bob", "carol", "root", None):
            h = {"Authorization": basicHeader(*CREDENTIALS[who])} if CREDENTIALS[who] else {}
            r = await self.request("GET", "/v1/search?q=app&n=100", headers=h)
            self.assertEqual(r.code, 200, r.body)
            found = sorted(x["name"] for x in r.json()["results"])
            expected = self.visibleTo(who)
            if who == "root":
                expected = sorted(expected + ["secret/app%02d" % i for i in range(30)])
            self.assertEqual(found, expected, who)
            self.assertEqual(r.json()["num_results"], len(expected))
            ranked = [x["name"] for x in r.json()["results"]]
            # paging over the filtered results
            r = await self.request("GET", "/v1/search?q=app&n=1&page=2", headers=h)
            self.assertEqual([x["name"] for x in r.json()["results"]], ranked[1:2], who)
            self.assertEqual(r.json()["num_results"], len(expected))
            token = await self.request("GET", "/auth/token?service=txregistry&scope=registry:catalog:*", headers=h)
            bearer = {"Authorization": "Bearer " + token.json()["token"]}
            for n in (1, 2, 7):
                path, names = "/v2/_catalog?n=%d" % n, []
                while path:
                    r = await self.request("GET", path, headers=bearer)
                    self.assertEqual(r.code, 200, r.body)
                    names.extend(r.json()["repositories"])
                    link = r.header("Link")
                    path = link.decode().split(">")[0].lstrip("<") if link else None
                self.assertEqual(names, expected, (who, n))
        r = await self.request("GET", "/v1/search?q=app", headers={"Authorization": basicHeader("alice", "nope")})
        self.assertEqual(r.code, 401)

    @async_test
    async def test_searchWithoutLoginWhenNothingIsPublic(self):
        await self.updater.start()
        await self.seed()
        private = POLICY.replace('    anonymous:\n      - {repository: "public/*", actions: [pull]}\n', "")
        self.app.auth = Authorizer(settingsFrom(self.authDir, "auth:\n  htpasswd: htpasswd\n" + private),
                                   reactor, self.authPool)
        r = await self.request("GET", "/v1/search?q=app")
        self.assertEqual((r.code, r.error()), (401, "UNAUTHORIZED"))
        self.assertIn(b'scope="registry:catalog:search"', r.header("WWW-Authenticate"))
        r = await self.request("GET", "/v2/_catalog")
        self.assertEqual(r.code, 401)
        r = await self.request("GET", "/v1/search?q=app", headers={"Authorization": basicHeader("carol", "carol-pw")})
        self.assertEqual(sorted(x["name"] for x in r.json()["results"]), ["team-a/app"])
