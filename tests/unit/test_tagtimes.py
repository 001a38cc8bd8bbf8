"""A repository's tag push times (txregistry.registry.tagtimes.pushTimes):
in one go on the filesystem driver (IStatChildren: one step of its lookup
pool), tag by tag on the memory driver (no IStatChildren), the same times
either way; the measured driver passes the capability through, measured.
(On S3: tests/s3/test_contract_s3.py.)"""

import os
import shutil
import tempfile

from twisted.internet import reactor
from twisted.python.threadpool import ThreadPool
from twisted.trial import unittest

from tests.api.harness import async_test
from tests.support.model import pushImage
from txregistry.metrics.collectors import Metrics
from txregistry.metrics.storage import MeasuredDriver
from txregistry.registry import layout, Registry, retention, tagtimes
from txregistry.storage.filesystem import FilesystemDriver
from txregistry.storage.interface import IStatChildren
from txregistry.storage.memory import MemoryDriver


class CountingPool(ThreadPool):
    """A real thread pool that counts the calls handed to it."""

    calls = 0

    def callInThreadWithCallback(self, onResult, func, *args, **kw):
        self.calls += 1
        return ThreadPool.callInThreadWithCallback(self, onResult, func, *args, **kw)


class PushTimesTests(unittest.TestCase):
    def filesystem(self):
        pool = CountingPool(1, 4, name="test-io")
        pool.start()
        self.addCleanup(pool.stop)
        root = tempfile.mkdtemp(prefix="txregistry-test-")
        self.addCleanup(shutil.rmtree, root, True)
        return FilesystemDriver(root, reactor, pool), pool, root

    async def fill(self, driver, tags):
        registry = Registry(driver, reactor, None)
        for i, tag in enumerate(tags):
            await pushImage(registry, "team/app", tag, seed=b"%d" % (i,))
        return registry

    @async_test
    async def test_filesystemInOneStep(self):
        driver, pool, root = self.filesystem()
        await self.fill(driver, ["t000"])
        tags = ["t%03d" % (i,) for i in range(150)]
        link = root + layout.tagCurrentLink("team/app", "t000")
        for i, tag in enumerate(tags):  # (more tags of the same manifest, written as a push writes them)
            local = root + layout.tagCurrentLink("team/app", tag)
            if tag != "t000":
                os.makedirs(os.path.dirname(local))
                shutil.copyfile(link, local)
            when = 1_000_000 + (i * 7919) % 150  # push times of their own, not in tag order
            os.utime(local, (when, when))
        # A tag directory without a current link (a half-deleted tag) is none.
        os.unlink(root + layout.tagCurrentLink("team/app", "t007"))
        before = pool.calls
        times = await tagtimes.pushTimes(driver, "team/app")
        self.assertEqual(pool.calls - before, 1)
        self.assertEqual(sorted(times), [t for t in tags if t != "t007"])
        for tag in ("t000", "t100", "t149"):
            self.assertEqual(times[tag], await tagtimes.pushedAt(driver, "team/app", tag))
        self.assertEqual(await tagtimes.pushTimes(driver, "no/such"), {})

    @async_test
    async def test_sameTimesWithoutTheCapability(self):
        """The memory driver has no statChildren: a listing and a stat a
        tag, with the same answer as the filesystem's one step."""
        memory = MemoryDriver()
        self.assertFalse(IStatChildren.providedBy(memory))
        driver, _, root = self.filesystem()
        tags = ["a", "b", "latest", "v1.0"]
        await self.fill(memory, tags)
        await self.fill(driver, tags)
        for driverTimes in (await tagtimes.pushTimes(memory, "team/app"), await tagtimes.pushTimes(driver, "team/app")):
            self.assertEqual(sorted(driverTimes), tags)
        fromMemory = await tagtimes.pushTimes(memory, "team/app")
        for tag in tags:
            self.assertEqual(fromMemory[tag], await tagtimes.pushedAt(memory, "team/app", tag))
        self.assertEqual(await tagtimes.pushTimes(memory, "no/such"), {})
        # Retention's ordering reads them so too.
        self.assertEqual(await retention.tagTimes(memory, "team/app"), sorted(fromMemory.items()))

    @async_test
    async def test_measuredDriverPassesItThrough(self):
        driver, pool, _ = self.filesystem()
        metrics = Metrics()
        measured = MeasuredDriver(driver, metrics)
        self.assertTrue(IStatChildren.providedBy(measured))
        await self.fill(measured, ["a", "b"])
        before = pool.calls
        times = await tagtimes.pushTimes(measured, "team/app")
        self.assertEqual((sorted(times), pool.calls - before), (["a", "b"], 1))
        count = metrics.registry.get_sample_value(
            "txregistry_storage_operation_duration_seconds_count",
            {"driver": "filesystem", "operation": "statChildren"})
        self.assertEqual(count, 1)
        # A driver without it: the measured one has none either.
        plain = MeasuredDriver(MemoryDriver(), metrics)
        self.assertFalse(IStatChildren.providedBy(plain))
        self.assertIsNone(getattr(plain, "statChildren", None))
        await self.fill(plain, ["c"])
        self.assertEqual(sorted(await tagtimes.pushTimes(plain, "team/app")), ["c"])
