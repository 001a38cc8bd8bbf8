"""The S3 operations the driver and its writer use, on keys of one bucket,
through L{S3Client}'s public interface (C{send}, C{call},
C{callForDocument}, C{check})."""

from urllib.parse import quote

from treq import content as readBody

from txregistry.storage.interface import ContentTooLarge
from txregistry.storage.s3 import xml
from txregistry.storage.s3.client import quoted
from txregistry.storage.s3.errors import S3Error
from txregistry.storage.s3.transfer import readAtMost, readIntoBytearray

MAX_COPY = 5 * 1024 * 1024 * 1024  # the largest object one CopyObject copies
COPY_PART = 1024 * 1024 * 1024


class Bucket:
    # Keys a listing page asks for (max-keys) when no limit is given; None:
    # the server's default (1,000 on S3).  Pages are followed either way.
    pageSize = None

    def __init__(self, client, name, encrypt=False):
        self.client = client
        self.name = name
        self.encrypt = encrypt

    # --- objects ---

    def put(self, key, body, headers=None, payloadHash=None):
        """PUT C{body} (bytes-like) at C{key}."""
        return self.client.call("PUT", key, body=body, headers=headers, payloadHash=payloadHash)

    async def head(self, key):
        """The HEAD response at C{key}, or C{None} when nothing is there."""
        response = await self.client.send("HEAD", key)
        await readBody(response)
        if response.code == 404:
            return None
        if response.code != 200:
            raise S3Error(response.code, "HTTP%d" % response.code, "HEAD failed", key)
        return response

    async def getSmall(self, key, admit=None):
        """C{(response, body)} of a GET of C{key} (a bytearray: keep it small),
        or C{None} when nothing is there.  C{admit(length)}: called once the
        headers are in; if it says no, the body is not read (its connection
        is dropped) and the result is C{False}."""
        response = await self.client.send("GET", key)
        if response.code == 200 and admit is not None and not admit(response.length):
            try:
                await readAtMost(response, 0, key)
            except ContentTooLarge:
                pass
            return False
        body = await readIntoBytearray(response)
        if response.code == 404:
            return None
        await self.client.check(response, (200,), key, bytes(body))
        return response, body

    async def delete(self, key):
        """Delete C{key}; nothing there is no error."""
        await self.client.call("DELETE", key, expect=(200, 204, 404))

    # --- listings ---

    async def objects(self, prefix, delimiter=None, limit=None, until=None):
        """C{([(key, size, mtime)], [commonPrefix])} under C{prefix}; with
        C{until}, pages stop once they have reached that key (keys and
        common prefixes come in order: a later page has only greater
        ones)."""
        files, dirs, token = [], [], None
        while True:
            query = "list-type=2&prefix=%s" % quoted(prefix)
            if delimiter:
                query += "&delimiter=%s" % quoted(delimiter)
            if limit or self.pageSize:
                query += "&max-keys=%d" % (limit or self.pageSize)
            if token:
                query += "&continuation-token=%s" % quoted(token)
            # the bucket itself: key ""
            pageFiles, pageDirs, token = xml.objectsPage(await self.client.callForDocument("GET", "", query))
            files += pageFiles
            dirs += pageDirs
            if limit or not token:
                return files, dirs
            if until is not None and max([f[0] for f in files] + dirs + [""]) >= until:
                return files, dirs

    async def uploads(self, prefix):
        """C{[(key, uploadID)]} of the multipart uploads under C{prefix}."""
        out, keyMarker, idMarker = [], None, None
        while True:
            query = "uploads&prefix=%s" % quoted(prefix)
            if keyMarker:
                query += "&key-marker=%s&upload-id-marker=%s" % (quoted(keyMarker), quoted(idMarker or ""))
            page, (keyMarker, idMarker) = xml.uploadsPage(await self.client.callForDocument("GET", "", query))
            out += page
            if not keyMarker:
                return out

    async def parts(self, key, uploadID):
        """C{[(number, etag, size)]} of a multipart upload, in order;
        PathNotFound when there is no such upload."""
        parts, marker = [], None
        while True:
            query = "uploadId=%s" % quoted(uploadID)
            if marker:
                query += "&part-number-marker=%s" % quoted(marker)
            page, marker = xml.partsPage(await self.client.callForDocument("GET", key, query))
            parts += page
            if not marker:
                break
        parts.sort()
        return parts

    # --- multipart uploads ---

    async def initiate(self, key, headers=None):
        """Begin a multipart upload at C{key}: its upload ID."""
        doc = await self.client.callForDocument("POST", key, "uploads", headers=headers)
        uploadID = xml.text(doc, "UploadId")
        if not uploadID:
            raise S3Error(200, "NoUploadId", "CreateMultipartUpload gave no UploadId", key)
        return uploadID

    async def uploadPart(self, key, uploadID, number, data, payloadHash=None):
        """Store part C{number} from C{data} (bytes-like); its ETag."""
        response = await self.client.send(
            "PUT", key, query="partNumber=%d&uploadId=%s" % (number, quoted(uploadID)), body=data,
            payloadHash=payloadHash,
        )
        await self.client.check(response, (200,), key)
        return response.headers.getRawHeaders(b"etag", [b""])[0].decode("ascii")

    async def complete(self, key, uploadID, parts):
        """Complete a multipart upload of C{parts}, C{(number, etag)}."""
        await self.client.callForDocument(
            "POST", key, "uploadId=%s" % quoted(uploadID), body=xml.completeMultipart(parts),
            contentType="application/xml", required=False,
        )

    async def abort(self, key, uploadID):
        await self.client.call("DELETE", key, "uploadId=%s" % quoted(uploadID), expect=(200, 204, 404))

    # --- server-side copies ---

    def _copySource(self, key):
        return "/%s/%s" % (self.name, quote(key, safe="/-_.~"))

    def _copyHeaders(self, source, rangeHeader=None):
        headers = {"x-amz-copy-source": self._copySource(source)}
        if rangeHeader:
            headers["x-amz-copy-source-range"] = rangeHeader
        elif self.encrypt:
            headers["x-amz-server-side-encryption"] = "AES256"
        return headers

    async def copy(self, source, dest):
        """Copy C{source} to C{dest} in one request (up to L{MAX_COPY} bytes;
        servers refuse larger sources with a 400); L{PathNotFound} when
        there is no C{source}."""
        await self.client.callForDocument("PUT", dest, headers=self._copyHeaders(source), required=False)

    async def copyInParts(self, source, dest, size, partSize=COPY_PART):
        """Copy the C{size} bytes of C{source} to C{dest} as a multipart
        upload of parts copied from ranges of C{source}."""
        uploadID = await self.initiate(dest)
        try:
            parts = []
            for number, start in enumerate(range(0, size, partSize), 1):
                end = min(start + partSize, size) - 1
                doc = await self.client.callForDocument(
                    "PUT", dest, query="partNumber=%d&uploadId=%s" % (number, quoted(uploadID)),
                    headers=self._copyHeaders(source, "bytes=%d-%d" % (start, end)),
                )
                parts.append((number, xml.text(doc, "ETag")))
            await self.complete(dest, uploadID, parts)
        except BaseException:
            await self.abort(dest, uploadID)
            raise
