"""The storage driver contract (tests/support/storagecontract.py) on real
S3-compatible servers, and what only the S3 driver does, checked against the
servers' own behaviour."""

import os
import uuid

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.trial import unittest

from tests.support import s3servers
from tests.support.storagecontract import async_test, ContractMixin
from txregistry.storage import PathNotFound
from txregistry.storage.s3 import MIN_PART, PART_SIZE, PARTIAL_SUFFIX, S3Driver, S3Error, xml
from txregistry.storage.s3.errors import errorFor

_servers = {}


def server(kind):
    if kind not in _servers:
        cls = s3servers.MotoServer if kind == "moto" else s3servers.CephRGW
        s3servers.skipUnlessAvailable(cls)
        _servers[kind] = cls().start()
    return _servers[kind]


def teardown_module(module):
    for s in _servers.values():
        s.stop()
    _servers.clear()


class S3ContractMixin(ContractMixin):
    kind = None
    prefix = "/some/prefix"

    def makeDriver(self):
        s = server(self.kind)
        bucket = "contract-" + uuid.uuid4().hex[:16]
        s.createBucket(bucket)
        driver = S3Driver(
            reactor, bucket, region=s.region, endpoint=s.endpoint, accessKey=s.accessKey, secretKey=s.secretKey,
            rootDirectory=self.prefix,
        )
        self.addCleanup(driver.client.pool.closeCachedConnections)
        return driver

    @async_test
    async def test_aRefusedCopyStands(self):
        # A copy the server refuses with a 400 (here: onto itself, changing
        # nothing) is an error, and the source stays.  (A move onto itself
        # does not copy at all: see the contract's test_moveOntoItself.)
        d = self.driver
        await d.putContent("/mv/small", b"abc")
        with self.assertRaises(S3Error) as e:
            await d.s3.copy(d.key("/mv/small"), d.key("/mv/small"))
        self.assertEqual(e.exception.status, 400)
        self.assertEqual(await d.getContent("/mv/small"), b"abc")

    @async_test
    async def test_statChildrenIsOneListing(self):
        # More keys below the directory than one listing page holds (here
        # 100 a page, as a server may cap them; S3's is 1,000): the pages of
        # one listing, no HEAD, and the times a stat of each gives (whole
        # seconds: an HTTP date's).
        d = self.driver
        d.s3.pageSize = 100
        children = ["t%03d" % (i,) for i in range(120)]
        paths = [p for c in children for p in ("/many/%s/cur/link" % (c,), "/many/%s/index/x/link" % (c,))]
        for i in range(0, len(paths), 50):
            await gatherResults([ensureDeferred(d.putContent(p, b"x")) for p in paths[i:i + 50]])
        sent = []
        agent = d.client.agent
        real = agent.request

        def request(method, uri, headers=None, bodyProducer=None):
            sent.append((method.decode("ascii"), uri.decode("ascii").split("?", 1)[-1]))
            return real(method, uri, headers, bodyProducer)

        agent.request = request
        try:
            found = await d.statChildren("/many", "cur/link")
        finally:
            del agent.request
        self.assertEqual([m for m, _ in sent], ["GET", "GET", "GET"])
        self.assertTrue(all("list-type=2" in q for _, q in sent), sent)
        self.assertEqual(sorted(found), children)
        for child in ("t000", "t050", "t119"):
            self.assertEqual(found[child], await d.stat("/many/%s/cur/link" % (child,)))
            self.assertEqual(found[child].modTime, int(found[child].modTime))

    @async_test
    async def test_copyInParts(self):
        # What a move of a source larger than one copy may be does: a
        # multipart upload of ranges copied from the source.
        d = self.driver
        data = os.urandom(2 * MIN_PART + 100)
        await d.putContent("/cp/src", data)
        await d.s3.copyInParts(d.key("/cp/src"), d.key("/cp/dst"), len(data), MIN_PART)
        self.assertEqual(await d.getContent("/cp/dst"), data)
        self.assertEqual(await d.s3.uploads(d.key("/cp") + "/"), [])

    @async_test
    async def test_completionEscapesETags(self):
        # The completion document is well-formed whatever an ETag holds: a
        # wrong one is the server's InvalidPart, not MalformedXML; the
        # upload is left as it was, and completes with the right ETag.
        d = self.driver
        key = d.key("/etag/data")
        uploadID = await d.s3.initiate(key)
        etag = await d.s3.uploadPart(key, uploadID, 1, b"last and only part")
        with self.assertRaises(S3Error) as e:
            await d.s3.complete(key, uploadID, [(1, '"&<not the etag>"')])
        self.assertEqual(e.exception.code, "InvalidPart")
        await d.s3.complete(key, uploadID, [(1, etag)])
        self.assertEqual(await d.getContent("/etag/data"), b"last and only part")

    @async_test
    async def test_deleteAbortsMultipartUploads(self):
        # A file being written in parts, and a multipart upload no .partial
        # names (its writer stopped before saving one): delete ends both.
        d = self.driver
        w = await d.writer("/mp/a/data")
        await w.write(b"x" * (PART_SIZE + 10))
        await w.close()
        self.assertTrue(await d.s3.initiate(d.key("/mp/b/data")))
        self.assertEqual(len(await d.s3.uploads(d.key("/mp") + "/")), 2)
        await d.delete("/mp/a/data")
        with self.assertRaises(PathNotFound):
            await d.stat("/mp/a/data")
        self.assertEqual([k for k, _ in await d.s3.uploads(d.key("/mp") + "/")], [d.key("/mp/b/data")])
        await d.delete("/mp")
        self.assertEqual(await d.s3.uploads(d.key("/mp") + "/"), [])
        with self.assertRaises(PathNotFound):
            await d.delete("/mp")

    @async_test
    async def test_commitInterruptedBeforeThePartialWasDeleted(self):
        # The daemon stops (kill -9) between completing the file and deleting
        # its .partial: the file is committed all the same, and a retried
        # completion finds it so, in one PUT or in parts.  The state is made
        # with the server: the .partial is copied aside before the commit
        # and back after it.
        d = self.driver
        for path, data in (("/gap/small/data", b"small" * 100), ("/gap/parts/data", os.urandom(PART_SIZE + 100))):
            w = await d.writer(path, append=True)
            await w.write(data)
            await w.close()
            partial, aside = d.key(path) + PARTIAL_SUFFIX, d.key(path) + ".aside"
            await d.s3.copy(partial, aside)
            w = await d.writer(path, append=True)
            await w.commit()
            await d.s3.copy(aside, partial)
            await d.s3.delete(aside)
            self.assertIsNotNone(await d.s3.head(partial))
            retried = await d.writer(path, append=True)  # the retried completion
            self.assertEqual(retried.size, len(data))
            await retried.commit()
            await retried.close()
            self.assertEqual(await d.getContent(path), data)
            self.assertEqual((await d.stat(path)).size, len(data))
            self.assertIsNone(await d.s3.head(partial))
            await d.move(path, path + "-moved")
            self.assertEqual(await d.getContent(path + "-moved"), data)


