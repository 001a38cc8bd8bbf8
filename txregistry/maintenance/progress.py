"""What an admin command (gc, reindex, check) shows while it works: on a
terminal a bar redrawn in place, with counts and bytes; otherwise (a log,
a pipe) plain lines: one when a stage starts, one every few seconds, one
when it ends.  Written to a stream of its own (stderr), so that the
command's report on stdout stays plain."""

import time


def humanBytes(n):
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return ("%d %s" if unit == "B" else "%.1f %s") % (value, unit)
        value /= 1024


class Progress:
    """L{stage} starts a stage of C{total} items (and C{totalBytes}, when
    known); L{advance} counts items and bytes done; L{finish} ends the
    last stage.  Also a callable C{(done, total)}, for what reports
    repositories so (the index rebuild)."""

    def __init__(self, stream, tty=None, width=30, interval=5.0, clock=time.monotonic):
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.width = width
        self.interval = interval if not self.tty else 0.1
        self.clock = clock
        self.name = None

    def stage(self, name, total, unit, totalBytes=None):
        self.finish()
        self.name, self.total, self.unit, self.totalBytes = name, total, unit, totalBytes
        self.done = self.bytes = 0
        self.last = self.clock()
        self._show(force=not self.tty)

    def advance(self, n=1, nbytes=0):
        if self.name is None:
            return
        self.done += n
        self.bytes += nbytes
        self._show(force=False)

    def finish(self):
        if self.name is None:
            return
        self._show(force=True, end=True)
        self.name = None

    def __call__(self, done, total):
        if self.name is None:
            self.stage("indexing", total, "repositories")
        self.advance(done - self.done)
        if done >= total:
            self.finish()

    def line(self):
        counts = "%d/%d %s" % (self.done, self.total, self.unit)
        if self.bytes or self.totalBytes:
            counts += ", %s" % (humanBytes(self.bytes),)
            if self.totalBytes:
                counts += " of %s" % (humanBytes(self.totalBytes),)
        return "%s: %s" % (self.name, counts)

    def _show(self, force, end=False):
        now = self.clock()
        if not force and now - self.last < self.interval:
            return
        self.last = now
        if self.tty:
            if self.totalBytes:
                fraction = self.bytes / self.totalBytes
            else:
                fraction = self.done / self.total if self.total else 1.0
            filled = min(self.width, int(self.width * fraction))
            self.stream.write("\r[%s%s] %s\x1b[K" % ("#" * filled, " " * (self.width - filled), self.line()))
            if end:
                self.stream.write("\n")
        else:
            self.stream.write(self.line() + (" (done)" if end else "") + "\n")
        self.stream.flush()
