"""A TCP relay on loopback that keeps what clients send, to check the HTTP
requests podman (containers/image) makes on the wire: headers the
registry's access log does not show, and how bodies are framed."""

import socket
import threading
from dataclasses import dataclass


@dataclass
class WireRequest:
    method: str
    target: str
    headers: list  # [(name lower-cased, value)] in the order sent
    bodyLength: int
    chunked: bool

    def header(self, name):
        return [v for k, v in self.headers if k == name.lower()]


class WireTap:
    """Listens on 127.0.0.1:C{listenPort}, relays every connection to
    127.0.0.1:C{targetPort} and records the bytes each client sent.

    With C{route}, a load balancer: C{route(method, target)} of each
    connection's first request line chooses the port that connection goes
    to (podman sends C{Connection: close}: one request per connection).
    Set the attribute to change the routing of later connections."""

    def __init__(self, listenPort, targetPort=None, route=None):
        self.targetPort = targetPort
        self.route = route
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", listenPort))
        self.server.listen(64)
        self.port = self.server.getsockname()[1]
        self.streams = []
        self._sockets = []
        self._threads = []
        self._lock = threading.Lock()
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            record = bytearray()
            with self._lock:
                self.streams.append(record)
                self._sockets.append(client)
                if self.route is None:
                    self._connect(client, self.targetPort, record)
                else:
                    t = threading.Thread(target=self._routed, args=(client, self.route, record), daemon=True)
                    self._threads.append(t)
                    t.start()

    def _routed(self, client, route, record):
        """Read up to the end of the request line, then relay to where
        C{route} says.  What does not begin like one (a TLS handshake:
        containers/image tries HTTPS first, and waits for an answer) is
        routed at once, as C{route("", "")}."""
        try:
            client.settimeout(30)
            while b"\r\n" not in record and len(record) < 65536:
                data = client.recv(65536)
                if not data:
                    break
                record += data
                if not record[:1].isalpha():
                    break
            client.settimeout(None)
        except OSError:
            client.close()
            return
        words = ["", ""]
        if b"\r\n" in record:
            words = (bytes(record).split(b"\r\n", 1)[0].decode("latin-1").split(" ") + [""])[:2]
        port = route(words[0], words[1])
        with self._lock:
            self._connect(client, port, record)

    def _connect(self, client, port, record):
        """Relay C{client} to C{port}, sending first the bytes already in
        C{record}; called with the lock held."""
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=10)
            upstream.settimeout(None)
            if record:
                upstream.sendall(bytes(record))
        except OSError:
            client.close()
            return
        self._sockets.append(upstream)
        for src, dst, rec in ((client, upstream, record), (upstream, client, None)):
            t = threading.Thread(target=self._pump, args=(src, dst, rec), daemon=True)
            self._threads.append(t)
            t.start()

    @staticmethod
    def _pump(src, dst, record):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                if record is not None:
                    record += data
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def stop(self):
        try:
            self.server.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.server.close()
        self._acceptor.join(5)
        with self._lock:
            sockets, threads = list(self._sockets), list(self._threads)
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in threads:
            t.join(5)
        for s in sockets:
            s.close()

    def requests(self):
        """Every request recorded so far, connection by connection."""
        with self._lock:
            streams = [bytes(s) for s in self.streams]
        out = []
        for data in streams:
            out.extend(parseRequests(data))
        return out


def parseRequests(data):
    """The HTTP/1.1 requests in one connection's client bytes (a request
    cut short at the end is left out)."""
    out = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\r\n\r\n", pos)
        if end < 0:
            break
        lines = data[pos:end].decode("latin-1").split("\r\n")
        pos = end + 4
        method, target, _ = lines[0].split(" ", 2)
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
        fields = dict(headers)
        chunked = "chunked" in fields.get("transfer-encoding", "").lower()
        length = 0
        if chunked:
            while True:
                eol = data.find(b"\r\n", pos)
                if eol < 0:
                    return out
                size = int(data[pos:eol].split(b";")[0], 16)
                pos = eol + 2
                if size == 0:
                    trailerEnd = data.find(b"\r\n", pos)
                    while trailerEnd not in (-1, pos):  # skip trailer fields
                        pos = trailerEnd + 2
                        trailerEnd = data.find(b"\r\n", pos)
                    if trailerEnd < 0:
                        return out
                    pos += 2
                    break
                length += size
                pos += size + 2
        elif "content-length" in fields:
            length = int(fields["content-length"])
            pos += length
        if pos > len(data):
            break
        out.append(WireRequest(method, target, headers, length, chunked))
    return out
