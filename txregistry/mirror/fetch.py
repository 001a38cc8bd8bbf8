"""One upstream download of a blob, teed: into storage (an upload of the
repository, so that it is ordinary debris if the process dies) and to the
clients reading it meanwhile.

Memory is bounded whatever the blob's size: the bytes received are held in
one buffer from the oldest position still needed (by the storage writer or
by the slowest reader) to the newest; above L{HIGH} bytes the upstream's
transport is paused, below L{LOW} resumed.  So a slow client or slow
storage slows the download, and the download's pace paces the clients
(backpressure both ways).  A client that joins once bytes were dropped from
the buffer waits for the blob to be stored and reads it from storage.

The digest is computed as bytes arrive.  Readers are given every byte but
the last until the digest was verified: a wrong-bytes upstream never
completes a client's response (its stream is aborted) and never leaves a
blob behind.  Only verified data is moved to its place (made visible);
clients joining late wait for that.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.logger import Logger
from twisted.web.client import ResponseDone
from zope.interface import implementer

from txregistry import digest as digests
from txregistry.errors import RegistryError, StreamCut
from txregistry.registry import layout, touch
from txregistry.storage.interface import IReader

HIGH = 8 * 1024 * 1024  # buffered bytes above which the upstream is paused
LOW = 2 * 1024 * 1024  # ... and below which it is resumed
WRITE = 1024 * 1024  # bytes handed to the storage writer at a time
PRUNE = 1024 * 1024  # bytes no longer needed before the buffer is compacted


def _fire(d, result):
    """Fire C{d} with C{result} (a L{Failure}: errback) unless it was
    cancelled (its waiter went away)."""
    if d.called:
        return
    if isinstance(result, Failure):
        d.errback(result)
    else:
        d.callback(result)


class BlobMismatch(StreamCut):
    """The upstream's bytes do not have the digest asked for."""


@implementer(IReader)
class TeeReader:
    """An L{IReader} of a blob being fetched, from its start."""

    def __init__(self, fetch):
        self._fetch = fetch
        self.size = fetch.size
        self.pos = 0
        self.waiting = None  # (Deferred, n) of a read waiting for bytes
        self.closed = False

    def read(self, n):
        return self._fetch._read(self, n)

    def close(self):
        if not self.closed:
            self.closed = True
            self._fetch._detach(self)


class _Body(Protocol):
    def __init__(self, fetch):
        self.fetch = fetch

    def connectionMade(self):
        self.fetch._transport = self.transport

    def dataReceived(self, data):
        self.fetch._received(data)

    def connectionLost(self, reason):
        self.fetch._ended(reason)


