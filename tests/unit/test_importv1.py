"""import-v1 without a daemon: layer digests, the config and manifest
built from V1 JSON, and the importer between two memory drivers (the
skips, shared layers, a second run, a dry run)."""

import bz2
import gzip
import hashlib
import io
import json
import tarfile

from twisted.internet import reactor
from twisted.python.threadpool import ThreadPool
from twisted.trial import unittest

from tests.api.harness import async_test
from tests.support.v1store import V1Store, buildStore, imageID, tarBytes
from txregistry import digest as digests
from txregistry.importv1 import convert
from txregistry.importv1.importer import RECORDS, UNFINISHED, Importer
from txregistry.importv1.layers import EMPTY_TAR, LayerDigester, LayerError
from txregistry.importv1.source import V1Store as SourceStore
from txregistry.registry import Registry, layout
from txregistry.storage import PathNotFound
from txregistry.storage.memory import MemoryDriver


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def digest(data, chunk=7):
    """C{(stored bytes, digester)} of C{data} fed in pieces of C{chunk}."""
    d = LayerDigester()
    out = [d.feed(data[i : i + chunk]) for i in range(0, len(data), chunk)]
    out.append(d.finish())
    return b"".join(out), d


class LayerDigesterTests(unittest.TestCase):
    tar = tarBytes({"etc/hello": b"hello\n" * 100, "bin/tool": bytes(range(256)) * 40})

    def test_gzipStoredAsIs(self):
        data = gzip.compress(self.tar)
        stored, d = digest(data)
        self.assertEqual(stored, data)
        self.assertEqual((d.digest, d.diffID, d.compressed), (sha(data), sha(self.tar), True))
        self.assertEqual((d.storedSize, d.tarSize), (len(data), len(self.tar)))

    def test_gzipOfSeveralMembers(self):
        half = len(self.tar) // 2
        data = gzip.compress(self.tar[:half]) + gzip.compress(self.tar[half:])
        stored, d = digest(data, chunk=1000)
        self.assertEqual((stored, d.digest, d.diffID), (data, sha(data), sha(self.tar)))

    def test_plainTarStoredAsIs(self):
        stored, d = digest(self.tar, chunk=3)
        self.assertEqual((stored, d.digest, d.diffID, d.compressed), (self.tar, sha(self.tar), sha(self.tar), False))

    def test_bzip2StoredDecompressed(self):
        stored, d = digest(bz2.compress(self.tar), chunk=100)
        self.assertEqual((stored, d.digest, d.diffID, d.compressed), (self.tar, sha(self.tar), sha(self.tar), False))

    def test_xzStoredDecompressed(self):
        import lzma

        stored, d = digest(lzma.compress(self.tar), chunk=100)
        self.assertEqual((stored, d.digest, d.diffID, d.compressed), (self.tar, sha(self.tar), sha(self.tar), False))

    def test_emptyFileIsAnEmptyTar(self):
        stored, d = digest(b"")
        self.assertEqual((stored, d.digest, d.diffID), (EMPTY_TAR, sha(EMPTY_TAR), sha(EMPTY_TAR)))
        with tarfile.open(fileobj=io.BytesIO(stored)) as t:
            self.assertEqual(t.getmembers(), [])

    def test_truncatedGzipIsAnError(self):
        data = gzip.compress(self.tar)[:-20]
        self.assertRaises(LayerError, digest, data)

    def test_corruptGzipIsAnError(self):
        data = bytearray(gzip.compress(self.tar))
        data[30:60] = b"\xff" * 30
        self.assertRaises(LayerError, digest, bytes(data))


