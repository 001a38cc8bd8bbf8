"""The blob and manifest stores of a mirroring registry: the registry's own
stores, wrapped.  They have the same interface (what they do not override
goes to the wrapped store), so the web layer cannot tell a blob read from
storage from one coming from upstream.

A repository no upstream claims is served by the wrapped stores as is.
For a mirrored one:

- a blob not held is fetched from upstream (L{BlobFetch}: one fetch per
  digest in this process, however many clients ask) and streamed to the
  client while it is stored; held, it is served from storage;
- a manifest by digest is fetched once and never asked for again;
- a tag is served from storage for its upstream's C{tags_ttl} seconds
  after it was last checked; then the upstream is asked (HEAD, its
  digest): the same digest is served from storage, another one fetched.
  When the upstream cannot answer (unreachable, 5xx, rate-limited) a tag
  held is served (and the log says so); its 404 is the client's 404.
"""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger

from txregistry import digest as digests
from txregistry import names
from txregistry.errors import RegistryError
from txregistry.events import PULL
from txregistry.mirror.fetch import BlobFetch, BlobMismatch
from txregistry.mirror.upstream import BodyTooLarge, UpstreamUnavailable, collect, discard
from txregistry.registry.manifests import MEDIA_TYPES, mediaTypeOf, parseReference

ACCEPT = ", ".join(sorted(MEDIA_TYPES)).encode("ascii")
MAX_FRESH = 100000  # tags whose last check is remembered
TAG_PAGE = 1000  # tags asked for per page of the upstream's list
MAX_TAG_PAGES = 20
MAX_TAGS_BODY = 4 * 1024 * 1024
_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


def _nextPage(link, remote):
    """The path of the next page a C{Link} header names, if it is one of
    C{remote}'s tags list (relative, or absolute on any host: its path)."""
    m = _LINK.search(link or "")
    if not m:
        return None
    target = urlsplit(m.group(1))
    if target.path != "/v2/%s/tags/list" % (remote,):
        return None
    return target.path + ("?" + target.query if target.query else "")


def unavailable(e, what):
    """The client's error for an upstream failure C{e}."""
    if isinstance(e, (RegistryError, CancelledError)):
        return e  # (cancelled: the client went away)
    if isinstance(e, BlobMismatch):
        return RegistryError("UNAVAILABLE", "the upstream sent content that does not match its digest", what)
    return RegistryError("UNAVAILABLE", "the upstream registry cannot be reached: %s" % (e,), what)


class _Missing(Exception):
    """Not in storage: from upstream, then."""


class MirrorBlobs:
    """A L{txregistry.registry.blobs.BlobStore} that fetches what it lacks."""

    log = Logger()

    def __init__(self, inner, mirror):
        self.inner = inner
        self.mirror = mirror
        self.fetches = {}  # digest -> BlobFetch in flight (this process)

    def __getattr__(self, attr):
        return getattr(self.inner, attr)

    async def size(self, name, digest):
        route = self.mirror.route(name)
        if route is None:
            return await self.inner.size(name, digest)
        try:
            return await self._local(route, self.inner.size, name, digest)
        except _Missing:
            pass
        client, remote = route
        f = self.fetches.get(digest)
        try:
            if f is not None:
                size = await f.whenStarted()
                if size is None:
                    await f.whenDone()
                    return await self.inner.size(name, digest)
                return size
            response = await client.request("HEAD", "/v2/%s/blobs/%s" % (remote, digest), remote)
        except (UpstreamUnavailable, BlobMismatch) as e:
            raise unavailable(e, {"digest": digest})
        discard(response)
        if response.code == 404:
            raise RegistryError("BLOB_UNKNOWN", detail={"digest": digest})
        # (A HEAD's answer has no body: its size is in the header only.)
        length = response.headers.getRawHeaders(b"content-length", [b""])[0]
        if response.code != 200 or not length.isdigit():
            raise unavailable(UpstreamUnavailable("a blob HEAD answered %d" % (response.code,)), {"digest": digest})
        return int(length)

    async def _local(self, route, read, name, digest):
        """C{read(name, digest)} of the wrapped store (a hit), linking data
        another repository holds; L{_Missing} when storage has none."""
        try:
            found = await read(name, digest)
        except RegistryError as e:
            if e.code != "BLOB_UNKNOWN":
                raise
            if not await self.inner.hasData(digest):
                raise _Missing()
            await self.inner.link(name, digest)
            found = await read(name, digest)
        self.mirror.metrics.hit(route[0].settings.name, "blob")
        return found

    async def open(self, name, digest):
        route = self.mirror.route(name)
        if route is None:
            return await self.inner.open(name, digest)
        try:
            return await self._local(route, self.inner.open, name, digest)
        except _Missing:
            pass
        reader = await self._fromUpstream(name, digest, route)
        self.inner.events.blob(PULL, name, digest, reader.size)
        return reader

    async def reader(self, name, digest, offset=0):
        route = self.mirror.route(name)
        if route is None or await self.inner.hasData(digest):
            return await self.inner.reader(name, digest, offset)
        if offset == 0:
            return await self._fromUpstream(name, digest, route)
        # A range of a blob not held: the whole of it is fetched first.
        f = self._fetch(name, digest, route)
        try:
            await f.whenDone()
        except Exception as e:
            raise unavailable(e, {"digest": digest})
        return await self.inner.reader(name, digest, offset)

    async def _fromUpstream(self, name, digest, route):
        client = route[0]
        f = self.fetches.get(digest)
        if f is None:
            self.mirror.metrics.miss(client.settings.name, "blob")
            self.log.info("mirror: fetching blob {digest} of {name} from {upstream}", digest=digest, name=name,
                          upstream=client.settings.name)
        f = self._fetch(name, digest, route)
        try:
            await f.whenStarted()
            r = f.join(name)
            if r is not None:
                return r
            await f.whenDone()
        except Exception as e:
            raise unavailable(e, {"digest": digest})
        return await self.inner.reader(name, digest)

    def _fetch(self, name, digest, route):
        """The fetch of C{digest} in flight, or a new one."""
        f = self.fetches.get(digest)
        if f is not None and f.failure is None:
            return f
        client, remote = route
        m = self.mirror
        f = BlobFetch(client, self.inner, m.uploads, self.inner.driver, name, remote, digest, m.metrics, m.reactor,
                      m.threadpool)
        self.fetches[digest] = f

        def over(result):
            if self.fetches.get(digest) is f:
                del self.fetches[digest]
            return result

        Deferred.fromCoroutine(f.run()).addBoth(over)
        return f

    async def whenStored(self, digest):
        """Once the fetch of C{digest} in flight (if any) has stored it (or
        failed: then its error)."""
        f = self.fetches.get(digest)
        if f is not None:
            try:
                await f.whenDone()
            except Exception as e:
                raise unavailable(e, {"digest": digest})

    async def redirectURL(self, digest, method="GET"):
        url = await self.inner.redirectURL(digest, method)
        if url is not None and not await self.inner.hasData(digest):
            return None  # (fetched first, then streamed from here)
        return url


