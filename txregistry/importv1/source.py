"""Reading a classic docker-registry (V1) store, and its search database.

The store is read through a storage driver (L{IStorageDriver}: paths and
bytes), a L{FilesystemDriver} on the classic ``storage_path`` directory
or an L{S3Driver} on its bucket with ``storage_path`` as the key prefix,
exactly as the classic registry laid it out::

    images/<id>/json  layer  ancestry  _checksum  _inprogress
    repositories/<namespace>/<repository>/tag_<tag>  tag<tag>_json  json  _index_images

Nothing is ever written to the source."""

from txregistry.storage import ContentTooLarge, InvalidPath, PathNotFound
from txregistry.storage.interface import checkPath

MAX_JSON = 4 * 1024 * 1024  # the largest V1 JSON or ancestry file read
MAX_TAG = 4096


class V1Store:
    """The classic layout on C{driver} (its root is the store's)."""

    def __init__(self, driver):
        self.driver = driver

    async def _content(self, path, maxSize):
        try:
            return await self.driver.getContent(path, maxSize)
        except (PathNotFound, InvalidPath):
            return None

    async def _list(self, path):
        try:
            return [p.rsplit("/", 1)[1] for p in await self.driver.list(path)]
        except (PathNotFound, InvalidPath):
            return []

    async def isStore(self):
        """Whether there is a V1 store there at all (images or repositories)."""
        return bool(await self._list("/repositories") or await self._list("/images"))

    async def repositories(self):
        """C{[(namespace, repository)]}, sorted; also those whose names a
        path cannot hold (reported by the importer)."""
        out = []
        for namespace in sorted(await self._list("/repositories")):
            for repository in sorted(await self._list("/repositories/%s" % (namespace,))):
                out.append((namespace, repository))
        return out

    async def tags(self, namespace, repository):
        """C{{tag: content of its tag_ file}}, C{None} content for a file
        too large to be a tag."""
        out = {}
        base = "/repositories/%s/%s" % (namespace, repository)
        for entry in await self._list(base):
            if entry.startswith("tag_") and len(entry) > 4:
                try:
                    out[entry[4:]] = await self._content("%s/%s" % (base, entry), MAX_TAG)
                except ContentTooLarge:
                    out[entry[4:]] = None
        return out

    async def tagJSON(self, namespace, repository, tag):
        try:
            return await self._content("/repositories/%s/%s/tag%s_json" % (namespace, repository, tag), MAX_JSON)
        except ContentTooLarge:
            return None

    def _image(self, imageID, what):
        return checkPath("/images/%s/%s" % (imageID, what))

    async def imageJSON(self, imageID):
        """The bytes of the image's JSON, or C{None}; L{ContentTooLarge}."""
        return await self._content(self._image(imageID, "json"), MAX_JSON)

    async def ancestry(self, imageID):
        return await self._content(self._image(imageID, "ancestry"), MAX_JSON)

    async def _exists(self, path):
        try:
            await self.driver.stat(path)
        except PathNotFound:
            return False
        return True

    async def inProgress(self, imageID):
        """Whether the image's push never finished (``_inprogress``)."""
        return await self._exists(self._image(imageID, "_inprogress"))

    async def layerSize(self, imageID):
        """The size of the image's layer file, or C{None} when it has none."""
        try:
            info = await self.driver.stat(self._image(imageID, "layer"))
        except PathNotFound:
            return None
        return None if info.isDir else info.size

    def openLayer(self, imageID):
        """Deferred L{IReader} of the layer file."""
        return self.driver.reader(self._image(imageID, "layer"))


class SearchDatabaseError(Exception):
    pass


def readDescriptions(url):
    """C{{name: description}} of the classic registry's search database
    (``sqlalchemy_index_database``: its ``repository`` table, ``name`` as
    ``namespace/repository``).  Blocking: call it in a thread."""
    import os

    import sqlalchemy as sa

    try:
        parsed = sa.engine.make_url(url)
    except Exception as e:
        raise SearchDatabaseError("%s is not a database URL: %s" % (url, e))
    if parsed.get_backend_name() == "sqlite" and not (parsed.database and os.path.isfile(parsed.database)):
        # (SQLite would create an empty one.)
        raise SearchDatabaseError("%s: no such database file" % (url,))
    try:
        engine = sa.create_engine(url)
    except Exception as e:
        raise SearchDatabaseError("%s is not a database URL: %s" % (url, e))
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("repository"):
                raise SearchDatabaseError("%s has no repository table: not the classic registry's search database"
                                          % (url,))
            rows = conn.execute(sa.text("SELECT name, description FROM repository")).all()
    except sa.exc.SQLAlchemyError as e:
        raise SearchDatabaseError("cannot read %s: %s" % (url, str(e).splitlines()[0]))
    finally:
        engine.dispose()
    return {name: description for name, description in rows if isinstance(name, str) and description}
