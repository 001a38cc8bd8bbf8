"""Read-only mode and the configurable limits."""

from twisted.internet.threads import deferToThread

from tests.hostile.checks import isErrorEnvelope
from tests.hostile.rawhttp import converse
from tests.api.harness import ChunkedBody, RegistryTestCase, async_test, rawRequest
from txregistry import digest as digests


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

    @async_test
    async def test_uploadBodyAnsweredAtOnce(self):
        # A pull-only registry does not read a push's body, however long it
        # says it is: 405 when the headers are in.
        r = await self.request("POST", "/v2/ro/app/blobs/uploads/")
        loc = r.header("Location").decode()
        self.app.readonly = True
        for head in ("PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000000\r\nExpect: 100-continue\r\n\r\n"
                     % (loc,),
                     "POST /v2/ro/app/blobs/uploads/?digest=%s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
                     "\r\n\r\n10\r\n" % (digests.of(b"x"),)):
            raw, closed = await deferToThread(_sendHead, self.port.getHost().port, head.encode())
            self.assertTrue(closed, raw)
            self.assertNotIn(b"100 Continue", raw)
            self.assertEqual(_envelope(raw), (405, "UNSUPPORTED"), raw)
        self.app.readonly = False
        r = await self.request("GET", loc)
        self.assertEqual((r.code, r.header("Range")), (204, b"0-0"))


class FramingTests(RegistryTestCase):
    @async_test
    async def test_transferEncodingInHTTP10(self):
        # RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message means faulty
        # framing: refused, and what follows is not taken for a request.
        follower = b"GET /v2/smuggled/tags/list HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        head = (b"POST /v2/x/blobs/uploads/ HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                b"Content-Length: 4\r\n\r\n0\r\n\r\n")
        raw, closed = await deferToThread(_sendHead, self.port.getHost().port, head + follower)
        self.assertTrue(closed, raw)
        self.assertEqual(_envelope(raw), (400, "UNSUPPORTED"), raw)
        self.assertIn(b"HTTP/1.0", raw)
        self.assertNotIn(b"smuggled", raw)


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
        self.assertTrue(out.startswith(b"HTTP/1.1 431 Request Header Fields Too Large"), out[:100])
        self.assertTrue(isErrorEnvelope(out.partition(b"\r\n\r\n")[2]), out)


def _sendHead(port, data, timeout=5):
    """Send C{data} (a request head, maybe part of a body) and read until the
    server closes; returns (what came, whether it closed in time).  Run it
    in a thread."""
    return converse(port, data, timeout=timeout)


def _envelope(raw):
    import json

    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)["errors"][0]["code"]


class DeclaredLengthTests(RegistryTestCase):
    """A body declared longer than its limit is refused when the headers
    arrive, without waiting for it, and the connection closed."""

    def setUp(self):
        RegistryTestCase.setUp(self)
        self.registry.uploads.maxBlobSize = 1000
        self.app.maxBodySize = 2000

    async def _refused(self, head):
        raw, closed = await deferToThread(_sendHead, self.port.getHost().port, head)
        self.assertTrue(closed, raw)
        return _envelope(raw)

    async def _poll(self, condition, timeout=10):
        """Wait until C{condition()} is true (polling), at most C{timeout} s."""
        import time

        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        deadline = time.monotonic() + timeout
        while not condition() and time.monotonic() < deadline:
            await deferLater(reactor, 0.01, lambda: None)
        return condition()

    async def _noUploadsLeft(self, name):
        import os

        uploads = os.path.join(self.root, "docker/registry/v2/repositories", name, "_uploads")

        def left():
            return os.listdir(uploads) if os.path.isdir(uploads) else [], self.registry.uploads.active

        await self._poll(lambda: left() == ([], 0))
        self.assertEqual(left(), ([], 0))

    @async_test
    async def test_monolithicPost(self):
        head = ("POST /v2/big/blobs/uploads/?digest=%s HTTP/1.1\r\nHost: x\r\nContent-Length: 1001\r\n\r\n"
                % (digests.of(b"q" * 1001),)).encode()
        self.assertEqual(await self._refused(head), (413, "SIZE_INVALID"))
        await self._noUploadsLeft("big")  # the upload begun for it is gone again

    @async_test
    async def test_patchLeavesTheUploadUsable(self):
        r = await self.request("POST", "/v2/big/blobs/uploads/")
        loc = r.header("Location").decode()
        r = await self.request("PATCH", loc, b"a" * 10, {"Content-Type": "application/octet-stream"})
        self.assertEqual(r.code, 202)
        head = ("PATCH %s HTTP/1.1\r\nHost: x\r\nContent-Length: 5000000000\r\n"
                "Expect: 100-continue\r\n\r\n" % (loc,)).encode()
        raw, closed = await deferToThread(_sendHead, self.port.getHost().port, head)
        self.assertTrue(closed)
        self.assertNotIn(b"100 Continue", raw)
        self.assertEqual(_envelope(raw), (413, "SIZE_INVALID"))
        # Not locked, not changed: it goes on at once.
        r = await self.request("GET", loc)
        self.assertEqual((r.code, r.header("Range")), (204, b"0-9"))
        r = await self.request("PATCH", loc, b"b" * 10, {"Content-Type": "application/octet-stream",
                                                          "Content-Range": "10-19"})
        self.assertEqual(r.code, 202)
        r = await self.request("PUT", "%s?digest=%s" % (loc, digests.of(b"a" * 10 + b"b" * 10)))
        self.assertEqual(r.code, 201, r.body)

    @async_test
    async def test_manifest(self):
        head = b"PUT /v2/big/manifests/t HTTP/1.1\r\nHost: x\r\nContent-Length: 2001\r\n\r\n"
        self.assertEqual(await self._refused(head), (413, "MANIFEST_INVALID"))

    @async_test
    async def test_bodySentAnywayStillSeesThe413(self):
        """A client that sends its whole (large) body at once reads the
        answer, not a reset (the server reads and drops for a while)."""
        body = b"m" * (4 * 1024 * 1024)
        head = b"PUT /v2/big/manifests/t HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (len(body),)
        self.assertEqual(await self._refused(head + body), (413, "MANIFEST_INVALID"))

    @async_test
    async def test_atTheLimit(self):
        r, _ = await self.pushManifest("big", "t", b"{" + b" " * 1998 + b"}")
        self.assertNotEqual(r.code, 413)
        await self.pushBlob("big", b"w" * 1000)


class RaisedManifestLimitTests(RegistryTestCase):
    """A max_manifest_size above the default holds wherever a stored
    manifest is read again, not only at the push."""

    def setUp(self):
        RegistryTestCase.setUp(self)
        self.registry.manifests.maxSize = 6 * 1024 * 1024
        self.app.maxBodySize = 6 * 1024 * 1024

    @async_test
    async def test_largeReferrerListed(self):
        subject, sbody = await self.pushImage("big", "v1")
        ed = await self.pushBlob("big", b"{}")
        empty = {"mediaType": "application/vnd.oci.empty.v1+json", "digest": ed, "size": 2}
        sig = {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": "application/vnd.example.signature",
            "config": empty,
            "layers": [empty],
            "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject,
                        "size": len(sbody)},
            "annotations": {"pad": "x" * (5 * 1024 * 1024)},  # above the default limit, within this one
        }
        r, body = await self.pushManifest("big", "sig", sig)
        self.assertEqual(r.code, 201, r.body)
        r = await self.request("GET", "/v2/big/referrers/" + subject)
        self.assertEqual(r.code, 200)
        self.assertEqual([m["digest"] for m in r.json()["manifests"]], [digests.of(body)])
