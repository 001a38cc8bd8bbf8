"""Starting the writeback of freshly written file data early (Linux's
C{sync_file_range(2)} with C{SYNC_FILE_RANGE_WRITE}, through ctypes: the
os module has no binding for it).

An upload is written a batch at a time and made durable once, when it is
completed (an fsync of the whole file).  Left to itself the kernel keeps
all of it dirty in the page cache until then, and that fsync writes a
whole blob while the client waits.  Asking for the writeback of each batch
as it is written lets the disk work while the rest of the body arrives, so
the final fsync has little left to do.  It promises nothing by itself (the
data is durable only once fsynced) and does not drop the pages from the
cache (a blob pulled right after its push is still read from memory).

Where the call does not exist (not Linux, no libc through ctypes) or fails
(a file system that does not support it), it does nothing.
"""

import ctypes
import ctypes.util
import errno

SYNC_FILE_RANGE_WRITE = 2


def _load():
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    call.restype = ctypes.c_int
    return call


_syncFileRange = _load()


def startWriteback(fd, offset, length):
    """Ask the kernel to start writing bytes C{[offset, offset + length)}
    of the open file C{fd} to disk, without waiting for it (blocking call:
    run it in a thread; it may wait for room in the device's queue).
    Returns whether the request was made."""
    global _syncFileRange
    if _syncFileRange is None or length <= 0:
        return False
    if _syncFileRange(fd, offset, length, SYNC_FILE_RANGE_WRITE) == 0:
        return True
    if ctypes.get_errno() in (errno.ENOSYS, errno.EINVAL, errno.ESPIPE):
        _syncFileRange = None  # (not here: never ask again)
    return False
