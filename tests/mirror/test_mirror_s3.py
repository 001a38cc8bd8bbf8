"""The mirror on S3 storage (moto's server): a 200 MiB layer pulled through
streams with flat memory (the upstream paused by the S3 writer's pace);
once stored, it is served as any blob on S3 (a redirect to the bucket)."""

import http.client
import os
import time
import uuid

from tests.mirror.conftest import Daemons
from tests.perf.registryclient import BlobData, RegistryClient
from tests.support import procs

MiB = 1024 * 1024
CONFIG = """\
s3:
    storage: s3
    storage_path: _env:STORAGE_PATH:/registry
    storage_redirect: _env:STORAGE_REDIRECT:true
    s3_bucket: _env:AWS_BUCKET
    s3_access_key: _env:AWS_KEY
    s3_secret_key: _env:AWS_SECRET
    s3_region: _env:AWS_REGION
    s3_endpoint: _env:AWS_ENDPOINT
    s3_secure: false
    search_backend: none
    loglevel: info
    mirrors:
        upstreams:
            - {name: up, url: "%s", default: true}
"""


def test_mirrorOnS3StaysFlat(motoServer, tmp_path):
    daemons = Daemons(tmp_path)
    try:
        upstream = daemons.distribution(str(tmp_path / "up"))
        data = BlobData(200 * MiB, seed=7)
        digest = RegistryClient("127.0.0.1", upstream.port).pushBlobChunked("library/big", data)
        bucket = "mirror-" + uuid.uuid4().hex[:12]
        motoServer.createBucket(bucket)
        configPath = os.path.join(str(tmp_path), "s3.yml")
        with open(configPath, "w") as f:
            f.write(CONFIG % (upstream.url,))
        mirror = daemons.add(procs.startTxregistryOnS3(motoServer, bucket, str(tmp_path),
                                                       DOCKER_REGISTRY_CONFIG=configPath))
        idle = procs.processStats(mirror.pid)["VmRSS"]
        assert RegistryClient("127.0.0.1", mirror.port, timeout=300).pullBlob("big", digest) == (200 * MiB, digest)
        peak = procs.processStats(mirror.pid)["VmHWM"]
        print("S3 mirror: idle RSS %.1f MiB, peak minus idle %.1f MiB" % (idle / MiB, (peak - idle) / MiB))
        # The S3 driver's part buffer (16 MiB) and the tee's (8 MiB) at most, and their slack.
        assert peak - idle < 56 * MiB, "idle %d, peak %d" % (idle, peak)
        # (The client had its last byte once the digest was verified; the
        # multipart upload may still be completing: until then the blob is
        # served from the fetch, then redirected to.)
        deadline = time.monotonic() + 30
        while True:
            conn = http.client.HTTPConnection("127.0.0.1", mirror.port, timeout=60)
            conn.request("GET", "/v2/big/blobs/%s" % (digest,))
            response = conn.getresponse()
            body = response.read()
            conn.close()
            if response.status == 307:
                assert bucket in response.getheader("Location")
                break
            assert response.status == 200 and len(body) == 200 * MiB
            assert time.monotonic() < deadline
            time.sleep(0.1)  # polling interval
        assert mirror.log().count("mirror: fetching blob %s" % (digest,)) == 1
    finally:
        daemons.stopAll()
