"""Uploads: requests that wait for one another on the same upload."""

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList
from twisted.python.threadpool import ThreadPool
from twisted.trial import unittest

from tests.api.harness import async_test
from txregistry import digest as digests
from txregistry.errors import RegistryError
from txregistry.registry import Registry
from txregistry.registry.appender import Phase
from txregistry.storage.filesystem import FilesystemDriver
from txregistry.storage.memory import MemoryDriver


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
        self.assertEqual(self.uploads.tracked, frozenset())  # nothing kept of it

    @async_test
    async def test_cancelWhileAnotherWaits(self):
        uploadID = await self.started(b"x")
        cancels = [Deferred.fromCoroutine(self.uploads.cancel("team/app", uploadID)) for _ in range(2)]
        results = await DeferredList(cancels, consumeErrors=True)
        self.assertEqual(outcomes(results), [None, "BLOB_UPLOAD_UNKNOWN"])
        self.assertEqual(self.uploads.tracked, frozenset())


class TurnsTests(unittest.TestCase):
    """Requests on one upload take turns (in order), on the memory driver
    with no thread pool: every step is synchronous unless it waits for
    another request."""

    def setUp(self):
        self.uploads = Registry(MemoryDriver(), reactor, None).uploads
        self.uploadID = self.successResultOf(Deferred.fromCoroutine(self.uploads.create("team/app")))

    def body(self, data):
        """An appender on the upload that received C{data} and not its end."""
        appender = self.uploads.appender("team/app", self.uploadID, None, ("sha256",))
        appender.write(data)
        return appender

    def test_offsetWaitsForTheBodyBeingWritten(self):
        first = self.body(b"abc")
        offset = Deferred.fromCoroutine(self.uploads.offset("team/app", self.uploadID))
        self.assertNoResult(offset)
        self.assertEqual(self.successResultOf(first.finish()), 3)
        self.assertEqual(self.successResultOf(offset), 3)

    def test_bodiesAppendInTurn(self):
        first = self.body(b"abc")
        second = self.body(b"de")
        self.assertEqual(second.phase, Phase.OPENING)  # waiting for its claim
        third = self.body(b"f")
        done = [second.finish(), third.finish()]
        for d in done:
            self.assertNoResult(d)
        self.assertEqual(self.successResultOf(first.finish()), 3)
        self.assertEqual([self.successResultOf(d) for d in done], [5, 6])
        self.assertEqual(first.phase, Phase.CLOSED)

    def test_waiterFindsTheUploadCancelledBeforeItsTurn(self):
        """A request that waited re-checks that the upload exists: one
        cancelled while it waited is unknown, and nothing is kept of it."""
        first = self.body(b"abc")
        cancel = Deferred.fromCoroutine(self.uploads.cancel("team/app", self.uploadID))
        late = self.body(b"more")
        self.assertNoResult(cancel)
        self.successResultOf(first.finish())
        self.assertIsNone(self.successResultOf(cancel))
        self.assertEqual(self.failureResultOf(late.finish(), RegistryError).value.code, "BLOB_UPLOAD_UNKNOWN")
        self.assertEqual(self.uploads.tracked, frozenset())
        offset = Deferred.fromCoroutine(self.uploads.offset("team/app", self.uploadID))
        self.assertEqual(self.failureResultOf(offset, RegistryError).value.code, "BLOB_UPLOAD_UNKNOWN")

    def test_completeWithTheRunningHashes(self):
        first = self.body(b"abc")
        second = self.body(b"de")
        self.successResultOf(first.finish())
        self.successResultOf(second.finish())
        expected = digests.of(b"abcde")
        size = self.successResultOf(Deferred.fromCoroutine(self.uploads.complete("team/app", self.uploadID, expected)))
        self.assertEqual(size, 5)
        self.assertTrue(self.successResultOf(Deferred.fromCoroutine(self.uploads.blobs.isLinked("team/app", expected))))
        self.assertEqual(self.uploads.tracked, frozenset())
