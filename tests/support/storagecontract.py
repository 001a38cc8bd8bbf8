"""The storage driver contract: what the registry layer relies on, as a
mixin of tests that every driver's tests use with their C{makeDriver}
(tests/unit/test_storage_contract.py: memory and filesystem;
tests/s3/test_contract_s3.py: S3 on real servers)."""

import hashlib
import os

from twisted.internet.defer import ensureDeferred, gatherResults
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from txregistry.storage import ContentTooLarge, InvalidOffset, InvalidPath, IStorageDriver, PathNotFound
from txregistry.storage.interface import IStatChildren, ITruncatingWriter


def async_test(f):
    def wrapper(self):
        return ensureDeferred(f(self))

    wrapper.__name__ = f.__name__
    return wrapper


class ContractMixin:
    def makeDriver(self):
        raise NotImplementedError

    def setUp(self):
        self.driver = self.makeDriver()

    def test_providesTheInterface(self):
        # Every method and attribute of IStorageDriver, with its signature.
        self.assertTrue(verifyObject(IStorageDriver, self.driver))

    @async_test
    async def test_putGet(self):
        await self.driver.putContent("/a/b/c", b"hello")
        self.assertEqual(await self.driver.getContent("/a/b/c"), b"hello")
        await self.driver.putContent("/a/b/c", b"bye")
        self.assertEqual(await self.driver.getContent("/a/b/c"), b"bye")

    @async_test
    async def test_getMissing(self):
        with self.assertRaises(PathNotFound):
            await self.driver.getContent("/nope")

    @async_test
    async def test_boundedContent(self):
        """A bounded read answers by what is stored: up to maxSize bytes
        are content, more is ContentTooLarge (nothing is read whole)."""
        data = b"0123456789"
        await self.driver.putContent("/b/ten", data)
        await self.driver.putContent("/b/empty", b"")
        self.assertEqual(await self.driver.getContent("/b/ten", 10), data)
        self.assertEqual(await self.driver.getContent("/b/ten", 1000), data)
        self.assertEqual(await self.driver.getContent("/b/empty", 0), b"")
        self.assertEqual(await self.driver.getContent("/b/empty", 5), b"")
        for maxSize in (9, 1, 0):
            with self.assertRaises(ContentTooLarge) as e:
                await self.driver.getContent("/b/ten", maxSize)
            self.assertEqual((e.exception.maxSize, e.exception.size), (maxSize, 10))
        with self.assertRaises(PathNotFound):
            await self.driver.getContent("/b/nope", 10)
        # The driver still serves after a read it cut short.
        self.assertEqual(await self.driver.getContent("/b/ten", 10), data)
        big = bytes(range(256)) * 4096  # 1 MiB
        await self.driver.putContent("/b/big", big)
        with self.assertRaises(ContentTooLarge):
            await self.driver.getContent("/b/big", 100)
        self.assertEqual(await self.driver.getContent("/b/big", len(big)), big)
        # Each link of a chain is bounded alike.
        follow = lambda content: content.decode() if content.startswith(b"/") else None  # noqa: E731
        await self.driver.putContent("/b/link", b"/b/ten")
        self.assertEqual(await self.driver.getContentChain("/b/link", follow, 10), [b"/b/ten", data])
        with self.assertRaises(ContentTooLarge):
            await self.driver.getContentChain("/b/link", follow, 9)

    @async_test
    async def test_contentChain(self):
        await self.driver.putContent("/links/a", b"/links/b")
        await self.driver.putContent("/links/b", b"/links/c")
        await self.driver.putContent("/links/c", b"end")
        follow = lambda content: content.decode() if content.startswith(b"/") else None  # noqa: E731
        self.assertEqual(await self.driver.getContentChain("/links/a", follow), [b"/links/b", b"/links/c", b"end"])
        self.assertEqual(await self.driver.getContentChain("/links/c", follow), [b"end"])
        # a link to nothing ends the chain with None; so does a missing start
        await self.driver.putContent("/links/d", b"/links/missing")
        self.assertEqual(await self.driver.getContentChain("/links/d", follow), [b"/links/missing", None])
        self.assertEqual(await self.driver.getContentChain("/nope", follow), [None])
        # a loop is cut off
        await self.driver.putContent("/links/loop", b"/links/loop")
        self.assertEqual(len(await self.driver.getContentChain("/links/loop", follow)), 8)
        with self.assertRaises(InvalidPath):
            await self.driver.getContentChain("/a/../b", follow)
        await self.driver.putContent("/links/bad", b"/x/../y")
        with self.assertRaises(InvalidPath):
            await self.driver.getContentChain("/links/bad", follow)

    @async_test
    async def test_invalidPaths(self):
        for bad in ("relative", "/a/../b", "/a/./b", "/a//b", "/a/b/", "/a\x00b", "/a b", "/a\\b", "", "/"):
            with self.assertRaises(InvalidPath, msg=bad):
                await self.driver.putContent(bad, b"x")

    @async_test
    async def test_stat(self):
        await self.driver.putContent("/d/f", b"12345")
        info = await self.driver.stat("/d/f")
        self.assertEqual((info.size, info.isDir), (5, False))
        info = await self.driver.stat("/d")
        self.assertTrue(info.isDir)
        with self.assertRaises(PathNotFound):
            await self.driver.stat("/d/nope")

    @async_test
    async def test_namesSharingAPrefix(self):
        # Entries whose names begin with another's are neither that entry
        # nor in it ("-" and "." sort before "/", "b" after it).
        for p in ("/s/a-1", "/s/a.x/1", "/s/a.y", "/s/ab/1", "/s/ac"):
            await self.driver.putContent(p, b"sibling")
        with self.assertRaises(PathNotFound):
            await self.driver.stat("/s/a")
        with self.assertRaises(PathNotFound):
            await self.driver.delete("/s/a")
        w = await self.driver.writer("/s/a")
        await w.write(b"abc")
        await w.close()
        self.assertEqual(((await self.driver.stat("/s/a")).size), 3)
        await self.driver.delete("/s/a")
        with self.assertRaises(PathNotFound):
            await self.driver.stat("/s/a")
        await self.driver.putContent("/s/a/1", b"1")
        self.assertTrue((await self.driver.stat("/s/a")).isDir)
        await self.driver.delete("/s/a")
        with self.assertRaises(PathNotFound):
            await self.driver.stat("/s/a")
        self.assertEqual(await self.driver.list("/s"), ["/s/a-1", "/s/a.x", "/s/a.y", "/s/ab", "/s/ac"])
        for p in ("/s/a-1", "/s/a.x/1", "/s/a.y", "/s/ab/1", "/s/ac"):
            self.assertEqual(await self.driver.getContent(p), b"sibling")

    @async_test
    async def test_list(self):
        await self.driver.putContent("/l/x/1", b"")
        await self.driver.putContent("/l/y", b"")
        self.assertEqual(await self.driver.list("/l"), ["/l/x", "/l/y"])
        with self.assertRaises(PathNotFound):
            await self.driver.list("/nope")

    @async_test
    async def test_statChildren(self):
        """IStatChildren (drivers that have it): the file below each child,
        with the FileInfo a stat of it gives; children without it, with a
        directory there, or that are files themselves left out."""
        d = self.driver
        if not IStatChildren.providedBy(d):
            raise unittest.SkipTest("%s has no statChildren" % (d.name,))
        self.assertTrue(verifyObject(IStatChildren, d))
        for p, data in [("/sc/a/cur/link", b"1"), ("/sc/b/cur/link", b"22"), ("/sc/b/index/x/link", b"3"),
                        ("/sc/a-1/cur/link", b"4"), ("/sc/a.b/cur/link", b"55555"), ("/sc/c/index/y", b"6"),
                        ("/sc/d/cur/link/deeper", b"7"), ("/sc/file", b"8"), ("/sc/e/cur/linked", b"9"),
                        ("/scx/f/cur/link", b"10")]:
            await d.putContent(p, data)
        found = await d.statChildren("/sc", "cur/link")
        self.assertEqual(sorted(found), ["a", "a-1", "a.b", "b"])
        for child, info in found.items():
            self.assertEqual(info, await d.stat("/sc/%s/cur/link" % (child,)))
        self.assertEqual((found["b"].path, found["b"].size, found["a.b"].size), ("/sc/b/cur/link", 2, 5))
        self.assertEqual(sorted(await d.statChildren("/sc", "index/x/link")), ["b"])
        self.assertEqual(await d.statChildren("/sc", "nothing"), {})
        self.assertEqual(sorted(await d.statChildren("/", "f/cur/link")), ["scx"])
        # A file pushed again: a new mtime (as stat says).
        await d.putContent("/sc/a/cur/link", b"again")
        self.assertEqual((await d.statChildren("/sc", "cur/link"))["a"], await d.stat("/sc/a/cur/link"))
        with self.assertRaises(PathNotFound):
            await d.statChildren("/nope", "cur/link")
        for bad in ("../x", "/cur", "cur/../../x", "", "a//b"):
            with self.assertRaises(InvalidPath, msg=bad):
                await d.statChildren("/sc", bad)
        with self.assertRaises(InvalidPath):
            await d.statChildren("/sc/../x", "cur/link")

    @async_test
    async def test_writerAppendCommit(self):
        w = await self.driver.writer("/w/data")
        self.assertEqual(w.size, 0)
        await w.write(b"abc")
        await w.write(b"def")
        self.assertEqual(w.size, 6)
        await w.close()  # kept for a later writer
        self.assertEqual((await self.driver.stat("/w/data")).size, 6)
        w = await self.driver.writer("/w/data", append=True)
        self.assertEqual(w.size, 6)
        await w.write(b"g")
        await w.close()
        w = await self.driver.writer("/w/data", append=True)
        self.assertEqual(w.size, 7)
        await w.commit()
        await w.close()
        self.assertEqual(await self.driver.getContent("/w/data"), b"abcdefg")
        self.assertEqual((await self.driver.stat("/w/data")).size, 7)
        # committing again (a retried completion) changes nothing
        w = await self.driver.writer("/w/data", append=True)
        self.assertEqual(w.size, 7)
        await w.commit()
        self.assertEqual(await self.driver.getContent("/w/data"), b"abcdefg")
        w = await self.driver.writer("/w/data")  # not append: truncates
        self.assertEqual(w.size, 0)
        await w.close()
        self.assertEqual((await self.driver.stat("/w/data")).size, 0)
        w = await self.driver.writer("/w/data", append=True)
        await w.commit()  # readable as a whole once committed
        self.assertEqual(await self.driver.getContent("/w/data"), b"")

    @async_test
    async def test_writerTruncate(self):
        """A writer that can be truncated (L{ITruncatingWriter}, optional)
        cuts the file back and goes on writing from there."""
        w = await self.driver.writer("/t/data")
        if not ITruncatingWriter.providedBy(w):
            await w.cancel()
            raise unittest.SkipTest("%s writers cannot be truncated" % (self.driver.name,))
        await w.write(b"abc")
        await w.close()
        w = await self.driver.writer("/t/data", append=True)
        await w.write(b"def")
        await w.truncate(4)
        self.assertEqual(w.size, 4)
        self.assertEqual((await self.driver.stat("/t/data")).size, 4)
        await w.write(b"xy")
        self.assertEqual(w.size, 6)
        await w.commit()
        await w.close()
        self.assertEqual(await self.driver.getContent("/t/data"), b"abcdxy")

    @async_test
    async def test_bigAppendsAcrossWriters(self):
        # Several writers in turn, some writes larger than any buffer a
        # driver keeps, some tiny; then read back whole and from an offset.
        blocks = [os.urandom(n) for n in (3, 7 * 1024 * 1024, 10, 6 * 1024 * 1024, 1, 12 * 1024 * 1024, 5)]
        for i, block in enumerate(blocks):
            w = await self.driver.writer("/big/data", append=i > 0)
            await w.write(block)
            await w.close()
        w = await self.driver.writer("/big/data", append=True)
        self.assertEqual(w.size, sum(map(len, blocks)))
        await w.commit()
        data = b"".join(blocks)
        r = await self.driver.reader("/big/data")
        h, got = hashlib.sha256(), 0
        while True:
            chunk = await r.read(1024 * 1024)
            if not chunk:
                break
            h.update(chunk)
            got += len(chunk)
        r.close()
        self.assertEqual((got, h.hexdigest()), (len(data), hashlib.sha256(data).hexdigest()))
        r = await self.driver.reader("/big/data", len(data) - 100)
        self.assertEqual(await r.read(1000), data[-100:])
        r.close()
        await self.driver.move("/big/data", "/big/moved")
        self.assertEqual((await self.driver.stat("/big/moved")).size, len(data))

    @async_test
    async def test_writerCancel(self):
        w = await self.driver.writer("/w/gone")
        await w.write(b"abc")
        await w.cancel()
        with self.assertRaises(PathNotFound):
            await self.driver.stat("/w/gone")

    @async_test
    async def test_reader(self):
        data = bytes(range(256)) * 1000
        await self.driver.putContent("/r/data", data)
        r = await self.driver.reader("/r/data", 1000)
        self.assertEqual(r.size, len(data) - 1000)
        got = []
        while True:
            chunk = await r.read(70000)
            if not chunk:
                break
            got.append(chunk)
        r.close()
        self.assertEqual(b"".join(got), data[1000:])
        r = await self.driver.reader("/r/data", len(data))
        self.assertEqual(await r.read(10), b"")
        r.close()
        with self.assertRaises(InvalidOffset):
            await self.driver.reader("/r/data", len(data) + 1)
        with self.assertRaises(PathNotFound):
            await self.driver.reader("/r/nope")

    @async_test
    async def test_move(self):
        await self.driver.putContent("/m/src", b"payload")
        await self.driver.putContent("/m2/dst", b"old")
        await self.driver.move("/m/src", "/m2/dst")
        self.assertEqual(await self.driver.getContent("/m2/dst"), b"payload")
        with self.assertRaises(PathNotFound):
            await self.driver.getContent("/m/src")
        await self.driver.putContent("/m/src2", b"p2")
        await self.driver.move("/m/src2", "/new/deep/dst")
        self.assertEqual(await self.driver.getContent("/new/deep/dst"), b"p2")
        with self.assertRaises(PathNotFound):
            await self.driver.move("/m/nope", "/m/x")

    @async_test
    async def test_moveOntoItself(self):
        # Every driver: moving a path onto itself keeps it as it was.
        await self.driver.putContent("/m/same", b"kept")
        await self.driver.move("/m/same", "/m/same")
        self.assertEqual(await self.driver.getContent("/m/same"), b"kept")
        with self.assertRaises(PathNotFound):
            await self.driver.move("/m/none", "/m/none")

    @async_test
    async def test_deleteRecursive(self):
        await self.driver.putContent("/t/a/1", b"1")
        await self.driver.putContent("/t/a/b/2", b"2")
        await self.driver.putContent("/t/keep", b"k")
        await self.driver.delete("/t/a")
        with self.assertRaises(PathNotFound):
            await self.driver.stat("/t/a")
        self.assertEqual(await self.driver.list("/t"), ["/t/keep"])
        with self.assertRaises(PathNotFound):
            await self.driver.delete("/t/a")

    @async_test
    async def test_concurrentPutsAtomic(self):
        # Readers see one whole version or another, never a mix.
        versions = [bytes([i]) * 200000 for i in range(8)]
        await gatherResults([ensureDeferred(self.driver.putContent("/c/x", v)) for v in versions])
        self.assertIn(await self.driver.getContent("/c/x"), versions)

    @async_test
    async def test_concurrentPutsIntoANewDirectory(self):
        # Writers racing to create the same directories all land.
        paths = ["/nd/x/y/f%02d" % (i,) for i in range(16)]
        await gatherResults([ensureDeferred(self.driver.putContent(p, p.encode())) for p in paths])
        self.assertEqual(await self.driver.list("/nd/x/y"), paths)
        for p in paths:
            self.assertEqual(await self.driver.getContent(p), p.encode())

    @async_test
    async def test_redirect(self):
        # None, or a URL from which a client gets the content itself
        await self.driver.putContent("/red/x", b"redirected content")
        url = await self.driver.redirectURL("/red/x")
        if url is not None:
            import treq

            response = await treq.get(url, persistent=False)
            self.assertEqual(response.code, 200)
            self.assertEqual(await response.content(), b"redirected content")
