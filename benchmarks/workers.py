"""txregistry with 1 and with 2 worker processes against Distribution,
interleaved round by round.

    .venv/bin/python benchmarks/workers.py [--rounds 3] [--workers 1,2] [--quick]

Each round starts every daemon once, one after the other (never two at a
time), on fresh storage under --dir (a real disk, not tmpfs); the order
rotates from one round to the next (A B C, then B C A, then C A B) so that
noise on the machine falls on all of them alike.  In each run:

- idle memory: PSS summed over the daemon's processes (twistd and its
  descendants), once the expected number of processes is there and the sum
  is stable; RSS too;
- pushes: POST + monolithic PUT, and POST + chunked PATCHes (--patch-mib
  each, ``Transfer-Encoding: chunked``) + PUT, of a small and a big blob;
- manifest GET and ``GET /v2/`` requests/s with wrk (--connections
  keep-alive connections), with the CPU seconds of each process of the
  daemon over each wrk run (how load spreads over the workers);
- pulls with curl to /dev/null: the small blob, the big blob, then the small
  blob by --parallel curls at once (aggregate); the blobs were just pushed,
  so they come from the page cache for every daemon alike;
- daemon CPU seconds per GiB pulled (all its processes);
- peak memory: the PSS sum sampled every 100 ms during the whole run, and
  the VmHWM of each process.

Distribution is Debian's 2.8, which builds its router (compiling every
route's regexp) on each request, in App.context; v3 caches it (upstream
pull request 3683): its small-request rates here are lower than v3's.

``--workers 1`` starts txregistry without the flag.  MB = 10^6 bytes.
Then a table: median (min-max over rounds) of each figure per daemon, the
ratio of medians txregistry/Distribution and the target of issue #11
(judged on the last --workers entry).  Not run by CI.
"""

import argparse
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench  # noqa: E402  (puts the repository on sys.path)
import proctree  # noqa: E402
from tests.perf.registryclient import (  # noqa: E402
    OCI_MANIFEST,
    BlobData,
    RegistryClient,
    _pathOf,
    _withQuery,
    configBlob,
    imageManifest,
)
from tests.support import procs  # noqa: E402

MiB = 1024 * 1024
GiB = 1024 * MiB
MB = 1e6
NAME = "bench/workers"
TAG = "latest"

# key, label, unit scale, target of the ratio (op, value), the key of the
# ratio's denominator at Distribution (None: the same; False: no ratio)
FIGURES = [
    ("manifestRps", "manifest GET, {c} conns (req/s)", 1, (">=", 1.5), None),
    ("v2Rps", "GET /v2/, {c} conns (req/s)", 1, (">=", 2.0), None),
    ("pullSmall", "pull {s} MiB, curl (MB/s)", MB, (">=", 1.2), None),
    ("pullBig", "pull {b} MiB, curl (MB/s)", MB, (">=", 1.2), None),
    ("pullParallel", "{p} parallel pulls of {s} MiB (MB/s, sum)", MB, (">=", 1.2), None),
    ("cpuPerGiB", "daemon CPU s per GiB pulled, all procs", 1, ("<=", 1.0), None),
    ("pushMonoSmall", "push {s} MiB, POST+PUT (MB/s)", MB, (">=", 1.0), None),
    ("pushChunkSmall", "push {s} MiB, POST+PATCHes+PUT (MB/s)", MB, (">=", 1.0), None),
    ("pushMonoBig", "push {b} MiB, POST+PUT (MB/s)", MB, (">=", 1.0), None),
    ("pushChunkBig", "push {b} MiB, POST+PATCHes+PUT (MB/s)", MB, (">=", 1.0), None),
    ("idlePss", "idle PSS, all procs (MiB) / dist RSS", MiB, ("<=", 2.0), "idleRss"),
    ("idleRss", "idle RSS, all procs summed (MiB)", MiB, None, None),
    ("peakPss", "peak PSS sum, 100 ms samples (MiB)", MiB, ("<=", 1.5), None),
    ("peakHwm", "VmHWM summed over procs (MiB)", MiB, None, None),
    ("processes", "processes seen", 1, None, False),
]


# --- the client side ---


