"""A storage driver on a local directory.  Every disk call runs in the thread
pool it is given, never on the reactor thread."""

import errno
import os
import stat as statmode

from twisted.internet.defer import succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from zope.interface import implementer

from txregistry.storage.durable import fsyncAll, fsyncDirectory, makeDirs, TEMP_PREFIX, Tree
from txregistry.storage.interface import (
    checkBelow,
    checkPath,
    ContentTooLarge,
    FileInfo,
    InvalidOffset,
    IReader,
    ISendfileSource,
    IStatChildren,
    IStorageDriver,
    ITouch,
    ITruncatingWriter,
    IWriter,
    MAX_CHAIN,
    PathNotFound,
    StorageError,
    StorageFull,
    StorageUnavailable,
)
from txregistry.storage.writeback import startWriteback

log = Logger()

_DIR_FD = os.stat in os.supports_dir_fd and hasattr(os, "O_DIRECTORY")
_FULL = frozenset(getattr(errno, n) for n in ("ENOSPC", "EDQUOT") if hasattr(errno, n))


def _unavailable(e):
    """The L{StorageUnavailable} an OSError means (a full disk, a quota
    reached, a read-only file system), or C{e} itself."""
    if isinstance(e, OSError) and (e.errno in _FULL or e.errno == errno.EROFS):
        what = os.strerror(e.errno) + (" (%s)" % (e.filename,) if e.filename else "")
        return (StorageFull if e.errno in _FULL else StorageUnavailable)(what)
    return e


def _notFound(e, path):
    if isinstance(e, OSError) and e.errno in (errno.ENOENT, errno.ENOTDIR):
        return PathNotFound(path)
    return _unavailable(e)


def _typed(f, *args):
    """C{f(*args)}, raising a full disk or a read-only file system as
    L{StorageUnavailable} (for any call in the pools)."""
    try:
        return f(*args)
    except OSError as e:
        typed = _unavailable(e)
        if typed is e:
            raise
        raise typed from e


def _readBounded(f, path, maxSize):
    """The content of the open file C{f}; with C{maxSize}, its stored size
    is looked at first and at most C{maxSize + 1} bytes are read."""
    if maxSize is None:
        return f.read()
    size = os.fstat(f.fileno()).st_size
    if size > maxSize:
        raise ContentTooLarge(path, maxSize, size)
    data = f.read(maxSize + 1)
    if len(data) > maxSize:  # grew since (not a file we wrote: ours are renamed into place)
        raise ContentTooLarge(path, maxSize)
    return data


@implementer(IReader, ISendfileSource)
class _FileReader:
    def __init__(self, driver, f, size, offset=0):
        self._driver = driver
        self._file = f
        self.size = size
        self._offset = offset
        self._read = False

    def read(self, n):
        self._read = True
        return self._driver._run(self._file.read, n)

    def sendfileSource(self):
        if self._file is None or self._read:
            return None
        return self._file.fileno(), self._offset, self.size

    def close(self):
        f, self._file = self._file, None
        if f is not None:
            # In the pool, as every other file call: closing may block (a
            # network file system); a read still running there ends first.
            self._driver._run(f.close).addErrback(lambda failure: log.failure("closing {path}", failure, path=f.name))


@implementer(ITruncatingWriter)
class _FileWriter:
    """Each write is handed to the kernel whole and its writeback started
    at once (L{startWriteback}), so that the fsync of L{close} (an
    fdatasync) or L{commit} finds little left to write."""

    def __init__(self, driver, path, f):
        self._driver = driver
        self._path = path
        self._file = f
        self.size = f.tell()
        self._changed = False  # written to or truncated: close makes it durable

    def write(self, data):
        f, offset = self._file, self.size

        def write():
            f.write(data)
            f.flush()  # (nothing left in Python's buffer: all of it is the kernel's to write back)
            startWriteback(f.fileno(), offset, len(data))

        def done(_):
            self.size += len(data)

        self._changed = True
        return self._driver._run(write).addCallback(done)

    def truncate(self, size):
        f = self._file

        def cut():
            f.flush()
            f.truncate(size)
            self.size = size  # (in the pool, before the Deferred fires)

        self._changed = True
        return self._driver._run(cut)

    def commit(self):
        f, self._file = self._file, None

        def sync():
            f.flush()
            os.fsync(f.fileno())
            f.close()

        return self._driver._run(sync)

    def cancel(self):
        f, self._file = self._file, None

        def remove():
            if f is not None:
                f.close()
            try:
                os.unlink(self._driver._local(self._path))
            except FileNotFoundError:
                pass

        return self._driver._run(remove)

    def close(self):
        """What was written is durable (fdatasync) when the Deferred fires."""
        f, self._file = self._file, None
        if f is None:
            return self._driver._run(lambda: None)
        changed = self._changed

        def close():
            try:
                if changed:
                    f.flush()
                    os.fdatasync(f.fileno())
            finally:
                f.close()

        return self._driver._run(close)


