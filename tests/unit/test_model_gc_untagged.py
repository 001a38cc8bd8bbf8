"""``gc --delete-untagged`` on the memory driver: the manifests nothing keeps
go before the sweep, with what only they used."""

import time

from twisted.trial import unittest

from tests.api.harness import async_test
from tests.support.model import descriptor, indexManifest, memoryRegistry, pushImage
from txregistry.registry import gc, layout
from txregistry.registry.manifests import OCI_INDEX

NAME = "team/app"
LATER = 2 * gc.DEFAULT_MIN_AGE


class UntaggedTests(unittest.TestCase):
    def setUp(self):
        self.registry = memoryRegistry()
        self.driver = self.registry.driver
        self.blobs = self.registry.blobs

    def collect(self, **kwargs):
        kwargs.setdefault("now", time.time() + LATER)
        return gc.collect(self.driver, deleteUntagged=True, **kwargs)

    async def isRevision(self, digest, name=NAME):
        return await self.blobs.hasData(digest) and await self.registry.manifests._isRevision(name, digest)

    async def pushIndex(self, children, tag=None):
        body = indexManifest([descriptor(d, b) for d, b in children])
        from txregistry import digest as digests

        digest, _ = await self.registry.manifests.put(NAME, tag or digests.of(body), body, OCI_INDEX)
        return digest

    @async_test
    async def test_untaggedManifestGoesWithItsBlobs(self):
        kept, _, keptBlobs = await pushImage(self.registry, NAME, tag="v1", seed=b"a")
        gone, _, goneBlobs = await pushImage(self.registry, NAME, tag="v2", seed=b"b")
        await self.registry.manifests.delete(NAME, "v2")  # the tag only
        deleted = []
        report = await self.collect(logManifest=lambda name, d: deleted.append((name, d)))
        self.assertEqual(report.untagged, [(NAME, gone)])
        self.assertEqual(deleted, [(NAME, gone)])
        self.assertEqual(sorted(report.deleted), sorted(goneBlobs + [gone]))
        self.assertFalse(await self.registry.manifests._isRevision(NAME, gone))
        for d in keptBlobs + [kept]:
            self.assertTrue(await self.blobs.hasData(d))
        self.assertEqual((await self.registry.manifests.get(NAME, "v1"))[2], kept)
        # Without the option the same storage keeps everything.
        self.assertEqual((await gc.collect(self.driver, now=time.time() + LATER)).deleted, [])

    @async_test
    async def test_withoutTheOptionUntaggedStay(self):
        gone, _, goneBlobs = await pushImage(self.registry, NAME, tag="v2")
        await self.registry.manifests.delete(NAME, "v2")
        report = await gc.collect(self.driver, now=time.time() + LATER)
        self.assertEqual((report.untagged, report.deleted), ([], []))
        self.assertTrue(await self.isRevision(gone))

    @async_test
    async def test_deletedIndexFreesItsChildren(self):
        a, aBody, aBlobs = await pushImage(self.registry, NAME, seed=b"a")
        b, bBody, bBlobs = await pushImage(self.registry, NAME, seed=b"b")
        c, cBody, cBlobs = await pushImage(self.registry, NAME, seed=b"c")
        tagged, taggedBody, _ = await pushImage(self.registry, NAME, tag="b-too", seed=b"t")
        index = await self.pushIndex([(a, aBody), (b, bBody)], tag="multi")
        keeper = await self.pushIndex([(c, cBody)], tag="other")
        await self.registry.manifests.put(NAME, "tagged-child", bBody, "application/vnd.oci.image.manifest.v1+json")
        await self.registry.manifests.delete(NAME, "multi")
        report = await self.collect()
        # The index and its child a go; b is tagged itself; c is in a kept index.
        self.assertEqual(sorted(d for _, d in report.untagged), sorted([index, a]))
        self.assertEqual(sorted(report.deleted), sorted([index, a] + aBlobs))
        for d in (b, c, tagged, keeper):
            self.assertTrue(await self.isRevision(d))
        for d in bBlobs + cBlobs:
            self.assertTrue(await self.blobs.hasData(d))

    @async_test
    async def test_taggedIndexKeepsItsUntaggedChildren(self):
        a, aBody, aBlobs = await pushImage(self.registry, NAME, seed=b"a")
        await self.pushIndex([(a, aBody)], tag="multi")
        report = await self.collect()
        self.assertEqual((report.untagged, report.deleted), ([], []))
        self.assertTrue(await self.isRevision(a))

    @async_test
    async def test_referrersOfKeptManifestsAreKept(self):
        subject, subjectBody, _ = await pushImage(self.registry, NAME, tag="v1", seed=b"s")
        signature, _, sigBlobs = await pushImage(
            self.registry, NAME, seed=b"sig", subject=descriptor(subject, subjectBody), artifactType="x/sig")
        old, oldBody, _ = await pushImage(self.registry, NAME, tag="old", seed=b"o")
        orphan, _, orphanBlobs = await pushImage(
            self.registry, NAME, seed=b"osig", subject=descriptor(old, oldBody), artifactType="x/sig")
        await self.registry.manifests.delete(NAME, "old")
        report = await self.collect()
        self.assertEqual(sorted(d for _, d in report.untagged), sorted([old, orphan]))
        self.assertTrue(await self.isRevision(signature))
        for d in sigBlobs:
            self.assertTrue(await self.blobs.hasData(d))
        for d in orphanBlobs:
            self.assertFalse(await self.blobs.hasData(d))
        with self.assertRaises(Exception):
            await self.driver.stat(layout.referrerLink(NAME, old, orphan))
        referrers = await self.registry.manifests.referrers(NAME, subject)
        self.assertEqual([m["digest"] for m in referrers], [signature])

    @async_test
    async def test_dryRunListsAndDeletesNothing(self):
        gone, _, goneBlobs = await pushImage(self.registry, NAME, tag="v2")
        await self.registry.manifests.delete(NAME, "v2")
        report = await self.collect(dryRun=True)
        self.assertEqual(report.untagged, [(NAME, gone)])
        self.assertEqual(sorted(report.deleted), sorted(goneBlobs + [gone]))
        self.assertTrue(await self.isRevision(gone))
        for d in goneBlobs:
            self.assertTrue(await self.blobs.hasData(d))

    @async_test
    async def test_youngUntaggedManifestsStay(self):
        # An index's children are pushed by digest before the index.
        child, _, childBlobs = await pushImage(self.registry, NAME)
        report = await gc.collect(self.driver, deleteUntagged=True)
        self.assertEqual((report.untagged, report.deleted), ([], []))
        self.assertTrue(await self.isRevision(child))
