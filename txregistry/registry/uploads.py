"""Blob upload sessions: create, append (hashing as bytes arrive), complete
(verify the digest, then adopt the data by a move), cancel.

Upload data lives in the storage itself (``_uploads/<id>/data``), so a
completed upload becomes a blob by a rename, never a copy.  The hash state of
an upload is kept in this process; when it is missing (a restart) or stale,
completion re-reads the data to verify the digest.
"""

import re
import time
import uuid as uuidlib

from twisted.internet.defer import DeferredLock, maybeDeferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from txregistry import digest as digests
from txregistry.events import PUSH, Announcer
from txregistry.errors import RegistryError
from txregistry.registry import layout, touch
from txregistry.registry.catalog import repositoryDirs
from txregistry.registry.appender import READ_CHUNK, Appender
from txregistry.registry.blobs import BlobStore
from txregistry.storage import PathNotFound
from txregistry.storage.interface import IStorageDriver, IWriter

_UPLOAD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=-]{0,127}$")

def isValidUploadID(value: object) -> bool:
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

    def __init__(self, driver: IStorageDriver, blobs: BlobStore, reactor, threadpool: ThreadPool | None,
                 maxBlobSize: int = 0, maxConcurrent: int = 0, maxQueued: int = 0) -> None:
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

    def overQueued(self) -> bool:
        return bool(self.maxQueued) and self.queued > self.maxQueued

    def stall(self, appender: Appender) -> None:
        """C{appender}'s body waits (paused) for the queues of all bodies to
        shrink."""
        self._stalled.add(appender)

    def unstall(self, appender: Appender) -> None:
        self._stalled.discard(appender)

    def queuedBytes(self, n: int) -> None:
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

    async def create(self, name: str) -> str:
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

    async def offset(self, name: str, uploadID: str) -> int:
        """Bytes received so far (BLOB_UPLOAD_UNKNOWN if no such upload)."""
        await self._checkExists(name, uploadID)
        await self._idle(uploadID)
        try:
            return (await self.driver.stat(layout.uploadData(name, uploadID))).size
        except PathNotFound:
            return 0

    def appender(self, name: str, uploadID: str | None, span: tuple[int, int] | None = None,
                 algorithms: tuple[str, ...] = ("sha256",)) -> Appender:
        """An L{Appender} for one request body.  C{uploadID=None} creates a
        new upload (a monolithic POST).  C{span}: the body's Content-Range,
        C{(start, end)} inclusive, or C{None}."""
        return Appender(self, name, uploadID, span, algorithms)

    @property
    def tracked(self) -> frozenset[str]:
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

    async def claim(self, name: str, uploadID: str, created: bool = False) -> _State:
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

    def release(self, state: _State) -> None:
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

    async def complete(self, name: str, uploadID: str, expected: str, writer: IWriter | None = None) -> int:
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
            # Touched before looking whether it is stored (see
            # txregistry.registry.touch): a collection does not take the
            # content stored already from under the new link.
            claim = await touch.claim(self.driver, [expected], self.blobs.clock)
            if expected in claim.present:
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

    async def forget(self, name: str, uploadID: str) -> None:
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

    async def purge(self, olderThan, now=None, dryRun=False):
        """Remove (with C{dryRun}: only count) uploads started more than
        C{olderThan} seconds ago and not in use here; returns how many.  On
        S3 the driver's delete aborts their multipart uploads."""
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
                    if not dryRun:
                        await self.forget(name, uploadID)
                    purged += 1
        return purged

    async def cancel(self, name, uploadID):
        state = await self.claim(name, uploadID)
        try:
            await self.forget(name, uploadID)
        finally:
            self.release(state)