@implementer(IStorageDriver, ITouch, IStatChildren)
class FilesystemDriver:
    name = "filesystem"

    def __init__(self, root, reactor, threadpool, lookupPool=None):
        self.root = os.path.abspath(root)
        self._reactor = reactor
        self._pool = threadpool
        # Small reads (links, manifests, stat, list): a few threads of
        # their own, so a burst of them does not spread over (and contend
        # for the GIL in) every thread of the big pool.
        self._lookupPool = lookupPool or threadpool
        self._tree = Tree(self.root)

    def __repr__(self):
        return "<FilesystemDriver %s>" % (self.root,)

    def _run(self, f, *args):
        return deferToThreadPool(self._reactor, self._pool, _typed, f, *args)

    def _local(self, path):
        checkPath(path)
        return self.root + path

    def _lookup(self, f, *args):
        return deferToThreadPool(self._reactor, self._lookupPool, _typed, f, *args)

    def _call(self, path, f, *args, lookup=False):
        """Run C{f(localPath, *args)} in the pool (the lookup pool with
        C{lookup}), mapping ENOENT to L{PathNotFound}."""
        local = self._local(path)

        def call():
            try:
                return f(local, *args)
            except OSError as e:
                raise _notFound(e, path)

        return self._lookup(call) if lookup else self._run(call)

    # --- small content ---

    def getContent(self, path, maxSize=None):
        def get(local):
            with open(local, "rb") as f:
                return _readBounded(f, path, maxSize)

        return self._call(path, get, lookup=True)

    def getContentChain(self, path, follow, maxSize=None):
        """All in one step of the thread pool (a tag's link, then the
        revision link it names: one hop for a manifest GET by tag)."""

        def chain():
            found = []
            current = path
            while current is not None and len(found) < MAX_CHAIN:
                try:
                    with open(self._local(current), "rb") as f:
                        content = _readBounded(f, current, maxSize)
                except OSError as e:
                    if not isinstance(_notFound(e, current), PathNotFound):
                        raise
                    found.append(None)
                    break
                found.append(content)
                current = follow(content)
            return found

        checkPath(path)
        return self._lookup(chain)

    def putContent(self, path, data):
        return self._call(path, self._tree.put, data)

    def touch(self, path):
        """L{txregistry.storage.interface.ITouch}: the file's mtime set to
        now (not fsynced: a touch need be seen, not survive a crash), or,
        when there is none, an empty file put as any other (durably: the
        directories it makes may hold data later)."""

        def touch(local):
            try:
                os.utime(local)
            except FileNotFoundError:
                self._tree.put(local, b"")

        return self._call(path, touch, lookup=True)

    # --- streams ---

    def reader(self, path, offset=0):
        def open_(local):
            try:
                f = open(local, "rb")
            except IsADirectoryError:  # no file there (as for the other drivers)
                raise PathNotFound(path)
            size = os.fstat(f.fileno()).st_size
            if offset > size or offset < 0:
                f.close()
                raise InvalidOffset("%s: offset %d beyond size %d" % (path, offset, size))
            f.seek(offset)
            return _FileReader(self, f, size - offset, offset)

        return self._call(path, open_)

    def writer(self, path, append=False):
        def open_(local):
            directory = os.path.dirname(local)
            fsyncAll(makeDirs(directory))
            created = not os.path.exists(local)
            f = open(local, "ab" if append else "wb")
            try:
                f.seek(0, os.SEEK_END)
                if created:
                    fsyncDirectory(directory)  # (its entry as durable as what close or commit makes of its data)
            except BaseException:
                f.close()
                raise
            return _FileWriter(self, path, f)

        return self._call(path, open_)

    # --- metadata ---

    def stat(self, path):
        def stat(local):
            st = os.stat(local)
            isDir = os.path.isdir(local)
            return FileInfo(path, 0 if isDir else st.st_size, st.st_mtime, isDir)

        return self._call(path, stat, lookup=True)

    def list(self, path):
        def list_(local):
            names = os.listdir(local)
            prefix = "" if path == "/" else path
            return sorted(prefix + "/" + n for n in names if not n.startswith(TEMP_PREFIX))

        if path == "/":
            return self._lookup(lambda: list_(self.root) if os.path.isdir(self.root) else [])
        return self._call(path, list_, lookup=True)

    def statChildren(self, path, below):
        """L{txregistry.storage.interface.IStatChildren}: one scan of the
        directory and a stat of each child's file, all in one step of the
        lookup pool."""
        checkBelow(below)
        prefix = "" if path == "/" else path
        local = self.root if path == "/" else self._local(path)

        def stats():
            # Each stat relative to the directory (dir_fd), not from the
            # root: a third less time for thousands of children.
            try:
                fd = os.open(local, os.O_RDONLY | os.O_DIRECTORY) if _DIR_FD else None
                names = os.listdir(local if fd is None else fd)
            except OSError as e:
                raise _notFound(e, path)
            found = {}
            try:
                for name in names:
                    if name.startswith(TEMP_PREFIX):
                        continue
                    try:
                        if fd is None:
                            st = os.stat(os.path.join(local, name, below))
                        else:
                            st = os.stat(name + "/" + below, dir_fd=fd)
                    except (FileNotFoundError, NotADirectoryError):
                        continue  # (not a directory, or no such file below it)
                    if statmode.S_ISREG(st.st_mode):
                        found[name] = FileInfo("%s/%s/%s" % (prefix, name, below), st.st_size, st.st_mtime, False)
            finally:
                if fd is not None:
                    os.close(fd)
            return found

        return self._lookup(stats)

    def move(self, source, dest):
        localDest = self._local(dest)

        def move(localSource):
            if not os.path.exists(localSource):
                raise PathNotFound(source)
            directory = os.path.dirname(localDest)
            gained = makeDirs(directory)
            os.replace(localSource, localDest)
            fsyncDirectory(directory)
            fsyncAll(gained)

        return self._call(source, move)

    def delete(self, path):
        return self._call(path, self._tree.remove)

    def redirectURL(self, path, method="GET"):
        return succeed(None)  # local files are served by the daemon


__all__ = ["FilesystemDriver", "StorageError"]
