"""Manifests, tags and referrers of a repository, in storage (what a
manifest says and how its bytes parse: L{txregistry.registry.manifestformat}).

Manifests are stored as the exact bytes received (their digest is of those
bytes), as blobs, linked from ``_manifests/revisions``; a tag is a link to a
revision.  Supported: Docker schema 2 manifest and manifest list, OCI image
manifest and index, including OCI 1.1 artifacts (``artifactType``,
``subject``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from twisted.internet.defer import Deferred, gatherResults

from txregistry import digest as digests
from txregistry.errors import RegistryError
from txregistry.events import PULL, PUSH, Announcer
from txregistry.limits import RegistryLimits
from txregistry.registry.manifestformat import (  # noqa: F401 (also what callers import from here)
    DOCKER_LIST, DOCKER_MANIFEST, IMAGE_TYPES, INDEX_TYPES, MEDIA_TYPES, OCI_INDEX, OCI_MANIFEST, Manifest,
    _invalid, mediaTypeOf, parseManifest, parseReference,
)
from txregistry.registry import layout, touch
from txregistry.registry.blobs import MAX_LINK_SIZE, deleteQuietly, exists, linkDigest, listQuietly, readLink
from txregistry.storage import ContentTooLarge, PathNotFound

if TYPE_CHECKING:
    from txregistry.registry.blobs import BlobStore
    from txregistry.storage.interface import IStorageDriver

_LOOKUPS_AT_ONCE = 32  # tags resolved at once for a listing


class Manifests:
    def __init__(self, driver: IStorageDriver, blobs: BlobStore, cacheSize: int = 32 * 1024 * 1024,
                 maxSize: int = RegistryLimits.maxManifestSize) -> None:
        self.driver = driver
        self.blobs = blobs
        self.maxSize = maxSize
        self.events = Announcer()  # txregistry.events
        self.clock = None  # the reactor (Registry sets it): a push held by a collection waits on it
        # Manifests are immutable by digest: a bounded cache of their bytes.
        self._cache = {}
        self._cacheBytes = 0
        self._cacheSize = cacheSize

    def forgetCached(self) -> None:
        """Drop the cached manifest bytes: the next reads go to storage."""
        self._cache.clear()
        self._cacheBytes = 0

    # --- content by digest ---

    async def content(self, digest: str) -> Optional[bytes]:
        """The bytes of a stored manifest (or C{None})."""
        return await self._content(digest)

    async def _content(self, digest):
        data = self._cache.get(digest)
        if data is not None:
            return data
        # Never more than a manifest may hold (ContentTooLarge: a stored
        # manifest over max_manifest_size, or damaged storage).
        data = await self.blobs.getContent(digest, self.maxSize)
        if data is not None and len(data) <= self._cacheSize // 16:
            while self._cache and self._cacheBytes + len(data) > self._cacheSize:
                old = self._cache.pop(next(iter(self._cache)))
                self._cacheBytes -= len(old)
            self._cache[digest] = data
            self._cacheBytes += len(data)
        return data

    async def _contentQuietly(self, digest):
        """L{_content}, or C{None} for a stored manifest too large to read."""
        try:
            return await self._content(digest)
        except ContentTooLarge:
            return None

    async def _isRevision(self, name, digest):
        return (await readLink(self.driver, layout.revisionLink(name, digest))) == digest

    async def resolve(self, name: str, reference: str) -> digests.Digest:
        """The digest a reference names in C{name}, or MANIFEST_UNKNOWN."""
        digest, tag = parseReference(reference)
        if tag is None:
            if not await self._isRevision(name, digest):
                raise RegistryError("MANIFEST_UNKNOWN", detail={"digest": digest})
            return digest

        followed = []

        def revisionOf(content):
            if followed:  # the revision link names its digest too: the chain ends there
                return None
            followed.append(content)
            linked = linkDigest(content)
            return None if linked is None else layout.revisionLink(name, linked)

        # The tag's link and the revision link it names, read in one go.
        try:
            chain = await self.driver.getContentChain(layout.tagCurrentLink(name, tag), revisionOf, MAX_LINK_SIZE)
        except ContentTooLarge:
            chain = [None]  # not a link
        digest = linkDigest(chain[0])
        if digest is None:
            raise RegistryError("MANIFEST_UNKNOWN", "manifest tagged %r is not known" % (tag,), {"tag": tag})
        if len(chain) < 2 or linkDigest(chain[1]) != digest:
            raise RegistryError("MANIFEST_UNKNOWN", detail={"digest": digest})
        return digest

    async def get(self, name: str, reference: str) -> tuple[bytes, str, digests.Digest]:
        """C{(body, mediaType, digest)} of a manifest."""
        digest = await self.resolve(name, reference)
        body = await self._content(digest)
        if body is None:
            raise RegistryError("MANIFEST_UNKNOWN", detail={"digest": digest})
        mediaType = mediaTypeOf(body)
        self.events.manifest(PULL, name, digest, mediaType, body, parseReference(reference)[1])
        return body, mediaType, digest

    # --- push ---

    async def put(self, name: str, reference: str, body: bytes,
                  contentType: Optional[str]) -> tuple[digests.Digest, Manifest]:
        """Store a manifest; returns C{(digest, parsed Manifest)}."""
        refDigest, tag = parseReference(reference)
        manifest = parseManifest(body, contentType, self.maxSize)
        algorithm = refDigest.algorithm if refDigest is not None else "sha256"
        digest = digests.of(body, algorithm)
        if refDigest is not None and refDigest != digest:
            raise RegistryError(
                "DIGEST_INVALID",
                "manifest digest does not match the reference",
                {"expected": refDigest, "actual": digest},
            )
        # Touch what the manifest relies on before checking it is there, and
        # commit in time (txregistry.registry.touch; the argument is
        # txregistry.registry.gc's): a collection running meanwhile keeps it.
        relied = [digest] + manifest.blobs + manifest.children
        claim = await self._claim(name, manifest, relied)
        await self._store(name, digest, manifest, body, tag, claim,
                          lambda: self._claim(name, manifest, relied))
        return digest, manifest

    async def adopt(self, name: str, body: bytes, contentType: Optional[str],
                    tag: Optional[str] = None, algorithm: str = "sha256") -> tuple[digests.Digest, Manifest]:
        """Store a manifest fetched from elsewhere (a mirror's upstream)
        as a push would, without requiring its blobs and children to be
        here: they come on demand.  Announced as a push."""
        manifest = parseManifest(body, contentType, self.maxSize)
        digest = digests.of(body, algorithm)
        relied = [digest] + manifest.blobs + manifest.children

        def reclaim():
            return touch.claim(self.driver, relied, self.clock)

        await self._store(name, digest, manifest, body, tag, await reclaim(), reclaim)
        return digest, manifest

    async def _store(self, name, digest, manifest, body, tag, claim, reclaim):
        """Write a manifest whose blobs C{claim} touched (L{touch.Claim});
        C{reclaim()} touches them again when the claim is out of time."""
        if digest not in claim.present:
            await self.driver.putContent(layout.blobData(digest), body)
        if manifest.subject is not None:
            await self.driver.putContent(
                layout.referrerLink(name, manifest.subject, digest), digest.encode("ascii")
            )
        if not claim.inTime():  # the revision link is what a collection's mark sees
            claim = await reclaim()
        await self.driver.putContent(layout.revisionLink(name, digest), digest.encode("ascii"))
        if tag is not None:
            # The current link first: a new tag's directory appears with it
            # (the drivers make a path's directories appear with its
            # content), so a crash in between never leaves a tag that names
            # nothing.  The index (Distribution writes it; nobody reads it)
            # after.
            await self.driver.putContent(layout.tagCurrentLink(name, tag), digest.encode("ascii"))
            await self.driver.putContent(layout.tagIndexLink(name, tag, digest), digest.encode("ascii"))
        self.events.manifest(PUSH, name, digest, manifest.mediaType, body, tag)

    async def _claim(self, name, manifest, relied):
        """Touch C{relied} and check C{manifest} can be stored in C{name}
        (L{_check}), in time to commit (a L{touch.Claim})."""
        for _ in range(touch.ATTEMPTS):
            claim = await touch.claim(self.driver, relied, self.clock)
            await self._check(name, manifest, claim)
            if claim.inTime():
                return claim
        raise RegistryError("UNAVAILABLE", "storage too slow to store the manifest safely", retryAfter=5)

    async def _check(self, name, manifest, claim):
        """MANIFEST_BLOB_UNKNOWN unless every blob and manifest C{manifest}
        requires is in repository C{name} with its data (C{claim}); the
        declared sizes must be the stored ones."""
        missing = []
        for d in manifest.blobs:
            if d not in claim.present or not await self.blobs.isLinked(name, d):
                missing.append(d)
        for d in manifest.children:
            if d not in claim.present or not await self._isRevision(name, d):
                missing.append(d)
        if missing:
            raise RegistryError(
                "MANIFEST_BLOB_UNKNOWN",
                "manifest references %d unknown blob(s) or manifest(s)" % (len(missing),),
                {"digests": missing[:20]},
            )
        for d, size in manifest.declared:
            stored = await self.blobs.storedSize(d)
            if stored is not None and stored != size:
                # A descriptor's size must be the content's (OCI image
                # spec); what reads it later must not trust a claim.
                raise _invalid(
                    "%s is %d bytes, not %d as its descriptor says" % (d, stored, size),
                    {"digest": d, "size": size, "stored": stored},
                )

    # --- delete ---

    async def delete(self, name: str, reference: str) -> None:
        digest, tag = parseReference(reference)
        if tag is not None:
            # Whatever is there (a tag naming nothing, left by a crash of an
            # older version, included): its directory goes at once.
            try:
                await self.driver.delete(layout.tagDir(name, tag))
            except PathNotFound:
                raise RegistryError("MANIFEST_UNKNOWN", detail={"tag": tag})
            self.events.manifestDeleted(name, tag=tag)
            return
        if not await self._isRevision(name, digest):
            raise RegistryError("MANIFEST_UNKNOWN", detail={"digest": digest})
        for t in await self.tags(name):
            if await readLink(self.driver, layout.tagCurrentLink(name, t)) == digest:
                await self._deleteQuietly(layout.tagDir(name, t))
        body = await self._contentQuietly(digest)
        if body is not None:
            try:
                subject = parseManifest(body, mediaTypeOf(body), self.maxSize).subject
            except RegistryError:
                subject = None
            if subject is not None:
                await self._deleteQuietly(layout.referrerDir(name, subject, digest))
        await self._deleteQuietly(layout.revisionDir(name, digest))
        self.events.manifestDeleted(name, digest=digest)

    def _deleteQuietly(self, path):
        return deleteQuietly(self.driver, path)

    # --- discovery ---

    async def repositoryExists(self, name: str) -> bool:
        return await exists(self.driver, layout.layersDir(name)) or await exists(
            self.driver, layout.manifestsDir(name)
        )

    async def tags(self, name: str) -> list[str]:
        """Sorted tags of C{name} that name a manifest of it (not a tag's
        directory that names nothing); NAME_UNKNOWN when no such
        repository."""
        try:
            paths = await self.driver.list(layout.tagsDir(name))
        except PathNotFound:
            if await self.repositoryExists(name):
                return []
            raise RegistryError("NAME_UNKNOWN", detail={"name": name})
        candidates = sorted(layout.baseName(p) for p in paths)
        found = []
        for i in range(0, len(candidates), _LOOKUPS_AT_ONCE):
            batch = candidates[i : i + _LOOKUPS_AT_ONCE]
            resolved = await gatherResults([Deferred.fromCoroutine(self._resolves(name, t)) for t in batch])
            found.extend(t for t, ok in zip(batch, resolved) if ok)
        return found

    async def _resolves(self, name, tag):
        try:
            await self.resolve(name, tag)
        except RegistryError:
            return False
        return True

    async def newestTag(self, name: str) -> Optional[tuple[str, digests.Digest, float]]:
        """C{(tag, digest, mtime)} of the most recently pushed tag, or C{None}."""
        best = None
        for tag in await self._tagsQuietly(name):
            try:
                info = await self.driver.stat(layout.tagCurrentLink(name, tag))
            except PathNotFound:
                continue
            if best is None or info.modTime > best[2]:
                best = (tag, None, info.modTime)
        if best is None:
            return None
        digest = await readLink(self.driver, layout.tagCurrentLink(name, best[0]))
        return None if digest is None else (best[0], digest, best[2])

    async def _tagsQuietly(self, name):
        try:
            return await self.tags(name)
        except RegistryError:
            return []

    async def referrers(self, name: str, subject: str, artifactType: Optional[str] = None) -> list[dict]:
        """Descriptors of the manifests of C{name} whose subject is
        C{subject}."""
        try:
            entries = await self.driver.list(layout.referrersDir(name, subject))
        except PathNotFound:
            return []
        out = []
        for entry in entries:
            for path in await self._listQuietly(entry):
                try:
                    d = digests.parse(layout.linkDigestFromPath(path))
                except digests.InvalidDigest:
                    continue
                if not await self._isRevision(name, d):
                    continue
                body = await self._contentQuietly(d)
                if body is None:
                    continue
                try:
                    m = parseManifest(body, mediaTypeOf(body), self.maxSize)
                except RegistryError:
                    continue
                if artifactType is not None and m.artifactType != artifactType:
                    continue
                desc = {"mediaType": m.mediaType, "digest": d, "size": len(body)}
                if m.artifactType:
                    desc["artifactType"] = m.artifactType
                if m.annotations:
                    desc["annotations"] = m.annotations
                out.append(desc)
        out.sort(key=lambda x: x["digest"])
        return out

    def _listQuietly(self, path):
        return listQuietly(self.driver, path)
