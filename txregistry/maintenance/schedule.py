"""The collection inside the daemon, every C{gc.interval}: retention, then
untagged manifests (with C{delete_untagged}), then blobs; one summary line
a run, and metrics.  Safe beside pushes from any worker or node (see
L{txregistry.registry.gc}); a run still going when the next is due makes
the next one wait for the interval after.  The tags and manifests a run
deletes are announced on the registry's events (C{events}), as API
deletes are: the search index and the notification endpoints hear of
them."""

import time

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from txregistry.registry.gc import CollectionError, CollectionStopped, collect


class GCMetrics:
    """Counters of the scheduled collections, on the daemon's Prometheus
    registry."""

    def __init__(self, registry):
        from prometheus_client import Counter, Gauge

        self.runs = Counter("txregistry_gc_runs", "Scheduled garbage collections, by outcome (done, failed)",
                            ["outcome"], registry=registry)
        self.blobs = Counter("txregistry_gc_deleted_blobs", "Blobs deleted by garbage collection", registry=registry)
        self.bytes = Counter("txregistry_gc_freed_bytes", "Bytes of the blobs deleted by garbage collection",
                             registry=registry)
        self.manifests = Counter("txregistry_gc_deleted_manifests", "Untagged manifests deleted by garbage collection",
                                 registry=registry)
        self.tags = Counter("txregistry_gc_deleted_tags", "Tags deleted by the retention policies", registry=registry)
        self.duration = Gauge("txregistry_gc_last_duration_seconds", "Seconds the last collection took",
                              registry=registry)
        for outcome in ("done", "failed"):
            self.runs.labels(outcome)


def summary(report, dryRun, minAge):
    """One line of a collection's L{txregistry.registry.gc.Report}."""
    verb = "would delete" if dryRun else "deleted"
    return ("%s %d tag(s), %d untagged manifest(s), %d blob(s) (%d bytes) and %d repository link(s); "
            "%d manifest(s) in %d repositories, %d blob(s) in use, %d unused kept (younger than %gs or pushed lately)"
            % (verb, len(report.tags), len(report.untagged), len(report.deleted), report.freed, report.links,
               report.manifests, report.repositories, report.kept, report.young, minAge))


class ScheduledCollection:
    """A callable for a C{TimerService}: one collection of C{driver} with
    the L{txregistry.maintenance.settings.GCSettings}; the Deferred it
    returns fires when the run is over (never with a failure)."""

    log = Logger()

    def __init__(self, driver, settings, maxManifestSize, metrics=None, paused=lambda: False, events=None):
        """C{paused()}: whether runs are skipped for now (read-only mode);
        C{events}: the registry's L{txregistry.events.Announcer} (or
        C{None}), told of what a run deletes."""
        self.driver = driver
        self.events = events
        self.paused = paused
        self.settings = settings
        self.maxManifestSize = maxManifestSize
        self.metrics = GCMetrics(metrics.registry) if metrics is not None else None
        self.running = None
        self.runs = 0
        self.stopping = False

    def stop(self):
        """Ask a run under way to stop at its next step (the daemon stops)."""
        self.stopping = True

    def describe(self):
        s = self.settings
        parts = ["garbage collection every %gs, min_age %gs" % (s.interval, s.minAge)]
        if s.deleteUntagged:
            parts.append("untagged manifests deleted")
        if s.retention:
            parts.append("retention: %s" % (" | ".join(p.describe() for p in s.retention),))
        if s.dryRun:
            parts.append("dry run")
        return ", ".join(parts)

    def __call__(self):
        if self.stopping:
            return None
        if self.paused():
            self.log.info("garbage collection skipped: read-only mode")
            return None
        if self.running is not None:
            return self.running
        d = self.running = Deferred.fromCoroutine(self.run())
        d.addBoth(self._over)
        if d.called:
            self.running = None
        return d

    def _over(self, result):
        self.running = None
        return result

    async def run(self):
        s = self.settings
        started = time.monotonic()
        try:
            report = await collect(self.driver, s.minAge, s.dryRun, maxManifestSize=self.maxManifestSize,
                                   deleteUntagged=s.deleteUntagged, retention=s.retention,
                                   stop=lambda: self.stopping, events=self.events)
        except CollectionStopped:
            self.log.info("garbage collection stopped: the daemon stops")
            return None
        except CollectionError as e:
            self._count("failed")
            self.log.error("garbage collection stopped: {problem}", problem=str(e))
            return None
        except Exception:
            self._count("failed")
            self.log.failure("garbage collection failed")
            return None
        seconds = time.monotonic() - started
        self.runs += 1
        self._count("done", report, seconds)
        self.log.info("garbage collection{dry} in {seconds:.1f}s: {summary}", dry=" (dry run)" if s.dryRun else "",
                      seconds=seconds, summary=summary(report, s.dryRun, s.minAge))
        return report

    def _count(self, outcome, report=None, seconds=None):
        m = self.metrics
        if m is None:
            return
        m.runs.labels(outcome).inc()
        if report is not None:
            m.duration.set(seconds)
            if not self.settings.dryRun:
                m.blobs.inc(len(report.deleted))
                m.bytes.inc(report.freed)
                m.manifests.inc(len(report.untagged))
                m.tags.inc(len(report.tags))
