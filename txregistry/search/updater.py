"""Keeps the search index current with storage.

A listener of the registry's events (L{txregistry.events}: manifests
pushed and deleted, blobs pushed or mounted into a repository), it queues
the repository's update and returns at once; a worker derives the row
(description, last push) and writes it, so a push never waits for the
index.  When the database is unreachable, locked or hung, pushes and pulls
go on: the updates wait (L{lag}; logged when a write has waited
C{LAG_WARN} seconds) and are written from storage once the database answers
(a periodic retry), and search answers 503 meanwhile.

Storage is the journal: an update not yet in the index when the daemon dies
is not lost, for a daemon that did not stop with every update written
(L{IndexUpdater.lagged}, a marker file: L{txregistry.search.marker}) repairs
the whole index from storage at its next start.

At start the index is checked (a count, in the index's thread pool); the
searches that arrive meanwhile wait for the check, for up to
C{STARTUP_WAIT} seconds, instead of being turned away: a healthy index is
never reported unavailable because the daemon started a moment ago.  An empty
index (or one that may lag storage) is then rebuilt from storage in the
background, and searches are
answered from the rows written so far, marked incomplete (L{search}).  The
catalog, which must list every repository, is served from the index only
once it is complete (L{ready}); until then the web layer walks storage."""

import json
import time

from twisted.internet.defer import Deferred, TimeoutError, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from txregistry import digest as digests
from txregistry.events import DELETE, MOUNT, PUSH
from txregistry.observe import OneShot
from txregistry.search.index import IndexUnavailable
from txregistry.storage import ContentTooLarge

DESCRIPTION_KEY = "org.opencontainers.image.description"
MAX_CONFIG_SIZE = 1024 * 1024
RETRY_INTERVAL = 5.0
STARTUP_WAIT = 10.0  # seconds a search waits for the start-up check
LAG_WARN = 5.0  # seconds a write may wait for the database before the lag is logged


def _annotation(doc):
    annotations = doc.get("annotations") if isinstance(doc, dict) else None
    if isinstance(annotations, dict) and isinstance(annotations.get(DESCRIPTION_KEY), str):
        return annotations[DESCRIPTION_KEY]
    return None