class BlobFetch:
    """Fetch blob C{digest} of upstream repository C{remoteName} into the
    local repository C{name} (the first to ask); L{run} starts it."""

    log = Logger()

    def __init__(self, client, blobs, uploads, driver, name, remoteName, digest, metrics=None, reactor=None,
                 threadpool=None):
        self.client = client
        self.blobs = blobs  # the registry's own BlobStore
        self.uploads = uploads
        self.driver = driver
        self.name = name
        self.remoteName = remoteName
        self.digest = digest
        self.metrics = metrics
        self.reactor = reactor
        self.threadpool = threadpool  # where the digest is computed (else on the reactor's thread)
        self.names = {name}  # local repositories to link the blob into
        self.size = None  # from the upstream's Content-Length
        self.buf = bytearray()
        self.base = 0  # offset of buf[0]
        self.received = 0
        self.written = 0
        self.eof = False
        self.verified = False
        self.failure = None  # why the fetch fails (known to the download)
        self.error = None  # ... and to the readers, once its upload is gone
        self.readers = set()
        self._hasher = digests.hasher(digest.algorithm)
        self._transport = None
        self._paused = False
        self._headers = []  # Deferreds waiting for the answer's head
        self._done = []  # Deferreds waiting for the end
        self._finished = False
        self._wake = None  # the writer loop's Deferred waiting for bytes
        self._idle = None

    # --- what callers wait for ---

    def whenStarted(self):
        """A Deferred firing with the blob's size (C{None}: unknown) once the
        upstream answered, or failing as the fetch does."""
        if self.error is not None:
            return fail(self.error)
        if self.size is not None or self.eof:
            return succeed(self.size)
        d = Deferred()
        self._headers.append(d)
        return d

    def whenDone(self):
        """A Deferred firing once the blob is stored (and verified), or
        failing as the fetch does."""
        if self.error is not None:
            return fail(self.error)
        if self._finished:
            return succeed(None)
        d = Deferred()
        self._done.append(d)
        return d

    def join(self, name):
        """A L{TeeReader} from the blob's start, or C{None} when its first
        bytes are gone from memory (then wait for L{whenDone})."""
        self.names.add(name)
        if self.failure is not None or self.size is None or self.base > 0 or self._finished:
            return None
        r = TeeReader(self)
        self.readers.add(r)
        return r

    # --- the download ---

    async def run(self):
        uploadID = None
        writer = None
        try:
            response = await self.client.request(
                "GET", "/v2/%s/blobs/%s" % (self.remoteName, self.digest), self.remoteName)
            if response.code == 404:
                from txregistry.mirror.upstream import discard

                discard(response)
                raise RegistryError("BLOB_UNKNOWN", "the upstream has no such blob", {"digest": self.digest})
            if response.code != 200:
                from txregistry.mirror.upstream import UpstreamUnavailable, discard

                discard(response)
                raise UpstreamUnavailable("the upstream answered %d to a blob GET" % (response.code,))
            try:
                uploadID = await self.uploads.create(self.name)
                writer = await self.driver.writer(layout.uploadData(self.name, uploadID))
            except BaseException:
                from txregistry.mirror.upstream import discard

                discard(response)
                raise
            length = response.length
            self.size = length if isinstance(length, int) else None
            waiting, self._headers = self._headers, []
            for d in waiting:
                _fire(d, self.size)
            response.deliverBody(_Body(self))
            self._armIdle()
            await self._pump(writer)
            actual = digests.fromHasher(self.digest.algorithm, self._hasher)
            if actual != self.digest or (self.size is not None and self.received != self.size):
                raise BlobMismatch("upstream %s sent %d bytes with digest %s for %s" % (
                    self.client.settings.name, self.received, actual, self.digest))
            # The bytes are right: the readers may have the last one while
            # storage makes them durable and visible.
            self.verified = True
            self._wakeReaders()
            await writer.commit()
            await writer.close()
            writer = None
            # Touched before looking (txregistry.registry.touch): a
            # collection sweeping the blob meanwhile keeps it, or is done.
            claim = await touch.claim(self.driver, [self.digest], self.blobs.clock)
            if self.digest not in claim.present:
                await self.driver.move(layout.uploadData(self.name, uploadID), layout.blobData(self.digest))
            for name in sorted(self.names):
                await self.blobs.link(name, self.digest)
            await self.uploads.forget(self.name, uploadID)
            uploadID = None
        except BaseException as e:
            self._fail(e)
            e = self.failure
            if self._transport is not None:
                self._transport.stopProducing()
            if writer is not None:
                try:
                    await writer.cancel()
                except Exception:
                    pass
            if uploadID is not None:
                try:
                    await self.uploads.forget(self.name, uploadID)
                except Exception:
                    self.log.failure("removing the upload of a failed fetch")
            if isinstance(e, BlobMismatch):
                self.log.error("mirror: {error}; refused, not stored", error=str(e))
                if self.metrics is not None:
                    self.metrics.upstreamError(self.client.settings.name, "digest")
            elif isinstance(e, StreamCut):
                self.log.warn("mirror: fetch of {digest} failed: {error}; not stored",
                              digest=self.digest, error=str(e))
            self._notify()
            return
        finally:
            self._cancelIdle()
        self._finished = True
        self._wakeReaders()
        done, self._done = self._done, []
        for d in done:
            _fire(d, None)

    async def _pump(self, writer):
        """Write what arrives to storage until the body ended."""
        while True:
            if self.failure is not None:
                raise self.failure
            if self.written < self.received:
                start = self.written - self.base
                data = bytes(self.buf[start:start + WRITE])
                # Hashed as it is written (in order: one piece at a time),
                # both in threads when there is a pool.
                if self.threadpool is not None:
                    from twisted.internet.defer import gatherResults
                    from twisted.internet.threads import deferToThreadPool

                    hashed = deferToThreadPool(self.reactor, self.threadpool, self._hasher.update, data)
                    await gatherResults([writer.write(data), hashed], consumeErrors=True)
                else:
                    self._hasher.update(data)
                    await writer.write(data)
                self.written += len(data)
                self._prune()
                continue
            if self.eof:
                return
            self._wake = Deferred()
            await self._wake

    # --- body events ---

    def _received(self, data):
        if self.failure is not None:
            return
        self.buf += data
        self.received += len(data)
        if self.metrics is not None:
            self.metrics.upstreamBytes(self.client.settings.name, len(data))
        if self.size is not None and self.received > self.size:
            self._fail(BlobMismatch("upstream sent more than its Content-Length"))
        self._armIdle()
        self._kick()
        self._wakeReaders()
        if not self._paused and self.received - self._needed() > HIGH:
            self._paused = True
            self._transport.pauseProducing()

    def _ended(self, reason):
        self.eof = True
        self._cancelIdle()
        if not reason.check(ResponseDone) and self.failure is None:
            from txregistry.mirror.upstream import UpstreamUnavailable

            if self.metrics is not None:
                self.metrics.upstreamError(self.client.settings.name, "cut")
            self._fail(UpstreamUnavailable("the upstream's blob body was cut short after %d bytes: %s" % (
                self.received, reason.getErrorMessage())))
        self._kick()

    def _kick(self):
        w, self._wake = self._wake, None
        if w is not None:
            w.callback(None)

    def _fail(self, e):
        """The fetch fails (the download stops; L{run} cleans up, then
        L{_notify} tells the readers)."""
        if self.failure is None:
            self.failure = e
            self._kick()

    def _notify(self):
        e = self.error = self.failure
        waiting, self._headers = self._headers, []
        done, self._done = self._done, []
        for d in waiting + done:
            _fire(d, Failure(e))
        self._wakeReaders()

    # --- stalls ---

    def _armIdle(self):
        if self.reactor is None or self.eof:
            return
        self._cancelIdle()
        self._idle = self.reactor.callLater(self.client.settings.timeout, self._stalled)

    def _cancelIdle(self):
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        self._idle = None

    def _stalled(self):
        self._idle = None
        if self._paused:  # (we hold it back: not a stall of the upstream)
            self._armIdle()
            return
        from txregistry.mirror.upstream import UpstreamUnavailable

        self._fail(UpstreamUnavailable("the upstream sent nothing for %g s" % (self.client.settings.timeout,)))
        if self._transport is not None:
            self._transport.stopProducing()

    # --- readers ---

    def _limit(self):
        """The bytes readers may have: all once verified, else all but the
        last."""
        if self.verified:
            return self.received
        if self.size is None:
            return 0
        return min(self.received, self.size - 1)

    def _read(self, reader, n):
        if reader.closed:
            return succeed(b"")
        if self.error is not None:
            return fail(self.error)
        d = self._serve(reader, n)
        if d is not None:
            return d
        d = Deferred()
        reader.waiting = (d, n)
        return d

    def _serve(self, reader, n):
        limit = self._limit()
        if reader.pos < limit:
            start = reader.pos - self.base
            data = bytes(self.buf[start:start + min(n, limit - reader.pos)])
            reader.pos += len(data)
            self._prune()
            return succeed(data)
        if self.verified and reader.pos >= self.received:
            return succeed(b"")
        return None

    def _wakeReaders(self):
        for r in list(self.readers):
            if r.waiting is None:
                continue
            d, n = r.waiting
            if self.error is not None:
                r.waiting = None
                _fire(d, Failure(self.error))
                continue
            got = self._serve(r, n)
            if got is not None:
                r.waiting = None
                _fire(d, got.result)

    def _detach(self, reader):
        self.readers.discard(reader)
        if reader.waiting is not None:
            d, _ = reader.waiting
            reader.waiting = None
            _fire(d, b"")
        self._prune()

    def _needed(self):
        """The oldest offset still needed."""
        return min([self.written] + [r.pos for r in self.readers])

    def _prune(self):
        needed = self._needed()
        drop = needed - self.base
        # (Compacted when at least half of it can go: each byte is moved a
        # bounded number of times.)
        if (drop >= PRUNE and 2 * drop >= len(self.buf)) or (drop > 0 and drop == len(self.buf)):
            del self.buf[:drop]
            self.base = needed
        if self._paused and self.received - needed <= LOW and self.failure is None:
            self._paused = False
            self._transport.resumeProducing()
