"""A durable queue of one endpoint's events: append-only segment files of
JSON lines in a directory of its own, and the position delivered so far.

Every method blocks (file I/O): the notifier calls them in a thread pool
of one thread, so they never overlap.  An event is in the queue once
L{Journal.append} has returned (written and fsynced); it leaves only
through L{Journal.ack} of a position after it, which the sender calls
after the endpoint answered 2xx: each event is delivered at least once,
whatever crashes in between.  Delivered segments are deleted: the queue
takes the room of what is still undelivered (and one segment at most).

Layout: ``<dir>/<16 digits>.jsonl`` (the segments, the highest is
appended to), ``<dir>/acked`` (``SEGMENT OFFSET``: delivered up to there),
``<dir>/lock`` (held by the process that owns the queue).
"""

import fcntl
import os

SEGMENT_SIZE = 8 * 1024 * 1024  # bytes a segment grows to before the next one starts
ACKED = "acked"
SUFFIX = ".jsonl"


class JournalError(Exception):
    """The queue's directory cannot be used (the message is one line)."""


def _fsyncDir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    def __init__(self, directory):
        self.directory = directory
        self.pending = 0  # events appended and not delivered
        self._lock = None
        self._fd = None  # the last segment, open for appending
        self._last = 0  # its number
        self._size = 0  # its size
        self._acked = (0, 0)

    # --- start and stop ---

    def open(self):
        """Take the directory (made if needed), recover what a crash left and
        count what is undelivered.  L{JournalError} if it cannot."""
        d = self.directory
        try:
            os.makedirs(d, exist_ok=True)
            self._lock = os.open(os.path.join(d, "lock"), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise JournalError("cannot use notification queue %s: %s" % (d, e.strerror or e))
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self._lock)
            self._lock = None
            raise JournalError("notification queue %s is in use by another process" % (d,))
        try:
            self._recover()
        except OSError as e:
            self.close()
            raise JournalError("cannot read notification queue %s: %s" % (d, e.strerror or e))

    def _segments(self):
        found = []
        for name in os.listdir(self.directory):
            if name.endswith(SUFFIX) and name[:-len(SUFFIX)].isdigit():
                found.append(int(name[:-len(SUFFIX)]))
        return sorted(found)

    def _path(self, segment):
        return os.path.join(self.directory, "%016d%s" % (segment, SUFFIX))

    def _recover(self):
        self._acked = self._readAcked()
        segments = self._segments()
        for s in segments:
            if s < self._acked[0]:  # delivered; a crash came before its removal
                os.unlink(self._path(s))
        segments = [s for s in segments if s >= self._acked[0]] or [self._acked[0]]
        self._last = segments[-1]
        path = self._path(self._last)
        with open(path, "ab+") as f:
            # A line cut short by a crash while it was appended: never
            # acknowledged to anyone (the append had not returned), dropped.
            size = f.seek(0, os.SEEK_END)
            keep = size
            while keep > 0:
                f.seek(max(0, keep - 65536))
                chunk = f.read(keep - max(0, keep - 65536))
                nl = chunk.rfind(b"\n")
                if nl >= 0:
                    keep = max(0, keep - 65536) + nl + 1
                    break
                keep = max(0, keep - 65536)
            if keep != size:
                f.truncate(keep)
                os.fsync(f.fileno())
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._size = os.fstat(self._fd).st_size
        _fsyncDir(self.directory)
        count = 0
        for s in segments:
            with open(self._path(s), "rb") as f:
                if s == self._acked[0]:
                    f.seek(self._acked[1])
                count += sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        self.pending = count

    def _readAcked(self):
        try:
            with open(os.path.join(self.directory, ACKED), "rb") as f:
                parts = f.read(100).split()
            return int(parts[0]), int(parts[1])
        except FileNotFoundError:
            return 0, 0
        except (ValueError, IndexError):
            # Damaged: deliver everything again rather than skip anything.
            return 0, 0

    def close(self):
        for attr in ("_fd", "_lock"):
            fd = getattr(self, attr)
            if fd is not None:
                os.close(fd)
                setattr(self, attr, None)

    # --- the queue ---

    def append(self, lines):
        """Queue C{lines} (bytes, each one event ending in a newline),
        durably.  OSError if the disk refuses."""
        if self._size >= SEGMENT_SIZE:
            self._roll()
        data = b"".join(lines)
        start = self._size
        try:
            view = memoryview(data)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
        except OSError:
            # Nothing half-written stays behind the next append.
            os.ftruncate(self._fd, start)
            raise
        self._size += len(data)
        self.pending += len(lines)

    def _roll(self):
        self._last += 1
        fd = os.open(self._path(self._last), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        _fsyncDir(self.directory)
        os.close(self._fd)
        self._fd, self._size = fd, 0

    def read(self, maxEvents, maxBytes=1024 * 1024):
        """C{(lines, position)}: the first undelivered events (at most
        C{maxEvents}, and C{maxBytes} unless one event alone is more), and
        the position to L{ack} once they are delivered."""
        segment, offset = self._acked
        while True:
            lines, size = [], 0
            with open(self._path(segment), "rb") as f:
                f.seek(offset)
                while len(lines) < maxEvents and (size < maxBytes or not lines):
                    line = f.readline()
                    if not line.endswith(b"\n"):
                        break  # the end (or a line being appended)
                    lines.append(line)
                    size += len(line)
            if lines or segment >= self._last:
                return lines, (segment, offset + size)
            # A whole segment delivered, and a later one exists: on to it.
            segment, offset = segment + 1, 0
            self._writeAcked(segment, 0)
            os.unlink(self._path(segment - 1))

    def ack(self, position, count):
        """C{count} events up to C{position} (from L{read}) are delivered."""
        segment, offset = position
        self._writeAcked(segment, offset)
        self.pending = max(0, self.pending - count)
        if segment == self._last and offset == self._size and self._size > 0:
            # All delivered: start an empty segment, drop this one.
            self._roll()
            self._writeAcked(self._last, 0)
            os.unlink(self._path(segment))

    def _writeAcked(self, segment, offset):
        path = os.path.join(self.directory, ACKED)
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(b"%d %d\n" % (segment, offset))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsyncDir(self.directory)
        self._acked = (segment, offset)