class ConvertTests(unittest.TestCase):
    def chain(self):
        base = {"id": "a1", "created": "2014-01-01T00:00:00Z", "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) ADD x"]},
                "Size": 10, "architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]}}
        top = {"id": "b2", "parent": "a1", "created": "2014-01-02T00:00:00Z", "author": "me",
               "container_config": {"Cmd": ["/bin/sh", "-c", "#(nop) ENV A=1"]}, "Size": 0,
               "config": {"Env": ["A=1"], "Cmd": ["/bin/sh"]}, "docker_version": "1.3.2"}
        return [base, top]

    def test_configOfTheTaggedImage(self):
        config = json.loads(convert.imageConfig(self.chain(), ["sha256:" + "1" * 64, "sha256:" + "2" * 64],
                                                {"arch": "arm64", "os": "linux"}))
        for gone in ("id", "parent", "Size"):
            self.assertNotIn(gone, config)
        self.assertEqual(config["config"], {"Env": ["A=1"], "Cmd": ["/bin/sh"]})
        self.assertEqual(config["created"], "2014-01-02T00:00:00Z")
        self.assertEqual(config["architecture"], "arm64")  # the tag's, as the image has none
        self.assertEqual(config["os"], "linux")
        self.assertEqual(config["rootfs"], {"type": "layers", "diff_ids": ["sha256:" + "1" * 64, "sha256:" + "2" * 64]})
        # One entry per layer, the empty ENV layer included: no empty_layer.
        self.assertEqual(config["history"], [
            {"created": "2014-01-01T00:00:00Z", "created_by": "/bin/sh -c #(nop) ADD x"},
            {"created": "2014-01-02T00:00:00Z", "created_by": "/bin/sh -c #(nop) ENV A=1", "author": "me"},
        ])
        self.assertEqual(config["docker_version"], "1.3.2")

    def test_deterministic(self):
        ids = ["sha256:" + "1" * 64, "sha256:" + "2" * 64]
        self.assertEqual(convert.imageConfig(self.chain(), ids), convert.imageConfig(list(self.chain()), ids))

    def test_manifestMediaTypes(self):
        layers = [("sha256:" + "3" * 64, 5, True), ("sha256:" + "4" * 64, 6, False)]
        body, mediaType = convert.manifest(("sha256:" + "5" * 64, 7), layers)
        doc = json.loads(body)
        self.assertEqual(mediaType, convert.DOCKER_MANIFEST)
        self.assertEqual([l["mediaType"] for l in doc["layers"]], [convert.DOCKER_LAYER_GZIP, convert.DOCKER_LAYER_TAR])
        self.assertEqual(doc["config"]["mediaType"], convert.DOCKER_CONFIG)
        self.assertNotIn("annotations", doc)
        body, mediaType = convert.manifest(("sha256:" + "5" * 64, 7), layers, oci=True, description="hi")
        doc = json.loads(body)
        self.assertEqual(mediaType, convert.OCI_MANIFEST)
        self.assertEqual([l["mediaType"] for l in doc["layers"]], [convert.OCI_LAYER_GZIP, convert.OCI_LAYER_TAR])
        self.assertEqual(doc["annotations"], {convert.DESCRIPTION_KEY: "hi"})

    def test_names(self):
        self.assertEqual(convert.repositoryName("library", "app"), "app")
        self.assertEqual(convert.repositoryName("library", "app", keepLibrary=True), "library/app")
        self.assertEqual(convert.repositoryName("team", "app"), "team/app")
        self.assertIsNone(convert.repositoryName("Team", "app"))
        self.assertEqual(convert.searchName("library/app"), "app")
        self.assertEqual(convert.searchName("app"), "app")
        self.assertEqual(convert.searchName("team/app"), "team/app")

    def test_tagFiles(self):
        self.assertEqual(convert.parseTagFile(b"abc123\n"), "abc123")
        self.assertEqual(convert.parseTagFile(b'"abc123"'), "abc123")
        self.assertIsNone(convert.parseTagFile(b"../../etc"))
        self.assertIsNone(convert.parseTagFile(b"\xff"))

    def test_ancestry(self):
        self.assertEqual(convert.parseAncestry("a", b'["a", "b"]'), ["a", "b"])
        for bad in (b'["b", "a"]', b"[]", b"{", b'["a", 1]'):
            self.assertRaises(convert.BadImage, convert.parseAncestry, "a", bad)
        e = self.assertRaises(convert.BadImage, convert.parseAncestry, "a", b'["a", "b", "a"]')
        self.assertIn("cycle", str(e))

    def test_brokenJSON(self):
        self.assertRaises(convert.BadImage, convert.parseImageJSON, "a", b"{not json")
        self.assertRaises(convert.BadImage, convert.parseImageJSON, "a", b"[1]")
        self.assertRaises(convert.BadImage, convert.parseImageJSON, "a", b'{"id": "b"}')


