"""A chunk of an upload whose body is checked only once it has all arrived.

A ``PATCH`` (or ``PUT``) with ``Content-Range: start-end`` carries
``end - start + 1`` bytes.  With a declared ``Content-Length`` that is
checked before any of the body is read (L{rangeMismatch}); a chunked body
can only be judged at its end, and nothing of a refused one may land in the
upload.  Where the upload's writer can be cut back (L{ITruncatingWriter}:
the filesystem and memory drivers) the body is written in place and cut
off again if refused (L{txregistry.registry.appender.Appender}).  S3 has no
truncate: there such a body goes to a file of its own beside the upload's
data (L{StagedChunk}), and is appended to the data only once its length is
right.

@see: L{txregistry.storage.interface.ITruncatingWriter}
"""

from twisted.internet.defer import gatherResults

from txregistry.errors import RegistryError
from txregistry.registry import layout

READ_CHUNK = 1024 * 1024


def rangeMismatch(span, length):
    """The RANGE_INVALID of a body of C{length} bytes sent with the Content-Range
    C{span} (C{(start, end)}, inclusive)."""
    start, end = span
    return RegistryError(
        "RANGE_INVALID",
        "Content-Range %d-%d is %d bytes but the body has %s" % (start, end, end - start + 1, length),
        {"start": start, "end": end, "length": length},
    )


class StagedChunk:
    """The body of one request, written to C{_uploads/<id>/staged}."""

    def __init__(self, driver, name, uploadID):
        self._driver = driver
        self._path = layout.uploadStaged(name, uploadID)
        self._writer = None

    async def open(self):
        self._writer = await self._driver.writer(self._path)  # (not append: any old one is replaced)

    def write(self, data):
        return self._writer.write(data)

    async def discard(self):
        """Remove what was staged."""
        writer, self._writer = self._writer, None
        if writer is not None:
            await writer.cancel()

    async def appendTo(self, writer, hashers, inPool):
        """Append what was staged to the upload's C{writer}, hashing it with
        C{hashers} (C{inPool} runs a hash update); then remove it.  Returns
        the bytes appended."""
        stage, self._writer = self._writer, None
        await stage.commit()
        await stage.close()
        reader = await self._driver.reader(self._path)
        n = 0
        try:
            while True:
                chunk = await reader.read(READ_CHUNK)
                if not chunk:
                    break
                await gatherResults([writer.write(chunk)] + [inPool(h.update, chunk) for h in hashers],
                                    consumeErrors=True)
                n += len(chunk)
        finally:
            reader.close()
        await self._driver.delete(self._path)
        return n
