"""The storage driver contract, modelled on Distribution's StorageDriver.

Paths are absolute, "/"-separated strings (``/docker/registry/v2/...``) below
the driver's root.  Every method returns a L{Deferred}.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Awaitable, Callable, Optional

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface


class StorageError(Exception):
    """Base class of the driver errors."""


class PathNotFound(StorageError):
    """Nothing is stored at the path."""


class InvalidPath(StorageError):
    """The path is not one a driver accepts."""


class InvalidOffset(StorageError):
    """A read was asked to start beyond the end of the content."""


class ContentTooLarge(StorageError):
    """More is stored at a path than a bounded read (C{maxSize}) accepts;
    at most C{maxSize + 1} bytes of it were read.  C{size} is the stored
    size when the driver learnt it, else C{None}."""

    def __init__(self, path: str, maxSize: int, size: Optional[int] = None) -> None:
        self.path = path
        self.maxSize = maxSize
        self.size = size
        stored = "%d bytes" % (size,) if size is not None else "more"
        StorageError.__init__(self, "%s: %s stored, at most %d bytes read" % (path, stored, maxSize))


class StorageUnavailable(StorageError):
    """The storage refuses to write for now (read-only, throttled): a state
    of the storage that passes, neither the request's fault nor a bug."""


class StorageFull(StorageUnavailable):
    """No space (or quota) is left for what was written."""


@dataclass(frozen=True)
class FileInfo:
    path: str
    size: int
    modTime: float
    isDir: bool


_PATH = re.compile(r"^(/[A-Za-z0-9._:-]+)+$")


def checkPath(path: str) -> str:
    """Raise L{InvalidPath} unless C{path} is an absolute, normalised path made
    of safe characters (so it can never leave the driver's root)."""
    if not isinstance(path, str) or not _PATH.fullmatch(path):
        raise InvalidPath(path)
    for part in path.split("/")[1:]:
        if part in (".", ".."):
            raise InvalidPath(path)
    return path


class IReader(Interface):
    """Sequential reads of one stored file from an offset."""

    size = Attribute("Bytes from the starting offset to the end of the file.")

    def read(n: int) -> Deferred[bytes]:
        """Deferred firing with up to C{n} bytes; C{b""} at the end."""

    def close() -> None:
        """Release the reader (idempotent, synchronous)."""


class ISendfileSource(Interface):
    """Optional extension of an L{IReader} whose bytes are in a local file:
    a web server may then let the kernel copy them to a socket
    (C{os.sendfile}) instead of calling L{IReader.read}.  Readers of the
    filesystem driver offer it; memory and S3 readers do not (test with
    C{ISendfileSource.providedBy(reader)})."""

    def sendfileSource() -> Optional[tuple[int, int, int]]:
        """C{(fd, offset, length)}: the open file descriptor of the reader's
        file, where its bytes start and how many there are (C{size}).  The
        descriptor belongs to the reader: it stays open until L{IReader.close}
        and must not be closed or seeked by the caller (C{os.sendfile} with
        an explicit offset does neither).  C{None} if the reader cannot
        offer one after all (already read from, or closed)."""


class ITouch(Interface):
    """Optional extension of an L{IStorageDriver}: a cheaper way than
    L{IStorageDriver.putContent} to bring a small file's mtime to now (the
    filesystem driver sets it in place).  Callers fall back to putContent
    on drivers without it (S3: an object's mtime changes only by a PUT)."""

    def touch(path: str) -> Deferred[None]:
        """Deferred firing once C{path}'s mtime is now (an empty file made
        if there is none there).  Seen at once by every reader, as a
        putContent is; it need not be durable."""


class IStatChildren(Interface):
    """Optional extension of an L{IStorageDriver}: what a L{IStorageDriver.list}
    of a directory and a L{IStorageDriver.stat} of one file below each of
    its children would tell, in one go (the filesystem driver: one step of
    its thread pool; S3: one paginated listing, whose entries carry each
    object's size and mtime, instead of a HEAD a file).  Callers fall back
    to list and stat on drivers without it (the memory driver)."""

    def statChildren(path: str, below: str) -> Deferred[dict[str, FileInfo]]:
        """Deferred firing with C{{child: FileInfo}}: for each direct child
        C{child} (one path segment) of the directory C{path} below which
        the file C{path/child/below} is stored (C{below}: a relative path
        such as C{"current/link"}), that file's L{FileInfo}, the one
        L{IStorageDriver.stat} gives (the same C{modTime}, to compare them);
        children without it (or where it is a directory) are left out.
        L{PathNotFound} when nothing is stored below C{path}.  What was
        stored or removed while it runs may or may not be seen."""


