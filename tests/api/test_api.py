"""The OCI distribution API, end to end through HTTP, on an in-process
registry (filesystem and memory drivers)."""

import hashlib
import json
import os

from twisted.internet.defer import gatherResults, ensureDeferred
from twisted.internet.threads import deferToThread

from txregistry import digest as digests
from tests.api.harness import ChunkedBody, RegistryTestCase, async_test, rawRequest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"


class BaseTests(RegistryTestCase):
    @async_test
    async def test_base(self):
        r = await self.request("GET", "/v2/")
        self.assertEqual(r.code, 200)
        self.assertEqual(r.json(), {})
        self.assertEqual(r.header("Docker-Distribution-API-Version"), b"registry/2.0")

    @async_test
    async def test_unknownEndpoint(self):
        for path in ("/v2/foo/bar", "/", "/index.html", "/v3/"):
            r = await self.request("GET", path)
            self.assertEqual(r.code, 404, path)
            self.assertIn("errors", r.json())
        r = await self.request("GET", "/v2")
        self.assertEqual((r.code, r.json()), (200, {}))

    @async_test
    async def test_tlsHandshakeOnPlainPortAnsweredAtOnce(self):
        # What a Go client sends first when it tries HTTPS: a ClientHello,
        # with no CRLF in it.  It must fail fast, so the client falls back.
        hello = bytes.fromhex("16030100a00100009c0303000a000a") + b"\x00" * 20
        out = await deferToThread(rawRequest, self.port.getHost().port, hello, True, 5)
        self.assertTrue(out.startswith(b"HTTP/1.1 400 "), out)
        self.assertIn(b"HTTPS request to an HTTP server", out)

    @async_test
    async def test_methodNotAllowed(self):
        r = await self.request("POST", "/v2/foo/manifests/latest")
        self.assertEqual(r.code, 405)
        self.assertEqual(r.error(), "UNSUPPORTED")

    @async_test
    async def test_badNames(self):
        for name in ("Foo", "a/../b", "a%2e%2e/b", "..%2f..%2fetc", "a%2fb", "_x", "a//b", "%00"):
            r = await self.request("GET", "/v2/%s/tags/list" % (name,))
            self.assertEqual(r.code, 400, name)
            self.assertEqual(r.error(), "NAME_INVALID", name)

    @async_test
    async def test_badDigests(self):
        for d in ("sha256:totallywrong", "md5:abc", "sha256:" + "A" * 64, "nope"):
            r = await self.request("GET", "/v2/foo/blobs/%s" % (d,))
            self.assertEqual(r.code, 400, d)
            self.assertEqual(r.error(), "DIGEST_INVALID")
        # A manifest reference that is no tag nor digest names nothing: 404
        # (as Distribution answers); a PUT to it is a bad request.
        r = await self.request("GET", "/v2/foo/manifests/sha256:totallywrong")
        self.assertEqual((r.code, r.error()), (404, "MANIFEST_UNKNOWN"))
        r = await self.request("PUT", "/v2/foo/manifests/sha256:totallywrong", b"{}")
        self.assertEqual((r.code, r.error()), (400, "DIGEST_INVALID"))


