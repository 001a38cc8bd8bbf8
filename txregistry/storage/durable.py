"""Atomic, durable changes to a directory tree, for the filesystem driver
(blocking calls: run them in a thread).

- A file is written under a temporary name, fsynced, and renamed into place;
  then its directory is fsynced, so that it survives a power loss.
- Directories a write needs are built, with the file in them, in a staging
  area of the storage root, away from view, and the topmost of them is moved
  into place: a new directory appears with its content or not at all, even
  after a crash (Distribution takes every directory under
  ``_manifests/tags/`` for a tag, so a half-made one would be listed).
- A directory tree is deleted by a move into the staging area first: it
  disappears at once, and a crash leaves nothing half-removed in view.

Each directory that gained an entry is fsynced.  Temporary names begin
with L{TEMP_PREFIX}; the driver's listings skip them.
"""

import errno
import os
import shutil
import time
import uuid

TEMP_PREFIX = ".tmp-"
STAGING = TEMP_PREFIX + "staging"
# Staging entries older than this are debris of a crash.
STALE_AFTER = 3600


def fsyncDirectory(directory):
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise  # an I/O error: what was written may not be on disk
    finally:
        os.close(fd)


def _writeFile(path, data):
    with open(path, "xb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _unlinkQuietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def missing(directory):
    """C{(existing, parts)}: the deepest existing ancestor of C{directory}
    (or itself) and the names below it that do not exist yet."""
    parts = []
    while not os.path.isdir(directory):
        directory, name = os.path.split(directory)
        if not name:
            break
        parts.append(name)
    return directory, parts[::-1]


def makeDirs(directory):
    """Create C{directory} and its missing ancestors where they belong,
    fsyncing each directory that gained an entry (for files that are
    renamed in later, whose directory's appearing early shows nothing)."""
    parent, parts = missing(directory)
    for name in parts:
        path = os.path.join(parent, name)
        try:
            os.mkdir(path)
        except FileExistsError:
            pass
        else:
            fsyncDirectory(parent)
        parent = path


class Tree:
    """The storage tree under C{root}, with its staging area."""

    def __init__(self, root):
        self.root = root
        self.staging = os.path.join(root, STAGING)
        self._usable = True  # False once the staging area proved unusable (EXDEV)
        self._swept = False

    def _stage(self):
        """A new, empty directory in the staging area."""
        os.makedirs(self.staging, exist_ok=True)
        if not self._swept:
            self._swept = True
            self._sweep()
        stage = os.path.join(self.staging, uuid.uuid4().hex)
        os.mkdir(stage)
        return stage

    def _sweep(self):
        """Remove what crashes left in the staging area (entries of other
        processes still in use are younger)."""
        limit = time.time() - STALE_AFTER
        for name in os.listdir(self.staging):
            path = os.path.join(self.staging, name)
            try:
                if os.lstat(path).st_mtime < limit:
                    shutil.rmtree(path, ignore_errors=True)
            except OSError:
                pass

    def put(self, local, data):
        """Replace the file C{local} with C{data}, atomically and durably."""
        directory = os.path.dirname(local)
        while True:
            existing, parts = missing(directory)
            if not parts:
                tmp = os.path.join(directory, TEMP_PREFIX + uuid.uuid4().hex)
                try:
                    _writeFile(tmp, data)
                    os.replace(tmp, local)
                except BaseException:
                    _unlinkQuietly(tmp)
                    raise
                fsyncDirectory(directory)
                return
            if existing != self.root and not existing.startswith(self.root + os.sep):
                makeDirs(self.root)  # a new storage: its root first
                continue
            if not self._usable:
                makeDirs(directory)
                continue
            if self._putStaged(local, data, existing, parts):
                return

    def _putStaged(self, local, data, existing, parts):
        """Build C{parts} with the file in the staging area, move the
        topmost into C{existing}.  False when that must be tried again (the
        directory appeared meanwhile, or staging is not possible here)."""
        stage = self._stage()
        try:
            inner = os.path.join(stage, *parts)
            os.makedirs(inner)
            _writeFile(os.path.join(inner, os.path.basename(local)), data)
            path = inner
            while path != stage:  # each gained an entry
                fsyncDirectory(path)
                path = os.path.dirname(path)
            try:
                os.rename(os.path.join(stage, parts[0]), os.path.join(existing, parts[0]))
            except OSError as e:
                if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    return False  # made by another writer: write into it
                if e.errno == errno.EXDEV:
                    self._usable = False  # another file system below the root
                    return False
                raise
            fsyncDirectory(existing)
            return True
        finally:
            shutil.rmtree(stage, ignore_errors=True)

    def remove(self, local):
        """Delete the file or directory tree C{local} (FileNotFoundError if
        there is none)."""
        parent = os.path.dirname(local)
        if not os.path.isdir(local) or os.path.islink(local):
            os.unlink(local)
            fsyncDirectory(parent)
            return
        if self._usable:
            stage = self._stage()
            try:
                os.rename(local, os.path.join(stage, "doomed"))
            except OSError as e:
                shutil.rmtree(stage, ignore_errors=True)
                if e.errno != errno.EXDEV:
                    raise
                self._usable = False  # another file system below the root
            else:
                fsyncDirectory(parent)
                shutil.rmtree(stage, ignore_errors=True)
                return
        shutil.rmtree(local)  # no staging area: in place