async def stored(driver, path="/"):
    """C{{path: (content, mtime)}} of every file under C{path} (a walk)."""
    out = {}
    try:
        entries = await driver.list(path)
    except PathNotFound:
        return out
    for entry in entries:
        info = await driver.stat(entry)
        if info.isDir:
            out.update(await stored(driver, entry))
        else:
            out[entry] = (await driver.getContent(entry), info.modTime)
    return out


def debris(files):
    """The uploads and upload marks among C{files}."""
    return [p for p in files if "/_uploads/" in p or p.startswith(UNFINISHED)]


class MemoryTarget:
    def __init__(self, driver):
        self.driver = driver

    def put(self, path, data):
        self.driver.putContent("/" + path, data)  # (fires at once)


class ImporterTests(unittest.TestCase):
    def setUp(self):
        self.pool = ThreadPool(1, 2, name="importv1-test")
        self.pool.start()
        self.addCleanup(self.pool.stop)
        self.sourceDriver = MemoryDriver()
        self.v1 = V1Store(MemoryTarget(self.sourceDriver))
        self.ids = buildStore(self.v1)
        self.dest = MemoryDriver()
        self.registry = Registry(self.dest, reactor, self.pool)

    def importer(self, **kwargs):
        return Importer(SourceStore(self.sourceDriver), self.registry, reactor, self.pool, **kwargs)

    @async_test
    async def test_importsAndSkips(self):
        report = await self.importer(descriptions={"app": "The app"}).run()
        self.assertEqual(sorted(report.imported),
                         ["app:1.0", "app:latest", "team/base:latest", "team/tool:2"])
        skipped = dict(report.skipped)
        self.assertEqual(sorted(skipped), ["team/broken:latest", "team/cycle:latest", "team/nolayer:latest",
                                           "team/wip:latest"])
        self.assertIn(self.ids["unfinished"], skipped["team/wip:latest"])
        self.assertIn("_inprogress", skipped["team/wip:latest"])
        self.assertIn("no layer", skipped["team/nolayer:latest"])
        self.assertIn("broken JSON", skipped["team/broken:latest"])
        self.assertIn("cycle", skipped["team/cycle:latest"])
        # base, env, app, tool: each stored once, whatever shares them
        self.assertEqual(report.stored, 4)

        body, mediaType, _ = await self.registry.manifests.get("app", "latest")
        self.assertEqual(mediaType, convert.DOCKER_MANIFEST)
        manifest = json.loads(body)
        self.assertEqual(manifest["annotations"], {convert.DESCRIPTION_KEY: "The app"})
        self.assertEqual([l["mediaType"] for l in manifest["layers"]],
                         [convert.DOCKER_LAYER_GZIP, convert.DOCKER_LAYER_GZIP, convert.DOCKER_LAYER_TAR])
        config = json.loads(await self.registry.blobs.getContent(digests.parse(manifest["config"]["digest"]), None))
        expected = [sha(tarBytes(files)) for files in self.v1.layerFiles(self.ids["app"])]
        self.assertEqual(config["rootfs"]["diff_ids"], expected)
        self.assertEqual(len(config["history"]), 3)
        for layer in manifest["layers"]:
            self.assertTrue(await self.registry.blobs.isLinked("app", digests.parse(layer["digest"])))
        # The bzip2 layer is stored as its tar.
        tool = json.loads((await self.registry.manifests.get("team/tool", "2"))[0])
        self.assertEqual(tool["layers"][1]["mediaType"], convert.DOCKER_LAYER_TAR)
        self.assertEqual(tool["layers"][1]["digest"], sha(tarBytes(self.v1.layers[self.ids["tool"]])))
        self.assertEqual(await self.registry.manifests.tags("app"), ["1.0", "latest"])
        for name in ("team/wip", "team/nolayer", "team/broken", "team/cycle"):
            self.assertFalse(await self.registry.manifests.repositoryExists(name))

    @async_test
    async def test_secondRunChangesNothing(self):
        await self.importer().run()
        before = await stored(self.dest)
        self.assertTrue(before)
        report = await self.importer().run()
        self.assertEqual((report.imported, report.stored), ([], 0))
        self.assertEqual(len(report.unchanged), 4)
        self.assertEqual(report.reused, 4)
        self.assertEqual(await stored(self.dest), before)  # the same content at the same times

    @async_test
    async def test_dryRunWritesNothing(self):
        report = await self.importer(dryRun=True).run()
        self.assertEqual(sorted(report.planned), ["app:1.0", "app:latest", "team/base:latest", "team/tool:2"])
        self.assertEqual(len(report.skipped), 4)
        self.assertEqual(await stored(self.dest), {})
        await self.importer().run()
        report = await self.importer(dryRun=True).run()
        self.assertEqual((report.planned, len(report.unchanged)), ([], 4))

    @async_test
    async def test_withoutAncestryFilesTheParentsAreFollowed(self):
        for path in [p for p in await stored(self.sourceDriver) if p.endswith("/ancestry")]:
            await self.sourceDriver.delete(path)
        report = await self.importer().run()
        self.assertEqual(len(report.imported), 4)
        skipped = dict(report.skipped)
        self.assertIn("ancestry cycle", skipped["team/cycle:latest"])
        manifest = json.loads((await self.registry.manifests.get("app", "latest"))[0])
        self.assertEqual(len(manifest["layers"]), 3)

    @async_test
    async def test_ancestryThatDisagreesWithTheParents(self):
        app = self.ids["app"]
        await self.sourceDriver.putContent("/images/%s/ancestry" % (app,), json.dumps([app, self.ids["base"]]).encode())
        report = await self.importer().run()
        skipped = dict(report.skipped)
        self.assertIn("its parent is not %s" % (self.ids["base"],), skipped["library/app:latest"])
        self.assertIn("team/tool:2", report.imported)

    @async_test
    async def test_oci(self):
        await self.importer(oci=True).run()
        body, mediaType, _ = await self.registry.manifests.get("team/tool", "2")
        self.assertEqual(mediaType, convert.OCI_MANIFEST)
        self.assertEqual(json.loads(body)["config"]["mediaType"], convert.OCI_CONFIG)

    @async_test
    async def test_recordOfACollectedBlobIsNotTrusted(self):
        await self.importer().run()
        record = json.loads(await self.dest.getContent(RECORDS + "/" + self.ids["tool"]))
        await self.dest.delete(layout.blobDir(digests.parse(record["digest"])))
        report = await self.importer().run()
        self.assertEqual(report.stored, 1)
        self.assertTrue(await self.registry.blobs.hasData(digests.parse(record["digest"])))

    @async_test
    async def test_uploadOfAKilledRunIsRemoved(self):
        uploadID = await self.registry.uploads.create("team/tool")
        await self.dest.putContent(layout.uploadData("team/tool", uploadID), b"half a layer")
        mark = UNFINISHED + "/" + self.ids["tool"]
        await self.dest.putContent(mark, json.dumps({"name": "team/tool", "upload": uploadID}).encode())
        self.assertEqual(len(debris(await stored(self.dest))), 3)  # startedat, data, the mark
        report = await self.importer().run()
        self.assertIn("team/tool:2", report.imported)
        self.assertEqual(debris(await stored(self.dest)), [])

    @async_test
    async def test_corruptLayerSkippedAndNoUploadLeft(self):
        bad = self.v1.image(imageID("corrupt"), layerBytes=gzip.compress(tarBytes({"a": b"a" * 5000}))[:-30])
        self.v1.tag("team", "corrupt", "latest", bad)
        report = await self.importer().run()
        skipped = dict(report.skipped)
        self.assertIn("gzip", skipped["team/corrupt:latest"])
        self.assertIn(bad, skipped["team/corrupt:latest"])
        self.assertEqual(debris(await stored(self.dest)), [])
        self.assertIn("team/tool:2", report.imported)
