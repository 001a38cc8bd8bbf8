"""Garbage collection against a registry filled over HTTP: what no manifest
refers to goes (with its repository links), the rest stays pullable."""

import json
import os
import time

from tests.api.harness import RegistryTestCase, async_test
from txregistry import digest as digests
from txregistry.registry import gc, layout

INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class GCTests(RegistryTestCase):
    async def fill(self):
        """app:keep (layers shared, own), app:gone (deleted), lib:x (an
        index's child, untagged), and a blob pushed but never used."""
        self.keep, _ = await self.pushImage("team/app", "keep", layers=[b"shared", b"keep-only"])
        self.gone, self.goneBody = await self.pushImage("team/app", "gone", layers=[b"shared", b"gone-only"])
        child, childBody = await self.pushImage("team/lib", "tmp", layers=[b"child-layer"])
        r = await self.request("DELETE", "/v2/team/lib/manifests/tmp")  # the tag only: still a revision
        self.assertEqual(r.code, 202)
        index = {"schemaVersion": 2, "mediaType": INDEX,
                 "manifests": [{"mediaType": OCI_MANIFEST, "digest": child, "size": len(childBody)}]}
        r, body = await self.pushManifest("team/lib", "multi", index, mediaType=INDEX)
        self.assertEqual(r.code, 201, r.body)
        self.stray = await self.pushBlob("team/app", b"never used")
        r = await self.request("DELETE", "/v2/team/app/manifests/" + self.gone)
        self.assertEqual(r.code, 202)

    async def exists(self, name, d):
        return (await self.request("HEAD", "/v2/%s/blobs/%s" % (name, d))).code == 200

    @async_test
    async def test_collect(self):
        await self.fill()
        dry = await gc.collect(self.driver, minAge=0, dryRun=True, grace=0)
        expected = {self.gone, digests.of(b"gone-only"), self.stray}
        self.assertEqual(set(dry.deleted), expected)
        self.assertTrue(await self.exists("team/app", self.stray))  # a dry run deletes nothing
        report = await gc.collect(self.driver, minAge=0, grace=0)
        self.assertEqual(set(report.deleted), expected)
        self.assertEqual((report.repositories, report.manifests), (2, 3))
        self.assertEqual(report.freed, len(b"gone-only") + len(b"never used") + len(self.goneBody))
        self.assertEqual(report.links, 2)  # gone-only and the stray blob were linked in team/app
        for d in (digests.of(b"gone-only"), self.stray):
            self.assertFalse(await self.exists("team/app", d))
            if self.driverName == "filesystem":
                self.assertFalse(os.path.exists(os.path.join(self.root, layout.blobDir(d).lstrip("/"))))
        # What is in use is all there: the kept image, and the index with its untagged child.
        r = await self.request("GET", "/v2/team/app/manifests/keep", headers={"Accept": OCI_MANIFEST})
        self.assertEqual(r.code, 200)
        for layer in json.loads(r.body)["layers"] + [json.loads(r.body)["config"]]:
            got = await self.request("GET", "/v2/team/app/blobs/" + layer["digest"])
            self.assertEqual(got.code, 200)
        r = await self.request("GET", "/v2/team/lib/manifests/multi", headers={"Accept": INDEX})
        child = json.loads(r.body)["manifests"][0]["digest"]
        r = await self.request("GET", "/v2/team/lib/manifests/" + child, headers={"Accept": OCI_MANIFEST})
        self.assertEqual(r.code, 200)
        self.assertTrue(await self.exists("team/lib", digests.of(b"child-layer")))
        # Nothing left to do, and the same layer can be pushed again.
        self.assertEqual((await gc.collect(self.driver, minAge=0, grace=0)).deleted, [])
        self.assertEqual(await self.pushBlob("team/app", b"gone-only"), digests.of(b"gone-only"))
        self.assertTrue(await self.exists("team/app", digests.of(b"gone-only")))

    @async_test
    async def test_youngBlobsAreKept(self):
        await self.fill()
        report = await gc.collect(self.driver)  # the default minimum age: an hour
        self.assertEqual((report.deleted, report.young), ([], 3))
        report = await gc.collect(self.driver, minAge=3600, now=time.time() + 7200)
        self.assertEqual(len(report.deleted), 3)

    @async_test
    async def test_freshLinkKeepsAnOldBlob(self):
        # An old unused blob pushed again (or mounted) into a repository just
        # now: its new link keeps it until a manifest uses it.
        if self.driverName != "filesystem":
            return  # ages are set by hand on disk below
        await self.fill()

        def age(path, seconds):
            when = time.time() - seconds
            os.utime(os.path.join(self.root, path.lstrip("/")), (when, when))

        age(layout.blobData(self.stray), 7200)
        age(layout.blobTouched(self.stray), 7200)  # no push relied on it lately either
        age(layout.layerLink("team/app", self.stray), 7200)
        await self.registry.blobs.link("team/other", self.stray)
        report = await gc.collect(self.driver, minAge=3600, dryRun=True)
        self.assertNotIn(self.stray, report.deleted)
        age(layout.layerLink("team/other", self.stray), 7200)
        report = await gc.collect(self.driver, minAge=3600)
        self.assertIn(self.stray, report.deleted)
        self.assertFalse(await self.exists("team/other", self.stray))

    @async_test
    async def test_unparseableManifestStopsBeforeDeleting(self):
        await self.fill()
        path = os.path.join(self.root, layout.blobData(self.keep).lstrip("/"))
        with open(path, "wb") as f:
            f.write(b"not json")
        with self.assertRaises(gc.CollectionError) as caught:
            await gc.collect(self.driver, minAge=0, grace=0)
        self.assertIn(self.keep, str(caught.exception))
        self.assertTrue(await self.exists("team/app", self.stray))

    @async_test
    async def test_manifestOverTheLimitIsNotRead(self):
        """A stored manifest larger than max_manifest_size (the limit was
        lowered, or storage was damaged) is not read: the collection stops
        before deleting anything, and says why."""
        await self.fill()
        await self.driver.putContent(layout.blobData(self.keep), b" " * 4096 + b"{}")
        with self.assertRaises(gc.CollectionError) as caught:
            await gc.collect(self.driver, minAge=0, maxManifestSize=4096, grace=0)
        self.assertIn("larger than max_manifest_size (4096 bytes)", str(caught.exception))
        self.assertIn(self.keep, str(caught.exception))
        self.assertTrue(await self.exists("team/app", self.stray))

    @async_test
    async def test_pushedForeignLayersAreKept(self):
        # Non-distributable layers (with "urls") need not be pushed; when
        # they were, the manifest refers to them like to any other layer.
        config = json.dumps({"architecture": "amd64", "os": "windows"}).encode()
        cd = await self.pushBlob("team/win", config)
        foreign = {}
        for mediaType in ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                          "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"):
            content = b"foreign layer " + mediaType.encode()
            foreign[mediaType] = await self.pushBlob("team/win", content)
        absent = digests.of(b"a foreign layer nobody pushed")
        layers = [{"mediaType": t, "digest": d, "size": 20, "urls": ["https://example.com/" + d]}
                  for t, d in sorted(foreign.items())]
        layers.append({"mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar",
                       "digest": absent, "size": 30, "urls": ["https://example.com/absent"]})
        doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd,
                          "size": len(config)},
               "layers": layers}
        r, _ = await self.pushManifest("team/win", "ltsc", doc)
        self.assertEqual(r.code, 201, r.body)
        report = await gc.collect(self.driver, minAge=0, grace=0)
        self.assertEqual(report.deleted, [])
        for d in foreign.values():
            self.assertTrue(await self.exists("team/win", d), d)
        self.assertEqual((report.manifests, report.kept), (1, 4))

    @async_test
    async def test_emptyStorage(self):
        report = await gc.collect(self.driver, minAge=0, grace=0)
        self.assertEqual((report.repositories, report.manifests, report.kept, report.deleted), (0, 0, 0, []))


class MemoryGCTests(GCTests):
    driverName = "memory"

    test_unparseableManifestStopsBeforeDeleting = None
