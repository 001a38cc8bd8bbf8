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


async def _mark(driver, report, maxManifestSize):
    """The set of digests in use, and C{{digest: [layer link dirs]}}."""
    marked = set()
    links = {}
    for name, marks in await repositoryDirs(driver):
        if not marks & layout.LISTED:
            continue
        report.repositories += 1
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
                manifest = parseManifest(body, mediaTypeOf(body), maxManifestSize)
            except RegistryError as e:
                raise CollectionError("manifest %s of %s cannot be parsed (%s): nothing deleted" % (digest, name, e))
            report.manifests += 1
            marked.add(digest)
            marked.update(manifest.blobs)
            marked.update(manifest.foreign)  # not required, but kept when pushed
            marked.update(manifest.children)
        for digest, path in await _linkDirs(driver, layout.layersDir(name)):
            links.setdefault(digest, []).append(path)
    return marked, links


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
                  maxManifestSize=RegistryLimits.maxManifestSize):
    """Delete (with C{dryRun}: only count) the blobs of C{driver}'s storage
    that no manifest refers to and that are older than C{minAge} seconds.
    Returns a L{Report}; raises L{CollectionError} (having deleted nothing)
    if a manifest cannot be parsed, or is larger than C{maxManifestSize}
    (it is not read).  C{log(digest, size)} is called for each blob
    deleted."""
    report = Report()
    marked, links = await _mark(driver, report, maxManifestSize)
    now = time.time() if now is None else now
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
