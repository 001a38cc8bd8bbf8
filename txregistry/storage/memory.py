"""An in-memory storage driver, for tests and throwaway registries."""

import time

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from zope.interface import implementer

from txregistry.storage.interface import (
    checkPath,
    ContentTooLarge,
    FileInfo,
    followChain,
    InvalidOffset,
    IReader,
    IStorageDriver,
    ITruncatingWriter,
    IWriter,
    PathNotFound,
)


@implementer(IReader)
class _MemoryReader:
    def __init__(self, data, offset):
        self._data = data
        self._pos = offset
        self.size = len(data) - offset

    def read(self, n):
        chunk = bytes(self._data[self._pos : self._pos + n])
        self._pos += len(chunk)
        return succeed(chunk)

    def close(self):
        self._data = b""


@implementer(ITruncatingWriter)
class _MemoryWriter:
    def __init__(self, driver, path, initial):
        self._driver = driver
        self._path = path
        self._buffer = bytearray(initial)
        self.size = len(self._buffer)
        self._driver._files[path] = (self._buffer, time.time())

    def write(self, data):
        self._buffer += data
        self.size = len(self._buffer)
        self._driver._files[self._path] = (self._buffer, time.time())
        return succeed(None)

    def truncate(self, size):
        del self._buffer[size:]
        self.size = len(self._buffer)
        self._driver._files[self._path] = (self._buffer, time.time())
        return succeed(None)

    def commit(self):
        return succeed(None)

    def cancel(self):
        self._driver._files.pop(self._path, None)
        return succeed(None)

    def close(self):
        return succeed(None)


@implementer(IStorageDriver)
class MemoryDriver:
    name = "inmemory"

    def __init__(self):
        self._files = {}  # path -> (bytes, mtime)

    def _children(self, path):
        prefix = "/" if path == "/" else path + "/"
        out = set()
        for p in self._files:
            if p.startswith(prefix):
                out.add(prefix + p[len(prefix) :].split("/", 1)[0])
        return out

    def _isDir(self, path):
        return bool(self._children(path))

    def _get(self, path):
        checkPath(path)
        try:
            return bytes(self._files[path][0])
        except KeyError:
            raise PathNotFound(path)

    def getContent(self, path, maxSize=None):
        def get():
            data = self._get(path)
            if maxSize is not None and len(data) > maxSize:
                raise ContentTooLarge(path, maxSize, len(data))
            return data

        return maybeDeferred(get)

    def getContentChain(self, path, follow, maxSize=None):
        return Deferred.fromCoroutine(followChain(self.getContent, path, follow, maxSize))

    def putContent(self, path, data):
        def put():
            checkPath(path)
            self._files[path] = (bytes(data), time.time())

        return maybeDeferred(put)

    def reader(self, path, offset=0):
        def open_():
            data = self._get(path)
            if offset > len(data) or offset < 0:
                raise InvalidOffset(path)
            return _MemoryReader(data, offset)

        return maybeDeferred(open_)

    def writer(self, path, append=False):
        def open_():
            checkPath(path)
            initial = self._files.get(path, (b"", 0))[0] if append else b""
            return _MemoryWriter(self, path, initial)

        return maybeDeferred(open_)

    def stat(self, path):
        def stat():
            checkPath(path)
            if path in self._files:
                data, mtime = self._files[path]
                return FileInfo(path, len(data), mtime, False)
            if self._isDir(path):
                return FileInfo(path, 0, time.time(), True)
            raise PathNotFound(path)

        return maybeDeferred(stat)

    def list(self, path):
        def list_():
            if path != "/":
                checkPath(path)
            children = self._children(path)
            if not children and path != "/":
                raise PathNotFound(path)
            return sorted(children)

        return maybeDeferred(list_)

    def move(self, source, dest):
        def move():
            checkPath(dest)
            data = self._get(source)
            if dest == source:
                return  # onto itself: it stays as it is
            self._files[dest] = (data, time.time())
            del self._files[source]

        return maybeDeferred(move)

    def delete(self, path):
        def delete():
            checkPath(path)
            doomed = [p for p in self._files if p == path or p.startswith(path + "/")]
            if not doomed:
                raise PathNotFound(path)
            for p in doomed:
                del self._files[p]

        return maybeDeferred(delete)

    def redirectURL(self, path, method="GET"):
        return succeed(None)


__all__ = ["MemoryDriver"]
