"""Handlers of C{/v2/<name>/blobs/<digest>}: pull (whole, ranged,
conditional, redirected) and delete."""

from twisted.internet.defer import CancelledError
from twisted.logger import Logger

from txregistry import names
from txregistry.errors import StreamCut
from txregistry.web import conditional
from txregistry.web.common import checkName, emptyAnswer, header, parseDigest
from txregistry.web.errors import HTTPError
from txregistry.web.producer import ReaderProducer
from txregistry.web.sendfile import SendfileProducer


async def get(app, request, name, digest):
    """GET and HEAD."""
    checkName(name)
    d = parseDigest(digest)
    blobs = app.registry.blobs
    etag = b'"%s"' % (d.encode("ascii"),)
    headers = request.requestHeaders
    notModified = conditional.noneMatch(headers.getRawHeaders(b"if-none-match"), etag)
    # A Range whose If-Range does not match asks for the whole blob.
    rangeHeader = header(request, b"range")
    if not conditional.rangeApplies(headers.getRawHeaders(b"if-range"), etag):
        rangeHeader = None
    url = None if notModified else await blobs.redirectURL(d, request.method.decode("ascii"))
    if request.method == b"GET" and not url and not notModified and rangeHeader is None:
        # The whole blob, streamed: its size is the reader's, so the
        # storage is asked once (on S3: one GET, no HEAD before it).
        reader = await blobs.open(name, d)
        size = reader.size
        _blobHeaders(request, etag)
        request.setResponseCode(200)
        request.setHeader(b"Content-Type", b"application/octet-stream")
        request.setHeader(b"Content-Length", b"%d" % (size,))
        return await _stream(request, reader, size)
    size = await blobs.size(name, d)
    _blobHeaders(request, etag)
    if notModified:
        request.setResponseCode(304)
        request.setHeader(b"Content-Length", b"%d" % (size,))  # what a 200 would send
        return b""
    if url:
        return emptyAnswer(request, 307, {b"Location": url.encode("ascii")})
    try:
        span = names.parseRange(rangeHeader, size)
    except names.RangeNotSatisfiable:
        raise HTTPError(
            "RANGE_INVALID", "range not satisfiable", {"size": size},
            headers={b"Content-Range": b"bytes */%d" % (size,)},
        )
    request.setHeader(b"Content-Type", b"application/octet-stream")
    start, length = 0, size
    if span is not None:
        start, end = span
        length = end - start + 1
        request.setResponseCode(206)
        request.setHeader(b"Content-Range", b"bytes %d-%d/%d" % (start, end, size))
    else:
        request.setResponseCode(200)
    request.setHeader(b"Content-Length", b"%d" % (length,))
    if request.method == b"HEAD" or length == 0:
        return b""
    reader = await blobs.reader(name, d, start)
    return await _stream(request, reader, length)


async def delete(app, request, name, digest):
    checkName(name)
    d = parseDigest(digest)
    await app.registry.blobs.unlink(name, d)
    return emptyAnswer(request, 202, {})


def _blobHeaders(request, etag):
    request.setHeader(b"Docker-Content-Digest", etag[1:-1])
    request.setHeader(b"ETag", etag)
    request.setHeader(b"Accept-Ranges", b"bytes")
    request.setHeader(b"Cache-Control", b"max-age=31536000")


async def _stream(request, reader, length):
    """Send C{length} bytes of C{reader} as the response body."""
    if length == 0:
        reader.close()
        return b""
    producer = _sendfile(request, reader, length) or ReaderProducer(reader, request, length)
    request.notifyFinish().addErrback(lambda _: producer.stopProducing())
    try:
        await producer.start()
    except Exception as e:
        # Headers (and maybe part of the body) are out: all we can do is
        # end the connection so the client sees a short response.
        if request.channel is not None:
            request.channel.transport.abortConnection()
        if not isinstance(e, StreamCut):
            _log.failure("the body of {method} {uri} was cut short", method=request.method, uri=request.uri)
        raise ResponseCut()
    return None


_log = Logger()


class ResponseCut(CancelledError):
    """The response was cut short after its headers went out: there is
    nothing left to answer (and what caused it was logged)."""


def _sendfile(request, reader, length):
    """A L{SendfileProducer} for this response when it can be one (plain
    TCP, a reader on a local file), else C{None}.  The reactor and the
    metrics are the site's."""
    site = getattr(request, "site", None)
    metrics = getattr(site, "metrics", None)
    onSent = metrics.sentfile if metrics is not None else None
    return SendfileProducer.forRequest(getattr(site, "reactor", None), request, reader, length, onSent)
