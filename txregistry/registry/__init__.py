"""Blobs, uploads, manifests, tags, referrers and the catalog on top of a
storage driver.  Knows digests and repositories; never HTTP."""


class Registry:
    """The registry's object graph on one storage driver."""

    def __init__(self, driver, reactor, threadpool, limits=None):
        from txregistry.registry.blobs import BlobStore
        from txregistry.registry.manifests import Manifests
        from txregistry.registry.uploads import Uploads

        self.driver = driver
        self.blobs = BlobStore(driver)
        limits = limits or {}
        self.uploads = Uploads(
            driver,
            self.blobs,
            reactor,
            threadpool,
            maxBlobSize=limits.get("max_blob_size", 0),
            maxConcurrent=limits.get("max_concurrent_uploads", 0),
            maxQueued=limits.get("max_upload_memory", 0),
        )
        self.manifests = Manifests(driver, self.blobs, maxSize=limits.get("max_manifest_size"))
        # What the model announces (txregistry.events): one stream for all.
        self.events = self.blobs.events
        self.uploads.events = self.manifests.events = self.events
