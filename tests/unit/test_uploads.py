"""Uploads: requests that wait for one another on the same upload."""

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.python.threadpool import ThreadPool
from twisted.trial import unittest

from tests.api.harness import async_test
from txregistry import digest as digests
from txregistry.errors import RegistryError
from txregistry.registry import Registry
from txregistry.storage.filesystem import FilesystemDriver


def outcomes(results):
    """The results of a DeferredList: the successes' values first, then the
    codes of the RegistryErrors (whichever request came first)."""
    values = [value for ok, value in results if ok]
    codes = [value.value.code for ok, value in results if not ok and isinstance(value.value, RegistryError)]
    return values + codes


class ConcurrentRequestsTests(unittest.TestCase):
    def setUp(self):
        # A real thread pool: each storage call is a real wait, so the two
        # requests overlap.
        pool = ThreadPool(1, 4, name="test-uploads")
        pool.start()
        self.addCleanup(pool.stop)
        root = self.mktemp()
        self.registry = Registry(FilesystemDriver(root, reactor, pool), reactor, pool)
        self.uploads = self.registry.uploads

    async def started(self, data):
        uploadID = await self.uploads.create("team/app")
        appender = self.uploads.appender("team/app", uploadID, None, ("sha256",))
        appender.write(data)
        appender.end()
        await appender.finish()
        return uploadID

    @async_test
    async def test_secondCompleteFindsTheUploadGone(self):
        # Two PUTs for one upload: the one that waited must be told the
        # upload is gone, not wait for ever.
        data = b"some layer"
        uploadID = await self.started(data)
        d = digests.of(data)
        results = await DeferredList(
            [Deferred.fromCoroutine(self.uploads.complete("team/app", uploadID, d)) for _ in range(2)],
            consumeErrors=True,
        )
        self.assertEqual(outcomes(results), [len(data), "BLOB_UPLOAD_UNKNOWN"])
        self.assertEqual(self.uploads._states, {})  # nothing kept of it

    @async_test
    async def test_cancelWhileAnotherWaits(self):
        uploadID = await self.started(b"x")
        cancels = [Deferred.fromCoroutine(self.uploads.cancel("team/app", uploadID)) for _ in range(2)]
        results = await DeferredList(cancels, consumeErrors=True)
        self.assertEqual(outcomes(results), [None, "BLOB_UPLOAD_UNKNOWN"])
        self.assertEqual(self.uploads._states, {})
