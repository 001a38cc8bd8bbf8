"""txregistry against Distribution, both storing in Ceph RGW (S3) on loopback.

    /tmp/venv/bin/python benchmarks/bench_s3.py [--size-mib 1024]

Starts a throwaway single-node Ceph cluster serving S3 through radosgw
(tests/support/s3servers.CephRGW, OSD on memstore: the data lives in RAM),
then, for each registry in turn (never both at once), on its own fresh bucket:

- txregistry started as the classic command line: ``twistd -n --pidfile=
  txregistry --port tcp:PORT:interface=127.0.0.1`` with SETTINGS_FLAVOR=s3,
  AWS_BUCKET, STORAGE_PATH=/registry, AWS_KEY, AWS_SECRET, AWS_ENDPOINT,
  AWS_REGION and STORAGE_REDIRECT=false (so that the pull streams through the
  daemon);
- Debian's docker-registry (Distribution 2.8) with its s3 driver
  (regionendpoint, path-style, v4auth, rootdirectory /registry) and
  ``redirect: {disable: true}``;

and measures, as benchmarks/bench.py does on local disk (its measuring code
is reused):

- push throughput of one blob of --size-mib, sent as docker sends it: POST,
  ONE PATCH with ``Transfer-Encoding: chunked`` and no Content-Length,
  streamed from a generator in 1 MiB chunks and hashed as it goes, then
  ``PUT ?digest=`` (which, for both, moves the upload to its final key with a
  server-side copy);
- pull throughput of that blob through the daemon (GET, streamed, hashed,
  digest verified);
- the daemon's idle RSS (before the push), its peak RSS (VmHWM) after the
  push and after the pull, and its CPU seconds for each;
- then the same daemon is restarted with redirects on (txregistry: the
  default STORAGE_REDIRECT=true; Distribution: redirect not disabled) and the
  blob is pulled again the way docker does it: the client follows the 307 to
  a presigned URL of RGW.

Then the ratio txregistry/Distribution of each figure.  After each registry
its bucket is emptied and RGW's garbage collector is run, so that memstore
gives the memory back before the next one.  Not run by CI.
"""

import argparse
import hashlib
import http.client
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from urllib.parse import urljoin, urlsplit

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)
sys.path.insert(0, HERE)

import bench  # noqa: E402  (benchmarks/bench.py: Phase, cpuSeconds, fmt, ratio)
from tests.perf.registryclient import BlobData, RegistryClient, RegistryResponseError  # noqa: E402
from tests.support import procs, s3servers  # noqa: E402

MiB = 1024 * 1024
GiB = 1024 * MiB
NAME = "bench/image"
PREFIX = "/registry"


# --- the two registries on S3 ---


def startTxregistry(rgw, bucket, logDir, redirect):
    """The classic S3 command line of txregistry."""
    port = procs.freePort()
    argv = [
        os.path.join(procs.BIN, "twistd"), "-n", "--pidfile=", "txregistry",
        "--port", "tcp:%d:interface=127.0.0.1" % (port,),
    ]
    env = procs.twistdEnv(
        {
            "SETTINGS_FLAVOR": "s3",
            "AWS_BUCKET": bucket,
            "STORAGE_PATH": PREFIX,
            "AWS_KEY": rgw.accessKey,
            "AWS_SECRET": rgw.secretKey,
            "AWS_ENDPOINT": rgw.endpoint,
            "AWS_REGION": rgw.region,
            "STORAGE_REDIRECT": "true" if redirect else "false",
        }
    )
    logPath = os.path.join(logDir, "txregistry-%s-%d.log" % ("redirect" if redirect else "stream", port))
    return procs.Daemon(argv, port, logPath, env=env, cwd=procs.REPO)


