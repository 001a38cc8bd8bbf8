"""The mirror's Prometheus metrics, on the daemon's registry of collectors
(L{txregistry.metrics.Metrics.registry}).  Labels: the upstream's configured
name, the kind of content (C{manifest}, C{blob}) and of error; never a
repository."""

from prometheus_client import CollectorRegistry, Counter


class MirrorMetrics:
    def __init__(self, registry=None):
        """On C{registry} (a C{CollectorRegistry}), else on one of its own."""
        kw = {"registry": CollectorRegistry() if registry is None else registry}
        self.hits = Counter("txregistry_mirror_hits", "Pulls of mirrored content served from storage",
                            ["upstream", "kind"], **kw)
        self.misses = Counter("txregistry_mirror_misses", "Pulls of mirrored content fetched from upstream",
                              ["upstream", "kind"], **kw)
        self.stale = Counter("txregistry_mirror_stale_served",
                             "Tags served from storage because the upstream could not be asked", ["upstream"], **kw)
        self.bytes = Counter("txregistry_mirror_upstream_bytes", "Blob bytes received from upstream",
                             ["upstream"], **kw)
        self.errors = Counter("txregistry_mirror_upstream_errors",
                              "Upstream failures (unreachable, 5xx, ratelimited, token, digest, cut)",
                              ["upstream", "kind"], **kw)

    def hit(self, upstream, kind):
        self.hits.labels(upstream, kind).inc()

    def miss(self, upstream, kind):
        self.misses.labels(upstream, kind).inc()

    def staleServed(self, upstream):
        self.stale.labels(upstream).inc()

    def upstreamBytes(self, upstream, n):
        self.bytes.labels(upstream).inc(n)

    def upstreamError(self, upstream, kind):
        self.errors.labels(upstream, kind).inc()
