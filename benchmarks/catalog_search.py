"""Latency of /v2/_catalog?n=100 and /v1/search with many repositories.

    .venv/bin/python benchmarks/catalog_search.py [--repositories 100000] [--requests 200]

Fills the embedded SQLite search index of a fresh storage directory with
N repositories (through txregistry's own index code, so the daemon does not
spend minutes rebuilding it from storage at start), starts txregistry under
twistd on loopback, and prints the median and 95th percentile latency of
catalog pages and of searches (several terms: common, rare, absent, short).
Distribution has no search; its catalog walks storage."""

import argparse
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

from tests.support import procs  # noqa: E402

WORDS = ("alpha beta gamma delta web api db cache proxy worker ubuntu debian alpine node python go rust java "
         "redis nginx postgres kafka spark flink grafana").split()


def fill(storage, count):
    """Write the rows with the index's own (blocking) code: no reactor here."""
    from txregistry.search.index import SearchIndex

    rng = random.Random(42)
    names = ["team%d/%s-%s%d" % (i % 700, rng.choice(WORDS), rng.choice(WORDS), i) for i in range(count)]
    db = os.path.join(storage, "txregistry", "search.db")
    os.makedirs(os.path.dirname(db), exist_ok=True)
    index = SearchIndex("sqlite:///" + db, None, None)
    index._ensureSchema()
    for i in range(0, count, 10000):
        index._upsert(
            [(n, "the %s service for %s" % (rng.choice(WORDS), rng.choice(WORDS)), float(j))
             for j, n in enumerate(names[i:i + 10000], i)]
        )
    index.engine.dispose()


def timeit(url, requests):
    samples = []
    for _ in range(requests):
        t = time.perf_counter()
        with urllib.request.urlopen(url) as r:
            r.read()
        samples.append((time.perf_counter() - t) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repositories", type=int, default=100000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="txregistry-bench-", dir="/var/tmp")
    try:
        storage = os.path.join(work, "data")
        t = time.time()
        fill(storage, args.repositories)
        print("filled the index with %d repositories in %.1f s" % (args.repositories, time.time() - t))
        daemon = procs.startTxregistry(storage, work, env={"LOGLEVEL": "warn"})
        try:
            rows = [
                ("catalog first page (n=100)", "/v2/_catalog?n=100"),
                ("catalog deep page (n=100)", "/v2/_catalog?n=100&last=team5"),
                ("search 'ubuntu' (common)", "/v1/search?q=ubuntu"),
                ("search 'team42' (rare)", "/v1/search?q=team42"),
                ("search 'web-api'", "/v1/search?q=web-api"),
                ("search 'zzzz' (no match)", "/v1/search?q=zzzz"),
                ("search 'go' (short: scan)", "/v1/search?q=go"),
            ]
            print("%-32s %10s %10s" % ("request", "median ms", "p95 ms"))
            medians = []
            for label, path in rows:
                med, p95 = timeit(daemon.url + path, args.requests)
                medians.append(med)
                print("%-32s %10.2f %10.2f" % (label, med, p95))
            print("median over all requests above: %.2f ms (target: under 50 ms)" % statistics.median(medians))
        finally:
            daemon.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
