"""The S3 XML documents we read and write: listings, multipart uploads,
copy results and error documents.  Pure functions of bytes and elements."""

import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


def parse(body):
    """The root element of C{body}, or C{None} when it is not XML."""
    try:
        return ET.fromstring(body)
    except ET.ParseError:
        return None


def _find(node, name):
    found = node.find(NS + name)
    if found is None:
        found = node.find(name)
    return found


def findall(node, name):
    return node.findall(NS + name) or node.findall(name)


def text(node, name, default=None):
    found = _find(node, name)
    return found.text if found is not None and found.text is not None else default


def isError(doc):
    """Whether C{doc} (an element, or C{None}) is an S3 error document."""
    return doc is not None and doc.tag.split("}")[-1] == "Error"


def errorCodeAndMessage(status, body):
    """C{(code, message)} of an error response's body: its error
    document's, else made up of the status and the start of the body."""
    doc = parse(body) if body else None
    if isError(doc):
        return text(doc, "Code", "Unknown"), text(doc, "Message", "")
    return "HTTP%d" % status, bytes(body or b"")[:200].decode("utf-8", "replace")


def truncated(doc):
    return text(doc, "IsTruncated", "false") == "true"


def objectsPage(doc):
    """C{([(key, size, lastModified)], [commonPrefix], nextToken)} of a
    ListObjectsV2 page; C{nextToken} is C{None} on the last page."""
    files = [(text(c, "Key"), int(text(c, "Size", "0")), text(c, "LastModified", "")) for c in findall(doc, "Contents")]
    dirs = [text(p, "Prefix") for p in findall(doc, "CommonPrefixes")]
    return files, dirs, (text(doc, "NextContinuationToken") if truncated(doc) else None)


def uploadsPage(doc):
    """C{([(key, uploadID)], (nextKeyMarker, nextUploadIdMarker))} of a
    ListMultipartUploads page; the markers are C{None} on the last page."""
    uploads = [(text(u, "Key"), text(u, "UploadId")) for u in findall(doc, "Upload")]
    if not truncated(doc):
        return uploads, (None, None)
    return uploads, (text(doc, "NextKeyMarker"), text(doc, "NextUploadIdMarker"))


def partsPage(doc):
    """C{([(number, etag, size)], nextPartNumberMarker)} of a ListParts page."""
    parts = [(int(text(p, "PartNumber")), text(p, "ETag"), int(text(p, "Size", "0"))) for p in findall(doc, "Part")]
    return parts, (text(doc, "NextPartNumberMarker") if truncated(doc) else None)


def completeMultipart(parts):
    """The body of CompleteMultipartUpload for C{parts}, C{(number, etag)}
    pairs (ETags are quoted strings: escaped, like any text)."""
    return (
        "<CompleteMultipartUpload>%s</CompleteMultipartUpload>"
        % "".join("<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>" % (n, escape(etag)) for n, etag in parts)
    ).encode("utf-8")
