"""What the pages show, read through the registry model and the search
index: repositories a page at a time, a repository's tags a page at a time,
one image.

A repository's tags with their push times (the mtimes of the tags' links,
all in one go: L{tagtimes.pushTimes}) are read once and kept (L{TagTimes}) until the registry announces a change of
that repository, or for C{TTL} seconds (another worker process may have
changed it): a page of 50 of 5,000 tags then reads 50 manifests, not
5,000, and sorting by push time costs nothing more."""

import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional

from twisted.internet.defer import Deferred, gatherResults
from twisted.logger import Logger
from twisted.python.failure import Failure

from txregistry import digest as digests
from txregistry.errors import RegistryError
from txregistry.events import DELETE, PUSH
from txregistry.observe import OneShot
from txregistry.registry import tagtimes
from txregistry.registry.manifests import INDEX_TYPES, mediaTypeOf
from txregistry.search.index import IndexUnavailable
from txregistry.storage import ContentTooLarge
from txregistry.ui.format import parseTime

TTL = 30.0  # seconds a repository's tag times are kept without an event
MAX_CACHED = 2048  # repositories whose tag times are kept
MAX_DESCRIBED = 20000  # manifests whose descriptions are kept
AT_ONCE = 64  # storage reads at once
MAX_CONFIG = 1024 * 1024
QUICK_TAGS = 500  # tags of a repository the home page reads the push times of at once
MAX_FILTERED = 5000  # ranked search matches read and filtered for a caller who sees only some


log = Logger()


def _gather(coroutines):
    return gatherResults([Deferred.fromCoroutine(c) for c in coroutines], consumeErrors=True)


async def _batched(items, f):
    out = []
    for i in range(0, len(items), AT_ONCE):
        out.extend(await _gather([f(item) for item in items[i:i + AT_ONCE]]))
    return out


def _platform(p):
    if not isinstance(p, dict):
        return ""
    parts = [str(p.get("os") or "?"), str(p.get("architecture") or "?")]
    if p.get("variant"):
        parts.append(str(p["variant"]))
    return "/".join(parts)


def _descriptors(doc, key):
    value = doc.get(key) if isinstance(doc, dict) else None
    return [d for d in value if isinstance(d, dict)] if isinstance(value, list) else []


def _size(d):
    s = d.get("size") if isinstance(d, dict) else None
    return s if isinstance(s, int) and not isinstance(s, bool) and s >= 0 else 0


@dataclass
class Child:
    platform: str
    digest: str
    mediaType: str
    size: int  # of the image (config and layers)


@dataclass
class Described:
    """A manifest as the repository page lists it."""

    digest: str
    mediaType: str
    size: int  # config and layers; an index: of every distinct blob of its images
    created: Optional[float] = None
    artifactType: str = ""
    children: list = field(default_factory=list)  # of an index: Child
    blobs: dict = field(default_factory=dict, repr=False)  # digest -> size

    @property
    def isIndex(self):
        return self.mediaType in INDEX_TYPES


@dataclass
class TagRow:
    tag: str
    pushed: float
    manifest: Optional[Described]  # None: the tag names nothing readable


@dataclass
class Summary:
    tags: int
    size: Optional[int]
    pushed: float


