"""The storage contract (tests/support/storagecontract.py) on the memory and
filesystem drivers, and what only the filesystem driver does."""

import os
import shutil
import subprocess
import tempfile
import time

from twisted.internet import reactor
from twisted.python.threadpool import ThreadPool
from twisted.trial import unittest

from tests.support.storagecontract import async_test, ContractMixin
from txregistry.storage import InvalidPath
from txregistry.storage.durable import STAGING
from txregistry.storage.filesystem import FilesystemDriver
from txregistry.storage.interface import ISendfileSource
from txregistry.storage.memory import MemoryDriver


class MemoryDriverTests(ContractMixin, unittest.TestCase):
    def makeDriver(self):
        return MemoryDriver()

    @async_test
    async def test_readerOffersNoFile(self):
        d = self.makeDriver()
        await d.putContent("/a/file", b"0123456789")
        r = await d.reader("/a/file")
        self.assertFalse(ISendfileSource.providedBy(r))
        r.close()


class FilesystemDriverTests(ContractMixin, unittest.TestCase):
    def makeDriver(self):
        self.pool = ThreadPool(1, 4, name="test-io")
        self.pool.start()
        self.addCleanup(self.pool.stop)
        self.root = tempfile.mkdtemp(prefix="txregistry-test-")
        self.addCleanup(shutil.rmtree, self.root, True)
        return FilesystemDriver(self.root, reactor, self.pool)

    @async_test
    async def test_touch(self):
        """ITouch: a missing file is made empty; an existing one keeps its
        content and gets a new mtime."""
        from txregistry.storage.interface import ITouch

        d = self.makeDriver()
        self.assertTrue(ITouch.providedBy(d))
        await d.touch("/a/new/record")
        self.assertEqual(await d.getContent("/a/new/record"), b"")
        await d.putContent("/a/file", b"kept")
        local = os.path.join(self.root, "a", "file")
        os.utime(local, (1000, 1000))
        await d.touch("/a/file")
        self.assertEqual(await d.getContent("/a/file"), b"kept")
        self.assertGreater((await d.stat("/a/file")).modTime, 1000 + 3600)

    def test_statChildrenWithoutDirFD(self):
        """Where stat takes no dir_fd: full paths, the same answers."""
        from txregistry.storage import filesystem

        self.patch(filesystem, "_DIR_FD", False)
        return self.test_statChildren()

    @async_test
    async def test_readerOffersItsFile(self):
        """ISendfileSource: the descriptor, the offset and the length of a
        reader's bytes, which the descriptor really holds there; nothing
        once read from (the position moved) or closed."""
        d = self.makeDriver()
        await d.putContent("/a/file", b"0123456789")
        r = await d.reader("/a/file", 3)
        self.assertTrue(ISendfileSource.providedBy(r))
        fd, offset, length = r.sendfileSource()
        self.assertEqual((offset, length), (3, 7))
        self.assertEqual(os.pread(fd, 100, offset), b"3456789")
        self.assertEqual(await r.read(2), b"34")
        self.assertIsNone(r.sendfileSource())
        r.close()
        r = await d.reader("/a/file")
        r.close()
        self.assertIsNone(r.sendfileSource())

    @async_test
    async def test_noTemporaryLeftovers(self):
        await self.driver.putContent("/z/f", b"x")
        self.assertEqual(os.listdir(os.path.join(self.root, "z")), ["f"])

    def inView(self):
        """Every path under the root but the staging area (made on first use)."""
        found = []
        for directory, dirs, files in os.walk(self.root):
            if directory == self.root:
                dirs[:] = [d for d in dirs if d != STAGING]
            found += [os.path.relpath(os.path.join(directory, n), self.root) for n in dirs + files]
        return sorted(found)

    @async_test
    async def test_newDirectoriesAppearWithTheirFile(self):
        # Built in the staging area and moved into place whole: no temporary
        # name is ever in view (Distribution would list one under tags/ as
        # a tag), and the staging area is left empty.
        await self.driver.putContent("/n/a/b/c/f", b"x")
        await self.driver.putContent("/n/a/b/g", b"y")
        self.assertEqual(self.inView(), ["n", "n/a", "n/a/b", "n/a/b/c", "n/a/b/c/f", "n/a/b/g"])
        self.assertEqual(os.listdir(os.path.join(self.root, STAGING)), [])
        await self.driver.delete("/n/a/b")
        self.assertEqual(self.inView(), ["n", "n/a"])
        self.assertEqual(os.listdir(os.path.join(self.root, STAGING)), [])

    @async_test
    async def test_staleStagingIsSwept(self):
        staging = os.path.join(self.root, STAGING)
        for name in ("stale", "fresh"):
            os.makedirs(os.path.join(staging, name, "tags", "t", "current"))
        old = time.time() - 2 * 3600
        os.utime(os.path.join(staging, "stale"), (old, old))
        await self.driver.putContent("/s/t", b"x")
        self.assertEqual(os.listdir(staging), ["fresh"])

    @async_test
    async def test_anotherFileSystemBelowTheRoot(self):
        # No rename from the staging area there: directories are made in place.
        below = os.path.join(self.root, "below")
        os.mkdir(below)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", below], capture_output=True)
        if done.returncode != 0:
            raise unittest.SkipTest("cannot mount a tmpfs here (needs root)")
        self.addCleanup(subprocess.run, ["umount", below], check=True)
        await self.driver.putContent("/below/a/b", b"x")
        await self.driver.putContent("/below/c/d", b"y")
        self.assertEqual(await self.driver.getContent("/below/a/b"), b"x")
        await self.driver.delete("/below/a")
        self.assertEqual(await self.driver.list("/below"), ["/below/c"])
        self.assertEqual(sorted(os.listdir(below)), ["c"])
        # The rest of the tree still gets its directories whole.
        await self.driver.putContent("/above/a/b", b"z")
        self.assertEqual(os.listdir(os.path.join(self.root, STAGING)), [])
        self.assertEqual(await self.driver.getContent("/above/a/b"), b"z")

    @async_test
    async def test_staysUnderRoot(self):
        with self.assertRaises(InvalidPath):
            await self.driver.getContent("/../../etc/passwd")


class WritebackTests(unittest.TestCase):
    def test_startWriteback(self):
        """On Linux the writeback of a written range can be started (and
        changes nothing of the file); elsewhere it is a no-op."""
        from txregistry.storage.writeback import startWriteback

        path = os.path.join(self.mktemp())
        with open(path, "wb") as f:
            f.write(b"x" * 65536)
            f.flush()
            started = startWriteback(f.fileno(), 0, 65536)
            self.assertFalse(startWriteback(f.fileno(), 0, 0))
        self.assertEqual(started, os.uname().sysname == "Linux")
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"x" * 65536)
