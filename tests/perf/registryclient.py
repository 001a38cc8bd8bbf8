"""A small, blocking registry client for resource tests and benchmarks.

It pushes a blob the way docker does (POST to start an upload, then one PATCH
with ``Transfer-Encoding: chunked`` and no ``Content-Length``, then
``PUT ?digest=``), streaming the bytes from a generator, hashing them while
they go out, and never holding the blob in memory; and it pulls a blob
streamed and hashed.  Only the standard library (``http.client``, sockets), so
that the client's own behaviour is plain to see.
"""

import hashlib
import http.client
import json
import random
import socket
import struct
from urllib.parse import urlsplit

CHUNK = 1024 * 1024
TIMEOUT = 120.0

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


class RegistryResponseError(Exception):
    def __init__(self, what, status, headers, body):
        Exception.__init__(self, "%s: HTTP %s %r" % (what, status, body[:500]))
        self.status = status
        self.headers = headers
        self.body = body


class BlobData:
    """C{size} deterministic, incompressible bytes, produced fast: a fixed
    random block of C{chunkSize} bytes, each chunk (the i-th C{chunkSize}
    bytes of the blob) stamped with its index i in its first 8 bytes.

    Chunks are produced as lists of buffers (the stamp and a memoryview of
    the block), so producing them copies nothing."""

    def __init__(self, size, seed=0, chunkSize=CHUNK):
        if chunkSize < 16:
            raise ValueError("chunkSize too small")
        self.size = size
        self.chunkSize = chunkSize
        self._block = memoryview(random.Random(seed).randbytes(chunkSize))

    def _chunk(self, index):
        """The pieces of the index-th chunk (may be short at the end)."""
        start = index * self.chunkSize
        length = min(self.chunkSize, self.size - start)
        stamp = struct.pack(">Q", index)
        if length <= len(stamp):
            return [stamp[:length]]
        return [stamp, self._block[len(stamp) : length]]

    def chunks(self, offset=0, end=None):
        """Lists of buffers covering bytes [offset, end) of the blob, one
        list per chunk of at most C{chunkSize} bytes."""
        end = self.size if end is None else min(end, self.size)
        index = offset // self.chunkSize
        skip = offset - index * self.chunkSize
        position = offset
        while position < end:
            pieces = self._chunk(index)
            if skip:
                pieces = _slicePieces(pieces, skip)
                skip = 0
            want = end - position
            total = sum(len(p) for p in pieces)
            if total > want:
                pieces = _truncatePieces(pieces, want)
                total = want
            yield pieces
            position += total
            index += 1

    def digest(self, algorithm="sha256"):
        h = hashlib.new(algorithm)
        for pieces in self.chunks():
            for p in pieces:
                h.update(p)
        return "%s:%s" % (algorithm, h.hexdigest())

    def bytes(self, offset=0, end=None):
        """Materialise a (small) range; for tests of small blobs."""
        return b"".join(bytes(p) for pieces in self.chunks(offset, end) for p in pieces)


def _slicePieces(pieces, skip):
    out = []
    for p in pieces:
        if skip >= len(p):
            skip -= len(p)
            continue
        out.append(p[skip:])
        skip = 0
    return out


def _truncatePieces(pieces, length):
    out = []
    for p in pieces:
        if length <= 0:
            break
        out.append(p[:length])
        length -= len(p)
    return out


def _pathOf(location):
    """Path and query of a Location header (absolute URL or path)."""
    parts = urlsplit(location)
    return parts.path + ("?" + parts.query if parts.query else "")


def _withQuery(path, query):
    return path + ("&" if "?" in path else "?") + query


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        return self.headers.get(name.lower())

    def json(self):
        return json.loads(self.body)


