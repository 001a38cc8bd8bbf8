"""Garbage collection racing pushes, on the memory driver: a push that
starts at each step of the collector's handling of a blob either keeps
the blob or is refused; never a manifest naming a blob that is gone (the
cases of L{txregistry.registry.gc}'s argument)."""

from twisted.internet.defer import Deferred
from twisted.trial import unittest

from tests.api.harness import async_test
from tests.support.model import descriptor, imageManifest, indexManifest, memoryRegistry, pushBlob
from txregistry import digest as digests
from txregistry.errors import RegistryError
from txregistry.registry import Registry, gc, layout, touch
from txregistry.registry.manifests import OCI_INDEX, OCI_MANIFEST
from txregistry.storage.memory import MemoryDriver

NAME = "team/app"


class HookedDriver:
    """A memory driver that calls C{hook(operation, path)} before each
    operation (after it, for a stat), so a test can start a push at an
    exact step of a collection."""

    def __init__(self):
        self.inner = MemoryDriver()
        self.name = self.inner.name
        self.hook = lambda operation, path: None

    def putContent(self, path, data):
        self.hook("put", path)
        return self.inner.putContent(path, data)

    def stat(self, path):
        d = self.inner.stat(path)

        def after(result):
            self.hook("stat", path)
            return result

        return d.addBoth(after)

    def delete(self, path):
        self.hook("delete", path)
        return self.inner.delete(path)

    def __getattr__(self, name):
        return getattr(self.inner, name)


class RaceTests(unittest.TestCase):
    def setUp(self):
        from twisted.internet import reactor

        self.driver = HookedDriver()
        self.registry = Registry(self.driver, reactor, None)
        self.blobs = self.registry.blobs

    async def loose(self, data=b"old layer"):
        """A blob linked into NAME that no manifest uses: what a collection
        deletes, and what a manifest pushed now may name (its layer HEAD
        said it is there)."""
        config = await pushBlob(self.registry, NAME, b"{}")
        base = await pushBlob(self.registry, NAME, b"base layer")
        # The config is in use (kept), the layer is not.
        await self.registry.manifests.put(NAME, "base", imageManifest(config, [base]), OCI_MANIFEST)
        layer = await pushBlob(self.registry, NAME, data)
        return config, layer

    def pushLater(self, config, layer, tag="v1"):
        body = imageManifest(config, [layer])
        self.pushed = Deferred.fromCoroutine(self.registry.manifests.put(NAME, tag, body, OCI_MANIFEST))
        return self.pushed

    def startPushAt(self, operation, what, config, layer):
        """Start the push when the collector does C{operation} on the
        layer's C{what} (a name in its blob's directory; once), once it
        marked the layer (or as it marks it)."""
        started = []
        marked = []
        blob = layout.blobDir(layer["digest"])
        where = "%s/%s" % (blob, what)

        def hook(op, path):
            if op == "put" and path.startswith("%s/%s" % (blob, layout.BLOB_SWEEPING)):
                marked.append(path)
            if not started and op == operation and path.startswith(where) and (marked or what == layout.BLOB_SWEEPING):
                started.append(path)
                self.pushLater(config, layer)

        self.driver.hook = hook
        return started

    async def whole(self, tag="v1"):
        """The tagged manifest and every blob it names are there."""
        body, _, _ = await self.registry.manifests.get(NAME, tag)
        m = gc.parseManifest(body, OCI_MANIFEST)
        for d in m.blobs:
            self.assertTrue(await self.blobs.hasData(d), d)
            self.assertTrue(await self.blobs.isLinked(NAME, d), d)

    @async_test
    async def test_pushBeforeTheMark(self):
        # The push touched before the collector marked: the collector sees it.
        config, layer = await self.loose()
        started = self.startPushAt("put", layout.BLOB_SWEEPING, config, layer)
        report = await gc.collect(self.driver, minAge=0)
        self.assertTrue(started)
        await self.pushed
        self.assertNotIn(layer["digest"], report.deleted)
        await self.whole()

    @async_test
    async def test_pushAfterTheCollectorReadTheTouch(self):
        # The collector read no touch, then the push touched: it sees the
        # mark, waits, and finds the blob gone: refused, not stored half.
        config, layer = await self.loose()
        started = self.startPushAt("stat", layout.BLOB_TOUCHED, config, layer)
        report = await gc.collect(self.driver, minAge=0)
        self.assertTrue(started)
        self.assertIn(layer["digest"], report.deleted)
        with self.assertRaises(RegistryError) as e:
            await self.pushed
        self.assertEqual(e.exception.code, "MANIFEST_BLOB_UNKNOWN")
        self.assertEqual(await self.registry.manifests.tags(NAME), ["base"])

    @async_test
    async def test_pushWhileTheDataGoes(self):
        config, layer = await self.loose()
        started = self.startPushAt("delete", "data", config, layer)
        await gc.collect(self.driver, minAge=0)
        self.assertTrue(started)
        with self.assertRaises(RegistryError) as e:
            await self.pushed
        self.assertEqual(e.exception.code, "MANIFEST_BLOB_UNKNOWN")

    @async_test
    async def test_pushedAgainAfterwards(self):
        # Refused once, the client pushes the layer again: then all is whole.
        config, layer = await self.loose()
        self.startPushAt("stat", layout.BLOB_TOUCHED, config, layer)
        await gc.collect(self.driver, minAge=0)
        with self.assertRaises(RegistryError):
            await self.pushed
        self.driver.hook = lambda op, path: None
        await pushBlob(self.registry, NAME, b"{}")
        await pushBlob(self.registry, NAME, b"old layer")
        await self.pushLater(config, layer)
        await self.whole()

    @async_test
    async def test_touchedLatelyIsKept(self):
        # A push relied on the blob within the grace (and no manifest names
        # it yet, or the mark missed that manifest): it stays this time.
        config, layer = await self.loose()
        await touch.claim(self.driver, [layer["digest"]], None)
        report = await gc.collect(self.driver, minAge=0)
        self.assertNotIn(layer["digest"], report.deleted)
        self.assertTrue(await self.blobs.hasData(layer["digest"]))
        report = await gc.collect(self.driver, minAge=0, grace=0)
        self.assertIn(layer["digest"], report.deleted)

    @async_test
    async def test_indexPushedWhileItsChildGoes(self):
        # An untagged child manifest, deleted by --delete-untagged while an
        # index naming it is pushed: the index is refused.
        config, layer = await self.loose()
        body = imageManifest(config, [layer])
        child, _ = await self.registry.manifests.put(NAME, digests.of(body), body, OCI_MANIFEST)
        index = indexManifest([descriptor(child, body)])
        pushed = []

        def hook(op, path):
            if not pushed and op == "stat" and path == layout.blobTouched(child):
                pushed.append(None)
                pushed[0] = Deferred.fromCoroutine(self.registry.manifests.put(NAME, "v1", index, OCI_INDEX))

        self.driver.hook = hook
        report = await gc.collect(self.driver, minAge=0, deleteUntagged=True, grace=0)
        self.assertIn((NAME, child), report.untagged)
        with self.assertRaises(RegistryError) as e:
            await pushed[0]
        self.assertEqual(e.exception.code, "MANIFEST_BLOB_UNKNOWN")
        self.assertEqual(await self.registry.manifests.tags(NAME), ["base"])

    @async_test
    async def test_markersAreCleanedUp(self):
        await self.loose()
        await gc.collect(self.driver, minAge=0)
        self.assertEqual(await self.driver.list(layout.gcRunsDir()) if await self._exists(layout.gcRunsDir())
                         else [], [])

    async def _exists(self, path):
        try:
            await self.driver.stat(path)
        except Exception:
            return False
        return True


