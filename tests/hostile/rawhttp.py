"""HTTP/1.1 over a plain socket, byte for byte.

Client libraries normalise what a hostile client would send as it is: they
resolve ``..``, decode or re-encode ``%2f``, refuse NUL or non-ASCII in a
request target, fold headers.  Here the request is the exact bytes given,
and the response is parsed just enough to judge it (status, headers, body by
Content-Length, chunked or up to the close)."""

import socket
import time

TIMEOUT = 15.0


class NoResponse(Exception):
    """The server closed (or stayed silent) without a complete response."""


class Response:
    def __init__(self, status, reason, headers, body, raw):
        self.status = status
        self.reason = reason
        self.headers = headers  # [(lowercase name, value)] as bytes
        self.body = body
        self.raw = raw

    def header(self, name):
        name = name.lower().encode("ascii") if isinstance(name, str) else name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return None

    def __repr__(self):
        return "<Response %d %r headers=%r body=%r>" % (self.status, self.reason, self.headers, self.body[:300])


def request(method, target, headers=(), body=b"", host=b"127.0.0.1", close=True, version=b"HTTP/1.1"):
    """The bytes of one request; C{method}, C{target} and header names and
    values are sent exactly as given (str is encoded as UTF-8).  A
    Content-Length is added for a non-empty body unless one is given."""

    def b(x):
        return x.encode("utf-8", "surrogatepass") if isinstance(x, str) else x

    lines = [b(method) + b" " + b(target) + b" " + version]
    names = set()
    for k, v in headers:
        lines.append(b(k) + b": " + b(v))
        names.add(b(k).lower())
    if b"host" not in names and host is not None:
        lines.append(b"Host: " + host)
    if body and b"content-length" not in names and b"transfer-encoding" not in names:
        lines.append(b"Content-Length: %d" % (len(body),))
    if close and b"connection" not in names:
        lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + b(body)


class _Reader:
    def __init__(self, sock, deadline):
        self.sock = sock
        self.buf = b""
        self.deadline = deadline
        self.raw = b""

    def _fill(self):
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise NoResponse("timed out; got %r" % (self.raw[:500],))
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise NoResponse("timed out; got %r" % (self.raw[:500],))
        except ConnectionResetError:
            data = b""
        self.raw += data
        self.buf += data
        return data

    def line(self):
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise NoResponse("closed in a line; got %r" % (self.raw[:500],))
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def exactly(self, n):
        while len(self.buf) < n:
            if not self._fill():
                raise NoResponse("closed in a body; got %r" % (self.raw[:500],))
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def rest(self):
        while self._fill():
            pass
        out, self.buf = self.buf, b""
        return out


def readResponse(reader, method):
    while True:
        statusLine = reader.line()
        parts = statusLine.split(b" ", 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
            raise NoResponse("not a status line: %r" % (statusLine[:200],))
        status = int(parts[1])
        reason = parts[2] if len(parts) > 2 else b""
        headers = []
        while True:
            line = reader.line()
            if not line:
                break
            k, _, v = line.partition(b":")
            headers.append((k.strip().lower(), v.strip()))
        if 100 <= status < 200:
            continue  # interim (100 Continue): the real one follows
        break
    hmap = dict(headers)
    if method.upper() == b"HEAD" or status in (204, 304):
        body = b""
    elif b"chunked" in hmap.get(b"transfer-encoding", b"").lower():
        body = b""
        while True:
            size = int(reader.line().split(b";")[0], 16)
            if size == 0:
                while reader.line():
                    pass
                break
            body += reader.exactly(size)
            reader.exactly(2)
    elif b"content-length" in hmap:
        body = reader.exactly(int(hmap[b"content-length"]))
    else:
        body = reader.rest()
    return Response(status, reason, headers, body, reader.raw)


def exchange(port, data, method=None, host="127.0.0.1", timeout=TIMEOUT):
    """Send the request bytes C{data} on a new connection and read one
    response.  Raises L{NoResponse} if none comes."""
    if method is None:
        method = data.split(b" ", 1)[0]
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server may answer (and close) before reading it all
        return readResponse(_Reader(sock, time.monotonic() + timeout), method)
    finally:
        sock.close()


def converse(port, data, host="127.0.0.1", timeout=TIMEOUT):
    """Send C{data} (maybe several pipelined requests) and read everything
    until the server closes; returns C{(bytes, closed)}, C{closed} false
    when the server was still silent after C{timeout}."""
    sock = socket.create_connection((host, port), timeout=timeout)
    deadline = time.monotonic() + timeout
    out = b""
    try:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return out, False
            sock.settimeout(remaining)
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                return out, False
            except ConnectionResetError:
                return out, True
            if not chunk:
                return out, True
            out += chunk
    finally:
        sock.close()
