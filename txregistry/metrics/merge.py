"""One scrape for a daemon of several worker processes: their metrics
(each worker's text exposition) added up, sample by sample, and written
again by prometheus-client.

Counters, histograms and gauges of amounts (requests, bytes, uploads in
progress, connections, memory, CPU seconds) are summed over the workers;
times when something began (C{*_created}, C{process_start_time_seconds})
take the earliest; limits and info (C{process_max_fds}, C{*_info}) the
first worker's."""

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

_EARLIEST = ("_created", "process_start_time_seconds")
_FIRST = ("process_max_fds", "_info", "python_info")


def _combine(name, old, new):
    if name.endswith(_EARLIEST):
        return min(old, new)
    if name.endswith(_FIRST):
        return old
    return old + new


class _Merged:
    def __init__(self, families):
        self._families = families

    def collect(self):
        return list(self._families.values())


def merge(texts):
    """The text exposition (bytes) of the metrics in C{texts} (the workers'
    expositions, str), added up."""
    families = {}
    values = {}
    for text in texts:
        for family in text_string_to_metric_families(text):
            merged = families.get(family.name)
            if merged is None:
                merged = families[family.name] = Metric(family.name, family.documentation, family.type)
            for sample in family.samples:
                key = (family.name, sample.name, tuple(sorted(sample.labels.items())))
                if key in values:
                    values[key] = _combine(sample.name, values[key], sample.value)
                else:
                    values[key] = sample.value
    for (familyName, sampleName, labels), value in values.items():
        families[familyName].add_sample(sampleName, dict(labels), value)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Merged(families))
    return generate_latest(registry)