class MirrorManifests:
    """A L{txregistry.registry.manifests.Manifests} that fetches what it
    lacks and re-checks tags after their TTL."""

    log = Logger()

    def __init__(self, inner, mirror):
        self.inner = inner
        self.mirror = mirror
        self._checked = {}  # (name, tag) -> when the upstream last confirmed it

    def __getattr__(self, attr):
        return getattr(self.inner, attr)

    def forgetChecks(self):
        """Forget when tags were checked: the next pull of each asks upstream."""
        self._checked.clear()

    async def get(self, name, reference):
        route = self.mirror.route(name)
        if route is None:
            return await self.inner.get(name, reference)
        client, remote = route
        upstream = client.settings.name
        digest, tag = parseReference(reference)
        if digest is not None:
            try:
                found = await self.inner.get(name, reference)
            except RegistryError as e:
                if e.code != "MANIFEST_UNKNOWN":
                    raise
            else:
                self.mirror.metrics.hit(upstream, "manifest")
                return found
            self.mirror.metrics.miss(upstream, "manifest")
            try:
                body, mediaType = await self._download(client, remote, digest, digest)
            except (UpstreamUnavailable, BodyTooLarge) as e:
                raise unavailable(e, {"digest": digest})
            await self.inner.adopt(name, body, mediaType, None, digest.algorithm)
            return await self.inner.get(name, reference)
        return await self._tag(client, remote, name, tag)

    async def tags(self, name):
        """The tags of C{name}: for a mirrored repository, the upstream's
        (all pages) and those cached here; only those cached when the
        upstream cannot be asked."""
        route = self.mirror.route(name)
        if route is None:
            return await self.inner.tags(name)
        client, remote = route
        try:
            local = await self.inner.tags(name)
        except RegistryError:
            local = []
        try:
            upstream = await self._upstreamTags(client, remote)
        except (UpstreamUnavailable, BodyTooLarge, ValueError, RegistryError) as e:
            if isinstance(e, RegistryError) and e.code not in ("TOOMANYREQUESTS", "UNAVAILABLE"):
                raise
            self.log.warn("mirror: {upstream} cannot list the tags of {name} ({error}); listing those cached",
                          upstream=client.settings.name, name=name, error=str(e))
            if not local and not await self.inner.repositoryExists(name):
                raise RegistryError("NAME_UNKNOWN", detail={"name": name})
            return local
        if upstream is None and not local:
            raise RegistryError("NAME_UNKNOWN", detail={"name": name})
        return sorted(set(local) | set(upstream or ()))

    async def _upstreamTags(self, client, remote):
        """The upstream's tags of C{remote} (C{None}: no such repository),
        following its C{Link} pages (at most L{MAX_TAG_PAGES})."""
        path = "/v2/%s/tags/list?n=%d" % (remote, TAG_PAGE)
        found = []
        for _ in range(MAX_TAG_PAGES):
            response = await client.request("GET", path, remote)
            if response.code == 404:
                discard(response)
                return None
            if response.code != 200:
                discard(response)
                raise UpstreamUnavailable("the upstream answered %d to a tags list" % (response.code,))
            link = response.headers.getRawHeaders(b"link", [b""])[0].decode("latin-1")
            doc = json.loads(await collect(response, MAX_TAGS_BODY))
            tags = doc.get("tags") if isinstance(doc, dict) else None
            if not isinstance(tags, list):
                tags = []
            found.extend(t for t in tags if isinstance(t, str) and names.isValidTag(t))
            next = _nextPage(link, remote)
            if next is None:
                break
            path = next
        return found

    def _fresh(self, key, ttl):
        checked = self._checked.get(key)
        return checked is not None and self.mirror.reactor.seconds() - checked < ttl

    def _confirm(self, key):
        self._checked.pop(key, None)
        self._checked[key] = self.mirror.reactor.seconds()
        if len(self._checked) > MAX_FRESH:
            self._checked.pop(next(iter(self._checked)))

    async def _tag(self, client, remote, name, tag):
        upstream = client.settings.name
        key = (name, tag)
        if self._fresh(key, client.settings.tagsTTL):
            try:
                found = await self.inner.get(name, tag)
            except RegistryError as e:
                if e.code != "MANIFEST_UNKNOWN":
                    raise
            else:
                self.mirror.metrics.hit(upstream, "manifest")
                return found
        try:
            local = await self.inner.resolve(name, tag)
        except RegistryError:
            local = None
        try:
            response = await client.request("HEAD", "/v2/%s/manifests/%s" % (remote, tag), remote, accept=ACCEPT)
            discard(response)
            if response.code == 404:
                if local is not None and self.mirror.settings.mixed:
                    return await self.inner.get(name, tag)  # (pushed here)
                raise RegistryError("MANIFEST_UNKNOWN", "the upstream has no manifest tagged %r" % (tag,),
                                    {"tag": tag})
            named = response.headers.getRawHeaders(b"docker-content-digest", [None])[0]
            try:
                upstreamDigest = digests.parse(named.decode("ascii")) if named and response.code == 200 else None
            except (digests.InvalidDigest, UnicodeDecodeError):
                upstreamDigest = None
            if upstreamDigest is not None and upstreamDigest == local:
                self._confirm(key)
                self.mirror.metrics.hit(upstream, "manifest")
                return await self.inner.get(name, tag)
            self.mirror.metrics.miss(upstream, "manifest")
            body = None
            if upstreamDigest is not None:
                body = await self.inner.content(upstreamDigest)  # held under another tag or repository
            if body is not None:
                mediaType = mediaTypeOf(body)
            else:
                body, mediaType = await self._download(client, remote, upstreamDigest or tag, upstreamDigest)
        except (UpstreamUnavailable, BodyTooLarge, RegistryError) as e:
            if isinstance(e, RegistryError) and e.code not in ("TOOMANYREQUESTS", "UNAVAILABLE"):
                raise
            if local is None:
                raise unavailable(e, {"tag": tag})
            self.mirror.metrics.staleServed(upstream)
            self.log.warn("mirror: {upstream} cannot be asked about {name}:{tag} ({error}); serving what is cached",
                          upstream=upstream, name=name, tag=tag, error=str(e))
            return await self.inner.get(name, tag)
        algorithm = upstreamDigest.algorithm if upstreamDigest is not None else "sha256"
        digest, _ = await self.inner.adopt(name, body, mediaType, tag, algorithm)
        self._confirm(key)
        self.log.info("mirror: {name}:{tag} is {digest} upstream ({upstream})", name=name, tag=tag, digest=digest,
                      upstream=upstream)
        return await self.inner.get(name, tag)

    async def _download(self, client, remote, reference, expected):
        """C{(body, mediaType)} of the upstream's manifest C{reference},
        checked against C{expected} (a digest, or C{None})."""
        response = await client.request("GET", "/v2/%s/manifests/%s" % (remote, reference), remote, accept=ACCEPT)
        if response.code == 404:
            discard(response)
            raise RegistryError("MANIFEST_UNKNOWN", "the upstream has no manifest %r" % (str(reference),),
                                {"reference": str(reference)})
        if response.code != 200:
            discard(response)
            raise UpstreamUnavailable("the upstream answered %d to a manifest GET" % (response.code,))
        body = await collect(response, self.inner.maxSize)
        contentType = response.headers.getRawHeaders(b"content-type", [b""])[0].decode("latin-1").split(";")[0].strip()
        named = response.headers.getRawHeaders(b"docker-content-digest", [None])[0]
        if expected is None and named:
            try:
                expected = digests.parse(named.decode("ascii"))
            except (digests.InvalidDigest, UnicodeDecodeError):
                expected = None
        if expected is not None and digests.of(body, expected.algorithm) != expected:
            self.mirror.metrics.upstreamError(client.settings.name, "digest")
            self.log.error("mirror: {upstream} sent a manifest not matching {digest}; refused",
                           upstream=client.settings.name, digest=expected)
            raise UpstreamUnavailable("the upstream sent a manifest that does not match %s" % (expected,))
        return body, contentType or None
