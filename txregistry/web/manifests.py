"""Handlers of C{/v2/<name>/manifests/<reference>}: pull (honouring
C{Accept} and C{If-None-Match}), push and delete."""

from urllib.parse import unquote

from txregistry.errors import RegistryError
from txregistry.registry.manifests import MEDIA_TYPES, parseReference
from txregistry.web import conditional
from txregistry.web.common import body, checkName, emptyAnswer, header


async def get(app, request, name, reference):
    """GET and HEAD."""
    checkName(name)
    reference = unquote(reference)
    try:
        parseReference(reference)
    except RegistryError:
        # Nothing is ever stored under it (as Distribution answers).
        raise RegistryError("MANIFEST_UNKNOWN", "no manifest has this reference", {"reference": reference[:200]})
    content, mediaType, digest = await app.registry.manifests.get(name, reference)
    accept = request.requestHeaders.getRawHeaders(b"accept")
    if not conditional.acceptsManifest(accept, mediaType, MEDIA_TYPES):
        raise RegistryError(
            "MANIFEST_UNKNOWN",
            "the manifest is a %s, which the Accept header does not allow" % (mediaType,),
            {"mediaType": mediaType},
        )
    etag = b'"%s"' % (digest.encode("ascii"),)
    request.setResponseCode(200)
    request.setHeader(b"Content-Type", mediaType.encode("ascii", "replace"))
    request.setHeader(b"Content-Length", b"%d" % (len(content),))
    request.setHeader(b"Docker-Content-Digest", digest.encode("ascii"))
    request.setHeader(b"ETag", etag)
    if conditional.noneMatch(request.requestHeaders.getRawHeaders(b"if-none-match"), etag):
        request.setResponseCode(304)  # (its Content-Length: what a 200 would send)
        return b""
    if request.method == b"HEAD":
        return b""
    return content


async def put(app, request, name, reference):
    checkName(name)
    content = body(request)
    if getattr(content, "overflow", False):
        raise RegistryError("MANIFEST_INVALID", "manifest exceeds %d bytes" % (app.maxBodySize,),
                            limit=app.maxBodySize)
    content.seek(0)
    data = content.read()
    digest, manifest = await app.registry.manifests.put(name, unquote(reference), data, header(request, b"content-type"))
    headers = {
        b"Location": app.location("/v2/%s/manifests/%s" % (name, digest)),
        b"Docker-Content-Digest": digest.encode("ascii"),
    }
    if manifest.subject is not None:
        headers[b"OCI-Subject"] = manifest.subject.encode("ascii")
    return emptyAnswer(request, 201, headers)


async def delete(app, request, name, reference):
    checkName(name)
    await app.registry.manifests.delete(name, unquote(reference))
    return emptyAnswer(request, 202, {})
