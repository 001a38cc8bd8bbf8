"""A repository's tags as they are stored, and when each was pushed
(its current link's modification time), without resolving them: what a
listing of thousands of tags by push time needs (see
L{txregistry.ui.data}).  L{txregistry.registry.manifests.Manifests.tags}
is the API's listing (every tag resolved)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from txregistry.registry import layout
from txregistry.storage import PathNotFound

if TYPE_CHECKING:
    from txregistry.storage.interface import IStorageDriver


async def tagNames(driver: IStorageDriver, name: str) -> list[str]:
    """The tag directories of C{name}, sorted (one listing); [] for none."""
    try:
        paths = await driver.list(layout.tagsDir(name))
    except PathNotFound:
        return []
    return sorted(layout.baseName(p) for p in paths)


async def pushedAt(driver: IStorageDriver, name: str, tag: str) -> Optional[float]:
    """When C{tag} of C{name} was last pushed (a Unix time), or None when it
    is gone."""
    try:
        return (await driver.stat(layout.tagCurrentLink(name, tag))).modTime
    except PathNotFound:
        return None