def startDistribution(rgw, bucket, logDir, redirect):
    """Debian's docker-registry (Distribution 2.8) with its s3 driver.

    Distribution 2.x uses path-style addressing whenever regionendpoint is
    set; forcepathstyle (a 3.0 parameter) is given too, and ignored by 2.8."""
    port = procs.freePort()
    configPath = os.path.join(logDir, "distribution-%s-%d.yml" % ("redirect" if redirect else "stream", port))
    with open(configPath, "w") as f:
        f.write(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            "storage:\n"
            "  s3:\n"
            "    regionendpoint: %s\n"
            "    region: %s\n"
            "    bucket: %s\n"
            "    accesskey: %s\n"
            "    secretkey: %s\n"
            "    forcepathstyle: true\n"
            "    secure: false\n"
            "    v4auth: true\n"
            "    rootdirectory: %s\n"
            "  redirect:\n    disable: %s\n"
            "  delete:\n    enabled: true\n"
            "http:\n  addr: 127.0.0.1:%d\n"
            % (rgw.endpoint, rgw.region, bucket, rgw.accessKey, rgw.secretKey, PREFIX,
               "false" if redirect else "true", port)
        )
    env = dict(os.environ)
    for key in list(env):
        if key.startswith(("REGISTRY_", "AWS_")):
            del env[key]
    return procs.Daemon(
        [procs.DISTRIBUTION, "serve", configPath], port, configPath[: -len(".yml")] + ".log", env=env
    )


KINDS = [("txregistry", startTxregistry), ("distribution", startDistribution)]


# --- measures ---


def irqSeconds():
    """CPU seconds the whole machine spent in hard and soft interrupts (the
    loopback network's packet processing, counted to no process)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (fields[5] + fields[6]) / os.sysconf("SC_CLK_TCK")


class Phase(bench.Phase):
    """bench.Phase, plus the CPU of the Ceph daemons and the kernel's
    interrupt time over the block; C{otherCPU} then excludes both."""

    def __init__(self, pid, ceph):
        bench.Phase.__init__(self, pid)
        self.ceph = ceph

    def __enter__(self):
        self._ceph = self.ceph.cpu()
        self._irq = irqSeconds()
        return bench.Phase.__enter__(self)

    def __exit__(self, *exc):
        bench.Phase.__exit__(self, *exc)
        self.cephCPU = self.ceph.cpu() - self._ceph
        self.irqCPU = irqSeconds() - self._irq
        self.otherCPU = max(0.0, self.otherCPU - self.cephCPU - self.irqCPU)
        return False


ERROR_WORDS = ("error", "traceback", "unhandled", "panic", "fatal", "critical")


def logProblems(path, limit=8):
    """The lines of a daemon's log that look like errors (at most C{limit})."""
    try:
        with open(path, "rb") as f:
            lines = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return []
    return [line for line in lines if any(w in line.lower() for w in ERROR_WORDS)][:limit]


# --- Ceph ---


class Ceph:
    """CPU and memory of the Ceph daemons (radosgw, OSD, mon)."""

    def __init__(self, rgw):
        self.rgw = rgw
        self.pids = rgw.pids()

    def cpu(self):
        return sum(bench.cpuSeconds(pid) for pid in self.pids.values())

    def rss(self, name):
        return procs.processStats(self.pids[name])

    def admin(self, *args):
        return subprocess.run(
            ["radosgw-admin", "-c", os.path.join(self.rgw.root, "ceph.conf"), "-n", "client.admin"] + list(args),
            capture_output=True, text=True, timeout=600,
        )

    def emptyBucket(self, bucket):
        """Delete every object and multipart upload of C{bucket}, then the
        bucket, then collect RGW's garbage now (it waits 2 h otherwise) so
        that memstore frees the data.  Returns the objects deleted."""
        client = self.rgw.client(read_timeout=600)
        deleted = 0
        for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
            for u in page.get("Uploads", []):
                client.abort_multipart_upload(Bucket=bucket, Key=u["Key"], UploadId=u["UploadId"])
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
                deleted += len(keys)
        client.delete_bucket(Bucket=bucket)
        gc = self.admin("gc", "process", "--include-all")
        if gc.returncode != 0:
            print("  (radosgw-admin gc process failed: %s)" % (gc.stderr.strip()[-500:],))
        return deleted


# --- pulls ---


