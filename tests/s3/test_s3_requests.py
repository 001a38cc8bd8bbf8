"""How many S3 requests a blob push, HEAD and GET cost, through the real web
app on a real socket with the S3 driver on moto's server.

The sequence is recorded where the driver hands each request to its HTTP
Agent (so retries would count), and checked against moto's own request log,
so what is counted is what the server served.  The bounds are a regression
guard: a change that adds a request to one of these flows fails here.

Run with ``-s`` to see the sequences.
"""

import hashlib
import re
import time
import uuid
from urllib.parse import unquote

from twisted.internet import reactor
from twisted.internet.task import deferLater
from twisted.python.threadpool import ThreadPool

from tests.api.harness import RegistryTestCase, async_test
from tests.s3 import test_contract_s3 as contract
from txregistry import digest as digests
from txregistry.storage.s3 import S3Driver

MiB = 1024 * 1024

# The most S3 requests each flow may take.
BOUNDS = {
    "monolithic": 13,
    "monolithic-multipart": 16,
    "chunked": 21,
    "multipart": 26,
    "head": 2,
    "get": 2,
    "get-range": 3,
    "head-redirect": 2,
    "get-redirect": 2,
    "manifest-put": 13,  # 9, and a touch per blob it relies on (txregistry.registry.touch)
    "manifest-get": 3,
}

def motoServer():
    return contract.server("moto")


def teardown_module(module):
    contract.teardown_module(contract)


_HEX = re.compile(r"[0-9a-f]{64}")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def pattern(method, target):
    """C{"METHOD key?query"} with digests, upload ids and query values
    replaced by placeholders, the bucket's prefix dropped."""
    path, _, query = target.partition("?")
    path = path.replace("/registry/docker/registry/v2", "", 1)
    path = re.sub(r"/[0-9a-f]{2}/<hex>", "/<hex>", _HEX.sub("<hex>", path))
    path = _UUID.sub("<id>", path)
    if query:
        keys = [kv.split("=", 1)[0] for kv in query.split("&")]
        keys = [k for k in keys if k not in ("X-Amz-Algorithm",)]
        path += "?" + "&".join(keys)
    return "%s %s" % (method, path)


