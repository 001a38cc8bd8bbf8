"""Read-only mode and the configurable limits."""

from twisted.internet.defer import Deferred, ensureDeferred, gatherResults
from twisted.internet.threads import deferToThread

from tests.api.harness import ChunkedBody, RegistryTestCase, async_test, rawRequest
from txregistry import digest as digests
from txregistry.registry import Registry


class ReadonlyTests(RegistryTestCase):
    @async_test
    async def test_pullsOnly(self):
        d, body = await self.pushImage("ro/app", "v1")
        self.app.readonly = True
        r = await self.request("GET", "/v2/ro/app/manifests/v1")
        self.assertEqual(r.code, 200)
        for method, path, data in [
            ("PUT", "/v2/ro/app/manifests/v2", body),
            ("POST", "/v2/ro/app/blobs/uploads/", None),
            ("POST", "/v2/ro/app/blobs/uploads/?digest=" + digests.of(b"x"), b"x"),
            ("DELETE", "/v2/ro/app/manifests/v1", None),
        ]:
            r = await self.request(method, path, data, {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
            self.assertEqual((r.code, r.error()), (405, "UNSUPPORTED"), (method, path))
            self.assertIn("read-only", r.json()["errors"][0]["message"])
        # nothing was written
        self.assertEqual((await self.request("HEAD", "/v2/ro/app/blobs/" + digests.of(b"x"))).code, 404)
        self.app.readonly = False
        await self.pushBlob("ro/app", b"x")


class LimitTests(RegistryTestCase):
    def setUp(self):
        RegistryTestCase.setUp(self)
        self.registry.uploads.maxBlobSize = 1000
        self.registry.manifests.maxSize = 2000
        self.app.maxBodySize = 2000

    @async_test
    async def test_blobTooLarge(self):
        r = await self.request("POST", "/v2/l/blobs/uploads/?digest=" + digests.of(b"y" * 1001), b"y" * 1001)
        self.assertEqual((r.code, r.error()), (413, "SIZE_INVALID"))
        r = await self.request("POST", "/v2/l/blobs/uploads/")
        loc = r.header("Location").decode()
        r = await self.request("PATCH", loc, ChunkedBody([b"z" * 600, b"z" * 600]))
        self.assertEqual((r.code, r.error()), (413, "SIZE_INVALID"))
        await self.pushBlob("l", b"w" * 1000)  # at the limit is fine

    @async_test
    async def test_manifestLimit(self):
        r, _ = await self.pushManifest("l", "t", b"{" + b" " * 2500 + b"}")
        self.assertEqual(r.code, 413)


class ConcurrencyLimitTests(RegistryTestCase):
    @async_test
    async def test_tooManyUploads(self):
        self.registry.uploads.maxConcurrent = 1
        r = await self.request("POST", "/v2/c/blobs/uploads/")
        loc = r.header("Location").decode()
        port = self.port.getHost().port
        # one upload body that stays open (a chunk header, then nothing)
        head = ("PATCH %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc" % loc).encode()
        import socket

        s = socket.create_connection(("127.0.0.1", port))
        self.addCleanup(s.close)
        s.sendall(head)
        for _ in range(500):
            if self.registry.uploads.active:
                break
            await deferToThread(lambda: None)
        self.assertEqual(self.registry.uploads.active, 1)
        r = await self.request("POST", "/v2/c/blobs/uploads/?digest=" + digests.of(b"q"), b"q")
        self.assertEqual((r.code, r.error()), (429, "TOOMANYREQUESTS"))
        self.assertEqual(r.header("Retry-After"), b"5")


class HeaderLimitTests(RegistryTestCase):
    @async_test
    async def test_tooManyHeaders(self):
        headers = "".join("X-H%d: v\r\n" % i for i in range(150))
        out = await deferToThread(
            rawRequest, self.port.getHost().port, ("GET /v2/ HTTP/1.1\r\nHost: x\r\n%s\r\n" % headers).encode()
        )
        self.assertTrue(out.startswith(b"HTTP/1.1 400"), out[:100])

    @async_test
    async def test_hugeHeader(self):
        out = await deferToThread(
            rawRequest, self.port.getHost().port,
            ("GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n" % ("a" * 70000)).encode(),
        )
        self.assertTrue(out.startswith(b"HTTP/1.1 431"), out[:100])
