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
        self.addCleanup(self.driver.client.pool.closeCachedConnections)
        self.serve()

    test_unparseableManifestStopsBeforeDeleting = None  # writes a file on local disk

    @test_gc.async_test
    async def test_purgeAbortsMultipartUploads(self):
        """A stale upload whose bytes are in a multipart upload (more than a
        part was sent): purging it aborts that too (ListMultipartUploads
        shows none under it); a dry run and a fresh upload keep it."""
        import time

        from txregistry.registry import layout
        from txregistry.storage.s3.writer import PART_SIZE

        r = await self.request("POST", "/v2/team/app/blobs/uploads/")
        location = r.header("location").decode("ascii")
        r = await self.request("PATCH", location, b"x" * (PART_SIZE + 100))
        self.assertEqual(r.code, 202, r.body)
        uploadID = location.rstrip("/").rsplit("/", 1)[1].split("?")[0]
        prefix = self.driver.key(layout.uploadDir("team/app", uploadID))

        async def multipart():
            return [k for k, _ in await self.driver.s3.uploads(prefix + "/")]

        self.assertEqual(len(await multipart()), 1)
        uploads = self.registry.uploads
        self.assertEqual(await uploads.purge(3600), 0)  # young
        later = time.time() + 7200
        self.assertEqual(await uploads.purge(3600, now=later, dryRun=True), 1)
        self.assertEqual(len(await multipart()), 1)
        self.assertEqual(await uploads.purge(3600, now=later), 1)
        self.assertEqual(await multipart(), [])
        self.assertEqual((await self.driver.s3.objects(prefix + "/"))[0], [])
        r = await self.request("GET", location)
        self.assertEqual(r.code, 404)


def test_gc_command_on_s3(s3, bucket, tmp_path):
    """``txregistry gc`` with the classic S3 environment, beside a daemon on
    the same bucket (moto, and RGW, which checks signatures)."""
    import os
    import subprocess

    from tests.e2e import clients, oci
    from tests.s3.conftest import startOnS3
    from tests.support import procs

    keep = oci.buildImage(str(tmp_path / "keep"), "v1", layers=1, seed=3, layerSize=32 * 1024)
    gone = oci.buildImage(str(tmp_path / "gone"), "v1", layers=1, seed=4, layerSize=32 * 1024)
    d = startOnS3(s3, bucket, tmp_path)
    try:
        clients.push("oci:%s:v1" % (tmp_path / "keep"), d, "team/app:keep")
        clients.push("oci:%s:v1" % (tmp_path / "gone"), d, "team/app:gone")
        clients.delete(d, "team/app@%s" % (gone.manifestDigest,))
        r = subprocess.run(
            [os.path.join(procs.BIN, "txregistry"), "gc", "--min-age", "0", "--grace", "0"],
            capture_output=True, text=True, timeout=120,
            env=procs.twistdEnv(procs.s3env(s3, bucket, SQLALCHEMY_INDEX_DATABASE="sqlite:///%s" % (tmp_path / "i.db"))),
        )
        assert r.returncode == 0, r.stderr
        deleted = {line.split()[1] for line in r.stdout.splitlines() if line.startswith("deleted sha256:")}
        assert deleted == set(gone.blobDigests) | {gone.manifestDigest}, r.stdout
        status, _, _ = clients.request(d, "/v2/team/app/blobs/%s" % (gone.layerDigests[0],), method="HEAD")
        assert status == 404
        clients.pull(d, "team/app:keep", "oci:%s:v1" % (tmp_path / "pulled"))
        assert set(keep.blobDigests) <= oci.verifyBlobs(str(tmp_path / "pulled"))
    finally:
        d.stop()


def test_online_collection_on_s3(motoServer, tmp_path):
    """The daemon test of tests/daemon/test_gc_online.py on S3 (moto): the
    collection on its schedule beside pushes and deletes, then every tagged
    image pulls whole and ``txregistry check`` is clean."""
    from tests.daemon import test_gc_online as online
    from tests.support import procs

    bucket = "gco-" + uuid.uuid4().hex[:16]
    motoServer.createBucket(bucket)
    cfg = tmp_path / "config.yml"
    cfg.write_text(online.GC_CONFIG.replace("dev:", "s3:\n  storage: s3"))
    index = "sqlite:///%s" % (tmp_path / "i.db")
    d = procs.startTxregistryOnS3(motoServer, bucket, str(tmp_path), DOCKER_REGISTRY_CONFIG=str(cfg),
                                  SQLALCHEMY_INDEX_DATABASE=index)
    try:
        online.exercise(d)
    finally:
        d.stop()
    r = online.checkCommand(env=procs.s3env(motoServer, bucket, DOCKER_REGISTRY_CONFIG=str(cfg),
                                            SQLALCHEMY_INDEX_DATABASE=index))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 corrupt, 0 missing, 0 unreadable" in r.stdout
