"""Keeps the search index current with storage.

Told of each manifest push and delete by the registry, it derives the
repository's row (description, last push) and writes it.  When the database
is unreachable, pushes and pulls go on: the repositories whose rows could not
be written are remembered and written again once the database answers (a
periodic retry), and search answers 503 meanwhile."""

import json
import time

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from txregistry import digest as digests
from txregistry.registry.catalog import catalog
from txregistry.search.index import IndexUnavailable

DESCRIPTION_KEY = "org.opencontainers.image.description"
MAX_CONFIG_SIZE = 1024 * 1024
RETRY_INTERVAL = 5.0


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
        body = await manifests.content(digest)
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
        if isinstance(config, dict) and isinstance(config.get("size"), int) and config["size"] <= MAX_CONFIG_SIZE:
            try:
                data = await self.registry.blobs.getContent(digests.parse(config.get("digest")))
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
        """Write again the rows that could not be written."""
        pending, self.dirty = self.dirty, set()
        try:
            if not self.ready:
                await self.rebuild()
                pending = set()
            for name in sorted(pending):
                await self._writeRow(name)
                pending.discard(name)
        except IndexUnavailable:
            self.dirty |= pending
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
        names = await catalog(self.registry.driver)
        total = len(names)
        batch = []
        for i, name in enumerate(names):
            row = await self.rowFor(name)
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
        self.ready = True
        self.healthy = True
        return total

    async def start(self):
        """At start: rebuild an empty index from storage."""
        try:
            if await self.index.count() == 0:
                count = await self.rebuild()
                if count:
                    self.log.info("search index rebuilt from storage: {count} repositories", count=count)
            self.ready = True
        except IndexUnavailable as e:
            self.log.warn("search index unavailable at start ({error}); will retry", error=e)
            self.healthy = False
            self.ready = False
            self._retry.start(RETRY_INTERVAL, now=False)

    def stop(self):
        if self._retry.running:
            self._retry.stop()
