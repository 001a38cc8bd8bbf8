"""One request body appended to an upload while it arrives: queued,
hashed and written by the thread pool a batch at a time, with backpressure
on the body's producer (L{Appender}); the sessions themselves are
L{txregistry.registry.uploads.Uploads}."""

from __future__ import annotations

import enum
from collections import deque
from typing import TYPE_CHECKING, Optional

from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger
from twisted.python.failure import Failure

from txregistry import digest as digests
from txregistry.errors import RegistryError
from txregistry.observe import OneShot
from txregistry.registry import layout
from txregistry.registry.chunks import StagedChunk, rangeMismatch
from txregistry.storage import StorageUnavailable
from txregistry.storage.interface import ITruncatingWriter

if TYPE_CHECKING:
    from twisted.internet.interfaces import IPushProducer

    from txregistry.registry.uploads import Uploads
    from txregistry.storage.interface import IWriter

# Flow control of one request body: above HIGH queued bytes the producer is
# paused; below LOW it is resumed.
HIGH_WATER = 8 * 1024 * 1024
LOW_WATER = 2 * 1024 * 1024
READ_CHUNK = 1024 * 1024
# The most bytes joined into one write (what arrived while the previous one
# was written is taken in batches of this size, not all at once).
BATCH = 1024 * 1024


def blobTooLarge(limit: int) -> RegistryError:
    """The error of a blob longer than limits.max_blob_size (C{limit})."""
    return RegistryError("SIZE_INVALID", "blob exceeds the limit of %d bytes" % (limit,), {"limit": limit},
                         limit=limit)



class Phase(enum.Enum):
    """Where an L{Appender} is: its storage work, one step at a time."""

    OPENING = "opening"  # creating and claiming the upload, opening its writer
    READY = "ready"  # open (or failed to open): nothing being written
    WRITING = "writing"  # a batch (or the staging file's opening) under way
    CLOSING = "closing"  # the body is done: closing the writer, releasing the upload
    CLOSED = "closed"  # L{Appender.finish} has its outcome