class TagTimes:
    """C{[(tag, pushed)]} of repositories, kept until an event of the
    repository or L{TTL}."""

    def __init__(self, registry, clock=time.monotonic):
        self.registry = registry
        self._clock = clock
        self._cache = OrderedDict()  # name -> (when, [(tag, mtime)])
        self._reading = {}  # name -> OneShot of the read under way
        events = getattr(registry, "events", None)
        if events is not None:
            events.add(self.heard, (PUSH, DELETE))

    def detach(self):
        self.registry.events.remove(self.heard)

    def heard(self, event):
        if event.kind == "manifest":
            self._cache.pop(event.repository, None)

    def forget(self, name):
        self._cache.pop(name, None)

    def cached(self, name):
        """C{[(tag, pushed)]} of C{name} if known and fresh, else None."""
        hit = self._cache.get(name)
        if hit is not None and self._clock() - hit[0] < TTL:
            return hit[1]
        return None

    def names(self, name):
        """The tags of C{name}, sorted (one listing: no stat)."""
        return tagtimes.tagNames(self.registry.driver, name)

    async def stat(self, name, tag):
        """C{(tag, pushed)}, or None when the tag is gone."""
        pushed = await tagtimes.pushedAt(self.registry.driver, name, tag)
        return None if pushed is None else (tag, pushed)

    async def get(self, name):
        """C{[(tag, pushed)]} of C{name}, sorted by tag (read once for all
        who ask meanwhile)."""
        hit = self.cached(name)
        if hit is not None:
            return hit
        reading = self._reading.get(name)
        if reading is not None:
            return await reading.wait()
        reading = self._reading[name] = OneShot()
        try:
            times = sorted((await tagtimes.pushTimes(self.registry.driver, name)).items())
        except BaseException as e:
            reading.fire(Failure(e))
            raise
        finally:
            del self._reading[name]
        reading.fire(times)
        self._cache[name] = (self._clock(), times)
        self._cache.move_to_end(name)
        while len(self._cache) > MAX_CACHED:
            self._cache.popitem(last=False)
        return times

    def fill(self, name):
        """Read C{name}'s tag times in the background (for the next page)."""
        if name in self._reading:
            return
        Deferred.fromCoroutine(self.get(name)).addErrback(
            lambda f: log.failure("reading the tags of {name} failed", f, name=name))


