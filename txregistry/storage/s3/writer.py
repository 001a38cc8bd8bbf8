"""Appendable files on S3 (uploads), whose state is kept in the bucket so
that another process can continue them: a multipart upload of parts of
C{PART_SIZE} bytes, plus the bytes that do not fill a part yet in a small
side object (``<key>.partial``, never larger than a part) that records how
many parts it follows (C{x-amz-meta-parts}) and of which upload
(C{x-amz-meta-uploadid}).  Appending never copies what is already stored.

Everything goes through L{txregistry.storage.s3.bucket.Bucket}."""

import mmap

from twisted.internet.defer import Deferred, DeferredSemaphore, succeed
from twisted.web.iweb import UNKNOWN_LENGTH
from zope.interface import implementer

from txregistry.storage.interface import IWriter, PathNotFound, StorageError
from txregistry.storage.s3.client import UNSIGNED
from txregistry.storage.s3.transfer import fail

MIN_PART = 5 * 1024 * 1024
PART_SIZE = 16 * 1024 * 1024
PARTIAL_SUFFIX = ".partial"
SMALL_BUFFER = 1024 * 1024  # a writer holding more keeps it in a mapping of PART_SIZE


class PartBuffers:
    """The part buffers of the writers of one driver: at most C{count} at
    once (L{txregistry.limits.StorageLimits.maxPartMemory} over
    C{PART_SIZE}).  A writer takes one before it holds more than
    C{SMALL_BUFFER} bytes, and gives it back when it closes; one that needs
    one while none is free waits for one (its L{S3Writer.write} does not
    fire, which pauses the request body), first come first served.  A
    writer holds at most one, so every holder can fill and send its part:
    waiting never deadlocks."""

    def __init__(self, maxBytes):
        self.count = max(1, maxBytes // PART_SIZE)
        self._tokens = DeferredSemaphore(self.count)

    @property
    def inUse(self):
        return self.count - self._tokens.tokens

    @property
    def waiting(self):
        return len(self._tokens.waiting)

    @property
    def free(self):
        return self._tokens.tokens > 0

    def acquire(self):
        return self._tokens.acquire()

    def release(self):
        self._tokens.release()


async def openWriter(bucket, path, key, append, buffers=None):
    """The writer of C{path} (at C{key}): a new file, or with C{append}
    the continuation of one being written (or of one already committed).
    C{buffers}: the L{PartBuffers} its part buffer comes from (C{None}:
    no bound)."""
    if not append:
        await discardPartial(bucket, key)
        await bucket.delete(key)
        return S3Writer(bucket, path, key, None, [], b"", partialSaved=False, dirty=True,
                        buffers=buffers)  # exists once closed
    holding = []

    def admit(length):
        """Whether a saved tail of C{length} bytes may be read now."""
        if buffers is None or holding or (length != UNKNOWN_LENGTH and length <= SMALL_BUFFER):
            return True
        if buffers.free:
            buffers.acquire()  # (fires at once)
            holding.append(True)
            return True
        return False

    async def wait():
        await buffers.acquire()
        holding.append(True)

    try:
        state = await partialState(bucket, key, admit, wait)
    except BaseException:
        if holding:
            buffers.release()
        raise
    if state is None:
        if holding:
            buffers.release()
        existing = await bucket.head(key)
        if existing is not None:
            return CommittedWriter(path, contentLength(existing))
        return S3Writer(bucket, path, key, None, [], b"", partialSaved=False, buffers=buffers)
    uploadID, parts, tail = state
    return S3Writer(bucket, path, key, uploadID, parts, tail, buffers=buffers, holding=bool(holding))


async def discardPartial(bucket, key):
    """End what is being written at C{key}: its multipart uploads and its
    C{.partial}."""
    for k, uploadID in await bucket.uploads(key):
        if k == key:
            await bucket.abort(key, uploadID)
    await bucket.delete(key + PARTIAL_SUFFIX)


async def partialState(bucket, key, admit=None, wait=None):
    """C{(uploadID, parts, tail)} of an appendable file, or C{None}.
    Without C{admit}, C{tail} is the number of bytes that follow the parts
    (one HEAD: nothing is read).  With it, those bytes (a bytearray), read
    once C{admit(size)} says yes; when it says no, C{await wait()} and read
    them again (then C{admit} must say yes)."""
    if admit is None:
        found = await bucket.head(key + PARTIAL_SUFFIX)
        if found is None:
            return None
        tail = contentLength(found)
    else:
        got = await bucket.getSmall(key + PARTIAL_SUFFIX, admit)
        if got is False:
            await wait()
            got = await bucket.getSmall(key + PARTIAL_SUFFIX, admit)
        if got is None:
            return None
        found, tail = got
    meta = found.headers
    count = int((meta.getRawHeaders(b"x-amz-meta-parts") or [b"0"])[0])
    uploadID = (meta.getRawHeaders(b"x-amz-meta-uploadid") or [b""])[0].decode("ascii") or None
    parts = []
    if uploadID:
        try:
            parts = await bucket.parts(key, uploadID)
        except PathNotFound:
            if await bucket.head(key) is not None:
                # Completed, and the daemon stopped before it deleted the
                # .partial: the file is committed; what is left is debris.
                await bucket.delete(key + PARTIAL_SUFFIX)
                return None
            raise StorageError("multipart upload of %s is gone" % (key,))
    if len(parts) > count:
        # A part was stored after the tail was saved: parts always begin
        # with the whole tail, so the tail is already in that part.
        tail = bytearray() if admit is not None else 0
    elif len(parts) < count:
        raise StorageError("multipart upload of %s lost parts" % (key,))
    return uploadID, parts, tail


def contentLength(response):
    """Content-Length of a HEAD response (Twisted says a HEAD has no body)."""
    return int(response.headers.getRawHeaders(b"content-length", [b"0"])[0])


@implementer(IWriter)
class S3Writer:
    """See the module docstring.  C{parts} are C{(number, etag, size)};
    C{tail} (a bytearray, or bytes) is what follows them.  C{partialSaved}:
    whether a C{.partial} may exist for this file (C{False} only for a
    writer that found none, until it saves one).

    Memory: one buffer, of the part being filled.  Up to SMALL_BUFFER bytes
    it is a bytearray of what was written (a small file takes its size);
    beyond, an anonymous mapping of PART_SIZE bytes, filled in place and
    reused for every later part: no copy of a part is made, and the part
    buffers of successive uploads do not come and go through malloc (whose
    heap would keep growing with them: glibc raises its mmap threshold once
    such a buffer is freed, and part-sized buffers then fragment its heap).
    A part is sent from the buffer in pieces (L{BytesProducer}), one part
    in flight at a time; L{write} fires only once its data is in the buffer
    or sent.  L{close} gives the buffer back.  With C{buffers} (a
    L{PartBuffers}), the mapping is one of theirs: C{holding} says whether
    the writer has one already (for a saved tail larger than
    SMALL_BUFFER)."""

    def __init__(self, bucket, path, key, uploadID, parts, tail, partialSaved=True, dirty=False,
                 buffers=None, holding=False):
        self._bucket = bucket
        self._path = path
        self._key = key
        self._uploadID = uploadID
        self._parts = parts
        self._buffer = tail if isinstance(tail, bytearray) else bytearray(tail)
        self._filled = len(self._buffer)  # the bytes of the buffer in use (the rest is stale)
        self._partialSaved = partialSaved
        self._dirty = dirty  # whether close has something to save
        self._finished = False
        self._closed = False
        self._buffers = buffers  # the PartBuffers the mapping needs one of (None: no bound)
        self._holding = holding  # whether this writer holds one

    @property
    def size(self):
        return sum(p[2] for p in self._parts) + self._filled

    def _put(self, view):
        """Copy what fits of C{view} into the buffer; returns the rest."""
        piece = view[:PART_SIZE - self._filled]
        n = len(piece)
        if isinstance(self._buffer, bytearray):
            if self._filled + n <= SMALL_BUFFER:
                try:
                    self._buffer += piece
                except BufferError:  # a request not yet started still looks at it
                    self._buffer = self._buffer + piece
                self._filled += n
                return view[n:]
            big = mmap.mmap(-1, PART_SIZE)
            big[:self._filled] = self._buffer
            self._buffer = big
        self._buffer[self._filled:self._filled + n] = piece
        self._filled += n
        return view[n:]

    def write(self, data):
        if self._closed or self._finished:
            return fail((StorageError("%s: write after close" % (self._path,))))
        self._dirty = True
        end = self._filled + len(data)
        if end < PART_SIZE and (end <= SMALL_BUFFER or self._holding or self._buffers is None):
            self._put(memoryview(data))
            return succeed(None)
        return Deferred.fromCoroutine(self._fill(data))

    async def _fill(self, data):
        if not self._holding and self._buffers is not None:
            await self._buffers.acquire()
            self._holding = True
            if self._closed or self._finished:  # (while it waited)
                self._release()
                raise StorageError("%s: write after close" % (self._path,))
        view = memoryview(data)
        while len(view):
            if self._closed or self._finished:  # (cancelled while a part was sent)
                raise StorageError("%s: write after close" % (self._path,))
            view = self._put(view)
            if self._filled >= PART_SIZE:
                await self._uploadPart()
                self._filled = 0

    def _held(self):
        """A view of the bytes held (release it once sent)."""
        return memoryview(self._buffer)[:self._filled]

    def _release(self):
        """Give the buffer back, and the part buffer it held (L{size} stays
        what it was)."""
        buffer, self._buffer = self._buffer, bytearray()
        if isinstance(buffer, mmap.mmap):
            try:
                buffer.close()
            except BufferError:
                pass  # a request still looks at it: unmapped once it is done
        if self._holding:
            self._holding = False
            self._buffers.release()

    async def _uploadPart(self):
        if self._uploadID is None:
            self._uploadID = await self._bucket.initiate(self._key)
        number = len(self._parts) + 1
        with self._held() as data:
            etag = await self._bucket.uploadPart(self._key, self._uploadID, number, data, payloadHash=UNSIGNED)
        self._parts.append((number, etag, self._filled))

    async def _saveTail(self):
        headers = {"x-amz-meta-parts": str(len(self._parts))}
        if self._uploadID:
            headers["x-amz-meta-uploadid"] = self._uploadID
        self._partialSaved = True
        try:
            with self._held() as tail:
                await self._bucket.put(self._key + PARTIAL_SUFFIX, tail, headers, payloadHash=UNSIGNED)
        finally:
            self._release()

    def close(self):
        if self._finished or self._closed:
            return succeed(None)
        self._closed = True
        if not self._dirty:
            self._release()
            return succeed(None)
        return Deferred.fromCoroutine(self._saveTail())

    def commit(self):
        if self._closed:
            return fail((StorageError("%s: commit after close" % (self._path,))))
        self._finished = True
        return Deferred.fromCoroutine(self._commit())

    async def _commit(self):
        if self._uploadID is None:
            with self._held() as data:
                await self._bucket.put(self._key, data, payloadHash=UNSIGNED)
        else:
            if self._filled:
                await self._uploadPart()
                self._filled = 0  # (now the last part)
            await self._bucket.complete(self._key, self._uploadID, [(n, etag) for n, etag, _ in self._parts])
        self._release()
        if self._partialSaved:
            await self._bucket.delete(self._key + PARTIAL_SUFFIX)

    def cancel(self):
        self._finished = True
        self._release()
        return Deferred.fromCoroutine(self._cancel())

    async def _cancel(self):
        if self._uploadID is not None:
            await self._bucket.abort(self._key, self._uploadID)
        await self._bucket.delete(self._key + PARTIAL_SUFFIX)
        await self._bucket.delete(self._key)


@implementer(IWriter)
class CommittedWriter:
    """An append writer on a file already committed: it can be committed
    again (a retried completion) but not written to."""

    def __init__(self, path, size):
        self._path = path
        self.size = size

    def write(self, data):
        return fail((StorageError("%s is committed: no more appends" % (self._path,))))

    def commit(self):
        return succeed(None)

    def close(self):
        return succeed(None)

    def cancel(self):
        return fail((StorageError("cancel a committed file with delete")))
