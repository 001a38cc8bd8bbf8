"""Garbage collection: remove the blobs no manifest refers to.

Mark: every manifest revision of every repository (untagged ones included,
as Distribution's ``garbage-collect`` without ``--delete-untagged``), and
what each refers to: its config and layers (non-distributable ones too:
a manifest may name them without their being pushed, but when they were,
they are kept), the manifests of an index.
Sweep: every blob of storage that is not marked and whose data is older
than C{minAge} seconds is deleted, with the repositories' links to it
(``_layers``), so that it is not reported as present anywhere.

The age is what keeps a push that is under way safe: its layers are
stored (and linked) before its manifest, which marks them.  A blob counts
as young when its data or one of its repository links is: a push of a
layer that storage already holds, and a mount, write the link anew.  A manifest
pushed during the collection that refers to an old blob no manifest
referred to when the marking ran can still lose it; for none of that to
be possible, put the registry in read-only mode while it runs (SIGUSR1,
SIGUSR2 after), as Distribution requires.

With C{deleteUntagged} (Distribution's ``--delete-untagged``) the manifests
of a repository that nothing there keeps are deleted first (their revision
and referrer links), so that their blobs go in the same sweep.  What keeps
a manifest: a tag naming it, a kept index naming it (an index deleted so
frees its children), being a referrer (a ``subject``) of a kept manifest,
or a revision link younger than C{minAge} (an index's children and a
referrer may be pushed by digest before what keeps them).

A manifest that cannot be read or parsed stops the collection before it
deletes anything: what it refers to cannot be known.
"""

import time
from dataclasses import dataclass, field

from txregistry import digest as digests
from txregistry.errors import RegistryError
from txregistry.registry import layout
from txregistry.registry.blobs import deleteQuietly, listQuietly, readLink
from txregistry.registry.catalog import repositoryDirs
from txregistry.limits import RegistryLimits
from txregistry.registry.manifests import mediaTypeOf, parseManifest
from txregistry.storage import ContentTooLarge, PathNotFound

DEFAULT_MIN_AGE = 3600


class CollectionError(Exception):
    """The collection stopped before deleting anything."""


@dataclass
class Report:
    repositories: int = 0
    manifests: int = 0
    kept: int = 0  # blobs in use
    young: int = 0  # blobs in use by none, but younger than minAge
    deleted: list = field(default_factory=list)  # digests deleted (or that would be, dry run)
    freed: int = 0  # bytes of those
    links: int = 0  # repository links to them removed (or that would be)
    untagged: list = field(default_factory=list)  # (name, digest) of manifests deleted (or that would be)


async def _linkDirs(driver, base):
    """C{(digest, path)} of each ``base/<algorithm>/<hex>`` directory."""
    found = []
    for algorithmDir in await listQuietly(driver, base):
        for hexDir in await listQuietly(driver, algorithmDir):
            try:
                found.append((digests.parse(layout.linkDigestFromPath(hexDir)), hexDir))
            except digests.InvalidDigest:
                continue  # not ours
    return found


async def _mark(driver, report, maxManifestSize, deleteUntagged=False, since=0):
    """The set of digests in use, C{{digest: [layer link dirs]}}, and (with
    C{deleteUntagged}) C{[(name, digest, Manifest)]} of the manifests to
    delete: their references are not marked."""
    marked = set()
    links = {}
    untagged = []
    for name, marks in await repositoryDirs(driver):
        if not marks & layout.LISTED:
            continue
        report.repositories += 1
        found = await _manifests(driver, name, maxManifestSize)
        report.manifests += len(found)
        kept = await _keptIn(driver, name, found, since) if deleteUntagged else set(found)
        for digest, manifest in found.items():
            if digest not in kept:
                untagged.append((name, digest, manifest))
                continue
            marked.add(digest)
            marked.update(manifest.blobs)
            marked.update(manifest.foreign)  # not required, but kept when pushed
            marked.update(manifest.children)
        for digest, path in await _linkDirs(driver, layout.layersDir(name)):
            links.setdefault(digest, []).append(path)
    return marked, links, untagged


async def _manifests(driver, name, maxManifestSize):
    """C{{digest: Manifest}} of the revisions of repository C{name}."""
    found = {}
    for digest, path in await _linkDirs(driver, layout.revisionsDir(name)):
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


async def _keptIn(driver, name, found, since):
    """The digests of C{found} (C{{digest: Manifest}} of repository C{name})
    that a tag, a kept index, a kept subject or a link younger than
    C{since} keeps."""
    roots = set()
    for tagDir in await listQuietly(driver, layout.tagsDir(name)):
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


async def _deleteManifest(driver, name, digest, manifest, since):
    """Delete an untagged manifest's links (revision, referrer) unless its
    revision link was written again since the marking (a push of it)."""
    if await _linkedLately(driver, [layout.revisionDir(name, digest)], since):
        return False
    if manifest.subject is not None:
        await deleteQuietly(driver, layout.referrerDir(name, manifest.subject, digest))
    await deleteQuietly(driver, layout.revisionDir(name, digest))
    return True


async def _blobs(driver):
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


async def collect(driver, minAge=DEFAULT_MIN_AGE, dryRun=False, now=None, log=None,
                  maxManifestSize=RegistryLimits.maxManifestSize, deleteUntagged=False, logManifest=None):
    """Delete (with C{dryRun}: only count) the blobs of C{driver}'s storage
    that no manifest refers to and that are older than C{minAge} seconds;
    with C{deleteUntagged}, first the manifests nothing keeps (see the
    module's docstring).  Returns a L{Report}; raises L{CollectionError}
    (having deleted nothing) if a manifest cannot be parsed, or is larger
    than C{maxManifestSize} (it is not read).  C{log(digest, size)} is
    called for each blob deleted, C{logManifest(name, digest)} for each
    manifest."""
    report = Report()
    now = time.time() if now is None else now
    marked, links, untagged = await _mark(driver, report, maxManifestSize, deleteUntagged, now - minAge)
    for name, digest, manifest in untagged:
        if dryRun or await _deleteManifest(driver, name, digest, manifest, now - minAge):
            report.untagged.append((name, digest))
            if logManifest is not None and not dryRun:
                logManifest(name, digest)
        else:  # pushed again meanwhile: what it refers to stays
            marked.add(digest)
            marked.update(manifest.blobs + manifest.foreign + manifest.children)
    for d in await _blobs(driver):
        if d in marked:
            report.kept += 1
            continue
        try:
            info = await driver.stat(layout.blobData(d))
        except PathNotFound:
            info = None  # a directory without data: debris, deleted as well
        if (info is not None and now - info.modTime < minAge) or await _linkedLately(
            driver, links.get(d, ()), now - minAge
        ):
            report.young += 1
            continue
        size = 0 if info is None or info.isDir else info.size
        report.deleted.append(d)
        report.freed += size
        report.links += len(links.get(d, ()))
        if dryRun:
            continue
        # Links first: a blob must never be listed in a repository without
        # its data being there.
        for path in links.get(d, ()):
            await deleteQuietly(driver, path)
        await deleteQuietly(driver, layout.blobDir(d))
        if log is not None:
            log(d, size)
    return report


async def _linkedLately(driver, linkDirs, since):
    for path in linkDirs:
        try:
            if (await driver.stat(layout.linkIn(path))).modTime > since:
                return True
        except PathNotFound:
            continue
    return False