class BlobTests(RegistryTestCase):
    @async_test
    async def test_monolithicAndRead(self):
        data = os.urandom(100000)
        d = await self.pushBlob("a/b", data)
        r = await self.request("HEAD", "/v2/a/b/blobs/" + d)
        self.assertEqual(r.code, 200)
        self.assertEqual(r.header("Content-Length"), b"100000")
        self.assertEqual(r.header("Docker-Content-Digest"), d.encode())
        self.assertEqual(r.header("ETag"), b'"%s"' % d.encode())
        self.assertEqual(r.header("Accept-Ranges"), b"bytes")
        self.assertEqual(r.body, b"")
        r = await self.request("GET", "/v2/a/b/blobs/" + d)
        self.assertEqual((r.code, r.body), (200, data))

    @async_test
    async def test_ranges(self):
        data = bytes(range(256)) * 40
        d = await self.pushBlob("r", data)
        r = await self.request("GET", "/v2/r/blobs/" + d, headers={"Range": "bytes=10-19"})
        self.assertEqual((r.code, r.body), (206, data[10:20]))
        self.assertEqual(r.header("Content-Range"), b"bytes 10-19/%d" % len(data))
        r = await self.request("GET", "/v2/r/blobs/" + d, headers={"Range": "bytes=-5"})
        self.assertEqual((r.code, r.body), (206, data[-5:]))
        r = await self.request("GET", "/v2/r/blobs/" + d, headers={"Range": "bytes=100000-"})
        self.assertEqual(r.code, 416)
        self.assertEqual(r.header("Content-Range"), b"bytes */%d" % len(data))

    @async_test
    async def test_notLinkedElsewhere(self):
        d = await self.pushBlob("one", b"secret")
        r = await self.request("GET", "/v2/two/blobs/" + d)
        self.assertEqual((r.code, r.error()), (404, "BLOB_UNKNOWN"))

    @async_test
    async def test_delete(self):
        d = await self.pushBlob("del", b"x" * 10)
        r = await self.request("DELETE", "/v2/del/blobs/" + d)
        self.assertEqual(r.code, 202)
        r = await self.request("HEAD", "/v2/del/blobs/" + d)
        self.assertEqual(r.code, 404)
        r = await self.request("DELETE", "/v2/del/blobs/" + d)
        self.assertEqual((r.code, r.error()), (404, "BLOB_UNKNOWN"))

    @async_test
    async def test_emptyBlob(self):
        d = await self.pushBlob("e", b"")
        r = await self.request("GET", "/v2/e/blobs/" + d)
        self.assertEqual((r.code, r.body), (200, b""))

    @async_test
    async def test_damagedBlobDataIsNotServedEmpty(self):
        # Storage damaged by hand: the blob's data is a directory.
        d = await self.pushBlob("dmg", b"content")
        data = os.path.join(self.root, "docker/registry/v2/blobs/sha256", d[7:9], d[7:], "data")
        os.remove(data)
        os.makedirs(data)
        for method in ("GET", "HEAD"):
            r = await self.request(method, "/v2/dmg/blobs/" + d)
            self.assertEqual(r.code, 404, method)

    @async_test
    async def test_missingBlobDataAndNotModified(self):
        data = b"content" * 1000
        d = await self.pushBlob("gone", data)
        path = "/v2/gone/blobs/" + d
        r = await self.request("GET", path, headers={"If-None-Match": '"%s"' % (d,)})
        self.assertEqual((r.code, r.body), (304, b""))
        r = await self.request("GET", path)
        self.assertEqual((r.code, r.body, r.length), (200, data, len(data)))
        await self.driver.delete("/docker/registry/v2/blobs/sha256/%s/%s/data" % (d[7:9], d[7:]))
        for method, headers in (("GET", {}), ("GET", {"Range": "bytes=1-2"}), ("GET", {"If-None-Match": '"%s"' % (d,)})):
            r = await self.request(method, path, headers=headers)
            self.assertEqual((r.code, r.error()), (404, "BLOB_UNKNOWN"), headers)
        self.assertEqual((await self.request("HEAD", path)).code, 404)

    @async_test
    async def test_sha512(self):
        data = b"five-twelve" * 100
        d = digests.of(data, "sha512")
        r = await self.request("POST", "/v2/s/blobs/uploads/?digest=" + d, data)
        self.assertEqual(r.code, 201, r.body)
        r = await self.request("GET", "/v2/s/blobs/" + d)
        self.assertEqual(r.body, data)
        # and through a session whose chunks were hashed with sha256 only
        r = await self.request("POST", "/v2/s/blobs/uploads/")
        loc = r.header("Location").decode()
        r = await self.request("PATCH", loc, ChunkedBody([b"ab", b"cd"]))
        self.assertEqual(r.code, 202)
        d = digests.of(b"abcd", "sha512")
        r = await self.request("PUT", loc + "?digest=" + d)
        self.assertEqual(r.code, 201, r.body)

    @async_test
    async def test_digestMismatch(self):
        wrong = digests.of(b"other")
        r = await self.request("POST", "/v2/m/blobs/uploads/?digest=" + wrong, b"content")
        self.assertEqual((r.code, r.error()), (400, "DIGEST_INVALID"))
        r = await self.request("HEAD", "/v2/m/blobs/" + wrong)
        self.assertEqual(r.code, 404)
        r = await self.request("HEAD", "/v2/m/blobs/" + digests.of(b"content"))
        self.assertEqual(r.code, 404)


