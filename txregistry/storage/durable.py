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

Each directory that gained an entry is fsynced (not one that lost one: a
deletion undone by a power loss loses nothing).  Temporary names begin
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
    """Create C{directory} and its missing ancestors where they belong (for
    a file renamed in next: a directory's appearing early shows nothing).
    Returns the directories that gained an entry, deepest first: fsync them
    once the file is in (L{fsyncAll}; one journal commit, not one each)."""
    parent, parts = missing(directory)
    gained = []
    for name in parts:
        path = os.path.join(parent, name)
        try:
            os.mkdir(path)
        except FileExistsError:
            pass
        else:
            gained.append(parent)
        parent = path
    return gained[::-1]


def fsyncAll(directories):
    for directory in directories:
        fsyncDirectory(directory)


class Tree:
    """The storage tree under C{root}, with its staging area."""

    def __init__(self, root):
        self.root = root
        self.staging = os.path.join(root, STAGING)
        self._foreign = set()  # devices below the root, not the staging area's (EXDEV)
        self._swept = False

    def _stagingName(self):
        """A new name in the staging area (made if missing)."""
        if not self._swept:
            os.makedirs(self.staging, exist_ok=True)
            self._swept = True
            self._sweep()
        return os.path.join(self.staging, uuid.uuid4().hex)

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
                fsyncAll(makeDirs(self.root))  # a new storage: its root first
                continue
            if self._foreign and os.stat(existing).st_dev in self._foreign:
                gained = makeDirs(directory)
                self.put(local, data)
                fsyncAll(gained)
                return
            if self._putStaged(local, data, existing, parts):
                return

    def _putStaged(self, local, data, existing, parts):
        """Build C{parts} with the file in the staging area, move the
        topmost into C{existing}.  False when that must be tried again (the
        directory appeared meanwhile, or staging is not possible here)."""
        top = self._stagingName()
        try:
            inner = os.path.join(top, *parts[1:])
            try:
                os.makedirs(inner)
            except FileNotFoundError:  # the staging area was removed
                self._swept = False
                return False
            _writeFile(os.path.join(inner, os.path.basename(local)), data)
            path = inner
            while True:  # each gained an entry
                fsyncDirectory(path)
                if path == top:
                    break
                path = os.path.dirname(path)
            try:
                os.rename(top, os.path.join(existing, parts[0]))
            except OSError as e:
                if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
                    return False  # made by another writer: write into it
                if e.errno == errno.EXDEV:
                    self._foreign.add(os.stat(existing).st_dev)  # another file system: in place
                    return False
                raise
            top = None
            fsyncDirectory(existing)
            return True
        finally:
            if top is not None:
                shutil.rmtree(top, ignore_errors=True)

    def remove(self, local):
        """Delete the file or directory tree C{local} (FileNotFoundError if
        there is none)."""
        if not os.path.isdir(local) or os.path.islink(local):
            os.unlink(local)
            return
        parent = os.path.dirname(local)
        if not self._foreign or os.stat(parent).st_dev not in self._foreign:
            doomed = self._stagingName()
            try:
                try:
                    os.rename(local, doomed)
                except FileNotFoundError:
                    if not os.path.lexists(local):
                        raise
                    os.makedirs(self.staging, exist_ok=True)  # the staging area was removed
                    os.rename(local, doomed)
            except OSError as e:
                if e.errno != errno.EXDEV:
                    raise
                self._foreign.add(os.stat(parent).st_dev)  # another file system: in place
            else:
                shutil.rmtree(doomed, ignore_errors=True)
                return
        shutil.rmtree(local)