def streamURL(url, algorithm, bufferSize=MiB, timeout=600):
    """GET an absolute http:// URL, streamed and hashed: C{(size, digest)}."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise RuntimeError("redirect to %r: only http:// is followed here" % (url,))
    conn = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
    try:
        conn.request("GET", parts.path + ("?" + parts.query if parts.query else ""))
        resp = conn.getresponse()
        if resp.status != 200:
            raise RegistryResponseError("GET %s" % (parts.netloc,), resp.status, dict(resp.getheaders()), resp.read())
        announced = resp.getheader("content-length")
        h = hashlib.new(algorithm)
        buf = bytearray(bufferSize)
        view = memoryview(buf)
        size = 0
        while True:
            n = resp.readinto(buf)
            if not n:
                break
            h.update(view[:n])
            size += n
        if announced is not None and int(announced) != size:
            raise AssertionError("GET: Content-Length %s but %d bytes came" % (announced, size))
        return size, "%s:%s" % (algorithm, h.hexdigest())
    finally:
        conn.close()


def pullRedirected(daemon, name, digest):
    """GET the blob from the registry, which must answer 307, and follow the
    Location to the S3 server: C{(size, digest, location host)}."""
    c = RegistryClient("127.0.0.1", daemon.port, timeout=600)
    try:
        r = c.request("GET", "/v2/%s/blobs/%s" % (name, digest))
    finally:
        c.close()
    if r.status not in (301, 302, 303, 307, 308):
        raise RegistryResponseError("GET blob (expecting a redirect)", r.status, r.headers, r.body)
    location = urljoin(daemon.url + "/", r.header("location"))
    size, got = streamURL(location, digest.split(":", 1)[0])
    return size, got, urlsplit(location).netloc


# --- one registry ---


def measure(kind, start, rgw, ceph, args, logDir):
    size = args.size_mib * MiB
    bucket = rgw.createBucket("bench-%s-%s" % (kind[:4], uuid.uuid4().hex[:12]))
    r = {"kind": kind, "bucket": bucket, "logs": []}
    try:
        daemon = start(rgw, bucket, logDir, redirect=False)
        r["logs"].append(daemon.logPath)
        try:
            pid = daemon.pid
            idle = procs.processStats(pid)
            r["idleRSS"] = idle["VmRSS"]
            r["startHWM"] = idle["VmHWM"]
            c = RegistryClient("127.0.0.1", daemon.port, timeout=600)
            data = BlobData(size, seed=1)

            with Phase(pid, ceph) as push:
                digest = c.pushBlobChunked(NAME, data)
            r["push"] = push
            r["pushMiBs"] = size / push.wall / MiB
            r["hwmPush"] = procs.processStats(pid)["VmHWM"]

            with Phase(pid, ceph) as pull:
                got = c.pullBlob(NAME, digest)
            if got != (size, digest):
                raise RuntimeError("%s: pulled %r, pushed %r" % (kind, got, (size, digest)))
            c.close()
            end = procs.processStats(pid)
            r["pull"] = pull
            r["pullMiBs"] = size / pull.wall / MiB
            r["hwmPull"] = end["VmHWM"]
            r["rssEnd"] = end["VmRSS"]
            r["digest"] = digest
        finally:
            daemon.stop()

        # The same bucket, the daemon restarted with redirects on.
        daemon = start(rgw, bucket, logDir, redirect=True)
        r["logs"].append(daemon.logPath)
        try:
            with Phase(daemon.pid, ceph) as pull:
                gotSize, gotDigest, host = pullRedirected(daemon, NAME, digest)
            if (gotSize, gotDigest) != (size, digest):
                raise RuntimeError("%s: redirected pull gave %r, pushed %r" % (kind, (gotSize, gotDigest), (size, digest)))
            r["redirect"] = pull
            r["redirectHost"] = host
            r["redirectMiBs"] = size / pull.wall / MiB
            r["redirectHWM"] = procs.processStats(daemon.pid)["VmHWM"]
        finally:
            daemon.stop()
        return r
    finally:
        r["rgwRSS"] = ceph.rss("rgw")
        r["osdRSS"] = ceph.rss("osd")
        if not args.keep:
            r["deleted"] = ceph.emptyBucket(bucket)
            r["osdRSSAfter"] = ceph.rss("osd")["VmRSS"]
            if kind == "txregistry":
                # its local search index cache (a classic command line without
                # SQLALCHEMY_INDEX_DATABASE puts it in the temporary directory)
                shutil.rmtree(
                    os.path.join(tempfile.gettempdir(), "txregistry-%s-%s" % (bucket, PREFIX.strip("/"))),
                    ignore_errors=True,
                )


# --- output ---


def table(results, args):
    tx, dist = results.get("txregistry"), results.get("distribution")
    gib = args.size_mib / 1024.0
    for r in (tx, dist):
        if r is None:
            continue
        r["growth"] = r["hwmPull"] - r["idleRSS"]
        r["pushCPU"] = r["push"].daemonCPU / gib
        r["pullCPU"] = r["pull"].daemonCPU / gib
        r["redirectCPU"] = r["redirect"].daemonCPU
        r["pushCephCPUg"] = r["push"].cephCPU / gib
        r["pullCephCPUg"] = r["pull"].cephCPU / gib

    rows = [
        ("push throughput, chunked PATCH (MiB/s)", "pushMiBs", 1.0, "higher is better"),
        ("pull throughput through the daemon (MiB/s)", "pullMiBs", 1.0, "higher is better"),
        ("pull throughput, 307 followed to RGW (MiB/s)", "redirectMiBs", 1.0, "higher is better"),
        ("idle RSS before push (MiB)", "idleRSS", MiB, ""),
        ("peak RSS (VmHWM) after push (MiB)", "hwmPush", MiB, "lower is better"),
        ("peak RSS (VmHWM) after pull (MiB)", "hwmPull", MiB, "lower is better"),
        ("peak - idle RSS, push+pull (MiB)", "growth", MiB, "lower is better"),
        ("daemon CPU s per GiB pushed", "pushCPU", 1.0, "lower is better"),
        ("daemon CPU s per GiB pulled", "pullCPU", 1.0, "lower is better"),
        ("daemon CPU s, redirected pull (total)", "redirectCPU", 1.0, "lower is better"),
        ("Ceph (rgw+osd+mon) CPU s per GiB pushed", "pushCephCPUg", 1.0, "lower is better"),
        ("Ceph (rgw+osd+mon) CPU s per GiB pulled", "pullCephCPUg", 1.0, "lower is better"),
    ]

    def get(r, key, scale):
        if r is None or r.get(key) is None:
            return None
        return r[key] / scale

    width = max(len(label) for label, _, _, _ in rows)
    head = "%-*s  %12s  %12s  %10s  %s" % (width, "figure", "txregistry", "distribution", "tx/dist", "")
    lines = [head, "-" * len(head)]
    for label, key, scale, note in rows:
        a, b = get(tx, key, scale), get(dist, key, scale)
        lines.append("%-*s  %12s  %12s  %10s  %s" % (width, label, bench.fmt(a), bench.fmt(b), bench.ratio(a, b), note))
    return "\n".join(lines)


def details(r):
    def phase(what, p):
        return (
            "  %s %.2f s wall, client CPU %.2f s (%.0f%% of wall), daemon CPU %.2f s, Ceph CPU %.2f s, "
            "kernel interrupts %.2f s, other processes %.2f s" % (
                what, p.wall, p.clientCPU, 100 * p.clientCPU / p.wall, p.daemonCPU, p.cephCPU, p.irqCPU, p.otherCPU,
            )
        )

    out = [
        "%s (bucket %s):" % (r["kind"], r["bucket"]),
        phase("push", r["push"]),
        phase("pull", r["pull"]),
        phase("redirected pull (via %s)" % (r["redirectHost"],), r["redirect"]),
        "  VmHWM right after start %.1f MiB (idle VmRSS %.1f MiB); VmRSS at end %.1f MiB; "
        "VmHWM of the redirecting daemon %.1f MiB"
        % (r["startHWM"] / MiB, r["idleRSS"] / MiB, r["rssEnd"] / MiB, r["redirectHWM"] / MiB),
        "  after the run: radosgw VmRSS %.0f MiB (peak %.0f), OSD (memstore) VmRSS %.0f MiB (peak %.0f)"
        % (
            r["rgwRSS"]["VmRSS"] / MiB, r["rgwRSS"]["VmHWM"] / MiB,
            r["osdRSS"]["VmRSS"] / MiB, r["osdRSS"]["VmHWM"] / MiB,
        ),
    ]
    if "deleted" in r:
        out.append(
            "  bucket emptied (%d objects) and garbage collected: OSD VmRSS %.0f MiB"
            % (r["deleted"], r["osdRSSAfter"] / MiB)
        )
    other = sum(r[k].otherCPU for k in ("push", "pull", "redirect"))
    wall = r["push"].wall + r["pull"].wall + r["redirect"].wall
    if other > 0.1 * wall:
        out.append(
            "  WARNING: processes other than the client, the daemon and Ceph used %.1f CPU s during %.1f s "
            "of measures: the machine was not quiet" % (other, wall)
        )
    for path in r["logs"]:
        problems = logProblems(path)
        if problems:
            out.append("  error-looking lines in %s:" % (os.path.basename(path),))
            out.extend("    " + line[:300] for line in problems)
    out.append("  logs %s" % (" ".join(r["logs"]),))
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mib", type=int, default=1024, help="size of the pushed blob (MiB)")
    p.add_argument("--memstore-gib", type=float, default=10.0,
                   help="capacity of the OSD's memstore (RAM is used only for what is stored)")
    p.add_argument("--only", choices=[k for k, _ in KINDS], help="measure one registry only")
    p.add_argument("--keep", action="store_true", help="keep the buckets, the Ceph directory and the logs")
    args = p.parse_args(argv)

    reason = s3servers.CephRGW.unavailableReason()
    if reason:
        p.error(reason)
    # Memstore holds what is stored in RAM, about twice over: the upload and
    # its server-side copy to the final key coexist until the copy is done.
    need = 2 * 2 * args.size_mib * MiB
    with open("/proc/meminfo") as f:
        available = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    if need > available * 0.8:
        print("WARNING: Ceph's memstore may need ~%.1f GiB of RAM for a %d MiB blob; %.1f GiB available"
              % (need / GiB, args.size_mib, available / GiB))
    if 2 * args.size_mib * MiB > 0.9 * args.memstore_gib * GiB:
        p.error("--memstore-gib %.1f is too small for an upload of %d MiB and its copy" % (args.memstore_gib, args.size_mib))

    logDir = tempfile.mkdtemp(prefix="bench-s3-logs-")
    rgw = s3servers.CephRGW(memstoreBytes=int(args.memstore_gib * GiB), keep=args.keep)
    t = time.monotonic()
    rgw.start()
    try:
        ceph = Ceph(rgw)
        print(
            "blob %d MiB; Ceph RGW %s (memstore %.0f GiB, started in %.1f s); %d CPUs; logs in %s"
            % (args.size_mib, rgw.endpoint, args.memstore_gib, time.monotonic() - t, os.cpu_count(), logDir)
        )
        results = {}
        for kind, start in KINDS:
            if args.only and kind != args.only:
                continue
            print("measuring %s ..." % (kind,), flush=True)
            results[kind] = measure(kind, start, rgw, ceph, args, logDir)
    finally:
        rgw.stop()
    digests = {r["digest"] for r in results.values()}
    if len(digests) > 1:
        raise RuntimeError("the registries were sent different blobs: %r" % (digests,))
    print()
    print(table(results, args))
    print()
    for r in results.values():
        print(details(r))
    print(
        "\nA client CPU near 100%% of wall means the client, not the daemon, bounds that throughput; "
        "Ceph's CPU shares the same %d cores.  Load average now: %s"
        % (os.cpu_count(), " ".join(open("/proc/loadavg").read().split()[:3]))
    )
    if not args.keep:
        shutil.rmtree(logDir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
