"""The Content-Range checks of upload chunks on S3 (moto): a staged chunk
is a multipart upload of its own, aborted when refused, read back and
appended when right."""

import uuid

from twisted.internet import reactor

from tests.s3 import test_contract_s3 as contract
from tests.unit.test_chunk_ranges import ChunkRangeTests
from txregistry.storage.s3 import S3Driver


def teardown_module(module):
    contract.teardown_module(contract)


class S3ChunkRangeTests(ChunkRangeTests):
    def makeDriver(self):
        s = contract.server("moto")
        bucket = "chunks-" + uuid.uuid4().hex[:16]
        s.createBucket(bucket)
        driver = S3Driver(reactor, bucket, region=s.region, endpoint=s.endpoint, accessKey=s.accessKey,
                          secretKey=s.secretKey, rootDirectory="/registry")
        self.addCleanup(driver.client.pool.closeCachedConnections)
        return driver


del ChunkRangeTests  # (run in tests/unit)
