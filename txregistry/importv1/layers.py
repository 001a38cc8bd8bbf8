"""What a V1 layer is and its digests, computed in one pass.

A V1 layer file is a tar, usually gzip-compressed (docker 1.x pushed
gzip; some tools pushed plain tars, and docker also accepted bzip2 and
xz).  L{LayerDigester} is fed the file's bytes in order (in a thread:
decompressing and hashing block) and yields the bytes to store as the
blob, with both digests at the end: the blob's (what the manifest names)
and the uncompressed tar's (the image config's diff id).

- gzip and plain tars are stored as they are (gzip / uncompressed media
  type): the blob digest is the file's.
- bzip2 and xz (which no schema 2 or OCI media type names) are stored
  decompressed, as plain tars.
- An empty file (not a tar at all) becomes an empty tar (two zero blocks),
  which every client unpacks as nothing.
"""

import bz2
import hashlib
import lzma
import zlib

GZIP, TAR, BZIP2, XZ, ZSTD = "gzip", "tar", "bzip2", "xz", "zstd"
# An empty tar archive: two 512-byte zero blocks.
EMPTY_TAR = b"\0" * 1024

_MAGIC = (
    (b"\x1f\x8b", GZIP),
    (b"BZh", BZIP2),
    (b"\xfd7zXZ\x00", XZ),
    (b"\x28\xb5\x2f\xfd", ZSTD),
)
SNIFF = 6  # bytes enough to tell them apart


class LayerError(Exception):
    """The layer's bytes are not a layer we can store (corrupt, unknown
    compression)."""


def sniff(head):
    """The compression C{head} (the first bytes of a layer) says."""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            return kind
    return TAR


class _Gzip:
    """Decompresses a gzip stream of one or more members (as gzip and Go's
    reader do); bytes after the last member that are not a member are
    ignored (padding)."""

    def __init__(self):
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._trailing = False

    def feed(self, data):
        out = []
        while data and not self._trailing:
            out.append(self._d.decompress(data))
            if not self._d.eof:
                break
            data = self._d.unused_data
            if data[:2] == b"\x1f\x8b":
                self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            elif data:
                self._trailing = True
        return b"".join(out)

    def end(self):
        if not self._d.eof and not self._trailing:
            raise LayerError("the gzip stream is truncated")
        return b""


class _Stream:
    """bzip2 or xz through the library decompressor."""

    def __init__(self, factory):
        self._d = factory()

    def feed(self, data):
        return self._d.decompress(data) if data and not self._d.eof else b""

    def end(self):
        if not self._d.eof:
            raise LayerError("the compressed stream is truncated")
        return b""


class LayerDigester:
    """Feed a layer's bytes in order (L{feed}, which returns what to store
    of them), then L{finish}.  Blocking: call it in a thread."""

    def __init__(self):
        self.kind = None
        self._head = b""
        self._stored = hashlib.sha256()
        self._tar = hashlib.sha256()
        self._decoder = None
        self.storedSize = 0
        self.tarSize = 0
        self.sourceSize = 0

    @property
    def compressed(self):
        """Whether the stored blob is compressed (gzip)."""
        return self.kind == GZIP

    def feed(self, data):
        self.sourceSize += len(data)
        if self.kind is None:
            self._head += data
            if len(self._head) < SNIFF:
                return b""
            data, self._head = self._head, b""
            self._start(data)
        return self._take(data)

    def _start(self, head):
        self.kind = sniff(head)
        if self.kind == GZIP:
            self._decoder = _Gzip()
        elif self.kind == BZIP2:
            self._decoder = _Stream(bz2.BZ2Decompressor)
        elif self.kind == XZ:
            self._decoder = _Stream(lzma.LZMADecompressor)
        elif self.kind == ZSTD:
            raise LayerError("zstd-compressed V1 layers are not supported")

    def _take(self, data):
        if not data:
            return b""
        try:
            tar = self._decoder.feed(data) if self._decoder is not None else data
        except (zlib.error, OSError, EOFError, lzma.LZMAError) as e:
            raise LayerError("the %s stream is corrupt: %s" % (self.kind, e))
        self._tar.update(tar)
        self.tarSize += len(tar)
        stored = data if self.kind in (GZIP, TAR) else tar
        self._stored.update(stored)
        self.storedSize += len(stored)
        return stored

    def finish(self):
        """What remains to store (a short or empty file's bytes)."""
        out = b""
        if self.kind is None:
            head, self._head = self._head, b""
            if not head:
                self.kind = TAR
                return self._take(EMPTY_TAR)
            self._start(head)
            out = self._take(head)
        if self._decoder is not None:
            try:
                self._decoder.end()
            except (zlib.error, OSError, EOFError, lzma.LZMAError) as e:
                raise LayerError("the %s stream is corrupt: %s" % (self.kind, e))
        return out

    @property
    def digest(self):
        """The stored blob's digest (once finished)."""
        return "sha256:" + self._stored.hexdigest()

    @property
    def diffID(self):
        """The uncompressed tar's digest (once finished)."""
        return "sha256:" + self._tar.hexdigest()