def checkBelow(below: str) -> str:
    """Raise L{InvalidPath} unless C{below} is a safe relative path (one
    that L{checkPath} accepts once "/" is put before it)."""
    if not isinstance(below, str):
        raise InvalidPath(below)
    checkPath("/" + below)
    return below


class IWriter(Interface):
    """Appends to one stored file.  Calls must not overlap: wait for each
    Deferred before the next call.  A file being written (closed but not
    committed) has a size (L{IStorageDriver.stat}) and can be appended to;
    it is read as a whole (getContent, reader) once committed."""

    size = Attribute("Bytes in the file, including those written so far.")

    def write(data: bytes) -> Deferred[None]:
        """Deferred firing once C{data} is appended."""

    def commit() -> Deferred[None]:
        """Deferred firing once everything written is one complete, durable
        file, readable as any other; no more writes follow."""

    def cancel() -> Deferred[None]:
        """Deferred firing once the file is removed."""

    def close() -> Deferred[None]:
        """Deferred firing once what was written is kept, durably (it
        survives a crash of the machine), so that a later writer (in this
        process or another) can append to it, and the writer's resources
        are released."""


class ITruncatingWriter(IWriter):
    """Optional extension of an L{IWriter}: the file can be cut back to an
    earlier size (the filesystem and memory drivers; S3 parts cannot be
    taken back).  Lets a chunk whose length can only be judged at its end
    be written in place and taken back if it is refused, instead of being
    staged apart (L{txregistry.registry.chunks})."""

    def truncate(size: int) -> Deferred[None]:
        """Deferred firing once the file has its first C{size} bytes only
        (C{size} at most L{IWriter.size}); writes go on from there."""


class IStorageDriver(Interface):
    name = Attribute("A short name for logs: 'filesystem', 'inmemory', ...")

    def getContent(path: str, maxSize: Optional[int] = None) -> Deferred[bytes]:
        """Deferred firing with the bytes at C{path} (small content only).
        With C{maxSize}, the read is bounded by what is stored, never by
        what anybody claims it holds: at most C{maxSize + 1} bytes are read
        (drivers that can ask the size first do), and L{ContentTooLarge} is
        raised when more than C{maxSize} are stored.  Every read of stored
        content for parsing gives a C{maxSize}."""

    def getContentChain(
        path: str, follow: Callable[[bytes], Optional[str]], maxSize: Optional[int] = None
    ) -> Deferred[list[Optional[bytes]]]:
        """Deferred firing with a list of contents: C{path}'s, then, as long
        as C{follow(content)} names another path, that path's.  A path with
        nothing stored at it ends the list with C{None}.  C{follow} is pure
        (no I/O) and cheap; it may run in any thread, so that a driver can
        read a link and what it names in one step.  C{maxSize} bounds each
        read as for L{getContent} (L{ContentTooLarge})."""

    def putContent(path: str, data: bytes) -> Deferred[None]:
        """Deferred firing once C{data} replaced the content at C{path}
        atomically: readers see the old or the new content, never a mix."""

    def reader(path: str, offset: int = 0) -> Deferred[IReader]:
        """Deferred firing with an L{IReader} from C{offset}."""

    def writer(path: str, append: bool = False) -> Deferred[IWriter]:
        """Deferred firing with an L{IWriter}; with C{append}, continue the
        content already at C{path}."""

    def stat(path: str) -> Deferred[FileInfo]:
        """Deferred firing with a L{FileInfo}."""

    def list(path: str) -> Deferred[list[str]]:
        """Deferred firing with the full paths of the direct children of the
        directory C{path}."""

    def move(source: str, dest: str) -> Deferred[None]:
        """Deferred firing once C{source} replaced C{dest} atomically."""

    def delete(path: str) -> Deferred[None]:
        """Deferred firing once C{path} and everything below it is gone."""

    def redirectURL(path: str, method: str = "GET") -> Deferred[Optional[str]]:
        """Deferred firing with a URL a client can fetch the content from
        directly, or C{None}."""


MAX_CHAIN = 8  # links followed at most by getContentChain


async def followChain(
    getContent: Callable[[str, Optional[int]], Awaitable[bytes]],
    path: Optional[str],
    follow: Callable[[bytes], Optional[str]],
    maxSize: Optional[int] = None,
) -> list[Optional[bytes]]:
    """L{IStorageDriver.getContentChain} on top of a C{getContent}
    returning Deferreds (for drivers without a faster way)."""
    found = []
    while path is not None and len(found) < MAX_CHAIN:
        try:
            content = await getContent(path, maxSize)
        except PathNotFound:
            found.append(None)
            break
        found.append(content)
        path = follow(content)
    return found
