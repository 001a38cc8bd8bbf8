"""Blobs, uploads, manifests, tags, referrers and the catalog on top of a
storage driver.  Knows digests and repositories; never HTTP."""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from txregistry.limits import RegistryLimits

if TYPE_CHECKING:
    from twisted.python.threadpool import ThreadPool

    from txregistry.storage.interface import IStorageDriver


class Registry:
    """The registry's object graph on one storage driver."""

    def __init__(self, driver: IStorageDriver, reactor, threadpool: Optional[ThreadPool],
                 limits: RegistryLimits = RegistryLimits()) -> None:
        """C{limits}: the L{RegistryLimits} pushes are held to."""
        from txregistry.registry.blobs import BlobStore
        from txregistry.registry.manifests import Manifests
        from txregistry.registry.uploads import Uploads

        self.driver = driver
        self.blobs = BlobStore(driver)
        self.uploads = Uploads(
            driver,
            self.blobs,
            reactor,
            threadpool,
            maxBlobSize=limits.maxBlobSize,
            maxConcurrent=limits.maxConcurrentUploads,
            maxQueued=limits.maxUploadMemory,
        )
        self.manifests = Manifests(driver, self.blobs, maxSize=limits.maxManifestSize)
        # What the model announces (txregistry.events): one stream for all,
        # its listener interface (search, notifications).
        self.events = self.blobs.events
        self.uploads.events = self.manifests.events = self.events
        self.blobs.clock = self.manifests.clock = reactor

    async def catalog(self) -> list[str]:
        """Every repository name of storage, sorted (a walk of it)."""
        from txregistry.registry.catalog import catalog

        return await catalog(self.driver)
