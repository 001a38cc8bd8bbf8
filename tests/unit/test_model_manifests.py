"""The model's manifests, tags and referrers on the memory driver (no HTTP)."""

from twisted.trial import unittest

from tests.api.harness import async_test
from tests.support.model import descriptor, imageManifest, indexManifest, memoryRegistry, pushBlob, pushImage
from txregistry import digest as digests
from txregistry.errors import RegistryError
from txregistry.registry.manifests import OCI_INDEX, OCI_MANIFEST

NAME = "team/app"


class ManifestTests(unittest.TestCase):
    def setUp(self):
        self.registry = memoryRegistry()
        self.manifests = self.registry.manifests

    async def assertCode(self, code, coroutine):
        try:
            await coroutine
        except RegistryError as e:
            self.assertEqual(e.code, code)
            return e
        self.fail("no %s" % (code,))

    @async_test
    async def test_putThenGetByTagAndDigest(self):
        digest, body, _ = await pushImage(self.registry, NAME, tag="v1")
        self.assertEqual(digest, digests.of(body))
        self.assertEqual(await self.manifests.get(NAME, "v1"), (body, OCI_MANIFEST, digest))
        self.assertEqual(await self.manifests.get(NAME, digest), (body, OCI_MANIFEST, digest))
        self.assertEqual(await self.manifests.resolve(NAME, "v1"), digest)
        self.assertEqual(await self.manifests.tags(NAME), ["v1"])
        # Not in another repository.
        await self.assertCode("MANIFEST_UNKNOWN", self.manifests.get("other/app", digest))

    @async_test
    async def test_retagMovesTheTag(self):
        first, _, _ = await pushImage(self.registry, NAME, tag="latest", seed=b"1")
        second, _, _ = await pushImage(self.registry, NAME, tag="latest", seed=b"2")
        self.assertEqual(await self.manifests.resolve(NAME, "latest"), second)
        self.assertEqual(await self.manifests.resolve(NAME, first), first)  # still there by digest
        self.assertEqual((await self.manifests.newestTag(NAME))[:2], ("latest", second))

    @async_test
    async def test_blobsMustBeLinkedFirst(self):
        config = await pushBlob(self.registry, "other/app", b"{}")
        body = imageManifest(config, [])
        e = await self.assertCode("MANIFEST_BLOB_UNKNOWN", self.manifests.put(NAME, "v1", body, OCI_MANIFEST))
        self.assertEqual(e.detail["digests"], [config["digest"]])
        await self.assertCode("NAME_UNKNOWN", self.manifests.tags(NAME))

    @async_test
    async def test_descriptorSizeMustBeTheStoredOne(self):
        config = await pushBlob(self.registry, NAME, b"{}")
        body = imageManifest(dict(config, size=config["size"] + 1), [])
        await self.assertCode("MANIFEST_INVALID", self.manifests.put(NAME, "v1", body, OCI_MANIFEST))

    @async_test
    async def test_digestReferenceMustMatch(self):
        config = await pushBlob(self.registry, NAME, b"{}")
        body = imageManifest(config, [])
        await self.assertCode("DIGEST_INVALID", self.manifests.put(NAME, digests.of(b"else"), body, OCI_MANIFEST))

    @async_test
    async def test_indexNeedsItsManifestsInTheRepository(self):
        child, childBody, _ = await pushImage(self.registry, "other/app")
        index = indexManifest([descriptor(child, childBody)])
        await self.assertCode("MANIFEST_BLOB_UNKNOWN", self.manifests.put(NAME, "multi", index, OCI_INDEX))
        await pushImage(self.registry, NAME)  # the same child, pushed here too
        digest, manifest = await self.manifests.put(NAME, "multi", index, OCI_INDEX)
        self.assertEqual(manifest.children, [child])
        self.assertEqual((await self.manifests.get(NAME, "multi"))[1:], (OCI_INDEX, digest))

    @async_test
    async def test_deleteTagKeepsTheManifest(self):
        digest, _, _ = await pushImage(self.registry, NAME, tag="v1")
        await self.manifests.delete(NAME, "v1")
        self.assertEqual(await self.manifests.tags(NAME), [])
        await self.assertCode("MANIFEST_UNKNOWN", self.manifests.get(NAME, "v1"))
        self.assertEqual(await self.manifests.resolve(NAME, digest), digest)
        await self.assertCode("MANIFEST_UNKNOWN", self.manifests.delete(NAME, "v1"))

    @async_test
    async def test_deleteByDigestTakesItsTags(self):
        digest, _, _ = await pushImage(self.registry, NAME, tag="v1")
        other, _, _ = await pushImage(self.registry, NAME, tag="v2", seed=b"2")
        await self.manifests.put(NAME, "also", (await self.manifests.get(NAME, digest))[0], OCI_MANIFEST)
        self.assertEqual(await self.manifests.tags(NAME), ["also", "v1", "v2"])
        await self.manifests.delete(NAME, digest)
        self.assertEqual(await self.manifests.tags(NAME), ["v2"])
        await self.assertCode("MANIFEST_UNKNOWN", self.manifests.get(NAME, digest))
        await self.assertCode("MANIFEST_UNKNOWN", self.manifests.delete(NAME, digest))
        self.assertEqual(await self.manifests.resolve(NAME, other), other)

    @async_test
    async def test_invalidReferences(self):
        await self.assertCode("TAG_INVALID", self.manifests.get(NAME, "-bad"))
        await self.assertCode("DIGEST_INVALID", self.manifests.get(NAME, "sha256:short"))


class ReferrerTests(unittest.TestCase):
    def setUp(self):
        self.registry = memoryRegistry()
        self.manifests = self.registry.manifests

    @async_test
    async def test_referrersOfASubject(self):
        subject, subjectBody, _ = await pushImage(self.registry, NAME, tag="v1")
        about = descriptor(subject, subjectBody)
        sbom, sbomBody, _ = await pushImage(self.registry, NAME, seed=b"sbom", subject=about,
                                            artifactType="application/spdx+json")
        sig, sigBody, _ = await pushImage(self.registry, NAME, seed=b"sig", subject=about,
                                          artifactType="application/vnd.dev.cosign")
        found = await self.manifests.referrers(NAME, subject)
        self.assertEqual([r["digest"] for r in found], sorted([sbom, sig]))
        bySbom = {r["digest"]: r for r in found}[sbom]
        self.assertEqual(bySbom, {"mediaType": OCI_MANIFEST, "digest": sbom, "size": len(sbomBody),
                                  "artifactType": "application/spdx+json"})
        only = await self.manifests.referrers(NAME, subject, artifactType="application/vnd.dev.cosign")
        self.assertEqual([r["digest"] for r in only], [sig])
        self.assertEqual(await self.manifests.referrers("other/app", subject), [])

    @async_test
    async def test_subjectNeedNotExist(self):
        """A referrer may be pushed before its subject (OCI 1.1)."""
        absent = {"mediaType": OCI_MANIFEST, "digest": digests.of(b"not yet"), "size": 7}
        ref, _, _ = await pushImage(self.registry, NAME, seed=b"early", subject=absent)
        self.assertEqual([r["digest"] for r in await self.manifests.referrers(NAME, absent["digest"])], [ref])

    @async_test
    async def test_deletedReferrerIsNotListed(self):
        subject, subjectBody, _ = await pushImage(self.registry, NAME, tag="v1")
        ref, _, _ = await pushImage(self.registry, NAME, seed=b"r", subject=descriptor(subject, subjectBody))
        await self.manifests.delete(NAME, ref)
        self.assertEqual(await self.manifests.referrers(NAME, subject), [])
