"""The blob check on the memory driver, the progress display, and the
scheduled collection's runs and summary."""

import io
import time

from twisted.trial import unittest

from tests.api.harness import async_test
from tests.support.model import memoryRegistry, pushBlob, pushImage
from txregistry import digest as digests
from txregistry.maintenance.progress import Progress, humanBytes
from txregistry.maintenance.schedule import ScheduledCollection
from txregistry.maintenance.settings import GCSettings
from txregistry.metrics import Metrics
from txregistry.registry import check, layout
from txregistry.registry.retention import parsePolicies

NAME = "team/app"


class CheckTests(unittest.TestCase):
    def setUp(self):
        self.registry = memoryRegistry()
        self.driver = self.registry.driver

    @async_test
    async def test_allGood(self):
        await pushImage(self.registry, NAME, tag="v1")
        progress = Progress(io.StringIO(), tty=False)
        r = await check.check(self.driver, progress=progress)
        self.assertTrue(r.ok)
        self.assertEqual(r.blobs, 3)
        self.assertEqual(progress.done, 3)
        self.assertEqual(progress.bytes, r.bytes)

    @async_test
    async def test_corruptAndMissing(self):
        _, _, (config, layer) = await pushImage(self.registry, NAME, tag="v1")
        await self.driver.putContent(layout.blobData(layer), b"bit rot")
        loose = (await pushBlob(self.registry, NAME, b"loose"))["digest"]
        await self.driver.delete(layout.blobData(loose))
        await self.driver.delete(layout.blobData(config))
        r = await check.check(self.driver)
        self.assertFalse(r.ok)
        self.assertEqual(r.corrupt, [(layer, digests.of(b"bit rot"))])
        missing = dict(r.missing)
        self.assertEqual(set(missing), {config, loose})
        self.assertIn("team/app@sha256:", missing[config])  # named by the manifest
        self.assertIn("team/app (layer link)", missing[loose])

    @async_test
    async def test_largeBlobInChunks(self):
        data = b"x" * (3 * check.CHUNK + 5)
        d = (await pushBlob(self.registry, NAME, data))["digest"]
        seen = []

        class Counting(Progress):
            def advance(self, n=1, nbytes=0):
                seen.append(nbytes)
                Progress.advance(self, n, nbytes)

        self.assertEqual(await check.hashBlob(self.driver, d, progress=Counting(io.StringIO(), tty=False)), d)
        self.assertEqual(seen, [check.CHUNK] * 3 + [5])


class ProgressTests(unittest.TestCase):
    def test_plainLines(self):
        out = io.StringIO()
        clock = [0.0]
        p = Progress(out, tty=False, interval=5, clock=lambda: clock[0])
        p.stage("checking", 3, "blobs", 3 * 1024 * 1024)
        p.advance(1, 1024 * 1024)
        clock[0] = 6
        p.advance(1, 1024 * 1024)
        p.advance(1, 1024 * 1024)
        p.finish()
        self.assertEqual(out.getvalue().splitlines(), [
            "checking: 0/3 blobs, 0 B of 3.0 MiB",
            "checking: 2/3 blobs, 2.0 MiB of 3.0 MiB",
            "checking: 3/3 blobs, 3.0 MiB of 3.0 MiB (done)",
        ])

    def test_barOnATerminal(self):
        out = io.StringIO()
        clock = [0.0]
        p = Progress(out, tty=True, width=10, clock=lambda: clock[0])
        p.stage("sweeping", 4, "blobs")
        clock[0] = 1
        p.advance(2)
        p.finish()
        text = out.getvalue()
        self.assertIn("\r[#####     ] sweeping: 2/4 blobs", text)
        self.assertTrue(text.endswith("\n"))
        self.assertNotIn("\n", text[:-1])  # redrawn in place

    def test_reindexCallback(self):
        out = io.StringIO()
        p = Progress(out, tty=False)
        for done in range(4):
            p(done, 3)
        self.assertEqual(out.getvalue().splitlines()[-1], "indexing: 3/3 repositories (done)")

    def test_humanBytes(self):
        self.assertEqual([humanBytes(n) for n in (0, 1023, 1024, 5 * 1024 ** 3)], ["0 B", "1023 B", "1.0 KiB", "5.0 GiB"])


