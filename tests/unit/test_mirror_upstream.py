"""The upstream client against a small twisted.web registry and token
service on loopback (real sockets, the real reactor): the token flow,
tokens kept until they expire (a Clock tells the client the time), Basic,
429 with Retry-After held to."""

import base64
import json

from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

from txregistry.errors import RegistryError
from txregistry.mirror.settings import UpstreamSettings
from txregistry.mirror.upstream import UpstreamClient, collect

USER, PASSWORD = "bob", "s3cret"


class Upstream(Resource):
    """/token issues tokens (lifetime C{lifetime}); /v2/... wants one, or
    Basic with C{basic}; C{limited}: 429 for everything."""

    isLeaf = True

    def __init__(self):
        Resource.__init__(self)
        self.issued = []
        self.lifetime = 15
        self.basic = False
        self.limited = False
        self.port = None

    def render_GET(self, request):
        auth = (request.getHeader(b"authorization") or b"").decode()
        if self.limited:
            request.setResponseCode(429)
            request.setHeader(b"Retry-After", b"30")
            return b"slow down"
        if request.path == b"/token":
            if auth and auth != "Basic " + base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode():
                request.setResponseCode(401)
                return b"{}"
            token = "tok-%d" % (len(self.issued),)
            self.issued.append((token, request.args.get(b"scope"), bool(auth)))
            return json.dumps({"token": token, "expires_in": self.lifetime}).encode()
        if self.basic:
            ok = auth == "Basic " + base64.b64encode(("%s:%s" % (USER, PASSWORD)).encode()).decode()
            challenge = b'Basic realm="up"'
        else:
            ok = auth.startswith("Bearer ") and auth[7:] in [t for t, _, _ in self.issued]
            challenge = b'Bearer realm="http://127.0.0.1:%d/token",service="up",scope="repository:x/y:pull"' % (
                self.port,)
        if not ok:
            request.setResponseCode(401)
            request.setHeader(b"WWW-Authenticate", challenge)
            return b'{"errors":[]}'
        return b'{"ok": true}'


class UpstreamClientTests(TestCase):
    def setUp(self):
        self.upstream = Upstream()
        self.listening = reactor.listenTCP(0, Site(self.upstream), interface="127.0.0.1")
        self.upstream.port = self.listening.getHost().port
        self.clock = Clock()
        self.clients = []

    def tearDown(self):
        from twisted.internet.defer import gatherResults

        return gatherResults([c.close() for c in self.clients] + [self.listening.stopListening()])

    def client(self, **kw):
        s = UpstreamSettings(name="up", url="http://127.0.0.1:%d" % (self.upstream.port,), default=True, **kw)
        c = UpstreamClient(s, reactor, clock=self.clock)
        self.clients.append(c)
        return c

    async def get(self, c):
        response = await c.request("GET", "/v2/x/y/manifests/v1", "x/y")
        body = await collect(response, 1000)
        return response.code, body

    async def _tokensKept(self):
        c = self.client(username=USER, password=PASSWORD)
        self.assertEqual(await self.get(c), (200, b'{"ok": true}'))
        self.assertEqual(len(self.upstream.issued), 1)
        token, scope, withPassword = self.upstream.issued[0]
        self.assertEqual((scope, withPassword), ([b"repository:x/y:pull"], True))
        self.assertEqual((await self.get(c))[0], 200)
        self.assertEqual(len(self.upstream.issued), 1)  # kept
        self.clock.advance(6)  # 15 s less the 10 s margin: expired
        self.assertEqual((await self.get(c))[0], 200)
        self.assertEqual(len(self.upstream.issued), 2)

    def test_tokensKeptUntilTheyExpire(self):
        from twisted.internet.defer import ensureDeferred

        return ensureDeferred(self._tokensKept())

    def test_anonymousToken(self):
        from twisted.internet.defer import ensureDeferred

        async def run():
            self.assertEqual((await self.get(self.client()))[0], 200)
            self.assertEqual(self.upstream.issued[0][2], False)

        return ensureDeferred(run())

    def test_basic(self):
        from twisted.internet.defer import ensureDeferred

        self.upstream.basic = True

        async def run():
            self.assertEqual((await self.get(self.client(username=USER, password=PASSWORD)))[0], 200)
            self.assertEqual((await self.get(self.client()))[0], 404)  # no credentials: refused, not found
            self.assertEqual(self.upstream.issued, [])

        return ensureDeferred(run())

    def test_rateLimitHeldTo(self):
        from twisted.internet.defer import ensureDeferred

        self.upstream.limited = True

        async def run():
            c = self.client()
            for expected in (30, 20):
                try:
                    await self.get(c)
                except RegistryError as e:
                    self.assertEqual((e.code, e.retryAfter), ("TOOMANYREQUESTS", expected))
                else:
                    self.fail("no 429")
                self.upstream.limited = False  # (held back anyway: not asked again until Retry-After)
                self.clock.advance(10)
            self.clock.advance(20)
            self.assertEqual((await self.get(c))[0], 200)

        return ensureDeferred(run())
