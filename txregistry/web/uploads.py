"""Handlers of blob uploads (C{/v2/<name>/blobs/uploads/[<id>]}): start
(monolithic, or a cross-repository mount), status, chunks, completion,
cancellation; and where an upload request's body goes (L{uploadPlan},
L{uploadBody}, asked by L{txregistry.web.bodyrouter})."""

from urllib.parse import unquote

from txregistry import names
from txregistry.errors import RegistryError
from txregistry.registry.chunks import rangeMismatch
from txregistry.web.bodies import RefusedBody, UploadBody
from txregistry.web.common import body, checkName, declaredLength, emptyAnswer, header, one, parseDigest, query
from txregistry.web.errors import HTTPError


def uploadPlan(method, rawName, uploadID, query, contentRange):
    """Where the body of an upload request goes: C{(name, uploadID, span,
    algorithms)}, C{uploadID} being C{None} for a new (monolithic) upload,
    C{span} the Content-Range C{(start, end)} or C{None}.  Raises the
    L{RegistryError} the request deserves."""
    name = checkName(rawName)
    algorithms = ["sha256"]
    expected = one(query, "digest")
    if expected is not None:
        d = parseDigest(expected)
        if d.algorithm not in algorithms:
            algorithms.append(d.algorithm)
    if method == "POST":
        if expected is None:
            return None
        return name, None, None, tuple(algorithms)
    if method not in ("PATCH", "PUT"):
        return None
    if method == "PUT" and expected is None:
        raise RegistryError("DIGEST_INVALID", "PUT needs a digest query parameter")
    span = None
    if contentRange:
        try:
            span = names.parseContentRange(contentRange)
        except ValueError as e:
            raise RegistryError("RANGE_INVALID", str(e))
    return name, unquote(uploadID), span, tuple(algorithms)


def uploadBody(registry, request, plan):
    """The body of an upload request the caller may make: into the upload
    (a new one for a monolithic POST)."""
    name, uploadID, span, algorithms = plan
    transport = request.channel.transport if request.channel else None
    appender = registry.uploads.appender(name, uploadID or None, span, algorithms)
    refusal = appender.declare(declaredLength(request))
    if refusal is not None:
        return RefusedBody(refusal)  # (a Content-Range the Content-Length contradicts)
    return UploadBody(appender, transport)


def discardBody(request):
    """An upload the request created and did not complete is removed."""
    content = body(request)
    if isinstance(content, UploadBody):
        content.appender.discard()


async def start(app, request, name):
    """POST: a new upload, a monolithic one (C{?digest=}) or a mount."""
    checkName(name)
    fields = query(request)
    mount, source = one(fields, "mount"), one(fields, "from")
    uploads = app.registry.uploads
    if mount is not None and source:
        d = parseDigest(mount)
        if (
            names.isValidName(source)
            and app.access.mayPull(request.txrIdentity, source)
            and await app.registry.blobs.mount(name, d, source)
        ):
            discardBody(request)
            return _blobCreated(app, request, name, d)
    expected = one(fields, "digest")
    if expected is not None:
        d = parseDigest(expected)
        uploadID, _, writer = await _appendBody(app, request, "POST", name, None, fields)
        if uploadID is None:
            uploadID = await uploads.create(name)
        await uploads.complete(name, uploadID, d, writer)
        return _blobCreated(app, request, name, d)
    discardBody(request)
    uploadID = await uploads.create(name)
    return emptyAnswer(request, 202, _uploadHeaders(app, name, uploadID, 0))


async def status(app, request, name, upload):
    """GET and HEAD: where the upload stands."""
    checkName(name)
    offset = await app.registry.uploads.offset(name, unquote(upload))
    return emptyAnswer(request, 204, _uploadHeaders(app, name, unquote(upload), offset))


async def patch(app, request, name, upload):
    """PATCH: a chunk."""
    checkName(name)
    uploadID = unquote(upload)
    offset = await _appendToSession(app, request, "PATCH", name, uploadID, query(request))
    if offset is None:  # no body
        offset = await app.registry.uploads.offset(name, uploadID)
    return emptyAnswer(request, 202, _uploadHeaders(app, name, uploadID, offset))


async def put(app, request, name, upload):
    """PUT: the last chunk (if any), and the upload becomes the blob."""
    checkName(name)
    uploadID = unquote(upload)
    fields = query(request)
    expected = one(fields, "digest")
    if expected is None:
        raise RegistryError("DIGEST_INVALID", "PUT needs a digest query parameter")
    d = parseDigest(expected)
    await _appendToSession(app, request, "PUT", name, uploadID, fields)
    await app.registry.uploads.complete(name, uploadID, d)
    return _blobCreated(app, request, name, d)


async def cancel(app, request, name, upload):
    """DELETE."""
    checkName(name)
    await app.registry.uploads.cancel(name, unquote(upload))
    return emptyAnswer(request, 204, {})


def _uploadHeaders(app, name, uploadID, offset):
    return {
        b"Location": app.location("/v2/%s/blobs/uploads/%s" % (name, uploadID)),
        b"Range": b"0-%d" % (max(offset, 1) - 1,),
        b"Docker-Upload-UUID": uploadID.encode("ascii"),
    }


def _blobCreated(app, request, name, d):
    return emptyAnswer(request, 201, {
        b"Location": app.location("/v2/%s/blobs/%s" % (name, d)),
        b"Docker-Content-Digest": d.encode("ascii"),
    })


async def _appendBody(app, request, method, name, uploadID, fields):
    """Wait for the request body to be in the upload; returns the upload
    id (created for a monolithic POST, else C{uploadID}), the size of
    the upload after the body (C{None} if there was no body) and, for a
    monolithic POST, the upload's writer still open (L{Appender.takeWriter})."""
    content = body(request)
    if isinstance(content, UploadBody):
        # Planned at the headers (the body router): the plan held.
        size = await content.appender.finish()
        return content.appender.uploadID, size, content.appender.takeWriter()
    # No upload took the body: the plan's error (if any) is the answer.
    plan = uploadPlan(method, name, uploadID or "", fields, header(request, b"content-range"))
    if getattr(content, "refusal", None) is not None:
        raise content.refusal  # (a channel that could not answer it at once)
    if plan is None:
        return uploadID, None, None
    # A body that did not come through RegistrySite (another Site, or an
    # in-memory test transport): feed it to an appender now.
    content.seek(0, 2)
    _, planID, span, algorithms = plan
    if content.tell() == 0:
        if span is not None:
            raise rangeMismatch(span, 0)
        return uploadID, None, None
    appender = app.registry.uploads.appender(name, planID or None, span, algorithms)
    refusal = appender.declare(content.tell())
    if refusal is not None:
        await appender.finish().addErrback(lambda _: None)
        raise refusal
    content.seek(0)
    while True:
        chunk = content.read(1024 * 1024)
        if not chunk:
            break
        appender.write(chunk)
    size = await appender.finish()
    return appender.uploadID, size, appender.takeWriter()


async def _appendToSession(app, request, method, name, uploadID, fields):
    """The upload's size after the request's body (C{None}: no body)."""
    try:
        _, size, _ = await _appendBody(app, request, method, name, uploadID, fields)
        return size
    except RegistryError as e:
        if e.code != "RANGE_INVALID":
            raise
        # Tell the client where the upload stands, so it can resume.
        offset = await app.registry.uploads.offset(name, uploadID)
        raise HTTPError.adding(e, _uploadHeaders(app, name, uploadID, offset))
