"""Whether a storage path is one the system empties: read at start, to warn.

A path on a tmpfs (or ramfs) is lost at every reboot.  A path under
``/tmp`` on the root file system is emptied at boot by most systems
(systemd-tmpfiles, Debian's ``TMPTIME``).  A file system mounted below
``/tmp`` (the container's volume at ``/tmp/registry``) is neither: it is
what the operator chose to keep.
"""

import os

VOLATILE_TYPES = frozenset(["tmpfs", "ramfs"])


def parseMountinfo(text):
    """The mount points and file system types of C{/proc/self/mountinfo}.

    @return: a list of C{(mountPoint, fsType)}.
    """
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if dash < 5 or dash + 1 >= len(fields):
            continue
        point = fields[4].encode("latin-1").decode("unicode_escape")  # \040 etc.
        mounts.append((point, fields[dash + 1]))
    return mounts


def _within(path, directory):
    return path == directory or path.startswith(directory.rstrip("/") + "/")


def volatileReason(path, mounts):
    """Why the data under C{path} will not survive a reboot, or C{None}.

    @param path: an absolute, resolved path.
    @param mounts: what L{parseMountinfo} gives (the last mount of a point wins).
    """
    point, fsType = "/", None
    for p, t in mounts:
        if _within(path, p) and len(p) >= len(point):
            point, fsType = p, t
    if fsType in VOLATILE_TYPES:
        return "it is on a %s" % (fsType,)
    if _within(path, "/tmp") and not (_within(point, "/tmp") and point != "/tmp"):
        return "it is under /tmp"
    return None


def storageVolatility(path, mountinfo="/proc/self/mountinfo"):
    """L{volatileReason} for C{path} on this machine (a blocking read: at start only)."""
    try:
        with open(mountinfo) as f:
            mounts = parseMountinfo(f.read())
    except OSError:
        mounts = []
    return volatileReason(os.path.realpath(path), mounts)
