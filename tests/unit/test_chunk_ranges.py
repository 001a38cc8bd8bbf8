"""An upload chunk with a Content-Range: refused, and nothing of it kept,
when its body has another length (memory and filesystem drivers)."""

from twisted.internet import reactor
from twisted.python.threadpool import ThreadPool
from twisted.trial import unittest

from tests.api.harness import async_test
from txregistry import digest as digests
from txregistry.errors import RegistryError
from txregistry.registry import Registry, layout
from txregistry.storage import PathNotFound
from txregistry.storage.filesystem import FilesystemDriver
from txregistry.storage.memory import MemoryDriver
from txregistry.web.errors import statusOf

NAME = "team/app"


class ChunkRangeTests(unittest.TestCase):
    def makeDriver(self):
        return MemoryDriver()

    def setUp(self):
        self.driver = self.makeDriver()
        self.uploads = Registry(self.driver, reactor, getattr(self, "pool", None)).uploads

    async def append(self, uploadID, span, pieces, declared="pieces"):
        appender = self.uploads.appender(NAME, uploadID, span, ("sha256",))
        refusal = appender.declare(sum(map(len, pieces)) if declared == "pieces" else declared)
        if refusal is None:
            for piece in pieces:
                appender.write(piece)
        appender.end()
        try:
            return await appender.finish(), refusal
        except RegistryError as e:
            return e.code, refusal

    async def assertNothingStaged(self, uploadID):
        with self.assertRaises(PathNotFound):
            await self.driver.stat(layout.uploadStaged(NAME, uploadID))

    @async_test
    async def test_chunkedBodyOfTheRightLengthIsAppended(self):
        uploadID = await self.uploads.create(NAME)
        self.assertEqual(await self.append(uploadID, (0, 5), [b"abc", b"def"], None), (6, None))
        self.assertEqual(await self.append(uploadID, (6, 7), [b"g", b"h"], None), (8, None))
        self.assertEqual(await self.uploads.offset(NAME, uploadID), 8)
        await self.assertNothingStaged(uploadID)
        await self.uploads.complete(NAME, uploadID, digests.of(b"abcdefgh"))

    @async_test
    async def test_chunkedBodyOfAnotherLengthLeavesNothing(self):
        uploadID = await self.uploads.create(NAME)
        await self.append(uploadID, (0, 2), [b"abc"], None)
        for pieces in ([b"de"], [b"de", b"fg"], [b"d" * 100]):
            code, _ = await self.append(uploadID, (3, 5), pieces, None)
            self.assertEqual(code, "RANGE_INVALID", pieces)
            self.assertEqual(await self.uploads.offset(NAME, uploadID), 3)
            await self.assertNothingStaged(uploadID)
        # The hash state is still right: completing checks the digest.
        self.assertEqual(await self.append(uploadID, (3, 5), [b"def"], None), (6, None))
        await self.uploads.complete(NAME, uploadID, digests.of(b"abcdef"))

    @async_test
    async def test_refusedChunkKeepsTheHashState(self):
        """A refused chunk leaves the running hashes as they were (written
        in place and cut back, or staged and dropped): completing needs no
        re-read of the data."""
        uploadID = await self.uploads.create(NAME)
        await self.append(uploadID, (0, 2), [b"abc"], None)
        for pieces in ([b"de"], [b"d" * 100]):
            await self.append(uploadID, (3, 5), pieces, None)
            state = self.uploads._states[uploadID]
            self.assertEqual((state.offset, sorted(state.hashers)), (3, ["sha256"]))
            self.assertEqual(digests.fromHasher("sha256", state.hashers["sha256"].copy()), digests.of(b"abc"))

    @async_test
    async def test_declaredLengthContradictingTheRangeRefusedAtOnce(self):
        uploadID = await self.uploads.create(NAME)
        code, refusal = await self.append(uploadID, (0, 9), [b"abc"])
        self.assertEqual((code, refusal.code, statusOf(refusal)), ("RANGE_INVALID", "RANGE_INVALID", 416))
        self.assertEqual(await self.uploads.offset(NAME, uploadID), 0)
        self.assertEqual(await self.append(uploadID, (0, 2), [b"abc"]), (3, None))


class FilesystemChunkRangeTests(ChunkRangeTests):
    def makeDriver(self):
        self.pool = ThreadPool(1, 4, name="test-chunks")
        self.pool.start()
        self.addCleanup(self.pool.stop)
        return FilesystemDriver(self.mktemp(), reactor, self.pool)