class MotoContractTests(S3ContractMixin, unittest.TestCase):
    kind = "moto"


class MotoNoPrefixContractTests(S3ContractMixin, unittest.TestCase):
    kind = "moto"
    prefix = ""


class RGWContractTests(S3ContractMixin, unittest.TestCase):
    kind = "rgw"


class ErrorTypeTests(unittest.TestCase):
    """What S3-compatible servers answer when they are full or throttling
    becomes the drivers' common error type (the web layer answers 507/503)."""

    def test_fullAndUnavailable(self):
        from txregistry.storage import StorageFull, StorageUnavailable

        def error(status, code):
            body = ("<?xml version='1.0'?><Error><Code>%s</Code><Message>m</Message></Error>" % (code,)).encode()
            return errorFor(status, body, "k")

        for status, code in ((507, "XMinioStorageFull"), (403, "QuotaExceeded"), (400, "XMinioAdminBucketQuotaExceeded")):
            self.assertIsInstance(error(status, code), StorageFull)
        for status, code in ((503, "SlowDown"), (503, "ServiceUnavailable")):
            e = error(status, code)
            self.assertIsInstance(e, StorageUnavailable)
            self.assertNotIsInstance(e, StorageFull)
        for status, code in ((403, "AccessDenied"), (500, "InternalError")):
            e = error(status, code)
            self.assertIsInstance(e, S3Error)
            self.assertNotIsInstance(e, StorageUnavailable)
        self.assertIsInstance(errorFor(507, b"", "k"), StorageFull)


class XMLTests(unittest.TestCase):
    def test_completionDocument(self):
        # One builder, text escaped: what the server parses back is the ETag.
        body = xml.completeMultipart([(1, '"a&b"'), (2, '"<c>"')])
        doc = xml.parse(body)
        self.assertEqual([(xml.text(p, "PartNumber"), xml.text(p, "ETag")) for p in xml.findall(doc, "Part")],
                         [("1", '"a&b"'), ("2", '"<c>"')])

    def test_errorDocuments(self):
        body = b"<?xml version='1.0'?><Error><Code>InternalError</Code><Message>m</Message></Error>"
        self.assertTrue(xml.isError(xml.parse(body)))
        self.assertFalse(xml.isError(xml.parse(b"<CompleteMultipartUploadResult/>")))
        self.assertFalse(xml.isError(xml.parse(b"not xml")))
        self.assertEqual(xml.errorCodeAndMessage(500, body), ("InternalError", "m"))
        self.assertEqual(xml.errorCodeAndMessage(502, b"bad gateway"), ("HTTP502", "bad gateway"))
