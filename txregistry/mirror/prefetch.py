"""``txregistry mirror prefetch IMAGE...``: fetch images into the mirror's
storage before anybody pulls them (each manifest, the children of an index,
every blob), with progress.  An IMAGE is a local name as clients pull it:
``alpine``, ``alpine:3.19``, ``library/alpine@sha256:...``, ``quay/coreos/etcd:v3.5``
(a name under an upstream's prefix)."""

from __future__ import annotations

from dataclasses import dataclass

from txregistry import names
from txregistry.errors import RegistryError
from txregistry.registry.manifests import IMAGE_TYPES, parseManifest

READ = 1024 * 1024


class PrefetchError(Exception):
    pass


def parseImage(image: str):
    """C{(name, reference)} of an IMAGE argument (the tag defaults to
    C{latest})."""
    name, reference = image, "latest"
    if "@" in image:
        name, reference = image.split("@", 1)
    elif ":" in image.rsplit("/", 1)[-1]:
        name, reference = image.rsplit(":", 1)
    if not names.isValidName(name):
        raise PrefetchError("not an image name: %r" % (image,))
    return name, reference


@dataclass
class Totals:
    manifests: int = 0
    blobs: int = 0
    fetched: int = 0  # blob bytes that came from upstream
    cached: int = 0  # blobs already here


class Prefetcher:
    """Pulls images through a L{txregistry.mirror.Mirror} installed on a
    registry; C{progress(text, final)} shows how far it is."""

    def __init__(self, mirror, progress=None):
        self.mirror = mirror
        self.blobs = mirror.blobs
        self.manifests = mirror.manifests
        self.progress = progress or (lambda text, final: None)
        self.totals = Totals()

    async def image(self, image: str) -> None:
        name, reference = parseImage(image)
        if self.mirror.route(name) is None:
            raise PrefetchError("%s is not a mirrored repository (no upstream claims it)" % (name,))
        await self._manifest(name, reference, image)

    async def _manifest(self, name, reference, label):
        body, mediaType, digest = await self.manifests.get(name, reference)
        self.totals.manifests += 1
        self.progress("%s: manifest %s" % (label, digest), True)
        m = parseManifest(body, mediaType, self.manifests.maxSize)
        for child in m.children:
            await self._manifest(name, child, "%s@%s" % (name, child))
        if mediaType in IMAGE_TYPES:
            for blob in m.blobs:
                await self._blob(name, blob, label)

    async def _blob(self, name, digest, label):
        self.totals.blobs += 1
        if await self.blobs.isLinked(name, digest) or await self.blobs.hasData(digest):
            await self.blobs.size(name, digest)  # (links it here)
            self.totals.cached += 1
            self.progress("%s: %s cached" % (label, digest[:19]), True)
            return
        reader = await self.blobs.open(name, digest)
        size, done = reader.size, 0
        try:
            while True:
                data = await reader.read(READ)
                if not data:
                    break
                done += len(data)
                self.progress("%s: %s %s / %s" % (label, digest[:19], _mib(done), _mib(size)), False)
        finally:
            reader.close()
        if done != size:
            raise RegistryError("UNAVAILABLE", "the blob %s ended after %d of %d bytes" % (digest, done, size))
        # (The last byte comes once the digest is verified; storing it may
        # take a moment more.)
        await self.blobs.whenStored(digest)
        if not await self.blobs.hasData(digest):
            raise RegistryError("UNAVAILABLE", "the blob %s was not stored" % (digest,))
        self.totals.fetched += size
        self.progress("%s: %s %s fetched" % (label, digest[:19], _mib(size)), True)


def _mib(n):
    return "%.1f MiB" % (n / 1048576.0,)


class _Lines:
    """Progress on a terminal stream: a line redrawn, kept when final."""

    def __init__(self, stream):
        self.stream = stream
        self.tty = getattr(stream, "isatty", lambda: False)()

    def __call__(self, text, final):
        if not final and not self.tty:
            return
        self.stream.write(("\r\033[K" if self.tty else "") + text + ("\n" if final else ""))
        self.stream.flush()


async def run(settings, driver, reactor, io, db, images, stream=None):
    """The command: prefetch C{images} into C{driver}'s storage; the search
    index (when on) hears of them as of pushes.  Stops with one line on
    the first image that cannot be fetched."""
    from txregistry.mirror import Mirror
    from txregistry.registry import Registry

    registry = Registry(driver, reactor, io, settings.limits.registry)
    updater = None
    if settings.searchBackend == "sqlalchemy":
        from txregistry.search.index import SearchIndex
        from txregistry.search.updater import IndexUpdater

        updater = IndexUpdater(SearchIndex(settings.searchDatabase, reactor, db), registry, reactor)
    mirror = Mirror(settings.mirror, registry, reactor, threadpool=io)
    mirror.install()
    p = Prefetcher(mirror, _Lines(stream) if stream is not None else None)
    try:
        for image in images:
            try:
                await p.image(image)
            except (RegistryError, PrefetchError) as e:
                raise SystemExit("txregistry mirror prefetch: %s: %s" % (image, getattr(e, "message", None) or e))
    finally:
        if updater is not None:
            await updater.settled()
        await mirror.close()
    t = p.totals
    print("prefetched %d image(s): %d manifest(s), %d blob(s) (%d already here), %.1f MiB from upstream"
          % (len(images), t.manifests, t.blobs, t.cached, t.fetched / 1048576.0))
    return t