class S3RequestCounts(RegistryTestCase):
    """Each test: an empty bucket, the app on it (no redirects, so GET
    streams from S3), and the S3 requests of one flow."""

    redirect = False

    def setUp(self):
        s = self.s3 = motoServer()
        self.bucket = "req-" + uuid.uuid4().hex[:16]
        s.createBucket(self.bucket)
        self.createdBy = None  # moto's log entries for the bucket before the driver's
        self.pool = ThreadPool(1, 4, name="test-io")
        self.pool.start()
        self.addCleanup(self.pool.stop)
        self.driver = S3Driver(
            reactor, self.bucket, region=s.region, endpoint=s.endpoint, accessKey=s.accessKey,
            secretKey=s.secretKey, rootDirectory="/registry", redirect=self.redirect,
        )
        self.addCleanup(self.driver.client.pool.closeCachedConnections)
        self.sent = []
        agent = self.driver.client.agent
        real = agent.request

        def request(method, uri, headers=None, bodyProducer=None):
            target = uri.decode("ascii").split("/" + self.bucket, 1)[1]
            self.sent.append((method.decode("ascii"), target))
            return real(method, uri, headers, bodyProducer)

        agent.request = request
        self.serve()

    async def served(self, since):
        """The requests moto logged for the bucket that the driver sent from
        its C{since}th on, once moto has logged as many as were sent (it
        logs a request after answering it)."""
        if self.createdBy is None:
            self.createdBy = len([r for r in self.s3.requests(self.bucket) if r[:2] == ("PUT", "")])
        deadline = time.monotonic() + 10
        while True:
            logged = self.s3.requests(self.bucket)[self.createdBy:]
            if len(logged) >= len(self.sent) or time.monotonic() > deadline:
                return logged[since:]
            await deferLater(reactor, 0.02, lambda: None)

    async def measure(self, label, flow):
        """Run C{flow} (a coroutine function) and return its S3 request
        patterns, checked against what moto logged."""
        await self.served(len(self.sent))  # all earlier requests are in moto's log
        before = len(self.sent)
        await flow()
        sent = self.sent[before:]
        logged = await self.served(before)
        # (as a set of requests: some are sent at once, and may reach moto in any order)
        self.assertEqual(sorted((m, unquote(t)) for m, t, _ in logged), sorted((m, unquote(t)) for m, t in sent))
        seq = [pattern(m, t) for m, t in sent]
        print("\n%s: %d S3 requests" % (label, len(seq)))
        for line in seq:
            print("    " + line)
        return seq

    async def monolithic(self, name, data):
        d = digests.of(data)
        r = await self.request("POST", "/v2/%s/blobs/uploads/?digest=%s" % (name, d), data)
        self.assertEqual(r.code, 201, r.body)
        return d

    async def chunked(self, name, chunks):
        r = await self.request("POST", "/v2/%s/blobs/uploads/" % (name,))
        self.assertEqual(r.code, 202, r.body)
        location = r.header("location").decode("ascii")
        h = hashlib.sha256()
        offset = 0
        for chunk in chunks:
            h.update(chunk)
            headers = {"Content-Range": "%d-%d" % (offset, offset + len(chunk) - 1),
                       "Content-Type": "application/octet-stream"}
            r = await self.request("PATCH", location, chunk, headers)
            self.assertEqual(r.code, 202, r.body)
            offset += len(chunk)
            self.assertEqual(r.header("range"), b"0-%d" % (offset - 1,))
        d = "sha256:" + h.hexdigest()
        r = await self.request("PUT", location + "?digest=" + d)
        self.assertEqual(r.code, 201, r.body)
        return d, location

    def assertAtMost(self, seq, bound):
        self.assertLessEqual(len(seq), bound, "\n".join(seq))

    @async_test
    async def test_monolithic_push(self):
        data = b"a small blob" * 100
        seq = await self.measure("monolithic POST (1200 bytes)", lambda: self.monolithic("team/app", data))
        self.assertAtMost(seq, BOUNDS["monolithic"])

    @async_test
    async def test_monolithic_push_multipart(self):
        # Parts, and a tail sent as the last part, straight from the
        # request's writer: no .partial saved, read back or deleted (only
        # the look for one when the writer opens).
        data = b"m" * (17 * MiB) + b"end"
        seq = await self.measure("monolithic POST (17 MiB)", lambda: self.monolithic("team/app", data))
        self.assertAtMost(seq, BOUNDS["monolithic-multipart"])
        self.assertEqual([p for p in seq if ".partial" in p], ["GET /repositories/team/app/_uploads/<id>/data.partial"])
        r = await self.request("GET", "/v2/team/app/blobs/" + digests.of(data))
        self.assertEqual((r.code, r.length), (200, len(data)))
        self.assertTrue(r.body == data)

    @async_test
    async def test_chunked_push_small_parts(self):
        chunks = [b"x" * (6 * MiB), b"y" * MiB]
        seq = await self.measure("POST + PATCH 6 MiB + PATCH 1 MiB + PUT", lambda: self.chunked("team/app", chunks))
        self.assertAtMost(seq, BOUNDS["chunked"])

    @async_test
    async def test_chunked_push_multipart(self):
        chunks = [b"x" * (17 * MiB), b"y" * MiB]
        seq = await self.measure("POST + PATCH 17 MiB + PATCH 1 MiB + PUT", lambda: self.chunked("team/app", chunks))
        self.assertAtMost(seq, BOUNDS["multipart"])

    @async_test
    async def test_manifest_put_and_get(self):
        """A manifest PUT reads each blob's link once and the config's
        stored size (a HEAD); a GET by tag reads the tag's link, the
        revision link it names (once: the chain of links ends there) and
        the manifest, each a ranged GET bounded by what may be stored there
        (one request, as an unbounded GET was)."""
        config = b'{"architecture":"amd64","os":"linux"}'
        layer = b"a layer" * 100
        c, l = await self.monolithic("team/app", config), await self.monolithic("team/app", layer)
        body = (
            '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
            '"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},'
            '"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"%s","size":%d}]}'
            % (c, len(config), l, len(layer))
        ).encode()
        headers = {"Content-Type": "application/vnd.oci.image.manifest.v1+json"}

        async def put():
            r = await self.request("PUT", "/v2/team/app/manifests/v1", body, headers)
            self.assertEqual(r.code, 201, r.body)

        async def get():
            r = await self.request("GET", "/v2/team/app/manifests/v1", headers={"Accept": headers["Content-Type"]})
            self.assertEqual((r.code, r.body), (200, body))

        seq = await self.measure("manifest PUT (config + 1 layer)", put)
        self.assertAtMost(seq, BOUNDS["manifest-put"])
        # the config's size (whether each blob has data: the listing after its touch)
        self.assertEqual(len([p for p in seq if p.startswith("HEAD /blobs/")]), 1, seq)
        self.app.registry.manifests.forgetCached()  # from storage, not the cache
        seq = await self.measure("manifest GET by tag", get)
        self.assertAtMost(seq, BOUNDS["manifest-get"])

    @async_test
    async def test_blob_head_and_get(self):
        data = b"z" * (3 * MiB + 5)
        d = await self.monolithic("team/app", data)
        path = "/v2/team/app/blobs/" + d

        async def head():
            r = await self.request("HEAD", path)
            self.assertEqual(r.code, 200)
            self.assertEqual(r.header("content-length"), b"%d" % (len(data),))

        async def get():
            r = await self.request("GET", path)
            self.assertEqual(r.code, 200)
            self.assertEqual(r.body, data)

        seq = await self.measure("blob HEAD", head)
        self.assertAtMost(seq, BOUNDS["head"])
        seq = await self.measure("blob GET", get)
        self.assertAtMost(seq, BOUNDS["get"])


    @async_test
    async def test_blob_get_whole_ranges_304_empty_missing(self):
        """A whole GET takes its size from the GET itself; a ranged GET, a
        HEAD and an If-None-Match still ask first, and answer as before.
        Missing data is a 404 BLOB_UNKNOWN with no body of the blob."""
        data = bytes(range(256)) * 4096 + b"tail"
        d = await self.monolithic("team/app", data)
        path = "/v2/team/app/blobs/" + d
        etag = b'"%s"' % (d.encode("ascii"),)

        async def whole():
            r = await self.request("GET", path)
            self.assertEqual((r.code, r.body), (200, data))
            self.assertEqual(r.length, len(data))  # a Content-Length, not chunked
            self.assertEqual(r.header("content-type"), b"application/octet-stream")
            self.assertEqual((r.header("etag"), r.header("docker-content-digest")), (etag, d.encode("ascii")))
            self.assertEqual(r.header("accept-ranges"), b"bytes")
            self.assertIsNone(r.header("content-range"))

        async def ranged():
            r = await self.request("GET", path, headers={"Range": "bytes=1000-1999"})
            self.assertEqual((r.code, r.body), (206, data[1000:2000]))
            self.assertEqual(r.header("content-range"), b"bytes 1000-1999/%d" % (len(data),))
            r = await self.request("GET", path, headers={"Range": "bytes=-4"})
            self.assertEqual((r.code, r.body), (206, b"tail"))
            r = await self.request("GET", path, headers={"Range": "bytes=%d-" % (len(data),)})
            self.assertEqual(r.code, 416)
            self.assertEqual(r.header("content-range"), b"bytes */%d" % (len(data),))

        async def notModified():
            r = await self.request("GET", path, headers={"If-None-Match": etag.decode("ascii")})
            self.assertEqual((r.code, r.body), (304, b""))
            r = await self.request("GET", path, headers={"If-None-Match": '"sha256:other"'})
            self.assertEqual((r.code, r.body), (200, data))

        async def head():
            r = await self.request("HEAD", path)
            self.assertEqual((r.code, r.body), (200, b""))
            self.assertEqual(r.header("content-length"), b"%d" % (len(data),))

        self.assertAtMost(await self.measure("blob GET (whole)", whole), BOUNDS["get"])
        # (the third, not satisfiable, needs no GET of the data)
        self.assertAtMost(await self.measure("blob GET (3 ranges)", ranged), 2 * BOUNDS["get-range"] + BOUNDS["head"])
        self.assertAtMost(await self.measure("blob GET (If-None-Match, twice)", notModified),
                          BOUNDS["head"] + BOUNDS["get"])
        self.assertAtMost(await self.measure("blob HEAD", head), BOUNDS["head"])

        empty = await self.monolithic("team/app", b"")
        r = await self.request("GET", "/v2/team/app/blobs/" + empty)
        self.assertEqual((r.code, r.body, r.length), (200, b"", 0))

        # The repository links the blob but its data is gone (damaged
        # storage): 404 BLOB_UNKNOWN, whatever the method.
        await self.driver.s3.delete(self.driver.key("/docker/registry/v2/blobs/sha256/%s/%s/data" % (d[7:9], d[7:])))
        for method, headers in (("GET", {}), ("GET", {"Range": "bytes=0-9"}), ("HEAD", {})):
            r = await self.request(method, path, headers=headers)
            self.assertEqual(r.code, 404, (method, headers))
            if method == "GET":
                self.assertEqual(r.error(), "BLOB_UNKNOWN")
        r = await self.request("GET", "/v2/team/app/blobs/sha256:" + "0" * 64)
        self.assertEqual((r.code, r.error()), (404, "BLOB_UNKNOWN"))


class S3RequestCountsRedirect(S3RequestCounts):
    """The same with redirects to presigned URLs (the default)."""

    redirect = True

    @async_test
    async def test_blob_head_and_get(self):
        data = b"z" * 1000
        d = await self.monolithic("team/app", data)
        path = "/v2/team/app/blobs/" + d
        for method in ("HEAD", "GET"):
            async def go():
                r = await self.request(method, path)
                self.assertEqual(r.code, 307)

            seq = await self.measure("blob %s (redirect)" % method, go)
            self.assertAtMost(seq, BOUNDS[method.lower() + "-redirect"])

    test_monolithic_push = test_chunked_push_small_parts = test_chunked_push_multipart = None
    test_monolithic_push_multipart = None
    test_blob_get_whole_ranges_304_empty_missing = None
