"""txregistry against Distribution, side by side on loopback.

    /tmp/venv/bin/python benchmarks/bench.py [--size-mib 1024] [--requests 2000]

For each daemon, started alone on its own fresh storage directory (same
filesystem for both, not tmpfs), one after the other so that they never share
the CPUs:

- push throughput of one blob of --size-mib, sent as docker sends it: POST to
  start an upload, ONE PATCH with ``Transfer-Encoding: chunked`` and no
  Content-Length, streamed from a generator in 1 MiB chunks and hashed by the
  client as it goes, then ``PUT ?digest=``;
- pull throughput of that blob (GET, streamed, hashed, digest verified);
- requests/s of manifest GET (a small OCI manifest referencing a config
  blob and the big blob), over several concurrent keep-alive connections,
  bounded in count (--rounds of --requests) and time (--max-seconds per
  round), the median round reported: with wrk if installed, else a small
  thread pool of http.client connections;
- the daemon's peak RSS (VmHWM) against its idle RSS, measured before the push;
- bytes written to disk per uploaded byte (write_bytes of /proc/<pid>/io over
  the push, after a sync).

Then the ratio txregistry/Distribution of each figure.  Not run by CI.
"""

import argparse
import http.client
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from tests.perf.registryclient import (  # noqa: E402
    OCI_MANIFEST,
    BlobData,
    RegistryClient,
    configBlob,
    imageManifest,
)
from tests.support import procs  # noqa: E402

MiB = 1024 * 1024
NAME = "bench/image"
TAG = "latest"
KINDS = [("txregistry", procs.startTxregistry), ("distribution", procs.startDistribution)]


def filesystemOf(path):
    """(fstype, mount point) of C{path}, from /proc/self/mounts."""
    path = os.path.realpath(path)
    best = ("?", "")
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            mount, fstype = fields[1], fields[2]
            if (path == mount or path.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best[1]):
                best = (fstype, mount)
    return best