class RegistryClient:
    """Blocking client for one registry at C{host}:C{port} (one keep-alive
    connection, reopened when needed)."""

    def __init__(self, host, port, timeout=TIMEOUT):
        self.host = host
        self.port = port
        self.timeout = timeout
        self._conn = None

    # --- plumbing ---

    def _connection(self):
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        return self._conn

    def close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _response(self, conn):
        resp = conn.getresponse()
        body = resp.read()
        headers = {k.lower(): v for k, v in resp.getheaders()}
        if resp.will_close:
            self.close()
        return Response(resp.status, headers, body)

    def request(self, method, path, body=None, headers=None):
        conn = self._connection()
        try:
            conn.request(method, path, body=body, headers=headers or {})
            return self._response(conn)
        except Exception:
            self.close()
            raise

    def expect(self, what, response, *statuses):
        if response.status not in statuses:
            raise RegistryResponseError(what, response.status, response.headers, response.body)
        return response

    # --- uploads ---

    def startUpload(self, name):
        r = self.expect("POST upload", self.request("POST", "/v2/%s/blobs/uploads/" % (name,)), 202)
        return _pathOf(r.header("location"))

    def patchChunked(self, location, chunks, hasher=None, contentRange=None):
        """One PATCH of C{location} whose body is C{chunks} (an iterable of
        lists of buffers), sent with C{Transfer-Encoding: chunked}, one HTTP
        chunk per item, no C{Content-Length}.  Each buffer is fed to
        C{hasher} as it goes out.  C{contentRange}: C{(first, last)} byte
        positions, for a client resuming an upload.  Returns the
        L{Response}."""
        conn = self._connection()
        try:
            conn.putrequest("PATCH", location, skip_accept_encoding=True)
            conn.putheader("Content-Type", "application/octet-stream")
            conn.putheader("Transfer-Encoding", "chunked")
            if contentRange is not None:
                conn.putheader("Content-Range", "%d-%d" % contentRange)
            conn.endheaders()
            sock = conn.sock
            try:
                for pieces in chunks:
                    length = sum(len(p) for p in pieces)
                    if not length:
                        continue
                    sock.sendall(b"%x\r\n" % (length,))
                    for p in pieces:
                        if hasher is not None:
                            hasher.update(p)
                        sock.sendall(p)
                    sock.sendall(b"\r\n")
                sock.sendall(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                # The server answered early (an error) and closed: read what it said.
                pass
            return self._response(conn)
        except Exception:
            self.close()
            raise

    def finishUpload(self, location, digest):
        r = self.request("PUT", _withQuery(location, "digest=" + digest), headers={"Content-Length": "0"})
        return self.expect("PUT upload", r, 201)

    def pushBlobChunked(self, name, data, algorithm="sha256"):
        """Push C{data} (a L{BlobData}) as docker does.  Returns the digest
        computed while streaming."""
        location = self.startUpload(name)
        h = hashlib.new(algorithm)
        r = self.expect("PATCH upload", self.patchChunked(location, data.chunks(), h), 202)
        digest = "%s:%s" % (algorithm, h.hexdigest())
        self.finishUpload(_pathOf(r.header("location") or location), digest)
        return digest

    def pushBlobMonolithic(self, name, body):
        digest = "sha256:" + hashlib.sha256(body).hexdigest()
        location = self.startUpload(name)
        r = self.request(
            "PUT",
            _withQuery(location, "digest=" + digest),
            body=body,
            headers={"Content-Type": "application/octet-stream"},
        )
        self.expect("PUT monolithic", r, 201)
        return digest

    def uploadStatus(self, location):
        return self.request("GET", location)

    def cancelUpload(self, location):
        return self.request("DELETE", location)

    # --- blobs ---

    def headBlob(self, name, digest):
        return self.request("HEAD", "/v2/%s/blobs/%s" % (name, digest))

    def pullBlob(self, name, digest, bufferSize=CHUNK):
        """GET a blob, streamed and hashed; returns C{(size, digest)} as
        received.  Raises unless the status is 200 and the body is as long
        as announced."""
        conn = self._connection()
        try:
            conn.request("GET", "/v2/%s/blobs/%s" % (name, digest))
            resp = conn.getresponse()
            if resp.status != 200:
                body = resp.read()
                self.close()
                raise RegistryResponseError("GET blob", resp.status, dict(resp.getheaders()), body)
            announced = resp.getheader("content-length")
            algorithm = digest.split(":", 1)[0]
            h = hashlib.new(algorithm)
            buf = bytearray(bufferSize)
            view = memoryview(buf)
            size = 0
            while True:
                n = resp.readinto(buf)
                if not n:
                    break
                h.update(view[:n])
                size += n
            if resp.will_close:
                self.close()
            if announced is not None and int(announced) != size:
                raise AssertionError("GET blob: Content-Length %s but %d bytes came" % (announced, size))
            return size, "%s:%s" % (algorithm, h.hexdigest())
        except Exception:
            self.close()
            raise

    # --- manifests ---

    def putManifest(self, name, reference, body, mediaType=OCI_MANIFEST):
        r = self.request(
            "PUT", "/v2/%s/manifests/%s" % (name, reference), body=body, headers={"Content-Type": mediaType}
        )
        return self.expect("PUT manifest", r, 201)

    def getManifest(self, name, reference, accept=OCI_MANIFEST):
        return self.request("GET", "/v2/%s/manifests/%s" % (name, reference), headers={"Accept": accept})


def imageManifest(configDigest, configSize, layers=()):
    """A small OCI image manifest: a config and C{layers} (digest, size)."""
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": configDigest, "size": configSize},
        "layers": [{"mediaType": OCI_LAYER, "digest": d, "size": s} for d, s in layers],
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def configBlob():
    doc = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": {},
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode("utf-8")


def partialChunkedPatch(host, port, location, data, sendBytes, reset=False, timeout=TIMEOUT):
    """Start a chunked PATCH of C{location} with the body C{data} but stop
    after C{sendBytes} bytes of it, in the middle of an HTTP chunk (the last
    chunk header announces more than is sent), and drop the connection: a
    clean close, or with C{reset} an RST.  Returns the bytes sent."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        sock.sendall(
            (
                "PATCH %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/octet-stream\r\n"
                "Transfer-Encoding: chunked\r\n\r\n" % (location, host, port)
            ).encode("ascii")
        )
        sent = 0
        for pieces in data.chunks():
            length = sum(len(p) for p in pieces)
            sock.sendall(b"%x\r\n" % (length,))
            for p in pieces:
                take = min(len(p), sendBytes - sent)
                sock.sendall(p[:take])
                sent += take
                if sent >= sendBytes:
                    return sent
            sock.sendall(b"\r\n")
        return sent
    finally:
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()
