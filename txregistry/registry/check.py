"""Checking storage: every blob's data hashes to its digest, and every blob
a repository links or a manifest names is there.

Each blob is read as a stream (never whole in memory), hashed in a thread
pool when one is given; nothing is changed.  A blob being deleted by a
collection meanwhile may be reported missing."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Optional

from twisted.internet.threads import deferToThreadPool

from txregistry.errors import RegistryError
from txregistry.limits import RegistryLimits
from txregistry.registry import layout
from txregistry.registry.blobs import readLink
from txregistry.registry.catalog import repositoryDirs
from txregistry.registry.gc import blobDigests, linkDirs
from txregistry.registry.manifests import mediaTypeOf, parseManifest
from txregistry.storage import ContentTooLarge, PathNotFound, StorageError

CHUNK = 1024 * 1024


@dataclass
class CheckReport:
    blobs: int = 0  # blobs whose data was read
    bytes: int = 0
    corrupt: list = field(default_factory=list)  # (digest, actual digest)
    missing: list = field(default_factory=list)  # (digest, where: "repo (link)", "repo@manifest")
    unreadable: list = field(default_factory=list)  # (digest or path, why)

    @property
    def ok(self) -> bool:
        return not (self.corrupt or self.missing or self.unreadable)


async def hashBlob(driver, digest, reactor=None, threadpool=None, progress=None) -> Optional[str]:
    """The digest of what is stored as blob C{digest}'s data (same
    algorithm), read in chunks; C{None} when there is no data."""
    try:
        reader = await driver.reader(layout.blobData(digest))
    except PathNotFound:
        return None
    h = hashlib.new(digest.algorithm)
    try:
        while True:
            chunk = await reader.read(CHUNK)
            if not chunk:
                break
            if threadpool is not None:
                await deferToThreadPool(reactor, threadpool, h.update, chunk)
            else:
                h.update(chunk)
            if progress is not None:
                progress.advance(0, len(chunk))
    finally:
        reader.close()
    return "%s:%s" % (digest.algorithm, h.hexdigest())


async def _references(driver, report, maxManifestSize):
    """C{{digest: [where]}} of what repositories link and manifests name."""
    wanted = {}
    for name, marks in await repositoryDirs(driver):
        if not marks & layout.LISTED:
            continue
        for digest, _ in await linkDirs(driver, layout.layersDir(name)):
            wanted.setdefault(digest, []).append("%s (layer link)" % (name,))
        for digest, path in await linkDirs(driver, layout.revisionsDir(name)):
            if await readLink(driver, layout.linkIn(path)) != digest:
                continue
            wanted.setdefault(digest, []).append("%s (revision)" % (name,))
            try:
                body = await driver.getContent(layout.blobData(digest), maxManifestSize)
            except PathNotFound:
                continue  # reported as missing
            except ContentTooLarge:
                report.unreadable.append((digest, "manifest of %s larger than max_manifest_size" % (name,)))
                continue
            try:
                m = parseManifest(body, mediaTypeOf(body), maxManifestSize)
            except RegistryError as e:
                report.unreadable.append((digest, "manifest of %s cannot be parsed: %s" % (name, e.message)))
                continue
            for d in m.blobs + m.children:
                wanted.setdefault(d, []).append("%s@%s" % (name, digest))
    return wanted


async def check(driver, reactor=None, threadpool=None, progress=None,
                maxManifestSize=RegistryLimits.maxManifestSize) -> CheckReport:
    """Verify every blob of C{driver}'s storage (a L{CheckReport});
    C{progress} (a L{txregistry.maintenance.progress.Progress}) is told of
    each blob and its bytes."""
    report = CheckReport()
    wanted = await _references(driver, report, maxManifestSize)
    found = await blobDigests(driver)
    sizes = {}
    for d in found:
        try:
            info = await driver.stat(layout.blobData(d))
            sizes[d] = None if info.isDir else info.size
        except PathNotFound:
            sizes[d] = None
    if progress is not None:
        progress.stage("checking", len(found), "blobs", sum(s or 0 for s in sizes.values()))
    for d in found:
        if sizes[d] is not None:
            try:
                actual = await hashBlob(driver, d, reactor, threadpool, progress)
            except StorageError as e:
                report.unreadable.append((d, str(e)))
                actual = d
            if actual is None:
                sizes[d] = None
            else:
                report.blobs += 1
                report.bytes += sizes[d]
                if actual != d:
                    report.corrupt.append((d, actual))
        if progress is not None:
            progress.advance(1)
    present = {d for d, size in sizes.items() if size is not None}
    for d, where in sorted(wanted.items()):
        if d not in present:
            report.missing.append((d, ", ".join(sorted(set(where)))))
    return report