class IndexUpdater:
    log = Logger()

    def __init__(self, index, registry, clock, lagged=False):
        self.index = index
        self.registry = registry
        self._clock = clock
        self.dirty = set()
        self.healthy = True
        self.ready = False  # the index holds every repository of storage
        self.rebuilding = False  # a rebuild from storage is filling the index
        self._starting = None  # while the start-up check runs: the searches waiting for it
        self._retry = LoopingCall(self.repair)
        self._retry.clock = clock
        self._known = set()  # names known to be in the index
        # The index may lack updates of storage (the last daemon on it did
        # not stop cleanly): repaired from storage at start.
        self.lagged = lagged
        self._queue = {}  # name -> (seq, update) not yet tried, oldest first
        self._seq = 0  # updates queued so far
        self._inflight = None  # seq of the update being written
        self._working = False  # the worker is writing the queue
        self._writing = set()  # names whose rows are being written
        self._settledWaiters = []
        self._behindSince = None  # when the index fell behind (logged)
        registry.events.add(self.heard, (PUSH, MOUNT, DELETE))

    def detach(self):
        """Hear no more of the registry's events."""
        self.registry.events.remove(self.heard)

    # --- what a repository's row says ---

    async def describe(self, name, digest, depth=0):
        """The description of the manifest C{digest}: its annotation, else
        its image config's label, else (an index) its first child's."""
        manifests = self.registry.manifests
        try:
            body = await manifests.content(digest)  # at most max_manifest_size
        except ContentTooLarge:
            return ""
        if body is None:
            return ""
        try:
            doc = json.loads(body)
        except ValueError:
            return ""
        found = _annotation(doc)
        if found is not None:
            return found
        config = doc.get("config") if isinstance(doc, dict) else None
        if isinstance(config, dict):
            # Bounded by what is stored, not by the size the manifest claims.
            try:
                data = await self.registry.blobs.getContent(digests.parse(config.get("digest")), MAX_CONFIG_SIZE)
                labels = (json.loads(data).get("config") or {}).get("Labels") or {}
                if isinstance(labels.get(DESCRIPTION_KEY), str):
                    return labels[DESCRIPTION_KEY]
            except Exception:
                pass
        children = doc.get("manifests") if isinstance(doc, dict) else None
        if isinstance(children, list) and children and depth == 0:
            try:
                return await self.describe(name, digests.parse(children[0].get("digest")), 1)
            except Exception:
                return ""
        return ""

    async def rowFor(self, name):
        """C{(name, description, pushedAt)} from storage, or C{None} when the
        repository has no manifests."""
        newest = await self.registry.manifests.newestTag(name)
        if newest is None:
            if await self.registry.manifests.repositoryExists(name):
                return (name, "", 0.0)
            return None
        _, digest, mtime = newest
        return (name, await self.describe(name, digest), mtime)

    # --- events from the registry ---
    #
    # An event only queues the repository's update (one per repository:
    # the latest, or a refresh from storage, covers the earlier ones) and
    # returns at once: a push is acknowledged once storage has it, whatever
    # the index is doing.  One worker writes the queue to the index, a
    # repository at a time; when the index is unavailable, what is queued
    # and what comes later waits in ``dirty`` for the repair loop, which
    # writes it from storage once the database answers.

    def heard(self, event):
        """An event of the registry (a L{txregistry.events.Event})."""
        name = event.repository
        if event.kind == "manifest":
            if event.action == PUSH:
                # A push by digest (an index's child, a referrer) leaves the
                # row as it is, but the repository must be listed.
                self._enqueue(name, ("upsert", event.digest, time.time()) if event.tag else ("ensure",))
            elif event.action == DELETE:
                self._enqueue(name, ("refresh",))
        elif event.action in (PUSH, MOUNT):
            # A blob was linked into the repository: it must be listed.
            if name not in self._known:
                self._enqueue(name, ("ensure",))

    @property
    def lag(self):
        """How many repositories wait for their row to be written."""
        return len(self._writing.union(self._queue, self.dirty))

    @property
    def listingCurrent(self):
        """The index lists every repository of storage: it is complete,
        answering, and no update that could add or remove a repository
        waits."""
        if not (self.ready and self.healthy) or self.dirty or self._writing:
            return False
        return all(op[0] != "refresh" and name in self._known for name, (_, op) in self._queue.items())

    def settled(self):
        """A Deferred firing once every update queued so far was tried
        (those that met an unavailable index wait for the repair loop)."""
        if self._lowest() > self._seq:
            return succeed(None)
        d = Deferred()
        self._settledWaiters = [(upTo, w) for upTo, w in self._settledWaiters if not w.called]
        self._settledWaiters.append((self._seq, d))
        return d

    def _lowest(self):
        """The oldest update queued or being written (seq), or infinity."""
        seqs = [seq for seq, _ in self._queue.values()]
        if self._inflight is not None:
            seqs.append(self._inflight)
        return min(seqs, default=float("inf"))

    def _fireSettled(self):
        lowest = self._lowest()
        waiting = []
        for upTo, d in self._settledWaiters:
            if upTo < lowest:
                if not d.called:  # (given up on: cancelled)
                    d.callback(None)
            else:
                waiting.append((upTo, d))
        self._settledWaiters = waiting

    _RANK = {"ensure": 0, "upsert": 1, "refresh": 2}

    def _enqueue(self, name, op):
        if not self.healthy:
            self.dirty.add(name)
            self._startRetry()
            return
        self._seq += 1
        old = self._queue.get(name)
        if old is not None and self._RANK[op[0]] < self._RANK[old[1][0]]:
            op = old[1]  # a refresh from storage covers what comes after it
        self._queue[name] = (self._seq, op)  # (a repository queued earlier keeps its place)
        if not self._working:
            self._working = True
            Deferred.fromCoroutine(self._work())

    async def _work(self):
        """Write the queue to the index (never fails)."""
        try:
            while self._queue and self.healthy:
                name = next(iter(self._queue))
                self._inflight, op = self._queue.pop(name)
                self._writing = {name}
                slow = self._clock.callLater(LAG_WARN, self._behind)
                try:
                    await self._apply(name, op)
                except IndexUnavailable as e:
                    self._unavailable(name, e)
                except Exception:
                    self.log.failure("indexing {name} failed", name=name)
                finally:
                    self._writing = set()
                    self._inflight = None
                    if slow.active():
                        slow.cancel()
                    self._fireSettled()
            if self._queue:  # the index is unavailable: the repair loop writes them
                self.dirty.update(self._queue)
                self._queue.clear()
        finally:
            self._working = False
            self._caughtUp()

    async def _apply(self, name, op):
        if op[0] == "ensure":
            await self.index.ensure(name)
            self._known.add(name)
        elif op[0] == "upsert":
            _, digest, pushedAt = op
            await self.index.upsert(name, await self.describe(name, digest), pushedAt)
            self._known.add(name)
        else:
            await self._writeRow(name)

    def _behind(self):
        if self._behindSince is None:
            self._behindSince = self._clock.seconds() - LAG_WARN
            self.log.warn(
                "search index behind storage: {lag} repositories wait to be indexed (a write has waited "
                "{wait:g} s for the database)", lag=self.lag, wait=LAG_WARN,
            )

    def _caughtUp(self):
        if self._queue or self._working:
            return
        self._fireSettled()
        if self._behindSince is not None and not self.lag:
            self.log.info(
                "search index caught up with storage after {seconds:.1f} s",
                seconds=self._clock.seconds() - self._behindSince,
            )
            self._behindSince = None

    def _unavailable(self, name, error):
        if self.healthy:
            self.log.warn("search index unavailable ({error}); will retry", error=error)
            if self._behindSince is None:
                self._behindSince = self._clock.seconds()
        self.healthy = False
        self.dirty.add(name)
        self._startRetry()

    def _startRetry(self):
        if not self._retry.running:
            self._retry.start(RETRY_INTERVAL, now=False)

    async def repair(self):
        """Write again the rows that could not be written.  Never fails (it
        runs in a LoopingCall, which a failure would stop): what goes wrong
        other than the index being unavailable is logged."""
        if self._working:
            return  # the worker waits for the database: so would this
        pending, self.dirty = self.dirty, set()
        self._writing = set(pending)
        try:
            if not self.ready:
                await self.rebuild()
                pending = set()
            for name in sorted(pending):
                try:
                    await self._writeRow(name)
                except IndexUnavailable:
                    raise
                except Exception:
                    # Its manifests cannot be read: nothing to write until
                    # its next push; the others go on.
                    self.log.failure("indexing {name} failed", name=name)
                pending.discard(name)
                self._writing = set(pending)
        except IndexUnavailable:
            self.dirty |= pending
            return
        except Exception:
            self.dirty |= pending
            self.log.failure("repairing the search index failed; will retry")
            return
        finally:
            self._writing = set()
        self.healthy = True
        if not self.dirty and self._retry.running:
            self._retry.stop()
        self.log.info("search index repaired")
        self._caughtUp()

    async def _writeRow(self, name):
        row = await self.rowFor(name)
        if row is None:
            self._known.discard(name)
            await self.index.remove(name)
        else:
            await self.index.upsert(*row)

    # --- whole index ---

    async def rebuild(self, progress=None):
        """Write every repository of storage to the index, removing rows of
        repositories that are gone.  C{progress(done, total)} is called as it
        goes."""
        self.rebuilding = True
        try:
            names = await self.registry.catalog()
            total = len(names)
            batch = []
            for i, name in enumerate(names):
                try:
                    row = await self.rowFor(name)
                except Exception:
                    # One repository whose manifests cannot be read does not
                    # stop the rest (its row, if any, stays as it was).
                    self.log.failure("indexing {name} failed", name=name)
                    row = None
                if row is not None:
                    batch.append(row)
                if len(batch) >= 200 or i == total - 1:
                    await self.index.upsertMany(batch)
                    batch = []
                if progress is not None:
                    progress(i + 1, total)
            known = set(names)
            for name in await self.index.catalog():
                # (a repository pushed since the walk is in the index, not
                # in the walk)
                if name not in known and not await self.registry.manifests.repositoryExists(name):
                    self._known.discard(name)
                    await self.index.remove(name)
        finally:
            self.rebuilding = False
        self.ready = True
        self.healthy = True
        self.lagged = False
        return total

    async def start(self):
        """At start: check the index, and rebuild it from storage when it is
        empty.  The searches that arrive before the check is done wait for
        it (L{search})."""
        self._starting = OneShot()
        try:
            if await self.index.count() and not self.lagged:
                self.ready = True
            else:
                self.rebuilding = True  # before the waiting searches go on
        except IndexUnavailable as e:
            self._startFailed(e)
            return
        except Exception:
            self.log.failure("checking the search index at start failed")
            self.ready = self.healthy = False
            return
        finally:
            starting, self._starting = self._starting, None
            starting.fire(None)
        if self.ready:
            return
        if self.lagged:
            self.log.warn("the search index may lack updates (the daemon did not stop cleanly): "
                          "repairing it from storage")
        try:
            count = await self.rebuild()
        except IndexUnavailable as e:
            self._startFailed(e)
            return
        except Exception:
            self.log.failure("rebuilding the search index from storage failed")
            self.ready = self.healthy = False
            return
        if count:
            self.log.info("search index rebuilt from storage: {count} repositories", count=count)

    def _startFailed(self, error):
        self.log.warn("search index unavailable at start ({error}); will retry", error=error)
        self.healthy = False
        self.ready = False
        self._startRetry()

    # --- searching ---

    def catalog(self, last=None, n=None):
        """Up to C{n} repository names after C{last}, from the index (see
        L{SearchIndex.catalog}); whether they are all of storage's is
        L{listingCurrent}."""
        return self.index.catalog(last, n)

    async def search(self, term, limit, offset):
        """C{(total, [(name, description)], complete)} for C{term} (see
        L{SearchIndex.search}).  C{complete} is false while a rebuild from
        storage is filling the index: the rows are those written so far.
        Raises L{IndexUnavailable} when the index cannot answer."""
        if self._starting is not None:
            await self._startupCheck()
        if not self.healthy or not (self.ready or self.rebuilding):
            raise IndexUnavailable("the search index is not ready")
        wait = self.index.readTimeout
        if wait is not None and self._lowest() <= self._seq:
            # What was pushed before the search is found by it: the updates
            # queued so far are written first, for a bounded time.
            try:
                await self.settled().addTimeout(wait, self._clock)
            except TimeoutError:
                raise IndexUnavailable("the search index is behind storage")
        complete = self.ready  # read before the query: a rebuild may end meanwhile
        total, rows = await self.index.search(term, limit, offset)
        return total, rows, complete

    @property
    def waiting(self):
        """How many searches wait for the start-up check."""
        return self._starting.waiting if self._starting is not None else 0

    async def _startupCheck(self):
        waiter = self._starting.wait()
        waiter.addTimeout(STARTUP_WAIT, self._clock)
        try:
            await waiter
        except TimeoutError:
            raise IndexUnavailable("the search index is still starting")

    def stop(self):
        if self._retry.running:
            self._retry.stop()
