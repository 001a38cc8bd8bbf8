"""Blob upload sessions: create, append (hashing as bytes arrive), complete
(verify the digest, then adopt the data by a move), cancel.

Upload data lives in the storage itself (``_uploads/<id>/data``), so a
completed upload becomes a blob by a rename, never a copy.  The hash state of
an upload is kept in this process; when it is missing (a restart) or stale,
completion re-reads the data to verify the digest.
"""

import enum
import re
import time
import uuid as uuidlib
from collections import deque

from twisted.internet.defer import Deferred, DeferredLock, gatherResults, maybeDeferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure

from txregistry import digest as digests
from txregistry.events import PUSH, Announcer
from txregistry.errors import RegistryError
from txregistry.observe import OneShot
from txregistry.registry import layout
from txregistry.registry.catalog import repositoryDirs
from txregistry.registry.chunks import StagedChunk, rangeMismatch
from txregistry.storage import PathNotFound, StorageUnavailable

_UPLOAD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=-]{0,127}$")

# Flow control of one request body: above HIGH queued bytes the producer is
# paused; below LOW it is resumed.
HIGH_WATER = 8 * 1024 * 1024
LOW_WATER = 2 * 1024 * 1024
READ_CHUNK = 1024 * 1024
# The most bytes joined into one write (what arrived while the previous one
# was written is taken in batches of this size, not all at once).
BATCH = 1024 * 1024


def blobTooLarge(limit):
    """The error of a blob longer than limits.max_blob_size (C{limit})."""
    return RegistryError("SIZE_INVALID", "blob exceeds the limit of %d bytes" % (limit,), {"limit": limit},
                         limit=limit)


def isValidUploadID(value):
    return isinstance(value, str) and _UPLOAD_ID.fullmatch(value) is not None


class _State:
    """What this process knows of one upload: running hashes, valid at
    C{offset}, and the C{lock} held by the request working on it (the
    others wait their turn, in order)."""

    def __init__(self):
        self.hashers = {}
        self.offset = 0
        self.lock = DeferredLock()

    @property
    def busy(self):
        return self.lock.locked


