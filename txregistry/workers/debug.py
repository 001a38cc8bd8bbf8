"""The master's debug listener: metrics and health of all its workers in
one scrape (L{txregistry.metrics.resources.DebugRoot} over these)."""

from twisted.internet.defer import DeferredList, succeed

from txregistry.metrics.merge import merge


class WorkersMetrics:
    """C{render()}: a Deferred of every live worker's metrics, added up."""

    def __init__(self, master):
        self.master = master

    def render(self):
        asked = [w.ask("scrape") for w in self.master.workers if w is not None and w.ready]
        return DeferredList(asked, consumeErrors=True).addCallback(
            lambda results: merge([reply["text"] for ok, reply in results if ok]))


class WorkersHealth:
    """Liveness: the master answers and every worker is up.  Readiness:
    every worker's own readiness checks pass."""

    def __init__(self, master):
        self.master = master

    def _workers(self):
        m = self.master
        up = sum(1 for w in m.workers if w is not None and w.ready)
        ok = up == m.count and not m.stopping
        return ok, {"name": "workers", "status": "ok" if ok else "failed", "latency_seconds": 0.0,
                    **({} if ok else {"error": "%d of %d worker(s) serving" % (up, m.count)})}

    def liveness(self):
        ok, check = self._workers()
        return succeed((ok, {"status": "ok" if ok else "unavailable", "checks": [check]}))

    def readiness(self):
        ok, check = self._workers()
        live = [w for w in self.master.workers if w is not None and w.ready]
        asked = DeferredList([w.ask("ready?") for w in live], consumeErrors=True)

        def combine(results):
            healthy = ok
            checks = [check]
            for worker, (answered, reply) in zip(live, results):
                if not answered:
                    healthy = False
                    checks.append({"name": "worker-%d" % (worker.index,), "status": "failed",
                                   "latency_seconds": 0.0, "error": "no answer"})
                    continue
                healthy = healthy and reply["ready"]
                for c in reply["doc"].get("checks", []):
                    checks.append(dict(c, worker=worker.index))
            return healthy, {"status": "ok" if healthy else "unavailable", "checks": checks}

        return asked.addCallback(combine)
