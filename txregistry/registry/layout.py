"""Where things live in storage: Distribution's layout, exactly, so that a
``registry:2`` data directory or bucket can be served by txregistry and back.

This module is the only one that knows these paths."""

ROOT = "/docker/registry/v2"


def blobData(digest):
    return "%s/blobs/%s/%s/%s/data" % (ROOT, digest.algorithm, digest.hex[:2], digest.hex)


def blobDir(digest):
    return "%s/blobs/%s/%s/%s" % (ROOT, digest.algorithm, digest.hex[:2], digest.hex)


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


def manifestsDir(name):
    return repository(name) + "/_manifests"


def layerLink(name, digest):
    return "%s/_layers/%s/%s/link" % (repository(name), digest.algorithm, digest.hex)


def revisionLink(name, digest):
    return "%s/revisions/%s/%s/link" % (manifestsDir(name), digest.algorithm, digest.hex)


def tagsDir(name):
    return manifestsDir(name) + "/tags"


def tagDir(name, tag):
    return "%s/%s" % (tagsDir(name), tag)


def tagCurrentLink(name, tag):
    return tagDir(name, tag) + "/current/link"


def tagIndexLink(name, tag, digest):
    return "%s/index/%s/%s/link" % (tagDir(name, tag), digest.algorithm, digest.hex)


# Referrers are ours (Distribution 2.8 has no referrers API).  They live under
# _manifests, which Distribution's catalog and garbage collector step over.
def referrersDir(name, subject):
    return "%s/referrers/%s/%s" % (manifestsDir(name), subject.algorithm, subject.hex)


def referrerLink(name, subject, digest):
    return "%s/%s/%s/link" % (referrersDir(name, subject), digest.algorithm, digest.hex)


def uploadDir(name, uploadID):
    return "%s/_uploads/%s" % (repository(name), uploadID)


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
    if parts[-1] == "link":
        parts = parts[:-1]
    return "%s:%s" % (parts[-2], parts[-1])
