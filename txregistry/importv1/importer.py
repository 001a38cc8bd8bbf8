"""The import: every tag of a V1 store becomes an image of the registry.

For each tag (in name order): the tagged image's ancestry (root first) is
resolved and checked; each V1 layer is streamed once into an upload of
the registry (L{txregistry.registry.uploads}: hashed, verified, then
adopted as a blob), its digests computed on the way
(L{txregistry.importv1.layers}); then the image config is stored and the
manifest put (L{txregistry.registry.manifests}), which makes the tag
visible only once everything it names is there.

Resumable and idempotent: after a layer's blob is committed, a small
record (``/txregistry/import-v1/layers/<id>``: its digests and sizes)
lets a later run skip it without reading it again; a tag whose manifest
is already the one this run would put is left as it is.  A run killed
half-way leaves at most an unfinished upload (never served; a mark,
``/txregistry/import-v1/uploads/<id>``, names it, and the next run
removes it) and blobs no tag names yet.

Images that cannot be converted (an unfinished push, no JSON or broken
JSON, no layer, an ancestry cycle, a corrupt layer) are reported by id,
and the tags that need them are skipped; the rest goes on."""

import json
from dataclasses import dataclass, field

from twisted.internet.threads import deferToThreadPool

from txregistry import digest as digests
from txregistry import names
from txregistry.errors import RegistryError
from txregistry.importv1 import convert
from txregistry.importv1.layers import LayerError
from txregistry.importv1.stream import streamLayer
from txregistry.registry.blobs import deleteQuietly
from txregistry.registry.uploads import isValidUploadID
from txregistry.storage import ContentTooLarge, PathNotFound, StorageError

RECORDS = "/txregistry/import-v1/layers"
UNFINISHED = "/txregistry/import-v1/uploads"  # the upload of the layer being imported
MAX_CHAIN = 1000  # images in one ancestry at most (docker allowed 127)


def _why(e):
    if isinstance(e, (RegistryError, StorageError)):
        return str(e) or type(e).__name__
    return "%s: %s" % (type(e).__name__, e)


class ImageProblem(Exception):
    def __init__(self, imageID, reason):
        Exception.__init__(self, "image %s: %s" % (imageID, reason))
        self.imageID = imageID
        self.reason = reason


@dataclass(frozen=True)
class Layer:
    digest: str
    size: int
    diffID: str
    compressed: bool
    sourceSize: int

    def record(self):
        return json.dumps(self.__dict__, sort_keys=True).encode("ascii")

    @classmethod
    def fromRecord(cls, data):
        try:
            doc = json.loads(data)
            layer = cls(**doc)
            digests.parse(layer.digest)
            digests.parse(layer.diffID)
        except (ValueError, TypeError):
            return None
        return layer


@dataclass
class Report:
    imported: list = field(default_factory=list)  # "name:tag"
    unchanged: list = field(default_factory=list)
    planned: list = field(default_factory=list)  # dry run: would be imported
    skipped: list = field(default_factory=list)  # (what, reason)
    stored: int = 0  # layer blobs written
    storedBytes: int = 0
    reused: int = 0  # layers already imported
    repositories: set = field(default_factory=set)  # names with an image from this store


class QuietProgress:
    """What the importer tells as it goes (the command shows it)."""

    def planned(self, tags):
        pass

    def tagStarted(self, index, label):
        pass

    def layerStarted(self, imageID, size):
        pass

    def layerProgress(self, imageID, done, size):
        pass

    def layerDone(self, imageID, layer, reused):
        pass

    def tagDone(self, label, status):
        pass

    def skipped(self, what, reason):
        pass


