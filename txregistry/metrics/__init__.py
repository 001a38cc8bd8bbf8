"""What an operator watches: Prometheus metrics (L{collectors}), health and
readiness checks (L{health}), and the resources that serve them, on the
debug listener or the main port (L{resources}).

Every other part of the daemon knows metrics only as a few plain methods
of one L{Metrics} object handed to it (or none at all: storage is measured
by wrapping its driver, L{storage.MeasuredDriver})."""

from txregistry.metrics.collectors import Metrics

__all__ = ["Metrics"]
