"""The ``gc:`` and ``retention:`` configuration keys.

    gc:
        interval: 24h         # a collection every 24 hours (required to schedule one)
        min_age: 1h           # unreferenced blobs younger than this stay
        delete_untagged: true # collect the manifests nothing keeps first
        dry_run: false        # only log what would go
    retention:
        - repositories: "team/*"
          keep_last: 10
          keep_tags: ["v*", "latest"]
          older_than: 30d
"""

from dataclasses import dataclass

from txregistry.registry.retention import RetentionConfigError, parseAge, parsePolicies

GC_KEYS = ("interval", "min_age", "delete_untagged", "dry_run")
DEFAULT_MIN_AGE = 3600.0


class GCConfigError(Exception):
    """One line naming the key."""


@dataclass(frozen=True)
class GCSettings:
    interval: float = 0.0  # seconds between collections; 0: none scheduled
    minAge: float = DEFAULT_MIN_AGE
    deleteUntagged: bool = False
    dryRun: bool = False
    retention: tuple = ()  # txregistry.registry.retention.Policy

    @property
    def scheduled(self) -> bool:
        return self.interval > 0


def _flag(section, key, source):
    value = section.get(key, False)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
        return value.lower() in ("true", "yes", "on", "1")
    raise GCConfigError("%s: gc.%s must be true or false, not %r" % (source, key, value))


def parseGC(section, retention, source: str) -> GCSettings:
    """L{GCSettings} of the C{gc:} mapping and the C{retention:} list (either
    may be C{None}); L{GCConfigError} with one line."""
    try:
        policies = parsePolicies(retention, source)
    except RetentionConfigError as e:
        raise GCConfigError(str(e))
    if section is None:
        return GCSettings(retention=policies)
    if not isinstance(section, dict):
        raise GCConfigError("%s: gc must be a mapping of %s" % (source, ", ".join(GC_KEYS)))
    unknown = sorted(str(k) for k in section if k not in GC_KEYS)
    if unknown:
        raise GCConfigError("%s: unknown gc keys: %s (known: %s)" % (source, ", ".join(unknown), ", ".join(GC_KEYS)))
    durations = {}
    for key, default, positive in (("interval", 0.0, True), ("min_age", DEFAULT_MIN_AGE, False)):
        value = section.get(key)
        seconds = default if value is None else parseAge(value)
        if seconds is None or (positive and value is not None and seconds <= 0):
            raise GCConfigError("%s: gc.%s must be a duration like 24h, 30m or 90s%s, not %r"
                                % (source, key, " (more than 0)" if positive else "", value))
        durations[key] = seconds
    return GCSettings(interval=durations["interval"], minAge=durations["min_age"],
                      deleteUntagged=_flag(section, "delete_untagged", source),
                      dryRun=_flag(section, "dry_run", source), retention=policies)
