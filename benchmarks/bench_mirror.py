"""txregistry as a pull-through mirror against Distribution's proxy mode
(``proxy: remoteurl:``), side by side on loopback.

    .venv/bin/python benchmarks/bench_mirror.py [--layers 4] [--layer-mib 64] [--clients 1]

One upstream (Distribution, anonymous) holds an image of --layers layers of
--layer-mib each.  For each mirror, started alone on fresh storage (the
other one stopped):

- cold pull: --clients clients at once pull the manifest, then every blob
  (three at a time, as docker does), streamed and hashed, digests verified;
  through the mirror, which has nothing yet;
- warm pull: the same again, everything now cached;
- the upstream's blob GETs during the cold pull (from its access log): one
  per layer is a single flight, more means the same layer came several
  times;
- the mirror's CPU seconds and peak RSS (VmHWM) over both pulls.

Not run by CI.
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, REPO)

from tests.perf.registryclient import (  # noqa: E402
    BlobData,
    RegistryClient,
    configBlob,
    imageManifest,
)
from tests.support import procs  # noqa: E402

MiB = 1024 * 1024
NAME = "library/bench"
TAG = "latest"


def startUpstream(work):
    port = procs.freePort()
    path = os.path.join(work, "upstream.yml")
    with open(path, "w") as f:
        f.write("version: 0.1\nlog:\n  level: info\n  formatter: json\n"
                "storage:\n  filesystem:\n    rootdirectory: %s\n"
                "http:\n  addr: 127.0.0.1:%d\n" % (os.path.join(work, "upstream"), port))
    return procs.Daemon([procs.DISTRIBUTION, "serve", path], port, os.path.join(work, "upstream.log"))


def startDistributionProxy(work, upstream):
    port = procs.freePort()
    path = os.path.join(work, "proxy.yml")
    with open(path, "w") as f:
        f.write("version: 0.1\nlog:\n  level: warn\n"
                "storage:\n  filesystem:\n    rootdirectory: %s\n"
                "http:\n  addr: 127.0.0.1:%d\n"
                "proxy:\n  remoteurl: %s\n" % (os.path.join(work, "proxy"), port, upstream.url))
    return procs.Daemon([procs.DISTRIBUTION, "serve", path], port, os.path.join(work, "proxy.log"))


def startTxregistryMirror(work, upstream):
    path = os.path.join(work, "txregistry.yml")
    with open(path, "w") as f:
        json.dump({"dev": {"search_backend": "none", "loglevel": "warn",
                           "mirrors": {"upstreams": [{"name": "up", "url": upstream.url, "default": True}]}}}, f)
    storage = os.path.join(work, "txregistry")
    os.makedirs(storage)
    return procs.startTxregistry(storage, work, env={"DOCKER_REGISTRY_CONFIG": path, "LOGLEVEL": "warn"})


def seed(upstream, layers, layerMiB):
    client = RegistryClient("127.0.0.1", upstream.port)
    config = configBlob()
    configDigest = client.pushBlobMonolithic(NAME, config)
    described = []
    for i in range(layers):
        data = BlobData(layerMiB * MiB, seed=100 + i)
        described.append((client.pushBlobChunked(NAME, data), data.size))
    client.putManifest(NAME, TAG, imageManifest(configDigest, len(config), described))
    client.close()
    return [configDigest] + [d for d, _ in described]


def pull(port, name, blobs):
    client = RegistryClient("127.0.0.1", port, timeout=600)
    r = client.getManifest(name, TAG)
    if r.status != 200:
        raise RuntimeError("manifest GET answered %d: %r" % (r.status, r.body[:300]))
    client.close()

    def one(digest):
        c = RegistryClient("127.0.0.1", port, timeout=600)
        size, got = c.pullBlob(name, digest)
        c.close()
        if got != digest:
            raise RuntimeError("blob %s came as %s" % (digest, got))
        return size

    with ThreadPoolExecutor(3) as pool:
        return sum(pool.map(one, blobs))


def pulls(port, name, blobs, clients):
    start = time.monotonic()
    errors = []
    sizes = []

    def run():
        try:
            sizes.append(pull(port, name, blobs))
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return time.monotonic() - start, sum(sizes)


def upstreamBlobGETs(upstream):
    n = 0
    for line in upstream.log().splitlines():
        try:
            e = json.loads(line)
        except ValueError:
            continue
        if e.get("http.request.method") == "GET" and "/blobs/" in e.get("http.request.uri", "") \
                and "response completed" in e.get("msg", ""):
            n += 1
    return n


def measure(kind, start, work, upstream, blobs, clients):
    os.sync()  # (what was written before is not flushed during the pull: whoever ran first would pay for it)
    daemon = start(work, upstream)
    name = NAME if kind == "distribution proxy" else "bench"  # (library/ added by the default upstream)
    try:
        cpu0 = procs.processStats(daemon.pid)
        t0 = _cpu(daemon.pid)
        before = upstreamBlobGETs(upstream)
        cold, total = pulls(daemon.port, name, blobs, clients)
        fetched = upstreamBlobGETs(upstream) - before
        warm, _ = pulls(daemon.port, name, blobs, clients)
        stats = procs.processStats(daemon.pid)
        return {"kind": kind, "cold": cold, "warm": warm, "bytes": total, "upstreamGETs": fetched,
                "cpu": _cpu(daemon.pid) - t0, "idleRSS": cpu0["VmRSS"], "peakRSS": stats["VmHWM"]}
    finally:
        daemon.stop()


def _cpu(pid):
    with open("/proc/%d/stat" % (pid,)) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--layer-mib", type=int, default=64)
    p.add_argument("--clients", type=int, default=1, help="clients pulling at once")
    p.add_argument("--work", default=None, help="directory for storage (default: a temporary one, not tmpfs)")
    args = p.parse_args(argv)
    work = tempfile.mkdtemp(prefix="bench-mirror-", dir=args.work or os.path.expanduser("~"))
    try:
        upstream = startUpstream(work)
        try:
            blobs = seed(upstream, args.layers, args.layer_mib)
            results = []
            for kind, start in (("txregistry", startTxregistryMirror), ("distribution proxy", startDistributionProxy)):
                sub = os.path.join(work, kind.replace(" ", "-"))
                os.makedirs(sub)
                results.append(measure(kind, start, sub, upstream, blobs, args.clients))
        finally:
            upstream.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("image: %d layers x %d MiB; %d client(s) at once; loopback" % (args.layers, args.layer_mib, args.clients))
    print("%-20s %12s %12s %12s %12s %10s %10s %10s" % (
        "mirror", "cold s", "cold MiB/s", "warm s", "warm MiB/s", "upstr GETs", "CPU s", "peak RSS"))
    for r in results:
        print("%-20s %12.2f %12.0f %12.2f %12.0f %10d %10.1f %9.0fM" % (
            r["kind"], r["cold"], r["bytes"] / MiB / r["cold"], r["warm"], r["bytes"] / MiB / r["warm"],
            r["upstreamGETs"], r["cpu"], r["peakRSS"] / MiB))
    print("(upstream blob GETs during the cold pull: %d blobs x 1 is a single flight per blob)"
          % (args.layers + 1,))


if __name__ == "__main__":
    main()
