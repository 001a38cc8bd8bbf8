"""Pull-through mirroring of other registries (see L{stores}).

L{Mirror} is what C{service.py} builds when the configuration names
upstreams (L{settings}): one L{UpstreamClient} per upstream, and the
stores that take the place of the registry's own (L{Mirror.install}).
L{Mirror.refusal} is the web layer's question before a push.

Single flight is per process: with several worker processes, each may
fetch a missing blob once (each into an upload of its own; the first to
finish moves it into place, the others find it there), so N workers make
at most N upstream fetches of one blob at once, never a wrong one.
"""

from __future__ import annotations

from typing import Optional

from txregistry.errors import RegistryError
from txregistry.mirror.metrics import MirrorMetrics
from txregistry.mirror.settings import MirrorSettings
from txregistry.mirror.stores import MirrorBlobs, MirrorManifests
from txregistry.mirror.upstream import UpstreamClient

PUSHES = {("uploadStart", "POST"), ("upload", "PATCH"), ("upload", "PUT"), ("manifest", "PUT")}


class Mirror:
    def __init__(self, settings: MirrorSettings, registry, reactor, metrics=None, threadpool=None):
        """C{threadpool}: where blobs fetched are hashed (else on the
        reactor's thread)."""
        self.settings = settings
        self.registry = registry
        self.reactor = reactor
        self.threadpool = threadpool
        self.uploads = registry.uploads
        self.metrics = MirrorMetrics(getattr(metrics, "registry", None))
        self.clients = {u.name: UpstreamClient(u, reactor, self.metrics) for u in settings.upstreams}
        self.blobs = self.manifests = None

    def route(self, name: str):
        """C{(UpstreamClient, remote name)} of a mirrored repository, or
        C{None}."""
        found = self.settings.route(name)
        if found is None:
            return None
        return self.clients[found[0].name], found[1]

    def install(self):
        """Put the mirroring stores in the registry's place."""
        r = self.registry
        self.blobs = r.blobs = MirrorBlobs(r.blobs, self)
        self.manifests = r.manifests = MirrorManifests(r.manifests, self)

    def refusal(self, route: str, method: str, name: Optional[str]) -> Optional[RegistryError]:
        """The error refusing a push to a mirrored repository (none for a
        mixed registry, or a local repository)."""
        if self.settings.mixed or (route, method) not in PUSHES or not name:
            return None
        found = self.settings.route(name)
        if found is None:
            return None
        return RegistryError(
            "UNSUPPORTED", "%s is mirrored from %s: pushes are refused" % (name, found[0].url),
            {"name": name, "upstream": found[0].name},
        )

    def describe(self) -> str:
        """One line for the log: each upstream and what it serves."""
        parts = []
        for u in self.settings.upstreams:
            if u.prefix:
                what = "under %s/" % (u.prefix,)
            elif u.repositories:
                what = "for %s" % (", ".join(u.repositories),)
            else:
                what = "for every other name"
            parts.append("%s (%s) %s, tags checked after %g s" % (u.name, u.url, what, u.tagsTTL))
        return "; ".join(parts) + ("; pushes stored locally (mixed)" if self.settings.mixed
                                   else "; pushes to mirrored names refused")

    def close(self):
        from twisted.internet.defer import gatherResults

        return gatherResults([c.close() for c in self.clients.values()])
