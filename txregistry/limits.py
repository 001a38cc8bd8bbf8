"""The ``limits:`` of the configuration, typed: the one place their
defaults (and minimums) are written.

One frozen object per concern, which the service hands to the part it
concerns: L{RegistryLimits} to the model (L{txregistry.registry.Registry}),
L{HTTPLimits} to the HTTP server (L{txregistry.web.ingest.RegistrySite} and
the in-memory body budget), L{StorageLimits} to the storage driver;
L{Limits} holds them all and the search index's wait.  Each field's
metadata names its configuration key and its minimum (a 0 is accepted
below the minimum where the limit can be off);
L{txregistry.config} reads the file through L{keyed} and L{fromKeys}.
Imports nothing of txregistry, so that every layer may.
"""

from dataclasses import dataclass, field, fields

MiB = 1024 * 1024


def _limit(default, minimum, key):
    return field(default=default, metadata={"key": key, "minimum": minimum})


@dataclass(frozen=True)
class RegistryLimits:
    """The model's: what a push may store."""

    maxManifestSize: int = _limit(4 * MiB, 1024, "max_manifest_size")
    maxBlobSize: int = _limit(0, 0, "max_blob_size")  # 0: no limit
    maxConcurrentUploads: int = _limit(0, 0, "max_concurrent_uploads")  # 0: no limit
    # Bytes of upload bodies received and not yet written, all uploads
    # together: above it, uploads that receive more are paused until the
    # storage catches up.
    maxUploadMemory: int = _limit(256 * MiB, 16 * MiB, "max_upload_memory")


@dataclass(frozen=True)
class StorageLimits:
    """The storage driver's: on S3, the buffers of the parts being filled
    (16 MiB each), all uploads together; an upload that needs one while
    none is free waits for one, its body paused.  At least one part."""

    maxPartMemory: int = _limit(256 * MiB, 16 * MiB, "max_part_memory")


@dataclass(frozen=True)
class HTTPLimits:
    """The HTTP server's: connections, request heads, slow clients and the
    request bodies held in memory."""

    maxHeaders: int = _limit(100, 10, "max_headers")
    maxHeaderBytes: int = _limit(64 * 1024, 1024, "max_header_bytes")
    # Seconds an idle connection (between requests, or a client that stops
    # sending its request) stays open.
    idleTimeout: int = _limit(300, 1, "idle_timeout")
    # Slow clients (0 turns each off): seconds from the first byte of a
    # request head to its end; a request body averaging fewer than
    # minBodyRate bytes/s over any bodyRateWindow seconds (time the
    # registry itself paused the body is not counted); seconds a response
    # may sit unread in a full send buffer.
    headerTimeout: int = _limit(30, 0, "header_timeout")
    minBodyRate: int = _limit(1024, 0, "min_body_rate")
    bodyRateWindow: int = _limit(30, 1, "body_rate_window")
    sendTimeout: int = _limit(60, 0, "send_timeout")
    # Bytes of request bodies held in memory (manifests, token forms), all
    # requests together; a body that does not fit is answered 429 at its
    # headers.  At least RegistryLimits.maxManifestSize.
    maxBodyMemory: int = _limit(64 * MiB, 64 * 1024, "max_body_memory")
    # Connections open at once; those above are answered 503 and closed.
    # 0: no limit.
    maxConnections: int = _limit(1000, 0, "max_connections")


@dataclass(frozen=True)
class Limits:
    """All of them: the settings' C{limits}."""

    registry: RegistryLimits = field(default_factory=RegistryLimits)
    http: HTTPLimits = field(default_factory=HTTPLimits)
    storage: StorageLimits = field(default_factory=StorageLimits)
    # Seconds a search or a catalog page waits for the search index (then
    # 503, or the catalog from storage).
    indexWait: int = _limit(5, 1, "index_wait")


_GROUPS = ((None, Limits), ("registry", RegistryLimits), ("http", HTTPLimits), ("storage", StorageLimits))


def keyed() -> list[tuple[str, int, int]]:
    """C{(key, default, minimum)} of every limit, by configuration key."""
    return [(f.metadata["key"], f.default, f.metadata["minimum"])
            for _, cls in _GROUPS for f in fields(cls) if "key" in f.metadata]


def fromKeys(values: dict[str, int]) -> Limits:
    """The L{Limits} of C{values} (configuration key -> int; missing keys
    at their defaults)."""
    parts = {}
    for group, cls in _GROUPS:
        kwargs = {f.name: values[f.metadata["key"]] for f in fields(cls)
                  if "key" in f.metadata and f.metadata["key"] in values}
        parts[group] = cls(**kwargs)
    top = parts.pop(None)
    return Limits(indexWait=top.indexWait, **parts)


def asKeys(limits: Limits) -> dict[str, int]:
    """C{limits} as configuration key -> value (for the settings log line)."""
    out = {}
    for group, cls in _GROUPS:
        holder = limits if group is None else getattr(limits, group)
        for f in fields(cls):
            if "key" in f.metadata:
                out[f.metadata["key"]] = getattr(holder, f.name)
    return out
