"""A repository's tags as they are stored, and when each was pushed
(its current link's modification time, written anew by each push of the
tag), without resolving them: what a listing of thousands of tags by push
time needs (L{txregistry.ui.data}) and what retention policies order tags
by (L{txregistry.registry.retention}).
L{txregistry.registry.manifests.Manifests.tags} is the API's listing (every
tag resolved)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from twisted.internet.defer import Deferred, FirstError, gatherResults

from txregistry.registry import layout
from txregistry.storage import PathNotFound

if TYPE_CHECKING:
    from txregistry.storage.interface import IStorageDriver

AT_ONCE = 64  # stats at once, on a driver that cannot give them all in one go
_CURRENT = "current/link"  # below a tag's directory: what each push of it writes


async def tagNames(driver: IStorageDriver, name: str) -> list[str]:
    """The tag directories of C{name}, sorted (one listing); [] for none."""
    try:
        paths = await driver.list(layout.tagsDir(name))
    except PathNotFound:
        return []
    return sorted(layout.baseName(p) for p in paths)


async def pushedAt(driver: IStorageDriver, name: str, tag: str) -> Optional[float]:
    """When C{tag} of C{name} was last pushed (a Unix time), or None when it
    is gone.  The same time as L{pushTimes} gives (to compare them)."""
    try:
        return (await driver.stat(layout.tagCurrentLink(name, tag))).modTime
    except PathNotFound:
        return None


async def pushTimes(driver: IStorageDriver, name: str) -> dict[str, float]:
    """C{{tag: pushed at}} of every tag of C{name} that has a current link
    ({} for a repository without tags), in one go where the driver can
    (L{txregistry.storage.interface.IStatChildren}: one step of the
    filesystem driver's pool, one listing of S3), else a listing and a stat
    a tag (L{AT_ONCE} at a time)."""
    statChildren = getattr(driver, "statChildren", None)
    if statChildren is not None:
        try:
            found = await statChildren(layout.tagsDir(name), _CURRENT)
        except PathNotFound:
            return {}
        return {tag: info.modTime for tag, info in found.items()}
    tags = await tagNames(driver, name)
    times = {}
    for i in range(0, len(tags), AT_ONCE):
        batch = tags[i:i + AT_ONCE]
        try:
            pushed = await gatherResults([Deferred.fromCoroutine(pushedAt(driver, name, tag)) for tag in batch],
                                         consumeErrors=True)
        except FirstError as e:  # (the error itself, as a sequence of stats would raise it)
            e.subFailure.raiseException()
        times.update((tag, t) for tag, t in zip(batch, pushed) if t is not None)
    return times
