"""The least memory any Twisted web server of a master and N forked workers
takes here, beside txregistry's and Distribution's idle memory, interleaved
round by round.

    .venv/bin/python benchmarks/memory_floor.py [--rounds 3] [--workers 2]

Issue #11 asks for txregistry's idle memory with 2 workers (PSS summed over
its processes) to be at most twice Distribution's RSS.  This measures what
the runtime itself costs, so that the target can be judged: the "floor" is
this script run with ``--serve``, a master that imports only the reactor and
twisted.web (no application, no TLS setup, no database), binds one socket,
freezes its objects and forks N children, each installing a fresh reactor
and serving ``{}`` on the inherited socket, as txregistry's workers do.
Each daemon answers 200 requests, then its memory is read once it is steady
(benchmarks/workers.py's waitIdle).  Not run by CI.
"""

import argparse
import os
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import urllib.request

MiB = 1024 * 1024


def serve(port, count):
    """The floor server (see the module's docstring); runs until killed."""
    import gc

    from twisted.internet import epollreactor
    from twisted.web import resource, server

    listening = socket.socket()
    listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listening.bind(("127.0.0.1", port))
    listening.listen(128)
    listening.setblocking(False)
    gc.freeze()
    children = []
    for _ in range(count):
        pid = os.fork()
        if pid == 0:
            epollreactor.install()
            from twisted.internet import reactor

            class Empty(resource.Resource):
                isLeaf = True

                def render_GET(self, request):
                    return b"{}"

            reactor.adoptStreamPort(listening.fileno(), socket.AF_INET, server.Site(Empty()))
            reactor.run()
            os._exit(0)
        children.append(pid)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # (so that the children are killed below)
    try:
        os.wait()  # until a child ends or the master is stopped
    finally:
        for pid in children:
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass


def startFloor(count, logDir):
    from tests.support import procs

    port = procs.freePort()
    return procs.Daemon([sys.executable, os.path.abspath(__file__), "--serve", str(port), str(count)], port,
                        os.path.join(logDir, "floor-%d.log" % (port,)))


def measure(daemon, processes):
    import proctree
    import workers

    for _ in range(200):
        urllib.request.urlopen(daemon.url + "/v2/", timeout=10).close()
    mem = workers.waitIdle(daemon, processes)
    return proctree.pssSum(mem) / MiB, proctree.rssSum(mem) / MiB, len(mem)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--serve", nargs=2, type=int, metavar=("PORT", "N"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:  # (before anything else is imported: the floor's own memory)
        serve(*args.serve)
        return 0
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import workers  # noqa: F401  (puts the repository on sys.path)
    from tests.support import procs

    if not shutil.which(procs.DISTRIBUTION):
        p.error("%s is missing: apt-get install -y docker-registry" % (procs.DISTRIBUTION,))
    n = args.workers
    daemons = [
        ("floor", lambda s, l: startFloor(n, l), n + 1),
        ("txregistry", lambda s, l: procs.startTxregistry(s, l, args=["--workers", str(n)]), n + 1),
        ("distribution", procs.startDistribution, 1),
    ]
    results = {label: [] for label, _, _ in daemons}
    logDir = tempfile.mkdtemp(prefix="bench-floor-")
    try:
        for rnd in range(args.rounds):
            shift = rnd % len(daemons)
            for label, start, processes in daemons[shift:] + daemons[:shift]:
                storage = tempfile.mkdtemp(prefix="bench-floor-", dir=logDir)
                daemon = start(storage, logDir)
                try:
                    results[label].append(measure(daemon, processes))
                finally:
                    daemon.stop()
    finally:
        shutil.rmtree(logDir, ignore_errors=True)

    def med(label, i):
        return statistics.median(r[i] for r in results[label])

    dist = med("distribution", 1)
    print("%d round(s), %d workers, idle after 200 requests, MiB (median; min-max)" % (args.rounds, n))
    for label, index, what in [("distribution", 1, "RSS"), ("floor", 0, "PSS sum"), ("txregistry", 0, "PSS sum")]:
        values = [r[index] for r in results[label]]
        print("  %-13s %-8s %6.1f (%.1f-%.1f)  %4.2f x Distribution's RSS" % (
            label, what, statistics.median(values), min(values), max(values), statistics.median(values) / dist))
    print("target of issue #11: txregistry <= 2 x Distribution's RSS = %.1f MiB; the floor alone is %.1f"
          % (2 * dist, med("floor", 0)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
