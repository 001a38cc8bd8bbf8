"""Deleting a whole repository.

What goes is the repository's own part of storage (``_manifests``: tags,
revisions, referrers; ``_layers``: its links to blobs; ``_uploads``: its
uploads, on S3 their multipart uploads aborted): not the blobs, which
other repositories may share (``txregistry gc`` collects those no manifest
uses any more), and not the repositories nested in its name (``team/app``
is deleted, ``team/app/tools`` stays).

Tags go first, so that nothing pulled by tag is half there.  A push into
the repository while it is deleted: an upload in progress is lost (the
client is told the upload is unknown and starts again); a manifest whose
layers were linked before the delete is refused (its blobs are unknown
to the repository); what is pushed after the delete makes a new
repository of the same name."""

from txregistry import names
from txregistry.errors import RegistryError
from txregistry.registry import layout
from txregistry.registry.blobs import deleteQuietly, listQuietly

# The repository's own directories, in the order they are deleted; then any
# other one of ours or another tool's (an underscore name).
ORDER = (layout.MANIFESTS, layout.LAYERS, layout.UPLOADS)


async def deleteRepository(registry, name):
    """Delete repository C{name} of C{registry} (a L{Registry}) and announce
    it (a manifest delete event naming the repository alone, as
    Distribution's repository delete, so that the search index drops it);
    L{RegistryError} NAME_INVALID or NAME_UNKNOWN."""
    if not names.isValidName(name):
        raise RegistryError("NAME_INVALID", detail={"name": name})
    driver = registry.driver
    own = set(layout.baseName(p) for p in await listQuietly(driver, layout.repository(name)))
    own = set(base for base in own if layout.isRepositoryOwn(base))
    if not own & layout.LISTED:
        raise RegistryError("NAME_UNKNOWN", detail={"name": name})
    for base in [b for b in ORDER if b in own] + sorted(own - set(ORDER)):
        await deleteQuietly(driver, "%s/%s" % (layout.repository(name), base))
    registry.events.manifestDeleted(name)