class Browser:
    """The pages' reads: C{registry} (a L{txregistry.registry.Registry}),
    C{search} (an IndexUpdater, or None)."""

    def __init__(self, registry, search=None):
        self.registry = registry
        self.search = search
        self.tagTimes = TagTimes(registry)
        self._summaries = OrderedDict()  # name -> (newest (tag, mtime), count, Summary)
        # A manifest's description never changes (its digest is of its
        # content): kept by digest, the most recently used ones.
        self._described = OrderedDict()  # (digest, depth) -> Described

    # --- repositories ---

    async def repositories(self, visible, last, n):
        """C{(names, more)}: up to C{n} repositories after C{last} that
        C{visible(name)} says the caller may see, by name."""
        if self.search is not None and self.search.listingCurrent:
            try:
                return await self._fromIndex(visible, last, n)
            except IndexUnavailable:  # the index failed meanwhile: storage
                pass
        names = [name for name in await self.registry.catalog() if (not last or name > last) and visible(name)]
        return names[:n], len(names) > n

    async def _fromIndex(self, visible, last, n):
        found = []
        batch = n + 1
        while True:
            page = await self.search.catalog(last or None, batch)
            found.extend(name for name in page if visible(name))
            if len(found) > n or len(page) < batch:
                return found[:n], len(found) > n
            last, batch = page[-1], max(batch, 200)

    async def searchRepositories(self, term, visible, everything, page, n):
        """C{(total, [(name, description)], complete)} of a search, ranked as
        /v1/search ranks; C{everything}: the caller sees every repository
        (else matches are filtered by C{visible})."""
        if everything:
            return await self.search.search(term, n, (page - 1) * n)
        _, rows, complete = await self.search.search(term, MAX_FILTERED, 0)
        rows = [row for row in rows if visible(row[0])]
        return len(rows), rows[(page - 1) * n:page * n], complete

    async def summary(self, name, pushed=0.0):
        """The L{Summary} of a repository: tag count, size of the most
        recently pushed tag's image, its push time.  For a repository of
        more than L{QUICK_TAGS} tags whose push times were not read yet,
        the tag count and C{pushed} (the index's last push) only, while
        they are read in the background: a page stays fast."""
        times = self.tagTimes.cached(name)
        if times is None:
            tags = await self.tagTimes.names(name)
            if len(tags) > QUICK_TAGS:
                self.tagTimes.fill(name)
                return Summary(len(tags), None, pushed)
            times = await self.tagTimes.get(name)
        if not times:
            return Summary(0, None, 0.0)
        newest = max(times, key=lambda t: t[1])
        hit = self._summaries.get(name)
        if hit is not None and hit[0] == newest and hit[1] == len(times):
            return hit[2]
        described = await self.describeTag(name, newest[0])
        summary = Summary(len(times), described.size if described else None, newest[1])
        self._summaries[name] = (newest, len(times), summary)
        while len(self._summaries) > MAX_CACHED:
            self._summaries.popitem(last=False)
        return summary

    async def summaries(self, names, pushed=None):
        """{name: Summary}; C{pushed}: {name: last push} of the index."""
        pushed = pushed or {}
        return dict(zip(names, await _batched(names, lambda name: self.summary(name, pushed.get(name) or 0.0))))

    # --- a repository's tags ---

    async def tags(self, name, sort, page, n):
        """C{(total, [TagRow])}: page C{page} (from 1) of C{n} tags of
        C{name}, by push time (newest first) or by name."""
        times = self.tagTimes.cached(name)
        if sort == "name" and times is None:
            # By name: one listing, and the push times of this page only.
            tags = await self.tagTimes.names(name)
            chosen = [t for t in await _batched(tags[(page - 1) * n:page * n],
                                                lambda tag: self.tagTimes.stat(name, tag)) if t is not None]
            total = len(tags)
        else:
            times = times if times is not None else await self.tagTimes.get(name)
            ordered = times if sort == "name" else sorted(times, key=lambda t: (-t[1], t[0]))
            chosen, total = ordered[(page - 1) * n:page * n], len(times)

        async def row(item):
            return TagRow(item[0], item[1], await self.describeTag(name, item[0]))

        return total, await _batched(chosen, row)

    async def describeTag(self, name, tag):
        try:
            digest = await self.registry.manifests.resolve(name, tag)
        except RegistryError:
            return None
        return await self.describe(name, digest)

    async def _manifest(self, digest):
        try:
            body = await self.registry.manifests.content(digest)
        except ContentTooLarge:
            return None, None
        if body is None:
            return None, None
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        return body, doc if isinstance(doc, dict) else None

    async def _config(self, descriptor):
        try:
            d = digests.parse(descriptor.get("digest"))
            data = await self.registry.blobs.getContent(d, MAX_CONFIG)
            doc = json.loads(data) if data else None
        except Exception:
            return None
        return doc if isinstance(doc, dict) else None

    async def describe(self, name, digest, depth=0):
        """The L{Described} of manifest C{digest} (one C{name} holds), or
        None if unreadable."""
        key = (digest, depth)
        hit = self._described.get(key)
        if hit is not None:
            self._described.move_to_end(key)
            return hit
        described = await self._describe(name, digest, depth)
        if described is not None:
            self._described[key] = described
            while len(self._described) > MAX_DESCRIBED:
                self._described.popitem(last=False)
        return described

    async def _describe(self, name, digest, depth):
        body, doc = await self._manifest(digest)
        if doc is None:
            return None
        mediaType = mediaTypeOf(body)
        artifactType = doc.get("artifactType") if isinstance(doc.get("artifactType"), str) else ""
        config = doc.get("config") if isinstance(doc.get("config"), dict) else None
        if config is not None and not artifactType and config.get("mediaType") not in (
                None, "application/vnd.oci.image.config.v1+json",
                "application/vnd.docker.container.image.v1+json"):
            artifactType = str(config.get("mediaType"))
        if "manifests" in doc and depth == 0:
            children, blobs, created = [], {}, None
            for child in _descriptors(doc, "manifests")[:64]:
                try:
                    d = digests.parse(child.get("digest"))
                except digests.InvalidDigest:
                    continue
                sub = await self.describe(name, d, 1)
                platform = _platform(child.get("platform"))
                children.append(Child(platform, d, str(child.get("mediaType") or ""), sub.size if sub else 0))
                if sub is not None:
                    blobs.update(sub.blobs)
                    if created is None and not platform.startswith("unknown"):
                        created = sub.created
            return Described(digest, mediaType, sum(blobs.values()), created, artifactType, children, blobs)
        blobs = {}
        for part in ([config] if config else []) + _descriptors(doc, "layers"):
            if isinstance(part.get("digest"), str):
                blobs[part["digest"]] = _size(part)
        created = None
        if config is not None and not artifactType:
            cfg = await self._config(config)
            created = parseTime(cfg.get("created")) if cfg else None
        return Described(digest, mediaType, sum(blobs.values()), created, artifactType, [], blobs)

    # --- one manifest ---

    async def image(self, name, digest):
        """Everything the image page shows of manifest C{digest} of C{name};
        raises MANIFEST_UNKNOWN when it is not one of that repository."""
        body, mediaType, digest = await self.registry.manifests.get(name, digest)
        try:
            doc = json.loads(body)
        except ValueError:
            doc = {}
        doc = doc if isinstance(doc, dict) else {}
        image = Image(name=name, digest=digest, mediaType=mediaType, raw=body, doc=doc)
        image.artifactType = doc.get("artifactType") if isinstance(doc.get("artifactType"), str) else ""
        image.annotations = doc.get("annotations") if isinstance(doc.get("annotations"), dict) else {}
        subject = doc.get("subject")
        if isinstance(subject, dict) and isinstance(subject.get("digest"), str):
            image.subject = subject["digest"]
        if "manifests" in doc:
            described = await self.describe(name, digest)
            image.children = described.children if described else []
        else:
            config = doc.get("config") if isinstance(doc.get("config"), dict) else None
            layers = _descriptors(doc, "layers")
            image.layers = [Layer(str(l.get("digest") or ""), _size(l), str(l.get("mediaType") or "")) for l in layers]
            if config is not None:
                image.configDescriptor = config
                cfg = await self._config(config)
                if cfg is not None:
                    image.setConfig(cfg)
        image.size = (sum(l.size for l in image.layers) + _size(image.configDescriptor)) if not image.children else None
        image.referrers = await self.registry.manifests.referrers(name, digest)
        return image

    async def tagsOf(self, name, digest):
        """The tags of C{name} that name C{digest} now."""
        times = await self.tagTimes.get(name)

        async def names(item):
            try:
                return item[0] if await self.registry.manifests.resolve(name, item[0]) == digest else None
            except RegistryError:
                return None

        if len(times) > 500:  # (a page of them would be a walk of the whole repository)
            return None
        return [t for t in await _batched(times, names) if t]