class UploadTests(RegistryTestCase):
    async def start(self, name="u"):
        r = await self.request("POST", "/v2/%s/blobs/uploads/" % name)
        self.assertEqual(r.code, 202)
        self.assertEqual(r.header("Range"), b"0-0")
        self.assertTrue(r.header("Docker-Upload-UUID"))
        return r.header("Location").decode()

    @async_test
    async def test_chunkedSession(self):
        loc = await self.start()
        r = await self.request("PATCH", loc, ChunkedBody([b"hello ", b"world"]))
        self.assertEqual(r.code, 202, r.body)
        self.assertEqual(r.header("Range"), b"0-10")
        self.assertEqual(r.header("Location").decode(), loc)
        r = await self.request("PATCH", loc, b"!!", {"Content-Range": "11-12"})
        self.assertEqual((r.code, r.header("Range")), (202, b"0-12"))
        r = await self.request("GET", loc)
        self.assertEqual((r.code, r.header("Range")), (204, b"0-12"))
        d = digests.of(b"hello world!!")
        r = await self.request("PUT", loc + "?digest=" + d, b"?")
        self.assertEqual(r.code, 400)  # the final chunk changes the content
        self.assertEqual(r.error(), "DIGEST_INVALID")

    @async_test
    async def test_putWithFinalChunk(self):
        loc = await self.start()
        await self.request("PATCH", loc, b"abc", {"Content-Range": "0-2"})
        d = digests.of(b"abcdef")
        r = await self.request("PUT", loc + "?digest=" + d, b"def")
        self.assertEqual(r.code, 201, r.body)
        self.assertEqual(r.header("Location"), ("/v2/u/blobs/" + d).encode())
        self.assertEqual(r.header("Docker-Content-Digest"), d.encode())
        r = await self.request("GET", loc)
        self.assertEqual((r.code, r.error()), (404, "BLOB_UPLOAD_UNKNOWN"))

    @async_test
    async def test_outOfOrderChunk(self):
        loc = await self.start()
        r = await self.request("PATCH", loc, b"abc", {"Content-Range": "5-7"})
        self.assertEqual(r.code, 416)
        self.assertEqual(r.header("Range"), b"0-0")
        await self.request("PATCH", loc, b"abc", {"Content-Range": "0-2"})
        # the same chunk again (a stale retry)
        r = await self.request("PATCH", loc, b"abc", {"Content-Range": "0-2"})
        self.assertEqual(r.code, 416)
        self.assertEqual(r.header("Location").decode(), loc)
        r = await self.request("GET", loc)
        self.assertEqual(r.header("Range"), b"0-2")
        r = await self.request("PATCH", loc, b"abc", {"Content-Range": "garbage"})
        self.assertEqual(r.code, 416)

    @async_test
    async def test_unknownUpload(self):
        for method in ("GET", "PATCH", "PUT", "DELETE"):
            path = "/v2/u/blobs/uploads/00000000-0000-0000-0000-000000000000"
            if method == "PUT":
                path += "?digest=" + digests.of(b"")
            r = await self.request(method, path, b"x" if method == "PATCH" else None)
            self.assertEqual((r.code, r.error()), (404, "BLOB_UPLOAD_UNKNOWN"), method)
        r = await self.request("GET", "/v2/u/blobs/uploads/..%2f..%2f")
        self.assertEqual(r.code, 404)

    @async_test
    async def test_cancel(self):
        loc = await self.start()
        await self.request("PATCH", loc, b"abc")
        r = await self.request("DELETE", loc)
        self.assertEqual(r.code, 204)
        r = await self.request("GET", loc)
        self.assertEqual(r.code, 404)

    @async_test
    async def test_purgeAbandoned(self):
        import time

        old = await self.start("p/one")
        await self.request("PATCH", old, b"abc")
        self.assertEqual(await self.registry.uploads.purge(3600), 0)
        self.assertEqual(await self.registry.uploads.purge(3600, now=time.time() + 7200), 1)
        r = await self.request("GET", old)
        self.assertEqual(r.code, 404)

    @async_test
    async def test_putWithoutDigest(self):
        loc = await self.start()
        r = await self.request("PUT", loc)
        self.assertEqual((r.code, r.error()), (400, "DIGEST_INVALID"))

    @async_test
    async def test_mount(self):
        d = await self.pushBlob("src", b"shared layer")
        r = await self.request("POST", "/v2/dst/blobs/uploads/?mount=%s&from=src" % d)
        self.assertEqual(r.code, 201)
        self.assertEqual(r.header("Location"), ("/v2/dst/blobs/" + d).encode())
        r = await self.request("GET", "/v2/dst/blobs/" + d)
        self.assertEqual(r.body, b"shared layer")
        # not readable in "from": a new session instead
        other = digests.of(b"nowhere")
        r = await self.request("POST", "/v2/dst/blobs/uploads/?mount=%s&from=src" % other)
        self.assertEqual(r.code, 202)
        self.assertTrue(r.header("Location"))

    @async_test
    async def test_sameBlobConcurrently(self):
        data = os.urandom(300000)
        d = digests.of(data)

        async def push(i):
            r = await self.request("POST", "/v2/c%d/blobs/uploads/?digest=%s" % (i % 2, d), data)
            return r.code

        codes = await gatherResults([ensureDeferred(push(i)) for i in range(6)])
        self.assertEqual(codes, [201] * 6)
        for i in range(2):
            r = await self.request("GET", "/v2/c%d/blobs/%s" % (i, d))
            self.assertEqual(r.body, data)

    @async_test
    async def test_disconnectMidBody(self):
        loc = await self.start()
        port = self.port.getHost().port
        head = (
            "PATCH %s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
            "Content-Type: application/octet-stream\r\n\r\n" % loc
        ).encode()
        body = b"".join(b"%x\r\n%s\r\n" % (4096, b"z" * 4096) for _ in range(64))
        await deferToThread(rawRequest, port, head + body, False)
        # the upload is still there, holding at most what arrived; no blob exists
        for _ in range(200):
            r = await self.request("GET", loc)
            if r.code == 204:
                break
        self.assertEqual(r.code, 204)
        end = int(r.header("Range").split(b"-")[1])
        self.assertLessEqual(end + 1, 64 * 4096)
        # it can be finished from where it stands
        received = (end + 1) if end else 0
        rest = b"z" * (64 * 4096 - received)
        d = digests.of(b"z" * 64 * 4096)
        r = await self.request("PUT", loc + "?digest=" + d, rest)
        self.assertEqual(r.code, 201, r.body)

    @async_test
    async def test_bigChunkedUpload(self):
        loc = await self.start()
        block = os.urandom(1024 * 1024)
        chunks = [block] * 24
        r = await self.request("PATCH", loc, ChunkedBody(chunks))
        self.assertEqual(r.code, 202)
        self.assertEqual(r.header("Range"), b"0-%d" % (24 * len(block) - 1))
        h = hashlib.sha256()
        for c in chunks:
            h.update(c)
        d = "sha256:" + h.hexdigest()
        r = await self.request("PUT", loc + "?digest=" + d)
        self.assertEqual(r.code, 201, r.body)
        r = await self.request("GET", "/v2/u/blobs/" + d)
        self.assertEqual(hashlib.sha256(r.body).hexdigest(), h.hexdigest())