class ScheduleTests(unittest.TestCase):
    def setUp(self):
        self.registry = memoryRegistry()
        self.driver = self.registry.driver

    @async_test
    async def test_aRunDeletesAndCounts(self):
        gone, _, goneBlobs = await pushImage(self.registry, NAME, tag="old", seed=b"old")
        await pushImage(self.registry, NAME, tag="new", seed=b"new")
        settings = GCSettings(interval=60, minAge=0, deleteUntagged=True,
                              retention=parsePolicies([{"repositories": "team/*", "keep_last": 1}]))
        metrics = Metrics()
        logged = []
        run = ScheduledCollection(self.driver, settings, 4 * 1024 * 1024, metrics)
        run.log = type(run.log)(observer=logged.append)
        report = await run.run()
        # Pushed just now: the tag goes, but what it kept is held for the grace.
        self.assertEqual(report.tags, [(NAME, "old")])
        self.assertEqual(report.deleted, [])
        self.assertIn("garbage collection", logged[-1]["log_format"])
        self.assertIn("deleted 1 tag(s)", logged[-1]["summary"])
        from txregistry.registry import gc

        report = await gc.collect(self.driver, minAge=0, deleteUntagged=True, now=time.time() + 60)
        self.assertEqual(sorted(report.deleted), sorted(goneBlobs + [gone]))
        text = metrics.render().decode()
        self.assertIn('txregistry_gc_runs_total{outcome="done"} 1.0', text)
        self.assertIn("txregistry_gc_deleted_tags_total 1.0", text)

    @async_test
    async def test_aFailedRunIsLoggedNotRaised(self):
        await self.driver.putContent(layout.revisionLink(NAME, digests.of(b"x")), digests.of(b"x").encode())
        await self.driver.putContent(layout.blobData(digests.of(b"x")), b"x")  # not a manifest
        logged = []
        metrics = Metrics()
        run = ScheduledCollection(self.driver, GCSettings(interval=60), 4 * 1024 * 1024, metrics)
        run.log = type(run.log)(observer=logged.append)
        self.assertIsNone(await run())
        self.assertIn("stopped", logged[-1]["log_format"])
        self.assertIn('txregistry_gc_runs_total{outcome="failed"} 1.0', metrics.render().decode())

    def test_describe(self):
        run = ScheduledCollection(self.driver, GCSettings(interval=600, minAge=60, deleteUntagged=True,
                                                          retention=parsePolicies([{"repositories": "a/*",
                                                                                    "keep_last": 2}])), 1)
        self.assertEqual(run.describe(), "garbage collection every 600s, min_age 60s, untagged manifests deleted, "
                                         "retention: a/*: keep the newest 2")



class StopTests(unittest.TestCase):
    @async_test
    async def test_stopEndsARunBetweenSteps(self):
        registry = memoryRegistry()
        for i in range(3):
            await pushBlob(registry, NAME, b"loose %d" % (i,))
        from txregistry.registry import gc

        asked = []

        def stop():
            asked.append(1)
            return len(asked) > 3  # after the mark, during the sweep

        with self.assertRaises(gc.CollectionStopped):
            await gc.collect(registry.driver, minAge=0, grace=0, stop=stop)
        # Stopped, not broken: the next run finishes the work.
        report = await gc.collect(registry.driver, minAge=0, grace=0)
        self.assertEqual(len(report.deleted), 3 - 1)

    @async_test
    async def test_aStoppedScheduleRunsNoMore(self):
        run = ScheduledCollection(memoryRegistry().driver, GCSettings(interval=60), 4 * 1024 * 1024)
        run.stop()
        self.assertIsNone(run())
        self.assertEqual(run.runs, 0)

    @async_test
    async def test_readOnlySkipsRuns(self):
        registry = memoryRegistry()
        await pushBlob(registry, NAME, b"loose")
        readonly = [True]
        logged = []
        run = ScheduledCollection(registry.driver, GCSettings(interval=60, minAge=0), 4 * 1024 * 1024,
                                  paused=lambda: readonly[0])
        run.log = type(run.log)(observer=logged.append)
        self.assertIsNone(run())
        self.assertEqual((run.runs, logged[-1]["log_format"]), (0, "garbage collection skipped: read-only mode"))
        readonly[0] = False
        await run()
        self.assertEqual(run.runs, 1)
