"""Keeps the search index current with storage.

Told of each manifest push and delete by the registry, it derives the
repository's row (description, last push) and writes it.  When the database
is unreachable, pushes and pulls go on: the repositories whose rows could not
be written are remembered and written again once the database answers (a
periodic retry), and search answers 503 meanwhile.

At start the index is checked (a count, in the index's thread pool); the
searches that arrive meanwhile wait for the check, for up to
C{STARTUP_WAIT} seconds, instead of being turned away: a healthy index is
never reported unavailable because the daemon started a moment ago.  An empty
index is then rebuilt from storage in the background, and searches are
answered from the rows written so far, marked incomplete (L{search}).  The
catalog, which must list every repository, is served from the index only
once it is complete (L{ready}); until then the web layer walks storage."""

import json
import time

from twisted.internet.defer import Deferred, TimeoutError
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from txregistry import digest as digests
from txregistry.registry.catalog import catalog
from txregistry.search.index import IndexUnavailable
from txregistry.storage import ContentTooLarge

DESCRIPTION_KEY = "org.opencontainers.image.description"
MAX_CONFIG_SIZE = 1024 * 1024
RETRY_INTERVAL = 5.0
STARTUP_WAIT = 10.0  # seconds a search waits for the start-up check


async def _nothing():
    return None


def _annotation(doc):
    annotations = doc.get("annotations") if isinstance(doc, dict) else None
    if isinstance(annotations, dict) and isinstance(annotations.get(DESCRIPTION_KEY), str):
        return annotations[DESCRIPTION_KEY]
    return None


class IndexUpdater:
    log = Logger()

    def __init__(self, index, registry, clock):
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
        registry.manifests.listeners.append(self)
        registry.blobs.listeners.append(self)

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

    def manifestPushed(self, name, digest, manifest, tag):
        """Called once a push is stored; the Deferred never fails (a push
        must not fail because of the index)."""
        return self._safely(self._pushed(name, digest, tag), name)

    def _safely(self, coroutine, name):
        return Deferred.fromCoroutine(coroutine).addErrback(
            lambda f: self.log.failure("indexing {name} failed", f, name=name)
        )

    async def _pushed(self, name, digest, tag):
        try:
            if tag is None:
                # A push by digest (an index's child, a referrer): the row
                # stays as it is, but the repository must be listed.
                await self._ensure(name)
            else:
                await self.index.upsert(name, await self.describe(name, digest), time.time())
        except IndexUnavailable as e:
            self._unavailable(name, e)
        else:
            self.healthy = True

    def repositoryUsed(self, name):
        """A blob was linked into C{name}: the repository must be listed."""
        if name in self._known:
            return Deferred.fromCoroutine(_nothing())
        return self._safely(self._ensure(name), name)

    async def _ensure(self, name):
        try:
            await self.index.ensure(name)
        except IndexUnavailable as e:
            self._unavailable(name, e)
        else:
            self._known.add(name)

    def manifestDeleted(self, name):
        return self._safely(self._refresh(name), name)

    async def _refresh(self, name):
        try:
            await self._writeRow(name)
        except IndexUnavailable as e:
            self._unavailable(name, e)
        else:
            self.healthy = True

    def _unavailable(self, name, error):
        if self.healthy:
            self.log.warn("search index unavailable ({error}); will retry", error=error)
        self.healthy = False
        self.dirty.add(name)
        if not self._retry.running:
            self._retry.start(RETRY_INTERVAL, now=False)

    async def repair(self):
        """Write again the rows that could not be written.  Never fails (it
        runs in a LoopingCall, which a failure would stop): what goes wrong
        other than the index being unavailable is logged."""
        pending, self.dirty = self.dirty, set()
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
        except IndexUnavailable:
            self.dirty |= pending
            return
        except Exception:
            self.dirty |= pending
            self.log.failure("repairing the search index failed; will retry")
            return
        self.healthy = True
        if not self.dirty and self._retry.running:
            self._retry.stop()
        self.log.info("search index repaired")

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
            names = await catalog(self.registry.driver)
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
                if name not in known:
                    self._known.discard(name)
                    await self.index.remove(name)
        finally:
            self.rebuilding = False
        self.ready = True
        self.healthy = True
        return total

    async def start(self):
        """At start: check the index, and rebuild it from storage when it is
        empty.  The searches that arrive before the check is done wait for
        it (L{search})."""
        self._starting = []
        try:
            if await self.index.count():
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
            waiting, self._starting = self._starting, None
            for waiter in waiting:
                waiter.callback(None)
        if self.ready:
            return
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
        if not self._retry.running:
            self._retry.start(RETRY_INTERVAL, now=False)

    # --- searching ---

    async def search(self, term, limit, offset):
        """C{(total, [(name, description)], complete)} for C{term} (see
        L{SearchIndex.search}).  C{complete} is false while a rebuild from
        storage is filling the index: the rows are those written so far.
        Raises L{IndexUnavailable} when the index cannot answer."""
        if self._starting is not None:
            await self._startupCheck()
        if not self.healthy or not (self.ready or self.rebuilding):
            raise IndexUnavailable("the search index is not ready")
        complete = self.ready  # read before the query: a rebuild may end meanwhile
        total, rows = await self.index.search(term, limit, offset)
        return total, rows, complete

    @property
    def waiting(self):
        """How many searches wait for the start-up check."""
        return len(self._starting or ())

    async def _startupCheck(self):
        def cancel(waiter):
            if self._starting is not None and waiter in self._starting:
                self._starting.remove(waiter)

        waiter = Deferred(cancel)
        self._starting.append(waiter)
        waiter.addTimeout(STARTUP_WAIT, self._clock)
        try:
            await waiter
        except TimeoutError:
            raise IndexUnavailable("the search index is still starting")

    def stop(self):
        if self._retry.running:
            self._retry.stop()