@dataclass
class Layer:
    digest: str
    size: int
    mediaType: str
    history: list = field(default_factory=list)  # the history entries that made it (created_by, created, comment)


@dataclass
class Image:
    name: str
    digest: str
    mediaType: str
    raw: bytes
    doc: dict
    artifactType: str = ""
    annotations: dict = field(default_factory=dict)
    subject: str = ""
    children: list = field(default_factory=list)
    layers: list = field(default_factory=list)
    configDescriptor: dict = None
    platform: str = ""
    created: Optional[float] = None
    entrypoint: object = None
    cmd: object = None
    env: list = field(default_factory=list)
    labels: dict = field(default_factory=dict)
    ports: list = field(default_factory=list)
    workdir: str = ""
    user: str = ""
    emptyHistory: list = field(default_factory=list)  # history entries without a layer, after the last
    size: Optional[int] = None
    referrers: list = field(default_factory=list)

    def setConfig(self, cfg):
        self.platform = _platform(cfg)
        self.created = parseTime(cfg.get("created"))
        c = cfg.get("config") if isinstance(cfg.get("config"), dict) else {}
        self.entrypoint = c.get("Entrypoint")
        self.cmd = c.get("Cmd")
        self.env = [str(e) for e in c.get("Env") or [] if isinstance(e, str)] if isinstance(c.get("Env"), list) else []
        self.labels = {str(k): str(v) for k, v in c["Labels"].items()} if isinstance(c.get("Labels"), dict) else {}
        self.ports = sorted(str(p) for p in c["ExposedPorts"]) if isinstance(c.get("ExposedPorts"), dict) else []
        self.workdir = str(c.get("WorkingDir") or "")
        self.user = str(c.get("User") or "")
        history = [h for h in cfg.get("history") or [] if isinstance(h, dict)] if isinstance(
            cfg.get("history"), list) else []
        pending = []
        i = 0
        for h in history:
            entry = (str(h.get("created_by") or ""), parseTime(h.get("created")), str(h.get("comment") or ""))
            pending.append(entry)
            if not h.get("empty_layer"):
                if i < len(self.layers):
                    self.layers[i].history = pending
                    i += 1
                pending = []
        self.emptyHistory = pending

    @property
    def referrersByType(self):
        groups = OrderedDict()
        for r in sorted(self.referrers, key=lambda r: (r.get("artifactType") or "", r["digest"])):
            groups.setdefault(r.get("artifactType") or "(no artifactType)", []).append(r)
        return groups
