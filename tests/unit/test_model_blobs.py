"""The model's blobs and their links into repositories, on the memory
driver (no HTTP)."""

from twisted.trial import unittest

from tests.api.harness import async_test
from tests.support.model import memoryRegistry, pushBlob
from txregistry import digest as digests
from txregistry.errors import RegistryError


class BlobTests(unittest.TestCase):
    def setUp(self):
        self.registry = memoryRegistry()
        self.blobs = self.registry.blobs

    async def assertUnknown(self, coroutine):
        try:
            await coroutine
        except RegistryError as e:
            self.assertEqual(e.code, "BLOB_UNKNOWN")
            return
        self.fail("no BLOB_UNKNOWN")

    async def read(self, name, digest):
        reader = await self.blobs.open(name, digest)
        try:
            return await reader.read(reader.size + 1)
        finally:
            reader.close()

    @async_test
    async def test_linkedBlobIsReadableThere(self):
        d = (await pushBlob(self.registry, "a/one", b"hello"))["digest"]
        self.assertTrue(await self.blobs.isLinked("a/one", d))
        self.assertEqual(await self.blobs.size("a/one", d), 5)
        self.assertEqual(await self.read("a/one", d), b"hello")
        # Stored, but not linked into another repository: unknown there.
        self.assertTrue(await self.blobs.hasData(d))
        self.assertFalse(await self.blobs.isLinked("b/two", d))
        await self.assertUnknown(self.blobs.size("b/two", d))
        await self.assertUnknown(self.blobs.open("b/two", d))

    @async_test
    async def test_linkWithoutDataIsUnknown(self):
        d = digests.of(b"never stored")
        await self.blobs.link("a/one", d)
        self.assertTrue(await self.blobs.isLinked("a/one", d))
        await self.assertUnknown(self.blobs.size("a/one", d))
        self.assertIsNone(await self.blobs.storedSize(d))

    @async_test
    async def test_mountFromARepositoryThatHasIt(self):
        d = (await pushBlob(self.registry, "a/one", b"shared"))["digest"]
        self.assertTrue(await self.blobs.mount("b/two", d, "a/one"))
        self.assertEqual(await self.blobs.size("b/two", d), 6)
        self.assertTrue(await self.blobs.isLinked("a/one", d))

    @async_test
    async def test_mountFromARepositoryThatLacksIt(self):
        d = (await pushBlob(self.registry, "a/one", b"private"))["digest"]
        self.assertFalse(await self.blobs.mount("b/two", d, "c/three"))
        self.assertFalse(await self.blobs.isLinked("b/two", d))
        self.assertFalse(await self.blobs.mount("b/two", digests.of(b"nowhere"), "a/one"))

    @async_test
    async def test_unlinkKeepsTheDataForOthers(self):
        d = (await pushBlob(self.registry, "a/one", b"data"))["digest"]
        await self.blobs.mount("b/two", d, "a/one")
        await self.blobs.unlink("a/one", d)
        self.assertFalse(await self.blobs.isLinked("a/one", d))
        await self.assertUnknown(self.blobs.size("a/one", d))
        self.assertEqual(await self.read("b/two", d), b"data")
        await self.assertUnknown(self.blobs.unlink("a/one", d))

    @async_test
    async def test_contentIsBounded(self):
        d = (await pushBlob(self.registry, "a/one", b"x" * 100))["digest"]
        self.assertEqual(await self.blobs.getContent(d, 100), b"x" * 100)
        self.assertEqual(await self.blobs.storedSize(d), 100)
        from txregistry.storage import ContentTooLarge

        with self.assertRaises(ContentTooLarge):
            await self.blobs.getContent(d, 99)
        self.assertIsNone(await self.blobs.getContent(digests.of(b"absent"), 100))
