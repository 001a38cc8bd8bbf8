"""Where the registry listens: the ``--port`` text made an endpoint, and the
listening done at once, with one line when it cannot be.

A bare port number means every interface, IPv4 and IPv6: two sockets,
``0.0.0.0:PORT`` and ``[::]:PORT`` (the IPv6 one IPv6-only, so clients keep
their plain IPv4 addresses in logs and login throttling), the IPv6 one only
where the machine has IPv6."""

import errno
import socket

from twisted.internet import endpoints
from twisted.internet.defer import gatherResults, maybeDeferred, succeed
from twisted.internet.error import CannotListenError
from twisted.python.failure import Failure

from txregistry.config import ConfigError

# The machine has no IPv6 (the kernel lacks it, or it is turned off).
NO_IPV6 = (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL, errno.EPROTONOSUPPORT)


class CannotListen(Exception):
    """The endpoint would not listen: the message is the one line shown."""


def _oneLine(exception):
    text = str(exception) or exception.__class__.__name__
    return " ".join(text.split())


def endpointFor(reactor, port):
    """The endpoint for the C{--port} text C{port} (a bare number, or any
    strports description); L{ConfigError} when it is not one."""
    text = str(port).strip()
    if text.isascii() and text.isdigit():
        number = int(text)
        if number > 65535:
            raise ConfigError("bad port %r: a port number is at most 65535" % (text,))
        return EveryInterfaceEndpoint(reactor, number)
    try:
        # Parsing also reads the files it names (ssl: keys and certificates).
        return endpoints.serverFromString(reactor, text)
    except Exception as e:
        raise ConfigError("bad port %r: %s" % (text, _oneLine(e)))


def listenNow(endpoint, factory, description):
    """Listen on C{endpoint} now (every stream endpoint of Twisted's listens
    synchronously) and return the port; L{CannotListen} if it fails."""
    result = []
    endpoint.listen(factory).addBoth(result.append)
    if not result:
        raise CannotListen("cannot listen on %s: the endpoint did not listen at once" % (description,))
    if isinstance(result[0], Failure):
        raise CannotListen("cannot listen on %s: %s" % (description, _oneLine(result[0].value)))
    return result[0]


def describeAddress(address):
    """C{host:port} (C{[host]:port} for IPv6) of a listening address."""
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is None or port is None:
        return str(address)
    return ("[%s]:%s" if ":" in host else "%s:%s") % (host, port)


def describePort(port):
    """The addresses C{port} (a listening port) listens on, for the log."""
    hosts = port.getHosts() if hasattr(port, "getHosts") else [port.getHost()]
    return " and ".join(describeAddress(h) for h in hosts)


class EveryInterfaceEndpoint:
    """TCP on every IPv4 and IPv6 interface (IStreamServerEndpoint)."""

    def __init__(self, reactor, port):
        self._reactor = reactor
        self._port = port

    def listen(self, factory):
        return maybeDeferred(self._listen, factory)

    def _listen(self, factory):
        ipv4 = self._reactor.listenTCP(self._port, factory, interface="0.0.0.0")
        number = ipv4.getHost().port  # the same number for both, port 0 too
        try:
            sock = _ipv6Socket(number)
        except OSError as e:
            if e.errno in NO_IPV6:
                return succeed(Ports([ipv4]))
            ipv4.stopListening()
            raise CannotListenError("::", number, e)
        try:
            ipv6 = self._reactor.adoptStreamPort(sock.fileno(), socket.AF_INET6, factory)
        finally:
            sock.close()  # the reactor listens on its own duplicate
        return succeed(Ports([ipv4, ipv6]))


def _ipv6Socket(port):
    """A listening, non-blocking, IPv6-only TCP socket on [::]:C{port}."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Twisted's own ports
        sock.bind(("::", port))
        sock.listen(50)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


class Ports:
    """Several listening ports as one (IListeningPort)."""

    def __init__(self, ports):
        self._ports = ports

    def getHost(self):
        return self._ports[0].getHost()

    def getHosts(self):
        return [p.getHost() for p in self._ports]

    def startListening(self):
        for p in self._ports:
            p.startListening()

    def stopListening(self):
        return gatherResults([maybeDeferred(p.stopListening) for p in self._ports])
