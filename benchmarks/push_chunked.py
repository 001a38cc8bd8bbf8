"""Chunked and monolithic pushes only, txregistry trees against
Distribution, interleaved round by round (the push figures of
benchmarks/workers.py, without its pulls and wrk runs).

    .venv/bin/python benchmarks/push_chunked.py [--rounds 5] [--tree base=/path/to/other/checkout]

Each C{--tree LABEL=PATH} is a txregistry source tree run as that label
(PYTHONPATH and working directory set to it); this checkout is always
run as "this".  Every daemon runs once per round on fresh storage under
--dir, one at a time, the order rotating from round to round; an
C{os.sync()} before each so that nobody pays for the previous one's
writeback.  Prints median (min-max) MB/s per figure and the ratio of
medians to Distribution.  MB = 10^6 bytes.  Not run by CI.
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import workers  # noqa: E402  (puts the repository on sys.path)
from tests.perf.registryclient import BlobData, RegistryClient  # noqa: E402
from tests.support import procs  # noqa: E402

MiB = 1024 * 1024
MB = 1e6


def startTree(tree, flags):
    def start(storage, logDir):
        port = procs.freePort()
        argv = [os.path.join(procs.BIN, "twistd"), "-n", "--pidfile=", "txregistry", "--port",
                "tcp:%d:interface=127.0.0.1" % (port,), "--storage-path", storage] + flags
        env = procs.twistdEnv()
        env["PYTHONPATH"] = tree
        return procs.Daemon(argv, port, os.path.join(logDir, "txregistry-%d.log" % (port,)), env=env, cwd=tree)

    return start


def runOnce(start, blobs, args, logDir):
    storage = tempfile.mkdtemp(prefix="bench-push-", dir=args.dir)
    os.sync()
    daemon = start(storage, logDir)
    r = {}
    try:
        client = RegistryClient("127.0.0.1", daemon.port, timeout=600)
        for key, (data, digest) in blobs.items():
            t = time.monotonic()
            if key.startswith("mono"):
                workers.pushMonolithic(client, data, digest)
            else:
                workers.pushChunked(client, data, digest, args.patch_mib * MiB)
            r[key] = data.size / (time.monotonic() - t) / MB
        client.close()
        return r
    finally:
        daemon.stop()
        shutil.rmtree(storage, ignore_errors=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--workers", type=int, default=2, help="worker processes of each txregistry (1: no flag)")
    p.add_argument("--tree", action="append", default=[], help="LABEL=PATH of another txregistry tree")
    p.add_argument("--small-mib", type=int, default=100)
    p.add_argument("--big-mib", type=int, default=1024)
    p.add_argument("--patch-mib", type=int, default=32)
    p.add_argument("--mono", action="store_true", help="monolithic pushes too")
    p.add_argument("--no-dist", action="store_true")
    p.add_argument("--dir", default="/var/tmp")
    args = p.parse_args(argv)
    flags = ["--workers", str(args.workers)] if args.workers != 1 else []
    daemons = [("this", startTree(procs.REPO, flags))]
    for spec in args.tree:
        label, _, path = spec.partition("=")
        daemons.append((label, startTree(os.path.abspath(path), flags)))
    if not args.no_dist:
        daemons.append(("dist", procs.startDistribution))
    kinds = [("chunkSmall", args.small_mib), ("chunkBig", args.big_mib)]
    if args.mono:
        kinds += [("monoSmall", args.small_mib), ("monoBig", args.big_mib)]
    blobs = {}
    for i, (key, mib) in enumerate(kinds):
        data = BlobData(mib * MiB, seed=200 + i)
        blobs[key] = (data, data.digest())
    logDir = tempfile.mkdtemp(prefix="bench-push-logs-", dir=args.dir)
    results = {label: [] for label, _ in daemons}
    for rnd in range(args.rounds):
        shift = rnd % len(daemons)
        for label, start in daemons[shift:] + daemons[:shift]:
            r = runOnce(start, blobs, args, logDir)
            results[label].append(r)
            print("round %d %-6s %s" % (rnd + 1, label, "  ".join("%s %.0f" % kv for kv in r.items())), flush=True)
    print()
    base = results.get("dist")
    for key, mib in kinds:
        cells = []
        for label, _ in daemons:
            values = [r[key] for r in results[label]]
            med = statistics.median(values)
            cell = "%s %.0f (%.0f-%.0f)" % (label, med, min(values), max(values))
            if base and label != "dist":
                cell += " x%.2f" % (med / statistics.median([r[key] for r in base]),)
            cells.append(cell)
        print("%-10s %4d MiB: %s" % (key, mib, " | ".join(cells)))
    shutil.rmtree(logDir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