class Appender:
    """Appends one request body to an upload while it arrives.

    C{write} is synchronous (it is called for each piece of the body as the
    network delivers it) and only queues; queued bytes are hashed and written
    by the thread pool, one batch at a time.  It is an C{IConsumer}: the
    producer of the body (L{registerProducer}) is paused when too much is
    queued, and resumed once the storage caught up.  C{finish} fires with the new
    offset once everything is written and durable, or fails with the
    L{RegistryError} that made this body unacceptable (in which case the rest
    of the body is discarded).

    With a C{span} (the Content-Range, C{(start, end)}), the body must start
    at the upload's size and have C{end - start + 1} bytes, else it is
    refused (416) and nothing of it stays: L{declare} checks a declared
    length before the body; a body of unknown length is written in place
    and cut off again if it ends up another length (L{_guard}: on a writer
    that can be truncated, L{ITruncatingWriter}), or else staged and
    appended only once it is complete and of that length
    (L{chunks.StagedChunk}).  Nothing of a refused body stays while the
    process lives; a crash in the middle of a body written in place may
    leave the part of it that had arrived, as for any body cut short (the
    upload's status tells the client where to go on, and completion checks
    the digest of whatever is there).

    C{finish} fires only once the writer is closed, which makes what was
    written durable (L{IWriter.close}): the offset acknowledged to the
    client survives a crash of the machine.

    Its storage work is one step at a time: C{phase} (a L{Phase}) says
    which; whether the body has ended, the producer is paused or the
    upload was created here are facts of their own.
    """

    log = Logger()

    def __init__(self, uploads: Uploads, name: str, uploadID: Optional[str], span: Optional[tuple[int, int]],
                 algorithms: tuple[str, ...]) -> None:
        self._uploads = uploads
        self.name = name
        self.uploadID = uploadID
        self._span = span
        self._start = span[0] if span is not None else None
        self._expected = span[1] - span[0] + 1 if span is not None else None
        # Until declare() tells a length: a ranged body is staged.
        self._staging = span is not None
        self._stage = None
        # A body of unknown length written in place (see _guardChunk): the
        # upload's size and hash states before it, to go back to.
        self._guard = None
        self._algorithms = algorithms
        self._producer = None  # what feeds write (IPushProducer), see registerProducer
        self._queue = deque()
        self._pending = 0
        self.received = 0
        self._writer = None
        self._state = None
        self._hashers = None
        self.error = None
        self._done = OneShot()  # of finish
        self._base = 0  # bytes in the upload before this body
        self._kept = None  # the open writer of an upload this appender created, once the body is in
        self.phase = Phase.READY
        # The facts besides the phase:
        self._paused = False  # the producer is paused (by this appender)
        self._ended = False  # the whole body was received (or given up on)
        self._counted = False  # counted in uploads.active
        self._created = False  # this appender created the upload (a monolithic POST)
        self._abandoned = False  # the request ends without completing an upload this appender created
        if uploads.maxConcurrent and uploads.active >= uploads.maxConcurrent:
            self._reject(RegistryError(
                "TOOMANYREQUESTS", "too many uploads at once (%d); retry later" % (uploads.maxConcurrent,),
                retryAfter=5,
            ))
            return
        uploads.active += 1
        self._counted = True
        self.phase = Phase.OPENING
        Deferred.fromCoroutine(self._open()).addCallbacks(self._opened, self._fail)

    @property
    def limit(self) -> Optional[int]:
        """The most bytes a blob may have (C{None}: no limit)."""
        return self._uploads.maxBlobSize or None

    def declare(self, length: Optional[int]) -> Optional[RegistryError]:
        """The body's declared length (its Content-Length), or C{None} (it
        is chunked): told once, before any of the body.  Returns the error
        refusing the body (then nothing of it is written, as with
        L{refuse}), or C{None}."""
        if self._span is None or length is None:
            return None
        self._staging = False
        if length == self._expected:
            return None
        error = rangeMismatch(self._span, length)
        self.refuse(error)
        return error

    # --- opening ---

    async def _open(self):
        uploads = self._uploads
        if self.uploadID is None:
            self.uploadID = await uploads.create(self.name)
            self._created = True
        self._state = await uploads.claim(self.name, self.uploadID, created=self._created)
        writer = await uploads.driver.writer(layout.uploadData(self.name, self.uploadID), append=True)
        self._writer = writer
        self._base = writer.size
        if self._start is not None and self._start != writer.size:
            raise RegistryError(
                "RANGE_INVALID",
                "chunk starts at %d but the upload has %d bytes" % (self._start, writer.size),
                {"offset": writer.size},
            )
        state = self._state
        if writer.size == 0:
            state.hashers = {a: digests.hasher(a) for a in self._algorithms}
            state.offset = 0
        elif state.offset != writer.size:
            state.hashers = {}
        self._hashers = list(state.hashers.values())

    @property
    def queued(self) -> int:
        """Bytes of the body received and not written yet."""
        return self._pending

    def _opened(self, _):
        self.phase = Phase.READY
        self._kick()

    def _fail(self, failure):
        """The open or a write failed (L{Phase.OPENING} or L{Phase.WRITING})."""
        self.phase = Phase.READY
        if self.error is None:
            if failure.check(RegistryError):
                self.error = failure.value
            elif failure.check(StorageUnavailable):
                # A full disk: an answer to give (it passes), not a bug.  The
                # hashes may have taken bytes the disk did not.
                self.error = failure.value
                if self._state is not None:
                    self._state.hashers = {}
            else:
                self.log.failure("upload {uuid}: writing failed", failure, uuid=self.uploadID)
                self.error = failure
                if self._state is not None:
                    self._state.hashers = {}
        self._queue.clear()
        self._queued(-self._pending)
        self._resume()
        self._maybeDone()

    def _reject(self, error):
        """Refuse the rest of the body (what is being written still lands)."""
        if self.error is None:
            self.error = error
        self._queued(-sum(len(c) for c in self._queue))
        self._queue.clear()
        self._resume()
        self._maybeDone()

    # --- the body ---

    def write(self, data: bytes) -> None:
        self.received += len(data)
        if self.error is not None or self.phase in (Phase.CLOSING, Phase.CLOSED):
            return
        limit = self._uploads.maxBlobSize
        if limit and self._base + self.received > limit:
            self._reject(blobTooLarge(limit))
            return
        if self._expected is not None and self.received > self._expected:
            self._reject(rangeMismatch(self._span, "more than that"))
            return
        self._queue.append(data)
        self._queued(len(data))
        if not self._paused:
            if self._pending > HIGH_WATER:
                self._pause()
            elif self._uploads.overQueued():
                self._pause()
                self._uploads.stall(self)
        self._kick()

    def _queued(self, n):
        """C{n} more bytes (fewer if negative) wait in this body's queue;
        the uploads count them all together (L{Uploads.maxQueued})."""
        self._pending += n
        self._uploads.queuedBytes(n)

    # --- IConsumer ---

    def registerProducer(self, producer: IPushProducer, streaming: bool) -> None:
        """C{producer} (a push producer) writes the body: it is paused and
        resumed for the storage's sake."""
        if not streaming:
            raise ValueError("the body of a request is pushed, not pulled")
        self._producer = producer

    def unregisterProducer(self) -> None:
        self._producer = None

    def _pause(self):
        self._paused = True
        if self._producer is not None:
            self._producer.pauseProducing()

    def _resume(self):
        if self._paused:
            self._paused = False
            if self._producer is not None:
                self._producer.resumeProducing()

    def wake(self) -> None:
        """The bodies of all uploads queue little again (L{Uploads.stall})."""
        if self._pending < LOW_WATER:
            self._resume()

    def _kick(self):
        if self.phase is not Phase.READY:
            return
        if self._writer is None or self.error is not None:
            self._maybeDone()
            return
        if not self._queue:
            self._maybeDone()
            return
        if self._staging and self._stage is None and ITruncatingWriter.providedBy(self._writer):
            self._guardChunk()
        if self._staging and self._stage is None:
            self.phase = Phase.WRITING
            self._stage = StagedChunk(self._uploads.driver, self.name, self.uploadID)

            def staged(_):
                self.phase = Phase.READY
                self._kick()

            Deferred.fromCoroutine(self._stage.open()).addCallbacks(staged, self._fail)
            return
        queue, pieces, n = self._queue, [], 0
        while queue and n < BATCH:
            pieces.append(queue.popleft())
            n += len(pieces[-1])
        batch = b"".join(pieces) if len(pieces) > 1 else pieces[0]
        del pieces
        self.phase = Phase.WRITING
        if self._staging:
            work = [self._stage.write(batch)]  # hashed once it is appended
        else:
            work = [self._writer.write(batch)]
            for h in self._hashers:
                work.append(self._uploads._inPool(h.update, batch))
        d = gatherResults(work, consumeErrors=True)

        def written(_):
            self.phase = Phase.READY
            self._queued(-len(batch))
            if not self._staging:
                self._state.offset += len(batch)
            if self._paused and self._pending < LOW_WATER:
                # Over the bound of all uploads, a body waits for the total
                # to shrink, unless its storage took all it was given: the
                # bytes over the bound are others', which may wait for what
                # only this one can free (an S3 part buffer).  Its next
                # bytes pause it again while the total is over.
                if self._uploads.overQueued() and self._pending:
                    self._uploads.stall(self)
                else:
                    self._uploads.unstall(self)
                    self._resume()
            if self.error is not None:
                self._maybeDone()
            else:
                self._kick()

        def failed(f):
            # gatherResults wraps the first failure
            self._fail(getattr(f.value, "subFailure", f))

        d.addCallbacks(written, failed)

    def _guardChunk(self):
        """Write this body of unknown length in place, hashed as it comes,
        keeping what is needed to take it back (L{_takeBackIfRefused})."""
        self._staging = False
        state = self._state
        self._guard = (self._writer.size, state.offset, {a: h.copy() for a, h in state.hashers.items()})

    async def _takeBackIfRefused(self, writer):
        """A body written in place (L{_guardChunk}) that is not as long as
        its Content-Range says, or failed: cut the upload back to where it
        was, hash states included."""
        guard, self._guard = self._guard, None
        if self.error is None and self.received != self._expected:
            self.error = rangeMismatch(self._span, self.received)
        if self.error is None:
            return
        size, offset, hashers = guard
        state = self._state
        try:
            await writer.truncate(size)
        except Exception:
            failure = Failure()
            self.log.failure("upload {uuid}: taking back a refused chunk failed", failure, uuid=self.uploadID)
            state.hashers = {}  # (its data now ends anywhere: re-read to verify)
            return
        state.hashers, state.offset = hashers, offset

    def end(self) -> None:
        """The whole body was received."""
        self._ended = True
        self._kick()

    def finish(self) -> Deferred[int]:
        """Deferred firing with the upload's new size once all of the body is
        durable (see the class docstring)."""
        self.end()
        d = self._done.wait()
        self._maybeDone()
        return d

    def abort(self) -> None:
        """The client went away mid-body: keep what arrived (the upload's
        offset tells the client where to resume) and release the upload;
        an upload this appender created (which no client knows) is
        removed."""
        self._abandoned = True
        self.end()
        self._maybeDone()

    def discard(self) -> Deferred[None]:
        """The request ends without completing the upload this appender
        created (a mount answered it, or it failed): once the body is
        done, remove that upload.  An existing upload keeps what arrived."""
        self._abandoned = True
        d = self.finish()

        async def removeCreated(_):
            writer = self.takeWriter()
            if writer is not None:
                await writer.cancel()
                await self._uploads.forget(self.name, self.uploadID)

        d.addBoth(lambda result: Deferred.fromCoroutine(removeCreated(result)))
        d.addErrback(lambda f: self.log.failure("upload {uuid}: removing it failed", f, uuid=self.uploadID))
        return d

    def refuse(self, error: RegistryError) -> None:
        """Refuse the whole body before any of it arrived (its declared
        length is over the limit): nothing is written, the upload is
        released, and an upload this appender was creating is removed (as
        the body failed)."""
        self._reject(error)
        self.end()
        self._maybeDone()

    def _maybeDone(self):
        # Once open (or failed to): an opening appender closes once it is.
        if not self._ended or self.phase is not Phase.READY or self._queue:
            return
        self.phase = Phase.CLOSING
        self._uploads.unstall(self)
        Deferred.fromCoroutine(self._close()).addBoth(self._closedWith)

    async def _close(self):
        writer = self._writer
        if self._counted:
            self._counted = False
            self._uploads.active -= 1
        try:
            if self._staging and writer is not None:
                await self._unstage(writer)
            elif self._guard is not None:
                await self._takeBackIfRefused(writer)
            # An upload this appender created is known to no other request:
            # either this request completes it (a monolithic POST: with
            # this writer, see takeWriter), or nobody can, and it goes.
            drop = self._created and (self._abandoned or self.error is not None)
            if writer is not None:
                if self._created and not drop:
                    self._kept = writer
                elif drop:
                    await writer.cancel()
                else:
                    await writer.close()
            if drop:
                await self._uploads.forget(self.name, self.uploadID)
        finally:
            if self._state is not None:
                self._uploads.release(self._state)
        if self.error is not None:
            return self.error
        return writer.size

    async def _unstage(self, writer):
        """Append the staged body to the upload if it is complete and as
        long as its Content-Range says; else drop it."""
        if self.error is None and self.received != self._expected:
            self.error = rangeMismatch(self._span, self.received)
        stage, self._stage = self._stage, None
        if stage is None:
            return
        if self.error is not None:
            await stage.discard()
            return
        try:
            self._state.offset += await stage.appendTo(writer, self._hashers, self._uploads._inPool)
        except Exception:
            self.error = Failure()
            self.log.failure("upload {uuid}: appending the staged chunk failed", self.error, uuid=self.uploadID)
            self._state.hashers = {}  # (its data now ends anywhere: re-read to verify)

    def takeWriter(self) -> Optional[IWriter]:
        """The writer of the upload this appender created (a monolithic
        POST), still open, for L{Uploads.complete}; C{None} otherwise.  A
        writer not taken is never closed: the upload's data is then lost,
        which only its creator could notice."""
        writer, self._kept = self._kept, None
        return writer

    def _closedWith(self, result):
        if isinstance(result, Failure) and self.error is not None:
            result = self.error
        self.phase = Phase.CLOSED
        self._done.fire(result)
