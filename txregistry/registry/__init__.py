"""Blobs, uploads, manifests, tags, referrers and the catalog on top of a
storage driver.  Knows digests and repositories; never HTTP."""


class Registry:
    """The registry's object graph on one storage driver."""

    def __init__(self, driver, reactor, threadpool):
        from txregistry.registry.blobs import BlobStore
        from txregistry.registry.manifests import Manifests
        from txregistry.registry.uploads import Uploads

        self.driver = driver
        self.blobs = BlobStore(driver)
        self.uploads = Uploads(driver, self.blobs, reactor, threadpool)
        self.manifests = Manifests(driver, self.blobs)
