"""Content-addressed blobs and their links into repositories."""

from __future__ import annotations

from typing import Optional

from txregistry import digest as digests
from txregistry.events import MOUNT, PULL, Announcer
from txregistry.errors import RegistryError
from txregistry.registry import layout
from txregistry.storage import ContentTooLarge, PathNotFound
from txregistry.storage.interface import IReader, IStorageDriver

# A link holds a digest ("sha512:" and 128 hex digits, a newline at most):
# anything longer is not a link, and is not read.
MAX_LINK_SIZE = 1024


def linkDigest(data: Optional[bytes]) -> Optional[digests.Digest]:
    """The digest a link file's content names, or C{None} for no content (or
    unreadable garbage, which we treat as absent)."""
    if data is None:
        return None
    try:
        return digests.parse(data.strip())
    except digests.InvalidDigest:
        return None


async def readLink(driver: IStorageDriver, path: str) -> Optional[digests.Digest]:
    """The digest the link file at C{path} names, or C{None}."""
    try:
        data = await driver.getContent(path, MAX_LINK_SIZE)
    except (PathNotFound, ContentTooLarge):
        return None
    return linkDigest(data)


async def exists(driver: IStorageDriver, path: str) -> bool:
    try:
        await driver.stat(path)
    except PathNotFound:
        return False
    return True


async def listQuietly(driver: IStorageDriver, path: str) -> list[str]:
    """What C{path} holds, or C{[]} when there is no such directory."""
    try:
        return await driver.list(path)
    except PathNotFound:
        return []


async def deleteQuietly(driver: IStorageDriver, path: str) -> None:
    """Delete C{path} (and what is below it) if it is there."""
    try:
        await driver.delete(path)
    except PathNotFound:
        pass


class BlobStore:
    def __init__(self, driver: IStorageDriver) -> None:
        self.driver = driver
        self.events = Announcer()
        self.clock = None  # the reactor (Registry sets it): a push held by a collection waits on it

    async def size(self, name: str, digest: str) -> int:
        """Size of a blob readable through repository C{name}, else
        BLOB_UNKNOWN.  A pull (what serves a blob asks it)."""
        size = await self._size(name, digest)
        self.events.blob(PULL, name, digest, size)
        return size

    async def _size(self, name: str, digest: str) -> int:
        if not await self.isLinked(name, digest):
            raise RegistryError("BLOB_UNKNOWN", detail={"digest": digest})
        try:
            info = await self.driver.stat(layout.blobData(digest))
        except PathNotFound:
            raise RegistryError("BLOB_UNKNOWN", detail={"digest": digest})
        if info.isDir:  # not a blob's data (damaged storage): not served as an empty one
            raise RegistryError("BLOB_UNKNOWN", detail={"digest": digest})
        return info.size

    async def open(self, name: str, digest: str) -> IReader:
        """A reader of the whole blob, readable through repository C{name}
        (else BLOB_UNKNOWN); its C{size} is the blob's.  One look at the
        storage fewer than L{size} then L{reader}."""
        if not await self.isLinked(name, digest):
            raise RegistryError("BLOB_UNKNOWN", detail={"digest": digest})
        reader = await self.reader(name, digest)
        self.events.blob(PULL, name, digest, reader.size)
        return reader

    async def reader(self, name: str, digest: str, offset: int = 0) -> IReader:
        try:
            return await self.driver.reader(layout.blobData(digest), offset)
        except PathNotFound:
            raise RegistryError("BLOB_UNKNOWN", detail={"digest": digest})

    async def redirectURL(self, digest: str, method: str = "GET") -> Optional[str]:
        return await self.driver.redirectURL(layout.blobData(digest), method)

    async def isLinked(self, name: str, digest: str) -> bool:
        return (await readLink(self.driver, layout.layerLink(name, digest))) == digest

    async def link(self, name: str, digest: str) -> None:
        await self.driver.putContent(layout.layerLink(name, digest), digest.encode("ascii"))

    async def unlink(self, name: str, digest: str) -> None:
        if not await self.isLinked(name, digest):
            raise RegistryError("BLOB_UNKNOWN", detail={"digest": digest})
        await self.driver.delete(layout.layerLinkDir(name, digest))
        self.events.blobDeleted(name, digest)

    async def mount(self, name: str, digest: str, fromName: str) -> bool:
        """Link a blob of C{fromName} into C{name}; C{False} when C{fromName}
        cannot read it."""
        from txregistry.registry import touch

        # Touched before checking it is there (see txregistry.registry.touch).
        await touch.claim(self.driver, [digest], self.clock)
        try:
            size = await self._size(fromName, digest)
        except RegistryError:
            return False
        await self.link(name, digest)
        self.events.blob(MOUNT, name, digest, size, fromRepository=fromName)
        return True

    async def hasData(self, digest: str) -> bool:
        return await exists(self.driver, layout.blobData(digest))

    async def putContent(self, digest: str, data: bytes) -> None:
        """Store small content (a manifest) under its digest, unless there."""
        if not await self.hasData(digest):
            await self.driver.putContent(layout.blobData(digest), data)

    async def getContent(self, digest: str, maxSize: Optional[int]) -> Optional[bytes]:
        """The bytes of blob C{digest}, or C{None}; L{ContentTooLarge} when
        more than C{maxSize} are stored (none of them read whole)."""
        try:
            return await self.driver.getContent(layout.blobData(digest), maxSize)
        except PathNotFound:
            return None

    async def storedSize(self, digest: str) -> Optional[int]:
        """The size of blob C{digest}'s data, or C{None} when there is none."""
        try:
            info = await self.driver.stat(layout.blobData(digest))
        except PathNotFound:
            return None
        return None if info.isDir else info.size
