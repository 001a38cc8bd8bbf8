"""Garbage collection: remove the blobs no manifest refers to, safely
while pushes continue, from any number of worker processes and nodes
sharing the storage.

Mark: every manifest revision of every repository (untagged ones included,
as Distribution's ``garbage-collect`` without ``--delete-untagged``), and
what each refers to: its config and layers (non-distributable ones too:
a manifest may name them without their being pushed, but when they were,
they are kept), the manifests of an index.
Sweep: every blob of storage that is not marked, whose data and links are
older than C{minAge} seconds and that no push touched lately is deleted,
with the repositories' links to it (``_layers``) first, so that it is
never reported as present anywhere without its data.

With C{deleteUntagged} (Distribution's ``--delete-untagged``) the manifests
of a repository that nothing there keeps are deleted first (their revision
and referrer links), so that their blobs go in the same sweep.  What keeps
a manifest: a tag naming it, a kept index naming it (an index deleted so
frees its children), being a referrer (a ``subject``) of a kept manifest,
or a revision link younger than C{minAge} (an index's children and a
referrer may be pushed by digest before what keeps them).  Before that,
the retention policies (L{txregistry.registry.retention}) delete tags.

A manifest that cannot be read or parsed stops the collection before it
deletes anything: what it refers to cannot be known.

What is deleted is announced (C{events}, the registry's
L{txregistry.events.Announcer}) as the API's deletes are, so that the
search index and notifications hear of it: a tag the retention policies
delete as a tag delete, an untagged manifest as a manifest delete (its
digest).  The blobs swept (and their repository links) are not announced:
Distribution's collection sends no events either, and no API delete of a
blob happened.

Why a manifest PUT racing the collection cannot lose a blob it refers to
------------------------------------------------------------------------

Workers and nodes share nothing but storage, so the record of "in use
since the mark began" lives there (L{txregistry.registry.touch}):

- The collection begins by writing a marker object; its storage mtime is
  the start, C{S}, on the storage's own clock (the clock every mtime
  compared with it comes from).  The mark lists repositories and
  revisions after that.
- A push touches every blob it relies on (the manifest's config and
  layers, an index's children, the manifest's own bytes; an upload its
  blob, a mount the mounted blob) -- writes its ``_touched`` record anew --
  *then* checks that the blob is there (its data, its link in the
  repository) and that no collector's ``_sweeping-`` mark is live on it,
  waiting for the mark to go if one is, and writes the revision link
  within L{touch.TOUCH_DEADLINE} seconds of touching (it touches again if
  it is later).
- For each blob it would delete, the collection writes its sweeping mark
  *then* reads the touch record: a touch after C{S - GRACE} keeps the
  blob (the mark is removed); otherwise it deletes the repository links,
  then the blob's directory (mark included), within
  L{touch.COLLECTOR_DEADLINE} of marking (else it gives the blob up).

Take a manifest M of repository R naming blob B that the mark did not
mark, and the push of M touching B at storage time C{t}:

1. C{t <= S - GRACE}: M's revision link was written before
   C{t + TOUCH_DEADLINE} plus the time a write takes to land, which
   L{touch.GRACE} bounds with margin: before C{S}, so before the mark
   listed R's revisions.  The mark saw M and marked B: a contradiction.
2. C{t > S - GRACE}, and the collection read the touch record after the
   push wrote it: it sees the touch and keeps B.
3. The collection read the touch record before the push wrote it.  Then
   the collection's mark was written before the push's touch, so before
   the push looked: the push either saw the live mark (and waited until
   the collection had decided, then looked again: B's data or link gone
   means MANIFEST_BLOB_UNKNOWN, the client pushes B again), or did not see
   it because the collection had removed it: either the collection kept
   B, or it had deleted B's links, then B's data, then the mark (with the
   rest of B's directory), so the push finds B gone and refuses M
   (MANIFEST_BLOB_UNKNOWN: the client pushes B again; a manifest's own
   bytes the push stores anew).

A dead collector's mark is ignored by pushes once it is
L{touch.SWEEP_HOLD} seconds older than their touch (the collector gives
up far earlier).  Untagged manifests are deleted under the same mark and
touch rule (an index pushed now touches its children; a manifest pushed
again touches its own bytes), and two collections at once each follow it
with marks of their own.  Assumed: storage is strongly consistent
(read-after-write and list-after-write: a local filesystem, NFS with
close-to-open, S3), a write lands within GRACE - TOUCH_DEADLINE seconds
of being sent, and no other registry (``registry:2``) pushes into the
storage while txregistry collects.

The costs: a push writes a small file per blob it relies on (in parallel),
and a blob no push touched for the grace (15 s) is collectable only then.
"""

