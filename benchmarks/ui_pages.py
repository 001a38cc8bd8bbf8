"""Server time of the web pages with 10,000 repositories and a repository
of 5,000 tags.

    .venv/bin/python benchmarks/ui_pages.py [--repositories 10000] [--tags 5000] [--requests 30]

Writes the storage of a fresh directory directly in Distribution's layout
(through txregistry's own layout module, blocking code: no reactor here)
-- N repositories of one image each, and one repository with T tags, each
naming its own manifest, pushed at different times -- fills the SQLite
search index with the index's own code (so the daemon does not rebuild it
from storage at start), starts txregistry under twistd on loopback, and
prints for each page the time of its first request (nothing cached yet)
and the median and 95th percentile of the following ones, measured by a
client on loopback (so server time plus a little).  Target: under 200 ms
per page.  Not run by CI."""

import argparse
import hashlib
import json
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
from txregistry import digest as digests  # noqa: E402
from txregistry.registry import layout  # noqa: E402

WORDS = ("alpha beta gamma delta web api db cache proxy worker ubuntu debian alpine node python go rust java "
         "redis nginx postgres kafka spark flink grafana").split()
BIG = "big/repository"
TARGET_MS = 200.0


class Writer:
    def __init__(self, root):
        self.root = root

    def put(self, path, data, mtime=None):
        local = self.root + path
        os.makedirs(os.path.dirname(local), exist_ok=True)
        with open(local, "wb") as f:
            f.write(data)
        if mtime is not None:
            os.utime(local, (mtime, mtime))

    def blob(self, data):
        d = digests.parse("sha256:" + hashlib.sha256(data).hexdigest())
        if not os.path.exists(self.root + layout.blobData(d)):
            self.put(layout.blobData(d), data)
        return d

    def image(self, name, tags, rng, when):
        """An image in C{name} under each of C{tags}; returns its digest."""
        config = json.dumps({"architecture": "amd64", "os": "linux", "created": "2024-01-01T00:00:00Z",
                             "config": {"Cmd": ["/bin/sh"], "Labels": {"n": str(rng.random())}}}).encode()
        layer = b"layer of %s" % (name.encode(),) + os.urandom(64)
        cd, ld = self.blob(config), self.blob(layer)
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld,
                        "size": len(layer) * 1000}],
            "annotations": {"org.opencontainers.image.description": "the %s service" % (rng.choice(WORDS),)},
        }).encode()
        md = self.blob(manifest)
        for d in (cd, ld):
            self.put(layout.layerLink(name, d), d.encode())
        self.put(layout.revisionLink(name, md), md.encode())
        for i, tag in enumerate(tags):
            self.put(layout.tagCurrentLink(name, tag), md.encode(), mtime=when + i)
            self.put(layout.tagIndexLink(name, tag, md), md.encode())
        return md


def fill(storage, repositories, tags):
    from txregistry.search.index import SearchIndex

    rng = random.Random(7)
    w = Writer(storage)
    now = time.time()
    names = ["team%d/%s-%s%d" % (i % 300, rng.choice(WORDS), rng.choice(WORDS), i) for i in range(repositories)]
    for i, name in enumerate(names):
        w.image(name, ["latest"], rng, now - 86400 * 30 + i)
    digest = None
    for i in range(tags):
        digest = w.image(BIG, ["v%d.%d" % (i // 100, i % 100)], rng, now - tags + i)
    db = os.path.join(storage, "txregistry", "search.db")
    os.makedirs(os.path.dirname(db), exist_ok=True)
    index = SearchIndex("sqlite:///" + db, None, None)
    index._ensureSchema()
    rows = [(n, "the %s service" % (rng.choice(WORDS),), now - i) for i, n in enumerate(names + [BIG])]
    for i in range(0, len(rows), 5000):
        index._upsert(rows[i:i + 5000])
    index.engine.dispose()
    return names, digest


def timeit(url, requests):
    samples = []
    for _ in range(requests + 1):
        t = time.perf_counter()
        with urllib.request.urlopen(url) as r:
            r.read()
            assert r.status == 200, (url, r.status)
        samples.append((time.perf_counter() - t) * 1000)
    first, rest = samples[0], sorted(samples[1:])
    return first, statistics.median(rest), rest[max(0, int(len(rest) * 0.95) - 1)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repositories", type=int, default=10000)
    parser.add_argument("--tags", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=30)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="txregistry-bench-ui-", dir="/var/tmp")
    try:
        storage = os.path.join(work, "data")
        t = time.time()
        names, digest = fill(storage, args.repositories, args.tags)
        print("wrote %d repositories and one of %d tags in %.1f s" % (args.repositories, args.tags, time.time() - t))
        daemon = procs.startTxregistry(storage, work, env={"LOGLEVEL": "warn"})
        try:
            middle = sorted(names)[len(names) // 2]
            # (the big repository first: its first request is then one
            # that finds nothing of it read yet)
            rows = [
                ("repository of %d tags, by name, page 30" % (args.tags,), "/r/%s?sort=name&page=30" % (BIG,)),
                ("  ... by push time", "/r/%s" % (BIG,)),
                ("  ... by push time, page 60", "/r/%s?page=60" % (BIG,)),
                ("home, first page", "/"),
                ("home, a middle page", "/?last=" + middle),
                ("search 'ubuntu'", "/?q=ubuntu"),
                ("search 'team42', page 2", "/?q=team42&page=2"),
                ("a repository of one tag", "/r/%s" % (names[0],)),
                ("image page", "/r/%s/-/manifest/%s" % (BIG, digest)),
                ("search as you type 'ngi'", "/-/suggest?q=ngi"),
            ]
            print("%-44s %10s %10s %10s" % ("page", "first ms", "median ms", "p95 ms"))
            worst = 0.0
            for label, path in rows:
                first, med, p95 = timeit(daemon.url + path, args.requests)
                worst = max(worst, med)
                print("%-44s %10.1f %10.1f %10.1f" % (label, first, med, p95))
            print("slowest median: %.1f ms (target: under %.0f ms)" % (worst, TARGET_MS))
        finally:
            daemon.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
