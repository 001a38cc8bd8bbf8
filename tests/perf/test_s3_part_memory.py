"""On S3, the part buffers of all uploads together stay within
``limits.max_part_memory``, whatever the number of uploads at once.

Each upload to S3 fills its part (16 MiB) in memory once it holds more than
1 MiB.  Twelve docker-style pushes (one chunked PATCH) run at once against a
daemon allowed two part buffers (32 MiB) and 16 MiB of upload queues: each
sends 12 MiB and then holds its connection open until every upload either
has sent that much or ten wait for a buffer.  Two fill their parts, the
ten others wait (their bodies paused: the daemon reads no more of them,
though the sockets' buffers may take the rest of their 12 MiB).  Then all
go on and complete; every blob is whole, and the peak memory of the whole
run stays within the buffers, the queues and some room.

Before the budget, the twelve filled twelve part buffers at once (about
144 MiB more than idle); with it, two of them (24 MiB) plus the queues.
"""

import threading
import time
import uuid

from tests.daemon.test_metrics import scrape, total
from tests.perf.registryclient import _pathOf, BlobData, RegistryClient
from tests.s3.conftest import startOnS3
from tests.support.procs import processStats

MiB = 1024 * 1024
UPLOADS = 12
BUFFERS = 2
SENT_FIRST = 12 * MiB  # what each upload sends before it holds
SIZE = 20 * MiB  # each blob: a whole part and a tail
# Peak minus idle RSS: the buffers, the queues (max_upload_memory), the
# small buffers of the waiting uploads (1 MiB each), and room for the
# daemon's own growth.
ALLOWANCE = BUFFERS * 16 * MiB + 16 * MiB + UPLOADS * MiB + 24 * MiB
NAME = "perf/parts"
CONFIG = """\
s3:
    storage: s3
    storage_redirect: false
    search_backend: none
    metrics_main_port: true
    limits:
        max_part_memory: %d
        max_upload_memory: %d
""" % (BUFFERS * 16 * MiB, 16 * MiB)


class Push(threading.Thread):
    """One push that stops after SENT_FIRST bytes until C{go} is set."""

    def __init__(self, port, seed, go):
        threading.Thread.__init__(self, daemon=True)
        self.port = port
        self.data = BlobData(SIZE, seed=seed)
        self.go = go
        self.held = threading.Event()  # sent SENT_FIRST bytes, now holding
        self.digest = None
        self.error = None

    def _gated(self):
        sent = 0
        for pieces in self.data.chunks():
            if sent >= SENT_FIRST and not self.held.is_set():
                self.held.set()
                self.go.wait(120)
            yield pieces
            sent += sum(len(p) for p in pieces)

    def run(self):
        c = RegistryClient("127.0.0.1", self.port)
        try:
            location = c.startUpload(NAME)
            r = c.expect("PATCH upload", c.patchChunked(location, self._gated()), 202)
            digest = self.data.digest()
            c.finishUpload(_pathOf(r.header("location") or location), digest)
            self.digest = digest
        except Exception as e:
            self.error = e
        finally:
            c.close()


def test_s3PartBuffersStayWithinTheirBudget(motoServer, tmp_path):
    bucket = "parts-" + uuid.uuid4().hex[:16]
    motoServer.createBucket(bucket)
    config = tmp_path / "config.yml"
    config.write_text(CONFIG)
    daemon = startOnS3(motoServer, bucket, tmp_path, DOCKER_REGISTRY_CONFIG=str(config))
    go = threading.Event()
    pushes = [Push(daemon.port, seed, go) for seed in range(UPLOADS)]
    try:
        idle = processStats(daemon.pid)["VmRSS"]
        for p in pushes:
            p.start()
        deadline = time.monotonic() + 120
        while True:
            held = sum(p.held.is_set() for p in pushes)
            samples = scrape(daemon.url)
            waiting = total(samples, "txregistry_s3_part_buffer_waits")
            # (an upload that waits may have sent its 12 MiB too: the socket's buffers and its
            # queue take them, not a part buffer)
            if held == UPLOADS or (held >= BUFFERS and waiting == UPLOADS - BUFFERS):
                break
            assert not any(p.error for p in pushes), ([p.error for p in pushes if p.error], daemon.log()[-3000:])
            assert time.monotonic() < deadline, "held %d, waiting %d, in use %d\n%s" % (
                held, waiting, total(samples, "txregistry_s3_part_buffers"), daemon.log()[-3000:])
            time.sleep(0.1)  # polling interval
        inUse = total(samples, "txregistry_s3_part_buffers")
        go.set()
        for p in pushes:
            p.join(300)
        errors = [(i, p.error, p.is_alive()) for i, p in enumerate(pushes) if p.error or p.is_alive()]
        assert not errors, (errors, total(scrape(daemon.url), "txregistry_s3_part_buffer_waits"), daemon.log()[-3000:])
        peak = processStats(daemon.pid)["VmHWM"]  # (the peak of the whole run, the holding and after)
        figure = "%d uploads held %d part buffers, peak minus idle RSS %.1f MiB" % (
            held, inUse, (peak - idle) / MiB)
        print(figure)
        assert inUse == BUFFERS, figure
        assert peak - idle <= ALLOWANCE, figure
        c = RegistryClient("127.0.0.1", daemon.port)
        for p in pushes[:3]:
            assert c.pullBlob(NAME, p.digest) == (SIZE, p.digest)
        c.close()
        samples = scrape(daemon.url)  # every buffer given back
        assert total(samples, "txregistry_s3_part_buffers") == 0
        assert total(samples, "txregistry_s3_part_buffer_waits") == 0
        log = daemon.log()
        assert "Traceback" not in log and "Unhandled" not in log, log[-4000:]
    finally:
        go.set()
        daemon.stop()
