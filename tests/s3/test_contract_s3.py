"""The storage driver contract on real S3-compatible servers."""

import os
import uuid

from twisted.internet import reactor
from twisted.trial import unittest

from tests.support import s3servers
from tests.unit.test_storage_contract import ContractMixin, async_test
from txregistry.storage import PathNotFound
from txregistry.storage import s3 as s3module
from txregistry.storage.s3 import PART_SIZE, S3Driver, S3Error

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
        self.addCleanup(driver._pool.closeCachedConnections)
        return driver

    @async_test
    async def test_moveTooLargeForOneCopy(self):
        # A source over the copy limit (5 GiB; here 4 bytes) is refused
        # with a 400, then copied in parts.
        d = self.driver
        self.patch(s3module, "MAX_COPY", 4)
        call = d._call
        refused = []

        async def refusingCall(method, key, query="", body=None, headers=None, **kw):
            if "x-amz-copy-source" in (headers or {}) and "partNumber" not in query:
                refused.append(key)
                raise S3Error(400, "InvalidRequest", "The specified copy source is larger than the maximum")
            return await call(method, key, query, body, headers, **kw)

        self.patch(d, "_call", refusingCall)
        await d.putContent("/mv/src", b"payload")
        await d.move("/mv/src", "/mv/dst")
        self.assertEqual(refused, [d._key("/mv/dst")])
        self.assertEqual(await d.getContent("/mv/dst"), b"payload")
        with self.assertRaises(PathNotFound):
            await d.stat("/mv/src")
        await d.putContent("/mv/small", b"abc")  # under the limit: the 400 stands
        with self.assertRaises(S3Error):
            await d.move("/mv/small", "/mv/dst")
        self.assertEqual(await d.getContent("/mv/small"), b"abc")

    @async_test
    async def test_deleteAbortsMultipartUploads(self):
        # A file being written in parts, and a multipart upload no .partial
        # names (its writer stopped before saving one): delete ends both.
        d = self.driver
        w = await d.writer("/mp/a/data")
        await w.write(b"x" * (PART_SIZE + 10))
        await w.close()
        orphan = await d._call("POST", d._key("/mp/b/data"), query="uploads")
        self.assertIn(b"UploadId", orphan)
        self.assertEqual(len(await d._multipartUploads(d._key("/mp") + "/")), 2)
        await d.delete("/mp/a/data")
        with self.assertRaises(PathNotFound):
            await d.stat("/mp/a/data")
        self.assertEqual([k for k, _ in await d._multipartUploads(d._key("/mp") + "/")], [d._key("/mp/b/data")])
        await d.delete("/mp")
        self.assertEqual(await d._multipartUploads(d._key("/mp") + "/"), [])
        with self.assertRaises(PathNotFound):
            await d.delete("/mp")


    @async_test
    async def test_commitInterruptedBeforeThePartialWasDeleted(self):
        # The daemon stops (kill -9) between completing the file and deleting
        # its .partial: the file is committed all the same, and a retried
        # completion finds it so, in one PUT or in parts.
        d = self.driver
        deleteKey = d._deleteKey

        async def crashBeforePartialDeleted(key):
            if key.endswith(s3module.PARTIAL_SUFFIX):
                raise ConnectionError("the daemon stopped here")
            return await deleteKey(key)

        for path, data in (("/gap/small/data", b"small" * 100), ("/gap/parts/data", os.urandom(PART_SIZE + 100))):
            w = await d.writer(path, append=True)
            await w.write(data)
            await w.close()
            w = await d.writer(path, append=True)
            self.patch(d, "_deleteKey", crashBeforePartialDeleted)
            with self.assertRaises(ConnectionError):
                await w.commit()
            self.patch(d, "_deleteKey", deleteKey)
            retried = await d.writer(path, append=True)  # the retried completion
            self.assertEqual(retried.size, len(data))
            await retried.commit()
            await retried.close()
            self.assertEqual(await d.getContent(path), data)
            self.assertEqual((await d.stat(path)).size, len(data))
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
            return s3module._errorOf(status, body, "k")

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
        self.assertIsInstance(s3module._errorOf(507, b"", "k"), StorageFull)