def cpuSeconds(pid):
    """User + system CPU seconds of a process so far."""
    with open("/proc/%d/stat" % (pid,)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def systemBusySeconds():
    """CPU seconds spent by the whole machine so far, all CPUs, not idle."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def clientSeconds():
    """CPU seconds of this process and its waited-for children (wrk)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class Phase:
    """Wall time, client CPU, daemon CPU and the CPU used by everything else
    on the machine (other processes disturbing the measure) over a block."""

    def __init__(self, pid):
        self.pid = pid

    def __enter__(self):
        self._wall = time.monotonic()
        self._client = clientSeconds()
        self._daemon = cpuSeconds(self.pid)
        self._system = systemBusySeconds()
        return self

    def __exit__(self, *exc):
        self.wall = time.monotonic() - self._wall
        self.clientCPU = clientSeconds() - self._client
        self.daemonCPU = cpuSeconds(self.pid) - self._daemon
        self.otherCPU = max(0.0, systemBusySeconds() - self._system - self.clientCPU - self.daemonCPU)
        return False


# --- manifest GET load ---


def loadWithWrk(url, accept, requests, connections, maxSeconds):
    # One wrk thread drives every connection: it has CPU to spare at these
    # rates, and leaves the other core to the daemon.
    threads = 1
    perThread = max(1, requests // threads)
    doneDir = tempfile.mkdtemp(prefix="bench-wrk-")
    env = dict(os.environ, WRK_PER_THREAD=str(perThread), WRK_ACCEPT=accept, WRK_DONE_DIR=doneDir)
    proc = subprocess.Popen(
        [
            "wrk",
            "-t%d" % (threads,),
            "-c%d" % (connections,),
            "-d%ds" % (max(1, int(maxSeconds)),),
            "-s",
            os.path.join(HERE, "manifest_get.lua"),
            url,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        # wrk sleeps for all of -d even when every thread is done: end it
        # (SIGINT: it stops, prints and runs done()) once they all are.
        deadline = time.monotonic() + maxSeconds + 30
        while proc.poll() is None and len(os.listdir(doneDir)) < threads and time.monotonic() < deadline:
            time.sleep(0.01)  # polling interval
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        shutil.rmtree(doneDir, ignore_errors=True)
    for line in stdout.splitlines():
        if line.startswith("RESULT "):
            _, n, bad, seconds, latency = line.split()
            return {
                "tool": "wrk -t%d -c%d" % (threads, connections),
                "responses": int(n),
                "errors": int(bad),
                "seconds": float(seconds),
                "latencyMs": float(latency) / 1000.0,
            }
    raise RuntimeError("wrk gave no result:\n%s\n%s" % (stdout, stderr))


def loadWithThreads(host, port, path, accept, requests, connections, maxSeconds):
    """C{connections} threads, one keep-alive http.client connection each,
    sharing a budget of C{requests} GETs and C{maxSeconds}."""
    lock = threading.Lock()
    state = {"left": requests, "n": 0, "bad": 0, "latency": 0.0}
    deadline = time.monotonic() + maxSeconds

    def worker():
        conn = http.client.HTTPConnection(host, port, timeout=30)
        n = bad = 0
        latency = 0.0
        try:
            while time.monotonic() < deadline:
                with lock:
                    if state["left"] <= 0:
                        break
                    state["left"] -= 1
                t = time.perf_counter()
                conn.request("GET", path, headers={"Accept": accept})
                resp = conn.getresponse()
                resp.read()
                latency += time.perf_counter() - t
                n += 1
                if resp.status != 200:
                    bad += 1
                if resp.will_close:
                    conn.close()
        finally:
            conn.close()
            with lock:
                state["n"] += n
                state["bad"] += bad
                state["latency"] += latency

    workers = [threading.Thread(target=worker) for _ in range(connections)]
    start = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    seconds = time.monotonic() - start
    return {
        "tool": "http.client x%d threads" % (connections,),
        "responses": state["n"],
        "errors": state["bad"],
        "seconds": seconds,
        "latencyMs": 1000.0 * state["latency"] / max(1, state["n"]),
    }


def manifestLoad(daemon, path, args, requests):
    if shutil.which("wrk") and not args.no_wrk:
        return loadWithWrk(daemon.url + path, OCI_MANIFEST, requests, args.connections, args.max_seconds)
    return loadWithThreads("127.0.0.1", daemon.port, path, OCI_MANIFEST, requests, args.connections, args.max_seconds)


# --- one daemon ---


def measure(kind, start, args, logDir):
    size = args.size_mib * MiB
    storage = tempfile.mkdtemp(prefix="bench-%s-" % (kind,), dir=args.dir)
    os.sync()  # do not pay for the previous daemon's writeback
    daemon = start(storage, logDir)
    r = {"kind": kind, "storage": storage, "log": daemon.logPath}
    try:
        pid = daemon.pid
        idle = procs.processStats(pid)
        r["idleRSS"] = idle["VmRSS"]
        r["startHWM"] = idle["VmHWM"]
        c = RegistryClient("127.0.0.1", daemon.port, timeout=600)
        data = BlobData(size, seed=1)

        with Phase(pid) as push:
            digest = c.pushBlobChunked(NAME, data)
        os.sync()
        pushed = procs.processStats(pid)
        r["push"] = push
        r["pushMiBs"] = size / push.wall / MiB
        r["written"] = pushed["write_bytes"] - idle["write_bytes"]
        r["writtenPerByte"] = r["written"] / size
        r["hwmPush"] = pushed["VmHWM"]

        with Phase(pid) as pull:
            got = c.pullBlob(NAME, digest)
        if got != (size, digest):
            raise RuntimeError("%s: pulled %r, pushed %r" % (kind, got, (size, digest)))
        pulled = procs.processStats(pid)
        r["pull"] = pull
        r["pullMiBs"] = size / pull.wall / MiB
        r["hwmPull"] = pulled["VmHWM"]

        config = configBlob()
        configDigest = c.pushBlobMonolithic(NAME, config)
        manifest = imageManifest(configDigest, len(config), [(digest, size)])
        c.putManifest(NAME, TAG, manifest)
        check = c.getManifest(NAME, TAG)
        if check.status != 200 or check.body != manifest:
            raise RuntimeError("%s: manifest GET gave %s %r" % (kind, check.status, check.body[:200]))
        c.close()
        path = "/v2/%s/manifests/%s" % (NAME, TAG)
        warm = min(200, max(1, args.requests // 10))
        manifestLoad(daemon, path, args, warm)
        rounds = []
        for _ in range(args.rounds):
            with Phase(pid) as phase:
                load = manifestLoad(daemon, path, args, args.requests)
            load["daemonCPU"] = phase.daemonCPU
            load["otherCPU"] = phase.otherCPU
            load["rps"] = load["responses"] / load["seconds"] if load["seconds"] > 0 else 0.0
            rounds.append(load)
        r["rounds"] = rounds
        r["load"] = load = sorted(rounds, key=lambda x: x["rps"])[len(rounds) // 2]
        r["rps"] = load["rps"]
        r["getCPU"] = 1000.0 * sum(x["daemonCPU"] for x in rounds) / max(1, sum(x["responses"] for x in rounds))
        end = procs.processStats(pid)
        r["hwmEnd"] = end["VmHWM"]
        r["rssEnd"] = end["VmRSS"]
        r["digest"] = digest
        return r
    finally:
        daemon.stop()
        if not args.keep:
            shutil.rmtree(storage, ignore_errors=True)


# --- output ---


def fmt(value, unit=""):
    if value is None:
        return "-"
    if abs(value) >= 100:
        s = "%.0f" % (value,)
    elif abs(value) >= 10:
        s = "%.1f" % (value,)
    else:
        s = "%.3f" % (value,)
    return s + unit


def ratio(a, b):
    if a is None or b is None or b == 0:
        return "-"
    return "%.2f" % (a / b,)


def table(results, args):
    tx, dist = results.get("txregistry"), results.get("distribution")

    def get(r, key, scale=1.0):
        if r is None:
            return None
        v = r[key]
        return v / scale if v is not None else None

    rows = [
        ("push throughput, chunked PATCH (MiB/s)", "pushMiBs", 1.0, "higher is better"),
        ("pull throughput, GET (MiB/s)", "pullMiBs", 1.0, "higher is better"),
        ("manifest GET (requests/s, median round)", "rps", 1.0, "higher is better"),
        ("idle RSS before push (MiB)", "idleRSS", MiB, ""),
        ("peak RSS (VmHWM) after push (MiB)", "hwmPush", MiB, ""),
        ("peak RSS (VmHWM) after pull (MiB)", "hwmPull", MiB, ""),
        ("peak RSS (VmHWM) at end (MiB)", "hwmEnd", MiB, ""),
        ("peak - idle RSS, push+pull (MiB)", "growth", MiB, "lower is better"),
        ("peak - idle RSS, at end (MiB)", "growthEnd", MiB, "lower is better"),
        ("disk bytes written / uploaded byte", "writtenPerByte", 1.0, "lower is better"),
        ("daemon CPU s per GiB pushed", "pushCPU", 1.0, "lower is better"),
        ("daemon CPU s per GiB pulled", "pullCPU", 1.0, "lower is better"),
        ("daemon CPU ms per manifest GET", "getCPU", 1.0, "lower is better"),
    ]
    for r in (tx, dist):
        if r is None:
            continue
        r["growth"] = r["hwmPull"] - r["idleRSS"]
        r["growthEnd"] = r["hwmEnd"] - r["idleRSS"]
        gib = args.size_mib / 1024.0
        r["pushCPU"] = r["push"].daemonCPU / gib
        r["pullCPU"] = r["pull"].daemonCPU / gib
    width = max(len(label) for label, _, _, _ in rows)
    head = "%-*s  %12s  %12s  %10s  %s" % (width, "figure", "txregistry", "distribution", "tx/dist", "")
    lines = [head, "-" * len(head)]
    for label, key, scale, note in rows:
        a, b = get(tx, key, scale), get(dist, key, scale)
        lines.append("%-*s  %12s  %12s  %10s  %s" % (width, label, fmt(a), fmt(b), ratio(a, b), note))
    return "\n".join(lines)


def details(r, args):
    load = r["load"]
    out = [
        "%s:" % (r["kind"],),
        "  push %.2f s wall, client CPU %.2f s (%.0f%% of wall), daemon CPU %.2f s, other processes %.2f s; "
        "%d bytes written"
        % (
            r["push"].wall,
            r["push"].clientCPU,
            100 * r["push"].clientCPU / r["push"].wall,
            r["push"].daemonCPU,
            r["push"].otherCPU,
            r["written"],
        ),
        "  pull %.2f s wall, client CPU %.2f s (%.0f%% of wall), daemon CPU %.2f s, other processes %.2f s"
        % (
            r["pull"].wall,
            r["pull"].clientCPU,
            100 * r["pull"].clientCPU / r["pull"].wall,
            r["pull"].daemonCPU,
            r["pull"].otherCPU,
        ),
        "  manifest GET with %s, %d round(s): %s"
        % (
            load["tool"],
            len(r["rounds"]),
            "; ".join(
                "%d responses (%d not 200) in %.3f s = %.0f/s, mean latency %.2f ms, other processes %.2f s CPU"
                % (x["responses"], x["errors"], x["seconds"], x["rps"], x["latencyMs"], x["otherCPU"])
                for x in r["rounds"]
            ),
        ),
        "  VmHWM right after start %.1f MiB (idle VmRSS %.1f MiB); VmRSS at end %.1f MiB"
        % (r["startHWM"] / MiB, r["idleRSS"] / MiB, r["rssEnd"] / MiB),
        "  log %s" % (r["log"],),
    ]
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size-mib", type=int, default=1024, help="size of the pushed blob (MiB)")
    p.add_argument("--requests", type=int, default=2000, help="manifest GETs per round")
    p.add_argument("--rounds", type=int, default=3, help="rounds of manifest GETs (the median is reported)")
    p.add_argument("--connections", type=int, default=8, help="concurrent keep-alive connections for manifest GETs")
    p.add_argument("--max-seconds", type=float, default=30.0, help="time bound of the manifest GET run")
    p.add_argument("--dir", default="/var/tmp", help="where the storage directories are made (not tmpfs)")
    p.add_argument("--only", choices=[k for k, _ in KINDS], help="measure one daemon only")
    p.add_argument("--no-wrk", action="store_true", help="use the http.client thread pool even if wrk is installed")
    p.add_argument("--keep", action="store_true", help="keep the storage directories and logs")
    args = p.parse_args(argv)

    fstype, mount = filesystemOf(args.dir)
    if fstype in ("tmpfs", "ramfs"):
        p.error("%s is on %s: disk figures would be meaningless; pass --dir on a real disk" % (args.dir, fstype))
    logDir = tempfile.mkdtemp(prefix="bench-logs-", dir=args.dir)
    print(
        "blob %d MiB, %d x %d manifest GETs over %d connections, storage under %s (%s on %s), %d CPUs"
        % (args.size_mib, args.rounds, args.requests, args.connections, args.dir, fstype, mount, os.cpu_count())
    )
    results = {}
    for kind, start in KINDS:
        if args.only and kind != args.only:
            continue
        print("measuring %s ..." % (kind,), flush=True)
        results[kind] = measure(kind, start, args, logDir)
    digests = {r["digest"] for r in results.values()}
    if len(digests) > 1:
        raise RuntimeError("the daemons were sent different blobs: %r" % (digests,))
    print()
    print(table(results, args))
    print()
    for r in results.values():
        print(details(r, args))
        if any(x["errors"] for x in r["rounds"]):
            print("  WARNING: some manifest GETs did not answer 200; see the log")
        phases = [r["push"], r["pull"]]
        other = sum(p.otherCPU for p in phases) + sum(x["otherCPU"] for x in r["rounds"])
        wall = sum(p.wall for p in phases) + sum(x["seconds"] for x in r["rounds"])
        if other > 0.1 * wall:
            print(
                "  WARNING: other processes used %.1f CPU s during %.1f s of measures: the machine was not quiet"
                % (other, wall)
            )
    print(
        "\nA client CPU near 100%% of wall means the client, not the daemon, bounds that throughput.  "
        "Load average now: %s" % (" ".join(open("/proc/loadavg").read().split()[:3]),)
    )
    if not args.keep:
        shutil.rmtree(logDir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