import time
import uuid
from dataclasses import dataclass, field

from txregistry import digest as digests
from txregistry.errors import RegistryError
from txregistry.registry import layout, touch
from txregistry.registry.blobs import deleteQuietly, listQuietly, readLink
from txregistry.registry.catalog import repositoryDirs
from txregistry.limits import RegistryLimits
from txregistry.registry.manifests import mediaTypeOf, parseManifest
from txregistry.storage import ContentTooLarge, PathNotFound

DEFAULT_MIN_AGE = 3600


class CollectionError(Exception):
    """The collection stopped before deleting anything."""


class CollectionStopped(Exception):
    """The collection was asked to stop (C{stop()} said so) and did, between
    two blobs (or repositories): what it did so far stays done."""


@dataclass
class Report:
    repositories: int = 0
    manifests: int = 0
    kept: int = 0  # blobs in use
    young: int = 0  # blobs in use by none, but younger than minAge or relied on by a push lately (kept)
    deleted: list = field(default_factory=list)  # digests deleted (or that would be, dry run)
    freed: int = 0  # bytes of those
    links: int = 0  # repository links to them removed (or that would be)
    untagged: list = field(default_factory=list)  # (name, digest) of manifests deleted (or that would be)
    tags: list = field(default_factory=list)  # (name, tag) deleted by the retention policies (or that would be)


async def linkDirs(driver, base):
    """C{(digest, path)} of each ``base/<algorithm>/<hex>`` directory."""
    found = []
    for algorithmDir in await listQuietly(driver, base):
        for hexDir in await listQuietly(driver, algorithmDir):
            try:
                found.append((digests.parse(layout.linkDigestFromPath(hexDir)), hexDir))
            except digests.InvalidDigest:
                continue  # not ours
    return found


async def _mark(driver, report, maxManifestSize, deleteUntagged=False, since=0, ignoredTags=(), progress=None,
                stop=lambda: False):
    """The set of digests in use, C{{digest: [layer link dirs]}}, and (with
    C{deleteUntagged}) C{[(name, digest, Manifest)]} of the manifests to
    delete: their references are not marked."""
    marked = set()
    links = {}
    untagged = []
    repositories = [name for name, marks in await repositoryDirs(driver) if marks & layout.LISTED]
    if progress is not None:
        progress.stage("marking", len(repositories), "repositories")
    for name in repositories:
        if stop():
            raise CollectionStopped()
        if progress is not None:
            progress.advance(1)
        report.repositories += 1
        found = await _manifests(driver, name, maxManifestSize)
        report.manifests += len(found)
        kept = await _keptIn(driver, name, found, since, ignoredTags) if deleteUntagged else set(found)
        for digest, manifest in found.items():
            if digest not in kept:
                untagged.append((name, digest, manifest))
                continue
            marked.add(digest)
            marked.update(manifest.blobs)
            marked.update(manifest.foreign)  # not required, but kept when pushed
            marked.update(manifest.children)
        for digest, path in await linkDirs(driver, layout.layersDir(name)):
            links.setdefault(digest, []).append(path)
    return marked, links, untagged


async def _manifests(driver, name, maxManifestSize):
    """C{{digest: Manifest}} of the revisions of repository C{name}."""
    found = {}
    for digest, path in await linkDirs(driver, layout.revisionsDir(name)):
        if await readLink(driver, layout.linkIn(path)) != digest:
            continue  # a broken revision link names nothing
        try:
            body = await driver.getContent(layout.blobData(digest), maxManifestSize)
        except PathNotFound:
            continue  # its data is gone already: it refers to nothing
        except ContentTooLarge as e:
            raise CollectionError(
                "manifest %s of %s is larger than max_manifest_size (%d bytes): nothing deleted"
                % (digest, name, e.maxSize)
            )
        try:
            found[digest] = parseManifest(body, mediaTypeOf(body), maxManifestSize)
        except RegistryError as e:
            raise CollectionError("manifest %s of %s cannot be parsed (%s): nothing deleted" % (digest, name, e))
    return found


