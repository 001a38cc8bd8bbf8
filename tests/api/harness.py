"""An in-process registry on a real loopback socket, and a small client."""

import json
import shutil
import socket
import tempfile
import time

import treq
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred, succeed
from twisted.internet.task import deferLater
from twisted.python.threadpool import ThreadPool
from twisted.trial import unittest
from twisted.web.client import HTTPConnectionPool
from twisted.web.iweb import UNKNOWN_LENGTH, IBodyProducer
from zope.interface import implementer

from txregistry import digest as digests
from txregistry.registry import Registry
from txregistry.storage.filesystem import FilesystemDriver
from txregistry.storage.memory import MemoryDriver
from txregistry.web.app import RegistryApp
from txregistry.web.bodies import BodyBudget
from txregistry.web.bodyrouter import BodyRouter
from txregistry.limits import HTTPLimits
from txregistry.web.ingest import RegistrySite


def async_test(f):
    def wrapper(self):
        return ensureDeferred(f(self))

    wrapper.__name__ = f.__name__
    return wrapper


@implementer(IBodyProducer)
class ChunkedBody:
    """A request body of unknown length: sent with Transfer-Encoding: chunked."""

    length = UNKNOWN_LENGTH

    def __init__(self, chunks):
        self._chunks = list(chunks)

    def startProducing(self, consumer):
        for c in self._chunks:
            consumer.write(c)
        return succeed(None)

    def pauseProducing(self):
        pass

    def resumeProducing(self):
        pass

    def stopProducing(self):
        pass


class Response:
    def __init__(self, code, headers, body, length=None):
        self.code = code
        self.headers = headers
        self.body = body
        self.length = length  # the Content-Length of a response with a body (Twisted's client drops the header)

    def header(self, name):
        values = self.headers.getRawHeaders(name.encode("latin-1") if isinstance(name, str) else name)
        return values[0] if values else None

    def json(self):
        return json.loads(self.body)

    def error(self):
        return self.json()["errors"][0]["code"]


class RegistryTestCase(unittest.TestCase):
    """Each test gets an empty registry on 127.0.0.1:<free port>."""

    driverName = "filesystem"
    bodyMemory = 64 * 1024 * 1024  # limits.max_body_memory
    maxConnections = 0  # limits.max_connections

    def setUp(self):
        if self.driverName == "filesystem":
            self.pool = ThreadPool(1, 8, name="test-io")
            self.pool.start()
            self.addCleanup(self.pool.stop)
            self.root = tempfile.mkdtemp(prefix="txregistry-test-")
            self.addCleanup(shutil.rmtree, self.root, True)
            self.driver = FilesystemDriver(self.root, reactor, self.pool)
        else:
            self.pool = None
            self.driver = MemoryDriver()
        self.serve()

    def serve(self):
        """The registry on C{self.driver}, served on 127.0.0.1:<free port>."""
        self.registry = Registry(self.driver, reactor, self.pool)
        self.updater = self.makeSearch()
        self.authorizer = self.makeAuthorizer()
        self.app = RegistryApp(self.registry, search=self.updater, authorizer=self.authorizer)
        self.bodies = BodyRouter(self.app, BodyBudget(self.bodyMemory))
        self.site = RegistrySite(self.app.resource(), self.bodies.choose,
                                 limits=HTTPLimits(maxConnections=self.maxConnections))
        self.port = reactor.listenTCP(0, self.site, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.addCleanup(self.serverConnectionsClosed)
        self.base = "http://127.0.0.1:%d" % (self.port.getHost().port,)
        self.http = HTTPConnectionPool(reactor, persistent=False)

    async def serverConnectionsClosed(self, timeout=10):
        """Wait (polling) until the server has seen every client close: a
        refused request's connection lingers until the client closes it."""
        deadline = time.monotonic() + timeout

        def open_():
            return [r for r in reactor.getReaders() + reactor.getWriters()
                    if getattr(getattr(r, "protocol", None), "factory", None) is self.site]

        while open_() and time.monotonic() < deadline:
            await deferLater(reactor, 0.01, lambda: None)

    def makeSearch(self):
        """An IndexUpdater for the app, or None (search off)."""
        return None

    def makeAuthorizer(self):
        """An Authorizer for the app, or None (no authentication)."""
        return None

    async def request(self, method, path, body=None, headers=None):
        if isinstance(body, bytes) or body is None:
            data = body
        else:
            data = body
        response = await treq.request(
            method, self.base + path, data=data, headers=headers or {}, pool=self.http, allow_redirects=False
        )
        content = await response.content()
        return Response(response.code, response.headers, content, response.length)

    # --- shortcuts ---

    async def pushBlob(self, name, data, headers=None):
        d = digests.of(data)
        r = await self.request("POST", "/v2/%s/blobs/uploads/?digest=%s" % (name, d), data, headers)
        self.assertEqual(r.code, 201, r.body)
        return d

    async def pushManifest(self, name, reference, doc, mediaType="application/vnd.oci.image.manifest.v1+json",
                           headers=None):
        body = json.dumps(doc).encode() if not isinstance(doc, bytes) else doc
        headers = dict(headers or {}, **{"Content-Type": mediaType})
        r = await self.request("PUT", "/v2/%s/manifests/%s" % (name, reference), body, headers)
        return r, body

    async def pushImage(self, name, tag, layers=(b"layer-one", b"layer-two"), extra=None, headers=None):
        config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
        cd = await self.pushBlob(name, config, headers)
        descs = []
        for layer in layers:
            ld = await self.pushBlob(name, layer, headers)
            descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": len(layer)})
        doc = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(config)},
            "layers": descs,
        }
        doc.update(extra or {})
        r, body = await self.pushManifest(name, tag, doc, headers=headers)
        self.assertEqual(r.code, 201, r.body)
        return digests.of(body), body


def rawRequest(port, data, readResponse=True, timeout=10):
    """Send raw bytes over a blocking socket (run it in a thread)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        if not readResponse:
            return b""
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out:
                head, _, rest = out.partition(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        if len(rest) >= int(line.split(b":")[1]):
                            return out
        return out
    finally:
        s.close()