def pushMonolithic(client, data, digest):
    """POST, then one PUT ?digest= carrying the whole blob (Content-Length),
    streamed."""
    location = client.startUpload(NAME)
    body = (piece for pieces in data.chunks() for piece in pieces)
    headers = {"Content-Type": "application/octet-stream", "Content-Length": str(data.size)}
    client.expect("PUT monolithic", client.request("PUT", _withQuery(location, "digest=" + digest), body, headers), 201)


def pushChunked(client, data, digest, patchBytes):
    """POST, PATCHes of C{patchBytes} (chunked transfer encoding, with
    Content-Range), then PUT ?digest=."""
    location = client.startUpload(NAME)
    h = hashlib.sha256()
    offset = 0
    while offset < data.size:
        end = min(data.size, offset + patchBytes)
        r = client.patchChunked(location, data.chunks(offset, end), h, (offset, end - 1))
        location = _pathOf(client.expect("PATCH", r, 202).header("location") or location)
        offset = end
    if "sha256:" + h.hexdigest() != digest:
        raise RuntimeError("sent bytes do not hash to the expected digest")
    client.finishUpload(location, digest)


def curlCommand(url):
    return ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{time_total}", url]


def curlResult(out, size):
    code, got, seconds = out.split()
    if code != "200" or int(got) != size:
        raise RuntimeError("curl: HTTP %s, %s bytes of %d" % (code, got, size))
    return float(seconds)


def pull(url, size):
    """Bytes/s of one curl GET."""
    out = subprocess.run(curlCommand(url), check=True, capture_output=True, text=True).stdout
    return size / curlResult(out, size)


def pullParallel(url, size, n):
    """Aggregate bytes/s of C{n} curl GETs at once (first start to last end)."""
    start = time.monotonic()
    curls = [subprocess.Popen(curlCommand(url), stdout=subprocess.PIPE, text=True) for _ in range(n)]
    outs = [c.communicate()[0] for c in curls]
    wall = time.monotonic() - start
    for c, out in zip(curls, outs):
        if c.returncode:
            raise RuntimeError("curl exited with %d" % (c.returncode,))
        curlResult(out, size)
    return n * size / wall


def wrkRun(daemon, path, args, requests):
    """(requests/s, {pid: CPU s}) of one wrk run."""
    before = proctree.cpuSnapshot(daemon.pid)
    load = bench.loadWithWrk(daemon.url + path, OCI_MANIFEST, requests, args.connections, args.max_seconds)
    perProcess = proctree.cpuPerProcess(before, proctree.cpuSnapshot(daemon.pid))
    if load["errors"]:
        print("  WARNING: %d of %d responses to %s were not 200" % (load["errors"], load["responses"], path))
    return load["responses"] / load["seconds"], perProcess


# --- one daemon, one round ---


def waitIdle(daemon, processes, timeout=30.0):
    """Poll until the daemon has C{processes} processes and its PSS sum moved
    by less than 1% over three samples; returns its memory then."""
    deadline = time.monotonic() + timeout
    last = []
    while True:
        mem = proctree.treeMemory(daemon.pid)
        last = (last + [proctree.pssSum(mem)])[-3:]
        steady = len(last) == 3 and max(last) - min(last) <= 0.01 * max(last)
        if (len(mem) >= processes and steady) or time.monotonic() > deadline:
            if len(mem) < processes:
                print("  WARNING: %d processes, %d expected" % (len(mem), processes))
            return mem
        time.sleep(0.1)  # polling interval