class Importer:
    """C{store}: the L{V1Store}; C{registry}: the destination's
    L{Registry}; C{pool}: where hashing and decompressing run.
    C{descriptions}: C{{name: description}} (names as imported);
    C{updater}: an L{IndexUpdater} whose index gets a row for every
    repository imported, or C{None}."""

    def __init__(self, store, registry, reactor, pool, progress=None, oci=False, keepLibrary=False,
                 descriptions=None, dryRun=False, updater=None):
        self.store = store
        self.registry = registry
        self.reactor = reactor
        self.pool = pool
        self.progress = progress or QuietProgress()
        self.oci = oci
        self.keepLibrary = keepLibrary
        self.descriptions = descriptions or {}
        self.dryRun = dryRun
        self.updater = updater
        self.report = Report()
        self._images = {}  # id -> (doc, layer size) or ImageProblem
        self._layers = {}  # id -> Layer or ImageProblem

    def _inPool(self, f, *args):
        return deferToThreadPool(self.reactor, self.pool, f, *args)

    def _skip(self, what, reason):
        self.report.skipped.append((what, reason))
        self.progress.skipped(what, reason)

    # --- what there is ---

    async def plan(self):
        """C{[(label, name, tag, imageID, namespace, repository)]}: the tags
        to import, V1 names in order (the others are reported)."""
        out = []
        for namespace, repository in await self.store.repositories():
            v1Name = "%s/%s" % (namespace, repository)
            name = convert.repositoryName(namespace, repository, self.keepLibrary)
            if name is None:
                self._skip("repository " + v1Name, "not a valid repository name today")
                continue
            tags = await self.store.tags(namespace, repository)
            for tag in sorted(tags):
                label = "%s:%s" % (v1Name, tag)
                if not names.isValidTag(tag):
                    self._skip(label, "not a valid tag name today")
                    continue
                imageID = convert.parseTagFile(tags[tag]) if tags[tag] is not None else None
                if imageID is None:
                    self._skip(label, "its tag file names no image id")
                    continue
                out.append((label, name, tag, imageID, namespace, repository))
        return out

    async def run(self):
        plan = await self.plan()
        self.progress.planned(len(plan))
        for i, item in enumerate(plan):
            self.progress.tagStarted(i, item[0])
            await self._importTag(*item)
        if self.updater is not None and not self.dryRun:
            await self._index()
        return self.report

    # --- images ---

    async def _image(self, imageID):
        """C{(doc, layer size)} of one V1 image, or L{ImageProblem}."""
        found = self._images.get(imageID)
        if found is None:
            try:
                found = await self._readImage(imageID)
            except ImageProblem as e:
                found = e
            self._images[imageID] = found
        if isinstance(found, ImageProblem):
            raise found
        return found

    async def _readImage(self, imageID):
        if not convert.isImageID(imageID):
            raise ImageProblem(imageID[:80], "not an image id")
        if await self.store.inProgress(imageID):
            raise ImageProblem(imageID, "unfinished push (_inprogress)")
        try:
            data = await self.store.imageJSON(imageID)
        except ContentTooLarge:
            raise ImageProblem(imageID, "its JSON is too large")
        if data is None:
            raise ImageProblem(imageID, "no JSON (images/%s/json is missing)" % (imageID,))
        try:
            doc = convert.parseImageJSON(imageID, data)
        except convert.BadImage as e:
            raise ImageProblem(imageID, str(e))
        size = await self.store.layerSize(imageID)
        if size is None:
            raise ImageProblem(imageID, "no layer (images/%s/layer is missing)" % (imageID,))
        return doc, size

    async def chain(self, imageID):
        """C{[(id, doc, layer size)]} of the image and its ancestors, root
        first; L{ImageProblem} for the first image that is not right."""
        doc, size = await self._image(imageID)
        try:
            data = await self.store.ancestry(imageID)
        except ContentTooLarge:
            raise ImageProblem(imageID, "its ancestry file is too large")
        try:
            ids = convert.parseAncestry(imageID, data) if data is not None else None
        except convert.BadImage as e:
            raise ImageProblem(imageID, str(e))
        out = [(imageID, doc, size)]
        if ids is None:  # no ancestry file: the parents
            seen = [imageID]
            parent = convert.parentOf(doc)
            while parent is not None:
                if parent in seen:
                    raise ImageProblem(imageID, "ancestry cycle (%s)" % (" -> ".join(seen + [parent]),))
                if len(seen) >= MAX_CHAIN:
                    raise ImageProblem(imageID, "more than %d ancestors" % (MAX_CHAIN,))
                seen.append(parent)
                pdoc, psize = await self._image(parent)
                out.append((parent, pdoc, psize))
                parent = convert.parentOf(pdoc)
        else:
            if len(ids) > MAX_CHAIN:
                raise ImageProblem(imageID, "more than %d ancestors" % (MAX_CHAIN,))
            for i, ancestor in enumerate(ids[1:], 1):
                if convert.parentOf(out[-1][1]) != ancestor:
                    raise ImageProblem(ids[i - 1], "its parent is not %s as the ancestry of %s says" % (ancestor, imageID))
                adoc, asize = await self._image(ancestor)
                out.append((ancestor, adoc, asize))
            parent = convert.parentOf(out[-1][1])
            if parent is not None:
                if parent in ids:
                    loop = ids[ids.index(parent):] + [parent]
                    raise ImageProblem(imageID, "ancestry cycle (%s)" % (" -> ".join(loop),))
                raise ImageProblem(ids[-1], "its parent %s is missing from the ancestry of %s" % (parent, imageID))
        out.reverse()
        return out

    # --- layers ---

    async def _readRecord(self, imageID):
        try:
            data = await self.registry.driver.getContent("%s/%s" % (RECORDS, imageID), 4096)
        except (PathNotFound, ContentTooLarge):
            return None
        return Layer.fromRecord(data)

    async def layer(self, name, imageID, sourceSize):
        """The L{Layer} of a V1 image, stored and linked into C{name}
        (in a dry run: C{None} when it is not stored yet)."""
        found = self._layers.get(imageID)
        if isinstance(found, ImageProblem):
            raise found
        if found is None:
            found = await self._readRecord(imageID)
            if found is not None and (
                found.sourceSize != sourceSize or await self.registry.blobs.storedSize(digests.parse(found.digest))
                != found.size
            ):
                found = None  # another layer under that id, or its blob was collected since
            if found is not None:
                self.report.reused += 1
                self.progress.layerDone(imageID, found, True)
            elif self.dryRun:
                return None
            else:
                try:
                    found = await self._upload(name, imageID, sourceSize)
                except LayerError as e:
                    self._layers[imageID] = ImageProblem(imageID, "its layer is not a tar: %s" % (e,))
                    raise self._layers[imageID]
                await self.registry.driver.putContent("%s/%s" % (RECORDS, imageID), found.record())
                self.report.stored += 1
                self.report.storedBytes += found.size
                self.progress.layerDone(imageID, found, False)
            self._layers[imageID] = found
        if not self.dryRun:
            d = digests.parse(found.digest)
            if not await self.registry.blobs.isLinked(name, d):
                await self.registry.blobs.link(name, d)
        return found

    async def _upload(self, name, imageID, sourceSize):
        """Stream the layer file into a new upload of C{name}, hashing as it
        goes, and make it a blob.  Until it is one, a mark names the
        upload, so that the next run removes it if this one is killed."""
        uploads, driver = self.registry.uploads, self.registry.driver
        await self._dropUnfinished(imageID)
        self.progress.layerStarted(imageID, sourceSize)
        uploadID = await uploads.create(name)
        mark = "%s/%s" % (UNFINISHED, imageID)
        await driver.putContent(mark, json.dumps({"name": name, "upload": uploadID}).encode("ascii"))
        try:
            appender = uploads.appender(name, uploadID)
            digester = await streamLayer(self.store, imageID, appender, self._inPool,
                                         lambda done: self.progress.layerProgress(imageID, done, sourceSize))
            expected = digests.parse(digester.digest)
            await uploads.complete(name, uploadID, expected)
        except BaseException:
            await self._cancel(name, uploadID)
            await deleteQuietly(driver, mark)
            raise
        await deleteQuietly(driver, mark)
        return Layer(expected, digester.storedSize, digester.diffID, digester.compressed, sourceSize)

    async def _cancel(self, name, uploadID):
        try:
            await self.registry.uploads.cancel(name, uploadID)
        except RegistryError:
            pass  # gone already

    async def _dropUnfinished(self, imageID):
        """Remove the upload a killed run left of this layer, if any."""
        mark = "%s/%s" % (UNFINISHED, imageID)
        try:
            doc = json.loads(await self.registry.driver.getContent(mark, 4096))
            name, uploadID = doc["name"], doc["upload"]
        except PathNotFound:
            return
        except (ValueError, TypeError, KeyError, ContentTooLarge):
            name = uploadID = None
        if names.isValidName(name) and isValidUploadID(uploadID):
            await self._cancel(name, uploadID)
        await deleteQuietly(self.registry.driver, mark)

    # --- tags ---

    async def _current(self, name, tag):
        try:
            return await self.registry.manifests.resolve(name, tag)
        except RegistryError:
            return None

    async def _importTag(self, label, name, tag, imageID, namespace, repository):
        try:
            chain = await self.chain(imageID)
            layers = []
            for ancestor, _, size in chain:
                layers.append(await self.layer(name, ancestor, size))
        except ImageProblem as e:
            self._skip(label, str(e))
            return
        except Exception as e:
            # Storage or the network failed (S3 answering errors, a lost
            # connection): this tag waits for the next run; the rest goes on.
            self._skip(label, "storing it failed: %s" % (_why(e),))
            return
        full = "%s:%s" % (name, tag)
        self.report.repositories.add(name)
        if any(layer is None for layer in layers):  # (a dry run)
            self.report.planned.append(full)
            self.progress.tagDone(label, "would import as %s (%d layers)" % (full, len(layers)))
            return
        tagJSON = await self.store.tagJSON(namespace, repository, tag)
        try:
            tagJSON = json.loads(tagJSON) if tagJSON is not None else None
        except (ValueError, UnicodeDecodeError):
            tagJSON = None
        config = convert.imageConfig([doc for _, doc, _ in chain], [layer.diffID for layer in layers], tagJSON)
        configDigest = digests.of(config)
        body, mediaType = convert.manifest(
            (configDigest, len(config)), [(layer.digest, layer.size, layer.compressed) for layer in layers],
            self.oci, self.descriptions.get(name),
        )
        digest = digests.of(body)
        if await self._current(name, tag) == digest:
            self.report.unchanged.append(full)
            self.progress.tagDone(label, "up to date as %s" % (full,))
            return
        if self.dryRun:
            self.report.planned.append(full)
            self.progress.tagDone(label, "would import as %s (%d layers)" % (full, len(layers)))
            return
        try:
            await self.registry.blobs.putContent(configDigest, config)
            await self.registry.blobs.link(name, configDigest)
            await self.registry.manifests.put(name, tag, body, mediaType)
        except Exception as e:
            self._skip(label, "storing it failed: %s" % (_why(e),))
            return
        self.report.imported.append(full)
        self.progress.tagDone(label, "imported as %s@%s" % (full, digest))

    # --- the search index ---

    async def _index(self):
        from txregistry.search.index import IndexUnavailable

        rows = []
        for name in sorted(self.report.repositories):
            row = await self.updater.rowFor(name)
            if row is not None:
                rows.append(row)
        try:
            await self.updater.index.upsertMany(rows)
        except IndexUnavailable as e:
            self._skip("search index", "not updated (%s): run txregistry reindex" % (e,))