class ManifestTests(RegistryTestCase):
    @async_test
    async def test_pushPull(self):
        d, body = await self.pushImage("lib/app", "v1")
        for ref in ("v1", d):
            r = await self.request("GET", "/v2/lib/app/manifests/" + ref, headers={"Accept": OCI_MANIFEST})
            self.assertEqual((r.code, r.body), (200, body))
            self.assertEqual(r.header("Content-Type"), OCI_MANIFEST.encode())
            self.assertEqual(r.header("Docker-Content-Digest"), d.encode())
        r = await self.request("HEAD", "/v2/lib/app/manifests/v1")
        self.assertEqual((r.code, r.body, r.header("Content-Length")), (200, b"", b"%d" % len(body)))

    @async_test
    async def test_acceptNegotiation(self):
        d, body = await self.pushImage("neg", "v1")
        # several Accept lines are merged
        r = await self.request(
            "GET", "/v2/neg/manifests/v1", headers={"Accept": [DOCKER_MANIFEST, OCI_INDEX + ", " + OCI_MANIFEST]}
        )
        self.assertEqual(r.code, 200)
        r = await self.request("GET", "/v2/neg/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
        self.assertEqual((r.code, r.error()), (404, "MANIFEST_UNKNOWN"))
        r = await self.request("GET", "/v2/neg/manifests/v1", headers={"Accept": "*/*"})
        self.assertEqual(r.code, 200)

    @async_test
    async def test_exactBytesKept(self):
        config = await self.pushBlob("x", b"{}")
        body = (
            '{\n  "schemaVersion": 2,\n  "mediaType": "%s",\n  "config": {"mediaType": "application/vnd.docker.container.image.v1+json",'
            ' "digest": "%s", "size": 2},\n  "layers": []\n}\n' % (DOCKER_MANIFEST, config)
        ).encode()
        r, _ = await self.pushManifest("x", "t", body, DOCKER_MANIFEST)
        self.assertEqual(r.code, 201, r.body)
        self.assertEqual(r.header("Docker-Content-Digest"), digests.of(body).encode())
        r = await self.request("GET", "/v2/x/manifests/t")
        self.assertEqual(r.body, body)
        self.assertEqual(r.header("Content-Type"), DOCKER_MANIFEST.encode())

    @async_test
    async def test_missingBlobs(self):
        doc = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digests.of(b"no"), "size": 2},
            "layers": [],
        }
        r, _ = await self.pushManifest("mb", "t", doc)
        self.assertEqual((r.code, r.error()), (400, "MANIFEST_BLOB_UNKNOWN"))
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": digests.of(b"nothing"), "size": 7}]}
        r, _ = await self.pushManifest("mb", "i", index, OCI_INDEX)
        self.assertEqual((r.code, r.error()), (400, "MANIFEST_BLOB_UNKNOWN"))

    @async_test
    async def test_invalidManifests(self):
        cases = [
            (b"not json", OCI_MANIFEST),
            (b"[]", OCI_MANIFEST),
            (json.dumps({"schemaVersion": 1}).encode(), OCI_MANIFEST),
            (json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode(), OCI_MANIFEST),
            (json.dumps({"schemaVersion": 2, "config": {"digest": "bad", "size": 1}, "layers": []}).encode(), OCI_MANIFEST),
            (json.dumps({"schemaVersion": 2, "manifests": []}).encode(), "application/vnd.example.unknown+json"),
        ]
        for body, ct in cases:
            r, _ = await self.pushManifest("inv", "t", body, ct)
            self.assertEqual((r.code, r.error()), (400, "MANIFEST_INVALID"), body)

    @async_test
    async def test_tooLarge(self):
        body = b'{"schemaVersion": 2, "pad": "' + b"x" * (4 * 1024 * 1024) + b'"}'
        r, _ = await self.pushManifest("big", "t", body)
        self.assertEqual(r.code, 413)
        self.assertEqual(r.error(), "MANIFEST_INVALID")

    @async_test
    async def test_putByDigest(self):
        d, body = await self.pushImage("pd", "v1")
        r, _ = await self.pushManifest("pd", d, body)
        self.assertEqual(r.code, 201)
        r, _ = await self.pushManifest("pd", digests.of(b"other"), body)
        self.assertEqual((r.code, r.error()), (400, "DIGEST_INVALID"))

    @async_test
    async def test_index(self):
        d1, b1 = await self.pushImage("multi", "amd64", layers=[b"l1"])
        d2, b2 = await self.pushImage("multi", "arm64", layers=[b"l2"])
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
            {"mediaType": OCI_MANIFEST, "digest": d1, "size": len(b1), "platform": {"os": "linux", "architecture": "amd64"}},
            {"mediaType": OCI_MANIFEST, "digest": d2, "size": len(b2), "platform": {"os": "linux", "architecture": "arm64"}},
        ]}
        r, body = await self.pushManifest("multi", "latest", index, OCI_INDEX)
        self.assertEqual(r.code, 201, r.body)
        r = await self.request("GET", "/v2/multi/manifests/latest")
        self.assertEqual(r.header("Content-Type"), OCI_INDEX.encode())
        self.assertEqual(r.body, body)

    @async_test
    async def test_deleteTagOnly(self):
        d, _ = await self.pushImage("dt", "v1")
        r, body = await self.pushManifest("dt", "v2", (await self.request("GET", "/v2/dt/manifests/v1")).body)
        r = await self.request("DELETE", "/v2/dt/manifests/v1")
        self.assertEqual(r.code, 202)
        self.assertEqual((await self.request("GET", "/v2/dt/manifests/v1")).code, 404)
        self.assertEqual((await self.request("GET", "/v2/dt/manifests/v2")).code, 200)
        self.assertEqual((await self.request("GET", "/v2/dt/manifests/" + d)).code, 200)
        r = await self.request("DELETE", "/v2/dt/manifests/v1")
        self.assertEqual((r.code, r.error()), (404, "MANIFEST_UNKNOWN"))

    @async_test
    async def test_deleteByDigest(self):
        d, body = await self.pushImage("dd", "v1")
        await self.pushManifest("dd", "v2", body)
        r = await self.request("DELETE", "/v2/dd/manifests/" + d)
        self.assertEqual(r.code, 202)
        for ref in ("v1", "v2", d):
            self.assertEqual((await self.request("GET", "/v2/dd/manifests/" + ref)).code, 404, ref)
        r = await self.request("GET", "/v2/dd/tags/list")
        self.assertEqual(r.json()["tags"], [])


