"""Garbage collection on S3 (moto): the same tests as on local disk."""

import uuid

from twisted.internet import reactor
from twisted.python.threadpool import ThreadPool

from tests.api import test_gc
from tests.s3 import test_contract_s3 as contract
from txregistry.storage.s3 import S3Driver


def teardown_module(module):
    contract.teardown_module(contract)


class S3GCTests(test_gc.GCTests):
    driverName = "s3"

    def setUp(self):
        s = contract.server("moto")
        bucket = "gc-" + uuid.uuid4().hex[:16]
        s.createBucket(bucket)
        self.pool = ThreadPool(1, 4, name="test-io")
        self.pool.start()
        self.addCleanup(self.pool.stop)
        self.driver = S3Driver(
            reactor, bucket, region=s.region, endpoint=s.endpoint, accessKey=s.accessKey, secretKey=s.secretKey,
            rootDirectory="/registry", redirect=False,
        )
        self.addCleanup(self.driver._pool.closeCachedConnections)
        self.serve()

    test_unparseableManifestStopsBeforeDeleting = None  # writes a file on local disk
