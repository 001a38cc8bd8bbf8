"""The marker saying a search index may lag storage.

Index updates are written after the push is acknowledged, so a daemon that
dies can leave updates unwritten.  Storage holds them all (it is the
journal); what must survive is the knowledge that the index may lack some.
The marker is a small local file, present from the daemon's start until it
stops with every update written: found at start, it makes the daemon repair
the index from storage.  Local, and named after the index, so each node of
a shared index repairs what it may have left unwritten.

Its calls block (a local file, made or removed once a run): call them
before the reactor runs, or in a thread."""

import hashlib
import os
import tempfile
import uuid


def markerPath(settings):
    """Where the marker of C{settings}' index lives: beside an SQLite file,
    else in the daemon's local state directory (in the storage path, or
    the system's temporary directory when storage is S3)."""
    from sqlalchemy.engine import make_url

    url = make_url(settings.searchDatabase)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        return os.path.abspath(url.database) + ".lagging"
    if settings.s3 is None:
        base = os.path.join(settings.storagePath, "txregistry")
    else:
        base = os.path.join(
            tempfile.gettempdir(),
            "txregistry-%s-%s" % (settings.s3.bucket, settings.s3.rootDirectory.strip("/").replace("/", "_")),
        )
    name = hashlib.sha256(settings.searchDatabase.encode("utf-8")).hexdigest()[:16]
    return os.path.join(base, "index-%s.lagging" % (name,))


class LagMarker:
    def __init__(self, path):
        self.path = path

    def arm(self):
        """Make the marker (durably); return whether it was there already
        (the last run did not end with every update written)."""
        existed = os.path.exists(self.path)
        directory = os.path.dirname(self.path)
        os.makedirs(directory, exist_ok=True)
        if not existed:
            tmp = os.path.join(directory, ".tmp-" + uuid.uuid4().hex)
            with open(tmp, "wb") as f:
                f.write(b"the search index may lag storage until this daemon stops cleanly\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        return existed

    def disarm(self):
        """Remove the marker: every update is in the index."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
