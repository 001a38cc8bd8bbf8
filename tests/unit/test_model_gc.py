"""Garbage collection on the memory driver (no HTTP, no daemon)."""

import time

from twisted.trial import unittest

from tests.api.harness import async_test
from tests.support.model import memoryRegistry, pushBlob, pushImage
from txregistry.registry import gc, layout

NAME = "team/app"
LATER = 2 * gc.DEFAULT_MIN_AGE  # seconds from now at which all is old


class CollectTests(unittest.TestCase):
    def setUp(self):
        self.registry = memoryRegistry()
        self.driver = self.registry.driver
        self.blobs = self.registry.blobs

    def collect(self, **kwargs):
        kwargs.setdefault("now", time.time() + LATER)
        return gc.collect(self.driver, **kwargs)

    @async_test
    async def test_unreferencedOldBlobGoesWithItsLinks(self):
        manifest, _, used = await pushImage(self.registry, NAME, tag="v1")
        loose = (await pushBlob(self.registry, NAME, b"loose"))["digest"]
        await self.blobs.mount("other/app", loose, NAME)
        deleted = []
        report = await self.collect(log=lambda d, size: deleted.append((d, size)))
        self.assertEqual(report.deleted, [loose])
        self.assertEqual((report.freed, report.links, report.kept), (5, 2, 3))
        self.assertEqual(deleted, [(loose, 5)])
        self.assertFalse(await self.blobs.hasData(loose))
        self.assertFalse(await self.blobs.isLinked(NAME, loose))
        self.assertFalse(await self.blobs.isLinked("other/app", loose))
        for d in used + [manifest]:
            self.assertTrue(await self.blobs.hasData(d))
        self.assertEqual((await self.registry.manifests.get(NAME, "v1"))[2], manifest)

    @async_test
    async def test_youngBlobsStay(self):
        loose = (await pushBlob(self.registry, NAME, b"just pushed"))["digest"]
        report = await gc.collect(self.driver)
        self.assertEqual((report.deleted, report.young), ([], 1))
        self.assertTrue(await self.blobs.hasData(loose))

    @async_test
    async def test_untaggedManifestsStillMark(self):
        manifest, _, used = await pushImage(self.registry, NAME, tag="v1")
        await self.registry.manifests.delete(NAME, "v1")
        report = await self.collect()
        self.assertEqual((report.deleted, report.manifests, report.kept), ([], 1, 3))

    @async_test
    async def test_deletedManifestFreesWhatOnlyItUsed(self):
        kept, _, keptBlobs = await pushImage(self.registry, NAME, tag="a", seed=b"a")
        gone, _, goneBlobs = await pushImage(self.registry, NAME, tag="b", seed=b"b")
        await self.registry.manifests.delete(NAME, gone)
        report = await self.collect()
        self.assertEqual(sorted(report.deleted), sorted(goneBlobs + [gone]))
        for d in keptBlobs + [kept]:
            self.assertTrue(await self.blobs.hasData(d))

    @async_test
    async def test_dryRunDeletesNothing(self):
        loose = (await pushBlob(self.registry, NAME, b"loose"))["digest"]
        report = await self.collect(dryRun=True)
        self.assertEqual((report.deleted, report.links), ([loose], 1))
        self.assertTrue(await self.blobs.hasData(loose))
        self.assertTrue(await self.blobs.isLinked(NAME, loose))

    @async_test
    async def test_unreadableManifestStopsBeforeDeleting(self):
        loose = (await pushBlob(self.registry, NAME, b"loose"))["digest"]
        damaged = (await pushBlob(self.registry, NAME, b"not a manifest"))["digest"]
        await self.driver.putContent(layout.revisionLink(NAME, damaged), damaged.encode("ascii"))
        with self.assertRaises(gc.CollectionError):
            await self.collect()
        self.assertTrue(await self.blobs.hasData(loose))

    @async_test
    async def test_tooLargeManifestStopsBeforeDeleting(self):
        manifest, body, _ = await pushImage(self.registry, NAME, tag="v1")
        loose = (await pushBlob(self.registry, NAME, b"loose"))["digest"]
        with self.assertRaises(gc.CollectionError):
            await self.collect(maxManifestSize=len(body) - 1)
        self.assertTrue(await self.blobs.hasData(loose))