async def _keptIn(driver, name, found, since, ignoredTags=()):
    """The digests of C{found} (C{{digest: Manifest}} of repository C{name})
    that a tag, a kept index, a kept subject or a link younger than
    C{since} keeps."""
    roots = set()
    for tagDir in await listQuietly(driver, layout.tagsDir(name)):
        if (name, layout.baseName(tagDir)) not in ignoredTags:
            roots.add(await readLink(driver, layout.tagCurrentLink(name, layout.baseName(tagDir))))
    for digest in found:
        if await _linkedLately(driver, [layout.revisionDir(name, digest)], since):
            roots.add(digest)
    kept = set()
    pending = [d for d in roots if d in found]
    while pending:
        while pending:
            digest = pending.pop()
            if digest in kept:
                continue
            kept.add(digest)
            pending.extend(d for d in found[digest].children if d in found and d not in kept)
        # Referrers of what is kept are kept (and what they name).
        pending = [d for d, m in found.items() if d not in kept and m.subject is not None and m.subject in kept]
    return kept


async def _deleteManifest(driver, name, digest, manifest, run):
    """Delete an untagged manifest's links (revision, referrer) unless its
    revision link was written again since the marking, or a push touched
    its bytes (see the module's docstring)."""
    if await _linkedLately(driver, [layout.revisionDir(name, digest)], run.young):
        return False
    held = await touch.holdForSweep(driver, digest, run.id, run.touchedSince)
    if held is None:
        return False
    try:
        if not touch.inHold(held):
            return False
        if manifest.subject is not None:
            await deleteQuietly(driver, layout.referrerDir(name, manifest.subject, digest))
        await deleteQuietly(driver, layout.revisionDir(name, digest))
        return True
    finally:
        await touch.release(driver, digest, run.id)


async def blobDigests(driver):
    """Every stored blob's digest."""
    found = []
    for algorithmDir in await listQuietly(driver, layout.blobsRoot()):
        for prefixDir in await listQuietly(driver, algorithmDir):
            for hexDir in await listQuietly(driver, prefixDir):
                try:
                    found.append(digests.parse(layout.blobDirDigest(hexDir)))
                except digests.InvalidDigest:
                    continue  # not a blob's directory
    return found


@dataclass
class _Run:
    """One collection: its id (of its marks), and the storage times it
    compares with: C{young} (its start less the minimum age),
    C{touchedSince} (its start less the grace)."""

    id: str
    start: float
    young: float
    touchedSince: float


async def _start(driver, dryRun, now, minAge, grace):
    """A L{_Run}; the start is the storage's clock (the mtime of a marker
    written now), so that a node's clock has no say, unless C{now} is
    given (tests) or it is a dry run (nothing written)."""
    runID = uuid.uuid4().hex
    if now is None and not dryRun:
        marker = layout.gcRunMarker(runID)
        await driver.putContent(marker, b"")
        now = (await driver.stat(marker)).modTime
    elif now is None:
        now = time.time()
    return _Run(runID, now, now - minAge, now - grace)


