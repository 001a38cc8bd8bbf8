"""Memory of a push and pull through txregistry on S3 (moto's server), on a
real daemon over loopback, without redirects (the pull streams through the
daemon).

Blobs are pushed as docker pushes them (one chunked PATCH, no
Content-Length): the driver sends them in parts of PART_SIZE (16 MiB), so a
part buffer and the request body's queue (HIGH_WATER, 8 MiB) are expected;
anything growing with the blob, or extra copies of parts, is not.

Two blobs are pushed to the same daemon, so that the second upload's part
buffer comes after the first one's was freed: a part buffer that grows
through malloc (bytearray +=) made the peak climb by a part per upload
(26, 42, 58 MiB...), which one upload alone does not show.

Measured (moto, 2 cores): peak minus idle RSS about 25-27 MiB after each
push, for 64 MiB, 320 MiB and 1 GiB alike; it was about 72-80 MiB before
the part buffer was filled in place and parts sent in pieces.
"""

import uuid

from tests.perf.registryclient import BlobData, RegistryClient
from tests.s3.conftest import startOnS3
from tests.support.procs import processStats

MiB = 1024 * 1024
SMALL = 64 * MiB
BIG = 320 * MiB
RSS_ALLOWANCE = 44 * MiB  # peak minus idle, pushing or pulling
GROWTH_ALLOWANCE = 8 * MiB  # peak after BIG minus peak after SMALL
NAME = "perf/s3"


def mib(n):
    return "%.1f MiB" % (n / MiB,)


def test_s3PushAndPullStayFlat(motoServer, tmp_path):
    bucket = "perf-" + uuid.uuid4().hex[:16]
    motoServer.createBucket(bucket)
    daemon = startOnS3(motoServer, bucket, tmp_path, STORAGE_REDIRECT="false")
    try:
        idle = processStats(daemon.pid)["VmRSS"]
        c = RegistryClient("127.0.0.1", daemon.port)
        peaks = {}
        for label, size, seed in (("small", SMALL, 1), ("big", BIG, 2)):
            data = BlobData(size, seed=seed)
            digest = c.pushBlobChunked(NAME, data)
            peaks[label + " push"] = processStats(daemon.pid)["VmHWM"]
            assert c.pullBlob(NAME, digest) == (size, digest)
            peaks[label + " pull"] = processStats(daemon.pid)["VmHWM"]
        c.close()
        figures = "idle RSS %s; peak minus idle after %s" % (
            mib(idle), ", ".join("%s %s" % (k, mib(v - idle)) for k, v in peaks.items()))
        print(figures)
        for label, peak in peaks.items():
            assert peak - idle <= RSS_ALLOWANCE, "memory grew during the %s: %s" % (label, figures)
        assert peaks["big pull"] - peaks["small pull"] <= GROWTH_ALLOWANCE, (
            "memory grows with the blob's size: " + figures)
        log = daemon.log()
        assert "Traceback" not in log and "Unhandled" not in log, log[-4000:]
    finally:
        daemon.stop()