class Uploads:
    log = Logger()

    def __init__(self, driver, blobs, reactor, threadpool, maxBlobSize=0, maxConcurrent=0, maxQueued=0):
        self.driver = driver
        self.blobs = blobs
        self.events = Announcer()  # txregistry.events
        self._reactor = reactor
        self._pool = threadpool
        self._states = {}
        self._forgotten = 0  # uploads forgotten so far (see claim)
        self.maxBlobSize = maxBlobSize  # 0: no limit
        self.maxConcurrent = maxConcurrent  # request bodies being written at once; 0: no limit
        self.active = 0
        # Bytes of all upload bodies received and not yet written (their
        # queues), and the most there may be (0: no bound): above it, every
        # body that queues more is paused (L{stall}) until it is back to
        # half of that.
        self.queued = 0
        self.maxQueued = maxQueued
        self._stalled = set()

    def overQueued(self):
        return bool(self.maxQueued) and self.queued > self.maxQueued

    def stall(self, appender):
        """C{appender}'s body waits (paused) for the queues of all bodies to
        shrink."""
        self._stalled.add(appender)

    def unstall(self, appender):
        self._stalled.discard(appender)

    def queuedBytes(self, n):
        self.queued += n
        if n < 0 and self._stalled and self.queued <= self.maxQueued // 2:
            stalled, self._stalled = self._stalled, set()
            for appender in stalled:
                appender.wake()

    def _inPool(self, f, *args):
        if self._pool is None:
            return maybeDeferred(f, *args)
        return deferToThreadPool(self._reactor, self._pool, f, *args)

    def _unknown(self, uploadID):
        return RegistryError("BLOB_UPLOAD_UNKNOWN", detail={"uuid": uploadID})

    async def create(self, name):
        uploadID = str(uuidlib.uuid4())
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()).encode("ascii")
        await self.driver.putContent(layout.uploadStartedAt(name, uploadID), stamp)
        self._states[uploadID] = _State()
        return uploadID

    async def _checkExists(self, name, uploadID):
        if not isValidUploadID(uploadID):
            raise self._unknown(uploadID)
        try:
            await self.driver.stat(layout.uploadStartedAt(name, uploadID))
        except PathNotFound:
            raise self._unknown(uploadID)

    async def offset(self, name, uploadID):
        """Bytes received so far (BLOB_UPLOAD_UNKNOWN if no such upload)."""
        await self._checkExists(name, uploadID)
        await self._idle(uploadID)
        try:
            return (await self.driver.stat(layout.uploadData(name, uploadID))).size
        except PathNotFound:
            return 0

    def appender(self, name, uploadID, span=None, algorithms=("sha256",)):
        """An L{Appender} for one request body.  C{uploadID=None} creates a
        new upload (a monolithic POST).  C{span}: the body's Content-Range,
        C{(start, end)} inclusive, or C{None}."""
        return Appender(self, name, uploadID, span, algorithms)

    @property
    def tracked(self):
        """The IDs of the uploads this process keeps a state of (hashes,
        lock): those in use or resumable here."""
        return frozenset(self._states)

    async def _acquire(self, uploadID):
        """Wait until no other request works on this upload, then claim it.
        Returns the state and whether it had to wait."""
        state = self._states.setdefault(uploadID, _State())
        waited = state.lock.locked
        await state.lock.acquire()
        return state, waited

    async def claim(self, name, uploadID, created=False):
        """Claim an upload known to exist (BLOB_UPLOAD_UNKNOWN if it does
        not); C{created}: the caller has just created it.  The existence is
        checked again once claimed only if the claim had to wait for another
        request, or some upload was forgotten here meanwhile (another
        request may have completed or cancelled this one while the first
        check ran, and dropped its state): otherwise nothing can have
        removed it in between."""
        forgotten = self._forgotten
        if not created:
            await self._checkExists(name, uploadID)
        state, waited = await self._acquire(uploadID)
        if waited or self._forgotten != forgotten:
            try:
                await self._checkExists(name, uploadID)
            except BaseException:
                self.release(state)
                if self._states.get(uploadID) is state:
                    del self._states[uploadID]  # gone: keep nothing of it
                raise
        return state

    def release(self, state):
        """Give up the claim on C{state} (from L{claim}): the next request
        waiting for it gets it, also when the upload was forgotten
        meanwhile (it then finds it gone)."""
        state.lock.release()

    async def _idle(self, uploadID):
        """Wait for the requests working on this upload (those that claimed
        it before) to finish."""
        state = self._states.get(uploadID)
        if state is not None and state.lock.locked:
            await state.lock.acquire()
            state.lock.release()

    async def _hashStored(self, name, uploadID, algorithm):
        h = digests.hasher(algorithm)
        try:
            reader = await self.driver.reader(layout.uploadData(name, uploadID))
        except PathNotFound:
            return digests.fromHasher(algorithm, h)
        try:
            while True:
                chunk = await reader.read(READ_CHUNK)
                if not chunk:
                    break
                await self._inPool(h.update, chunk)
        finally:
            reader.close()
        return digests.fromHasher(algorithm, h)

    async def complete(self, name, uploadID, expected, writer=None):
        """Verify that the upload's content has digest C{expected}, make it a
        blob of C{name}, and forget the upload.  Returns the size.
        C{writer}: the open writer of the appender that has just created the
        upload (L{Appender.takeWriter}), instead of a new one on what is
        stored."""
        created = writer is not None
        state = await self.claim(name, uploadID, created=created)
        try:
            dataPath = layout.uploadData(name, uploadID)
            if writer is None:
                writer = await self.driver.writer(dataPath, append=True)
            size = writer.size
            await writer.commit()  # one complete, durable file from here on
            await writer.close()
            h = state.hashers.get(expected.algorithm)
            if h is not None and state.offset == size:
                actual = digests.fromHasher(expected.algorithm, h)
            else:
                actual = await self._hashStored(name, uploadID, expected.algorithm)
            if actual != expected:
                await self.forget(name, uploadID)
                raise RegistryError(
                    "DIGEST_INVALID",
                    detail={"expected": expected, "actual": actual},
                )
            if await self.blobs.hasData(expected):
                pass  # same content already stored (a concurrent push): keep it
            else:
                await self.driver.move(dataPath, layout.blobData(expected))
            await self.blobs.link(name, expected)
            self.events.blob(PUSH, name, expected, size)
            await self.forget(name, uploadID)
            return size
        except BaseException:
            if created:
                # A monolithic POST that failed: nobody else knows the
                # upload, so nobody could finish it.
                await writer.close()
                await self.forget(name, uploadID)
            raise
        finally:
            self.release(state)

    async def forget(self, name, uploadID):
        """Remove the upload and what this process knows of it (the caller
        claimed it, or it is known to no other request)."""
        # The state goes only once the files are gone: until then a request
        # that found the upload still there waits on it (the state is busy)
        # and then finds it gone, instead of claiming a fresh state and
        # forgetting the upload a second time.  The count changes when the
        # delete starts and when it ends: a claim whose first check
        # overlapped any part of it checks again.
        self._forgotten += 1
        try:
            await self.driver.delete(layout.uploadDir(name, uploadID))
        except PathNotFound:
            pass
        finally:
            self._states.pop(uploadID, None)
            self._forgotten += 1

    async def purge(self, olderThan, now=None):
        """Remove uploads started more than C{olderThan} seconds ago and not
        in use here; returns how many."""
        now = time.time() if now is None else now
        purged = 0
        for name, marks in await repositoryDirs(self.driver):
            if layout.UPLOADS not in marks:
                continue
            try:
                entries = await self.driver.list(layout.uploadsDir(name))
            except PathNotFound:
                continue
            for entry in entries:
                uploadID = layout.baseName(entry)
                state = self._states.get(uploadID)
                if state is not None and state.busy:
                    continue
                try:
                    info = await self.driver.stat(layout.uploadStartedAt(name, uploadID))
                    started = info.modTime
                except PathNotFound:
                    started = 0  # no startedat: debris
                except Exception:
                    continue
                if now - started > olderThan:
                    await self.forget(name, uploadID)
                    purged += 1
        return purged

    async def cancel(self, name, uploadID):
        state = await self.claim(name, uploadID)
        try:
            await self.forget(name, uploadID)
        finally:
            self.release(state)


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
    length before the body; a body of unknown length is staged and appended
    only once it is complete and of that length (L{chunks.StagedChunk}).

    Its storage work is one step at a time: C{phase} (a L{Phase}) says
    which; whether the body has ended, the producer is paused or the
    upload was created here are facts of their own.
    """

    log = Logger()

    def __init__(self, uploads, name, uploadID, span, algorithms):
        self._uploads = uploads
        self.name = name
        self.uploadID = uploadID
        self._span = span
        self._start = span[0] if span is not None else None
        self._expected = span[1] - span[0] + 1 if span is not None else None
        # Until declare() tells a length: a ranged body is staged.
        self._staging = span is not None
        self._stage = None
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
    def limit(self):
        """The most bytes a blob may have (C{None}: no limit)."""
        return self._uploads.maxBlobSize or None

    def declare(self, length):
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
    def queued(self):
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

    def write(self, data):
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

    def registerProducer(self, producer, streaming):
        """C{producer} (a push producer) writes the body: it is paused and
        resumed for the storage's sake."""
        if not streaming:
            raise ValueError("the body of a request is pushed, not pulled")
        self._producer = producer

    def unregisterProducer(self):
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

    def wake(self):
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
                if self._uploads.overQueued():
                    self._uploads.stall(self)
                else:
                    self._resume()
            if self.error is not None:
                self._maybeDone()
            else:
                self._kick()

        def failed(f):
            # gatherResults wraps the first failure
            self._fail(getattr(f.value, "subFailure", f))

        d.addCallbacks(written, failed)

    def end(self):
        """The whole body was received."""
        self._ended = True
        self._kick()

    def finish(self):
        """Deferred firing with the upload's new size once all of the body is
        durable (see the class docstring)."""
        self.end()
        d = self._done.wait()
        self._maybeDone()
        return d

    def abort(self):
        """The client went away mid-body: keep what arrived (the upload's
        offset tells the client where to resume) and release the upload;
        an upload this appender created (which no client knows) is
        removed."""
        self._abandoned = True
        self.end()
        self._maybeDone()

    def discard(self):
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

    def refuse(self, error):
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

    def takeWriter(self):
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
