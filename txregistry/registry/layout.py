"""Where things live in storage: Distribution's layout, exactly, so that a
``registry:2`` data directory or bucket can be served by txregistry and back.

This module is the only one that knows these paths."""

ROOT = "/docker/registry/v2"
# A repository's own directories (the rest of its directory is the
# repositories nested in it): what marks a directory as a repository.
LAYERS, MANIFESTS, UPLOADS = "_layers", "_manifests", "_uploads"
# What makes a repository one the catalog lists (as Distribution counts).
LISTED = frozenset((LAYERS, MANIFESTS))
LINK = "link"


def blobData(digest):
    return "%s/blobs/%s/%s/%s/data" % (ROOT, digest.algorithm, digest.hex[:2], digest.hex)


def blobDir(digest):
    return "%s/blobs/%s/%s/%s" % (ROOT, digest.algorithm, digest.hex[:2], digest.hex)


# Ours, beside a blob's data (Distribution reads only ``data`` there): the
# record pushes write before relying on a blob, and the mark a collector
# writes before deleting one (see txregistry.registry.touch).
BLOB_TOUCHED = "_touched"
BLOB_SWEEPING = "_sweeping-"


def blobTouched(digest):
    return "%s/%s" % (blobDir(digest), BLOB_TOUCHED)


def blobSweeping(digest, runID):
    return "%s/%s%s" % (blobDir(digest), BLOB_SWEEPING, runID)


def isSweepingMark(path):
    return baseName(path).startswith(BLOB_SWEEPING)


def gcRunsDir():
    """Ours: where each collection writes its start marker (its storage
    mtime is the storage's clock at the start)."""
    return ROOT + "/_txregistry/gc"


def gcRunMarker(runID):
    return "%s/%s" % (gcRunsDir(), runID)


def blobsRoot():
    return ROOT + "/blobs"


def blobDirDigest(path):
    """``.../blobs/<alg>/<hex[:2]>/<hex>`` -> ``alg:hex``, or None when the
    path is not laid out so (unvalidated otherwise)."""
    parts = path.rstrip("/").rsplit("/", 3)
    if len(parts) < 4 or parts[-1][:2] != parts[-2]:
        return None
    return "%s:%s" % (parts[-3], parts[-1])


def repositoriesRoot():
    return ROOT + "/repositories"


def repository(name):
    return "%s/repositories/%s" % (ROOT, name)


def isRepositoryOwn(base):
    """Whether C{base}, the last part of a path under a repository's
    directory, is one of the repository's own (L{LAYERS}, L{MANIFESTS},
    L{UPLOADS}, or another tool's: all begin with an underscore), not a
    nested repository."""
    return base.startswith("_")


def baseName(path):
    """The last part of C{path} (of a listing: a digest's hex, an upload's
    id, a tag)."""
    return path.rsplit("/", 1)[1]


def linkIn(linkDir):
    """The link file of a link's directory (as listed: L{layerLinkDir},
    L{revisionDir}, L{referrerDir})."""
    return "%s/%s" % (linkDir, LINK)


def manifestsDir(name):
    return "%s/%s" % (repository(name), MANIFESTS)


def layersDir(name):
    return "%s/%s" % (repository(name), LAYERS)


def layerLinkDir(name, digest):
    return "%s/%s/%s" % (layersDir(name), digest.algorithm, digest.hex)


def layerLink(name, digest):
    return linkIn(layerLinkDir(name, digest))


def revisionsDir(name):
    return manifestsDir(name) + "/revisions"


def revisionDir(name, digest):
    return "%s/%s/%s" % (revisionsDir(name), digest.algorithm, digest.hex)


def revisionLink(name, digest):
    return linkIn(revisionDir(name, digest))


def tagsDir(name):
    return manifestsDir(name) + "/tags"


def tagDir(name, tag):
    return "%s/%s" % (tagsDir(name), tag)


def tagCurrentLink(name, tag):
    return linkIn(tagDir(name, tag) + "/current")


def tagIndexLink(name, tag, digest):
    return linkIn("%s/index/%s/%s" % (tagDir(name, tag), digest.algorithm, digest.hex))


# Referrers are ours (Distribution 2.8 has no referrers API).  They live under
# _manifests, which Distribution's catalog and garbage collector step over.
def referrersDir(name, subject):
    return "%s/referrers/%s/%s" % (manifestsDir(name), subject.algorithm, subject.hex)


def referrerDir(name, subject, digest):
    return "%s/%s/%s" % (referrersDir(name, subject), digest.algorithm, digest.hex)


def referrerLink(name, subject, digest):
    return linkIn(referrerDir(name, subject, digest))


def uploadsDir(name):
    return "%s/%s" % (repository(name), UPLOADS)


def uploadDir(name, uploadID):
    return "%s/%s" % (uploadsDir(name), uploadID)


def uploadData(name, uploadID):
    return uploadDir(name, uploadID) + "/data"


def uploadStartedAt(name, uploadID):
    return uploadDir(name, uploadID) + "/startedat"


def uploadStaged(name, uploadID):
    """Ours: a request body held back until its length is known right (see
    L{txregistry.registry.chunks}); Distribution ignores it."""
    return uploadDir(name, uploadID) + "/staged"


def linkDigestFromPath(path):
    """``.../<alg>/<hex>/link`` -> ``alg:hex`` (unvalidated)."""
    parts = path.rstrip("/").split("/")
    if parts[-1] == LINK:
        parts = parts[:-1]
    return "%s:%s" % (parts[-2], parts[-1])