class ClaimTests(unittest.TestCase):
    def setUp(self):
        self.registry = memoryRegistry()
        self.driver = self.registry.driver

    @async_test
    async def test_aLiveMarkHoldsAPush(self):
        layer = await pushBlob(self.registry, NAME, b"layer")
        config = await pushBlob(self.registry, NAME, b"{}")
        held = await touch.holdForSweep(self.driver, layer["digest"], "run", since=float("inf"))
        self.assertIsNotNone(held)
        body = imageManifest(config, [layer])
        pushing = Deferred.fromCoroutine(self.registry.manifests.put(NAME, "v1", body, OCI_MANIFEST))
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        await deferLater(reactor, 5 * touch.POLL_INTERVAL, lambda: None)
        self.assertFalse(pushing.called)  # waiting on the mark
        await touch.release(self.driver, layer["digest"], "run")
        await pushing
        self.assertEqual(await self.registry.manifests.tags(NAME), ["v1"])

    @async_test
    async def test_aDeadCollectorsMarkIsIgnored(self):
        layer = await pushBlob(self.registry, NAME, b"layer")
        await touch.holdForSweep(self.driver, layer["digest"], "run", since=float("inf"))
        self.patch(touch, "SWEEP_HOLD", -3600)  # as if written an hour before the touch
        claim = await touch.claim(self.driver, [layer["digest"]], None)
        self.assertEqual(claim.present, {layer["digest"]})

    @async_test
    async def test_tooSlowToCommit(self):
        layer = await pushBlob(self.registry, NAME, b"layer")
        config = await pushBlob(self.registry, NAME, b"{}")
        self.patch(touch, "TOUCH_DEADLINE", -1)
        with self.assertRaises(RegistryError) as e:
            await self.registry.manifests.put(NAME, "v1", imageManifest(config, [layer]), OCI_MANIFEST)
        self.assertEqual(e.exception.code, "UNAVAILABLE")
        self.assertEqual(await self.registry.manifests.tags(NAME), [])

    @async_test
    async def test_aPushTouchesWhatItReliesOn(self):
        layer = await pushBlob(self.registry, NAME, b"layer")
        config = await pushBlob(self.registry, NAME, b"{}")
        body = imageManifest(config, [layer])
        digest, _ = await self.registry.manifests.put(NAME, "v1", body, OCI_MANIFEST)
        for d in (layer["digest"], config["digest"], digest):
            self.assertTrue(await touch.touchedSince(self.driver, d, 0), d)