def runOnce(daemonSpec, blobs, args, logDir):
    label, start, processes = daemonSpec
    storage = tempfile.mkdtemp(prefix="bench-workers-", dir=args.dir)
    os.sync()  # do not pay for the previous daemon's writeback
    daemon = start(storage, logDir)
    r = {}
    try:
        idle = waitIdle(daemon, processes)
        r["idlePss"], r["idleRss"] = proctree.pssSum(idle), proctree.rssSum(idle)
        client = RegistryClient("127.0.0.1", daemon.port, timeout=600)
        wall, busy, mine = time.monotonic(), bench.systemBusySeconds(), bench.clientSeconds()
        daemonCPU = proctree.cpuSnapshot(daemon.pid)
        with proctree.PeakSampler(daemon.pid) as sampler:
            for key, (data, digest) in blobs.items():
                t = time.monotonic()
                if key.startswith("pushMono"):
                    pushMonolithic(client, data, digest)
                else:
                    pushChunked(client, data, digest, args.patch_mib * MiB)
                r[key] = data.size / (time.monotonic() - t)
            config = configBlob()
            configDigest = client.pushBlobMonolithic(NAME, config)
            small, smallDigest = blobs["pushMonoSmall"]
            big, bigDigest = blobs["pushMonoBig"]
            manifest = imageManifest(configDigest, len(config), [(smallDigest, small.size), (bigDigest, big.size)])
            client.putManifest(NAME, TAG, manifest)
            client.close()

            path = "/v2/%s/manifests/%s" % (NAME, TAG)
            bench.loadWithWrk(daemon.url + path, OCI_MANIFEST, args.requests // 10, args.connections, 5)  # warm-up
            r["manifestRps"], r["manifestCPU"] = wrkRun(daemon, path, args, args.requests)
            r["v2Rps"], r["v2CPU"] = wrkRun(daemon, "/v2/", args, args.requests)

            blobURL = daemon.url + "/v2/%s/blobs/" % (NAME,)
            before = proctree.cpuSnapshot(daemon.pid)
            r["pullSmall"] = pull(blobURL + smallDigest, small.size)
            r["pullBig"] = pull(blobURL + bigDigest, big.size)
            r["pullParallel"] = pullParallel(blobURL + smallDigest, small.size, args.parallel)
            pulled = (small.size * (1 + args.parallel) + big.size) / GiB
            r["cpuPerGiB"] = proctree.cpuDelta(before, proctree.cpuSnapshot(daemon.pid)) / pulled
        r["peakPss"] = sampler.peakPss
        r["peakHwm"] = sum(sampler.hwm.values())
        r["processes"] = len(sampler.hwm)
        r["samples"] = sampler.samples
        # CPU used meanwhile by processes that are neither the daemon nor this
        # script and its wrk and curl children: others disturbing the measure.
        r["wall"] = time.monotonic() - wall
        daemonCPU = proctree.cpuDelta(daemonCPU, proctree.cpuSnapshot(daemon.pid))
        r["otherCPU"] = bench.systemBusySeconds() - busy - (bench.clientSeconds() - mine) - daemonCPU
        return r
    except Exception:
        print("  %s failed; its log %s ends with:\n%s" % (label, daemon.logPath, daemon.log()[-3000:]))
        raise
    finally:
        daemon.stop()
        shutil.rmtree(storage, ignore_errors=True)


# --- output ---


def spread(values):
    fmt = (lambda v: "%d" % v) if all(v == int(v) for v in values) else bench.fmt
    return "%s (%s-%s)" % (fmt(statistics.median(values)), fmt(min(values)), fmt(max(values)))


def table(results, labels, args):
    txLabels, dist = labels[:-1], labels[-1]
    names = {"c": args.connections, "s": args.small_mib, "b": args.big_mib, "p": args.parallel}
    head = ["figure"] + labels + ["%s/dist" % (t,) for t in txLabels] + ["target (%s)" % (txLabels[-1],)]
    rows = [head]
    for key, label, scale, target, denominator in FIGURES:
        medians = {}
        row = [label.format(**names)]
        for name in labels:
            values = [r[key] / scale for r in results[name]]
            medians[name] = statistics.median(values)
            row.append(spread(values))
        if denominator is False:
            rows.append(row + [""] * len(labels))
            continue
        base = statistics.median([r[denominator or key] / scale for r in results[dist]])
        ratios = [medians[t] / base if base else None for t in txLabels]
        row += ["%.2f" % (x,) if x is not None else "-" for x in ratios]
        if target and ratios[-1] is not None:
            op, value = target
            ok = ratios[-1] >= value if op == ">=" else ratios[-1] <= value
            row.append("%s%.1fx  %s" % (op, value, "ok" if ok else "MISS"))
        else:
            row.append("")
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths)))
             for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def cpuSpread(results, labels):
    """Per-process CPU seconds over the wrk runs, for multi-process daemons:
    how the load spreads over the workers."""
    lines = []
    for name in labels:
        for i, r in enumerate(results[name]):
            for what in ("manifest", "v2"):
                cpu = r[what + "CPU"]
                if len(cpu) < 2:
                    continue
                root = next(iter(cpu))
                workers = sum(s for pid, s in cpu.items() if pid != root) or 1.0
                parts = ["master %.2f s" % (cpu[root],)] + [
                    "pid %d %.2f s (%.0f%%)" % (pid, s, 100.0 * s / workers) for pid, s in cpu.items() if pid != root
                ]
                lines.append("  %s, round %d, wrk %s: %s" % (name, i + 1, what, ", ".join(parts)))
    if not lines:
        return "No daemon ran more than one process: no spread over workers to show."
    return "\n".join(["CPU seconds per process during the wrk runs (share of the workers' total):"] + lines)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", default="1,2", help="txregistry variants, comma-separated worker counts (1: no flag)")
    p.add_argument("--quick", action="store_true", help="smoke run: small sizes, few requests")
    p.add_argument("--small-mib", type=int, default=100)
    p.add_argument("--big-mib", type=int, default=1024)
    p.add_argument("--patch-mib", type=int, default=32, help="bytes per PATCH of the chunked pushes")
    p.add_argument("--parallel", type=int, default=8, help="parallel pulls of the small blob")
    p.add_argument("--connections", type=int, default=50)
    p.add_argument("--requests", type=int, default=50000, help="requests per wrk run (bounded by --max-seconds)")
    p.add_argument("--max-seconds", type=float, default=10.0)
    p.add_argument("--dir", default="/var/tmp", help="where the storage directories are made (not tmpfs)")
    args = p.parse_args(argv)
    if args.quick:
        args.small_mib, args.big_mib, args.patch_mib = 8, 64, 4
        args.requests, args.max_seconds = min(args.requests, 3000), min(args.max_seconds, 3.0)
    for tool in ("wrk", "curl", procs.DISTRIBUTION):
        if not shutil.which(tool):
            p.error("%s is missing: apt-get install -y wrk curl docker-registry" % (tool,))
    fstype, mount = bench.filesystemOf(args.dir)
    if fstype in ("tmpfs", "ramfs"):
        p.error("%s is on %s; pass --dir on a real disk" % (args.dir, fstype))
    if shutil.disk_usage(args.dir).free < 2.5 * (args.small_mib + args.big_mib) * MiB:
        p.error("not enough free space under %s" % (args.dir,))

    daemons = []
    for n in [int(x) for x in args.workers.split(",")]:
        label = "tx-w%d" % (n,)
        while label in [d[0] for d in daemons]:
            label += "'"
        flags = ["--workers", str(n)] if n != 1 else []
        daemons.append((label, lambda s, l, f=flags: procs.startTxregistry(s, l, args=f), n + 1 if n > 1 else 1))
    daemons.append(("dist", procs.startDistribution, 1))
    labels = [d[0] for d in daemons]

    print("preparing the blobs ...", flush=True)
    blobs = {}
    for i, (key, mib) in enumerate([("pushMonoSmall", args.small_mib), ("pushChunkSmall", args.small_mib),
                                    ("pushMonoBig", args.big_mib), ("pushChunkBig", args.big_mib)]):
        data = BlobData(mib * MiB, seed=100 + i)
        blobs[key] = (data, data.digest())
    logDir = tempfile.mkdtemp(prefix="bench-workers-logs-", dir=args.dir)
    print("%d round(s) of %s; blobs %d and %d MiB; storage under %s (%s on %s); %d CPUs"
          % (args.rounds, ", ".join(labels), args.small_mib, args.big_mib, args.dir, fstype, mount, os.cpu_count()))
    results = {name: [] for name in labels}
    for rnd in range(args.rounds):
        shift = rnd % len(daemons)
        for spec in daemons[shift:] + daemons[:shift]:
            print("round %d: %s ..." % (rnd + 1, spec[0]), flush=True)
            results[spec[0]].append(runOnce(spec, blobs, args, logDir))
    print()
    print(table(results, labels, args))
    print()
    print(cpuSpread(results, labels))
    runs = [r for name in labels for r in results[name]]
    other, wall = sum(r["otherCPU"] for r in runs), sum(r["wall"] for r in runs)
    print("Other processes used %.0f CPU s over the %.0f s of the runs (%.0f%% of one core)%s; load average now %s."
          % (other, wall, 100 * other / wall, ": the machine was NOT quiet" if other > 0.1 * wall else "",
             " ".join(open("/proc/loadavg").read().split()[:3])))
    shutil.rmtree(logDir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