async def collect(driver, minAge=DEFAULT_MIN_AGE, dryRun=False, now=None, log=None,
                  maxManifestSize=RegistryLimits.maxManifestSize, deleteUntagged=False, logManifest=None,
                  retention=(), progress=None, grace=touch.GRACE, logTag=None, stop=None, events=None):
    """Delete (with C{dryRun}: only count) the blobs of C{driver}'s storage
    that no manifest refers to and that are older than C{minAge} seconds;
    with C{deleteUntagged}, first the manifests nothing keeps, and before
    that the tags the C{retention} policies
    (L{txregistry.registry.retention.Policy}) delete (see the module's
    docstring).  Returns a L{Report}; raises L{CollectionError} (having
    deleted nothing) if a manifest cannot be parsed, or is larger than
    C{maxManifestSize} (it is not read).  C{log(digest, size)} is called
    for each blob deleted, C{logManifest(name, digest)} for each manifest,
    C{logTag(name, tag)} for each tag; C{progress} (a
    L{txregistry.maintenance.progress.Progress}, or C{None}) is told of
    the repositories marked and the blobs swept.  C{grace}: keep what a
    push touched less than this many seconds before the start (lower it
    only with the registry read-only).  C{stop()}, if given, is asked
    between steps: true ends the collection (L{CollectionStopped}).
    C{events} (a L{txregistry.events.Announcer}, or C{None}) is told of
    each tag and manifest deleted (not in a dry run), as API deletes tell
    it."""
    report = Report()
    run = await _start(driver, dryRun, now, minAge, grace)
    try:
        await _collect(driver, report, run, dryRun, log, maxManifestSize, deleteUntagged, logManifest,
                       retention, progress, logTag, stop or (lambda: False), events)
    finally:
        if not dryRun and now is None:
            await deleteQuietly(driver, layout.gcRunMarker(run.id))
    return report


async def _collect(driver, report, run, dryRun, log, maxManifestSize, deleteUntagged, logManifest,
                   retention, progress, logTag, stop, events):
    ignoredTags = set()
    if retention:
        from txregistry.registry.retention import apply

        report.tags = await apply(driver, retention, run.start, dryRun, log=logTag, events=events)
        if dryRun:
            ignoredTags = set(report.tags)  # as if gone: what their going frees is reported
    if stop():
        raise CollectionStopped()
    marked, links, untagged = await _mark(driver, report, maxManifestSize, deleteUntagged, run.young,
                                          ignoredTags, progress, stop)
    for name, digest, manifest in untagged:
        if stop():
            raise CollectionStopped()
        if dryRun or await _deleteManifest(driver, name, digest, manifest, run):
            report.untagged.append((name, digest))
            if not dryRun:
                if events is not None:
                    events.manifestDeleted(name, digest=digest)
                if logManifest is not None:
                    logManifest(name, digest)
        else:  # pushed again meanwhile: what it refers to stays
            marked.add(digest)
            marked.update(manifest.blobs + manifest.foreign + manifest.children)
    found = await blobDigests(driver)
    if progress is not None:
        progress.stage("sweeping", len(found), "blobs")
    for d in found:
        if stop():
            raise CollectionStopped()
        size = await _sweep(driver, report, run, d, marked, links, dryRun, log)
        if progress is not None:
            progress.advance(1, size)


async def _sweep(driver, report, run, d, marked, links, dryRun, log):
    """Keep or delete blob C{d}; the bytes it holds."""
    if d in marked:
        report.kept += 1
        return 0
    try:
        info = await driver.stat(layout.blobData(d))
    except PathNotFound:
        info = None  # a directory without data: debris, deleted as well
    size = 0 if info is None or info.isDir else info.size
    if ((info is not None and info.modTime > run.young) or await _linkedLately(driver, links.get(d, ()), run.young)
            or await touch.touchedSince(driver, d, run.touchedSince)):
        report.young += 1
        return size
    if dryRun:
        report.deleted.append(d)
        report.freed += size
        report.links += len(links.get(d, ()))
        return size
    held = await touch.holdForSweep(driver, d, run.id, run.touchedSince)
    if held is None:  # a push relies on it now
        report.young += 1
        return size
    # Links first: a blob must never be listed in a repository without
    # its data being there.
    for path in links.get(d, ()):
        await deleteQuietly(driver, path)
    if not touch.inHold(held):
        # Too slow to delete it safely now: unlisted, it goes next time.
        await touch.release(driver, d, run.id)
        report.young += 1
        return size
    # The data before the rest (the mark): a push that finds the mark gone
    # finds the data gone too.
    await deleteQuietly(driver, layout.blobData(d))
    await deleteQuietly(driver, layout.blobDir(d))
    report.deleted.append(d)
    report.freed += size
    report.links += len(links.get(d, ()))
    if log is not None:
        log(d, size)
    return size


async def _linkedLately(driver, linkDirs, since):
    for path in linkDirs:
        try:
            if (await driver.stat(layout.linkIn(path))).modTime > since:
                return True
        except PathNotFound:
            continue
    return False