class DiscoveryTests(RegistryTestCase):
    @async_test
    async def test_tagsPaging(self):
        d, body = await self.pushImage("tp", "a")
        for tag in ("c", "b", "B", "d"):
            await self.pushManifest("tp", tag, body)
        r = await self.request("GET", "/v2/tp/tags/list")
        self.assertEqual(r.json(), {"name": "tp", "tags": ["B", "a", "b", "c", "d"]})
        r = await self.request("GET", "/v2/tp/tags/list?n=2")
        self.assertEqual(r.json()["tags"], ["B", "a"])
        self.assertEqual(r.header("Link"), b'</v2/tp/tags/list?n=2&last=a>; rel="next"')
        r = await self.request("GET", "/v2/tp/tags/list?n=2&last=a")
        self.assertEqual(r.json()["tags"], ["b", "c"])
        r = await self.request("GET", "/v2/tp/tags/list?n=2&last=c")
        self.assertEqual(r.json()["tags"], ["d"])
        self.assertIsNone(r.header("Link"))
        r = await self.request("GET", "/v2/tp/tags/list?n=-1")
        self.assertEqual(r.code, 400)
        r = await self.request("GET", "/v2/nothere/tags/list")
        self.assertEqual((r.code, r.error()), (404, "NAME_UNKNOWN"))

    @async_test
    async def test_catalog(self):
        for name in ("zeta", "alpha/one", "alpha/two", "mid"):
            await self.pushImage(name, "t")
        # as Distribution does, a repository holding only blobs is listed
        await self.pushBlob("blobonly", b"x")
        await self.request("POST", "/v2/upload/only/blobs/uploads/")  # an upload alone is not
        r = await self.request("GET", "/v2/_catalog")
        self.assertEqual(r.json(), {"repositories": ["alpha/one", "alpha/two", "blobonly", "mid", "zeta"]})
        r = await self.request("GET", "/v2/_catalog?n=3")
        self.assertEqual(r.json()["repositories"], ["alpha/one", "alpha/two", "blobonly"])
        self.assertEqual(r.header("Link"), b'</v2/_catalog?n=3&last=blobonly>; rel="next"')
        r = await self.request("GET", "/v2/_catalog?n=3&last=blobonly")
        self.assertEqual(r.json()["repositories"], ["mid", "zeta"])

    @async_test
    async def test_catalogPassesOverStrayDirectories(self):
        await self.pushImage("real/app", "t")
        repos = os.path.join(self.root, "docker", "registry", "v2", "repositories")
        for stray in (b"bad\xffname", b"Upper", b"with space", b"real/.hidden", b"lost+found"):
            os.makedirs(os.path.join(os.fsencode(repos), stray, b"_manifests"), exist_ok=True)
        r = await self.request("GET", "/v2/_catalog")
        self.assertEqual((r.code, r.json()), (200, {"repositories": ["real/app"]}))

    @async_test
    async def test_referrers(self):
        subject, sbody = await self.pushImage("ref", "v1")
        empty = b"{}"
        ed = await self.pushBlob("ref", empty)
        sig = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": "application/vnd.example.signature",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": ed, "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.empty.v1+json", "digest": ed, "size": 2}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": len(sbody)},
            "annotations": {"org.example": "yes"},
        }
        r, sigBody = await self.pushManifest("ref", digests.of(json.dumps(sig).encode()), sig)
        self.assertEqual(r.code, 201, r.body)
        self.assertEqual(r.header("OCI-Subject"), subject.encode())
        sbom = dict(sig, artifactType="application/vnd.example.sbom", annotations=None)
        del sbom["annotations"]
        r, sbomBody = await self.pushManifest("ref", "sbom", sbom)
        r = await self.request("GET", "/v2/ref/referrers/" + subject)
        self.assertEqual(r.code, 200)
        self.assertEqual(r.header("Content-Type"), OCI_INDEX.encode())
        doc = r.json()
        self.assertEqual(doc["mediaType"], OCI_INDEX)
        found = {m["artifactType"]: m for m in doc["manifests"]}
        self.assertEqual(set(found), {"application/vnd.example.signature", "application/vnd.example.sbom"})
        self.assertEqual(found["application/vnd.example.signature"]["annotations"], {"org.example": "yes"})
        self.assertEqual(found["application/vnd.example.signature"]["digest"], digests.of(sigBody))
        self.assertEqual(found["application/vnd.example.sbom"]["size"], len(sbomBody))
        r = await self.request("GET", "/v2/ref/referrers/%s?artifactType=application/vnd.example.sbom" % subject)
        self.assertEqual(r.header("OCI-Filters-Applied"), b"artifactType")
        self.assertEqual([m["artifactType"] for m in r.json()["manifests"]], ["application/vnd.example.sbom"])
        # deleting a referrer removes it from the list
        await self.request("DELETE", "/v2/ref/manifests/" + digests.of(sbomBody))
        r = await self.request("GET", "/v2/ref/referrers/" + subject)
        self.assertEqual(len(r.json()["manifests"]), 1)
        # unknown subject: an empty index
        r = await self.request("GET", "/v2/ref/referrers/" + digests.of(b"unknown"))
        self.assertEqual((r.code, r.json()["manifests"]), (200, []))


class MemoryDriverAPITests(ManifestTests, UploadTests):
    """The same API on the in-memory driver."""

    driverName = "memory"
