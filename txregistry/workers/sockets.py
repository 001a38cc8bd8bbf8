"""The listening sockets the master binds and the workers share.

The master listens once, through the same endpoint a single process would
use (L{txregistry.listen.endpointFor}: a bare port, C{tcp:}, C{tcp6:},
C{ssl:}, C{unix:}), and stops reading from it: it never accepts a
connection itself.  Each worker inherits the descriptors and adopts them
(C{IReactorSocket.adoptStreamPort}); the kernel hands every new connection
to one of the workers waiting in accept, so the load spreads, and a worker
that stops (or is replaced) leaves the socket and its queue of pending
connections to the others: none is refused.

TLS is the worker's: it reads the certificate and key again (the C{ssl:}
description, parsed as the master did) and wraps its site in Twisted's
TLS protocol over the adopted socket."""

import os

from twisted.internet.protocol import Factory, Protocol

from txregistry.listen import Ports, endpointFor, listenNow

FIRST_FD = 3  # the workers' inherited sockets are descriptors 3, 4, ...


class _NeverServed(Factory):
    protocol = Protocol
    noisy = False

    def logPrefix(self):
        return "txregistry's workers"


def bindShared(reactor, description):
    """Listen on the C{--port} text C{description} now and stop accepting
    there; return C{(port, families)}: the listening port (to stop at the
    end, and to describe) and the address family of each of its sockets,
    in the order L{descriptors} gives them.  L{txregistry.listen.CannotListen}
    (one line) or L{txregistry.config.ConfigError} when that fails."""
    port = listenNow(endpointFor(reactor, description), _NeverServed(), description)
    for each in _each(port):
        each.stopReading()
    return port, [s.family for s in sockets(port)]


def _each(port):
    return list(port._ports) if isinstance(port, Ports) else [port]


def sockets(port):
    """The socket objects of a listening port (one, or two for a bare port
    number: IPv4 and IPv6)."""
    return [each.socket for each in _each(port)]


def descriptors(port):
    return [s.fileno() for s in sockets(port)]


def adopt(reactor, description, families, site):
    """In a worker: listen on the inherited sockets (descriptors from
    L{FIRST_FD} on) for C{site}, through TLS when C{description} is an
    C{ssl:} one; the port (a L{Ports} when there are several)."""
    factory = site
    context = tlsContext(endpointFor(reactor, description))
    if context is not None:
        from twisted.protocols.tls import TLSMemoryBIOFactory

        factory = TLSMemoryBIOFactory(context, False, site)
    ports = [reactor.adoptStreamPort(FIRST_FD + i, family, factory) for i, family in enumerate(families)]
    for port in ports:
        _acceptOneAtATime(port)
    for i in range(len(families)):
        os.close(FIRST_FD + i)  # the reactor listens on its own duplicate
    return ports[0] if len(ports) == 1 else Ports(ports)


def _acceptOneAtATime(port):
    """Accept one connection each time the socket is readable, not as many
    as are waiting (Twisted's port accepts up to C{numberAccepts} a turn,
    raising it under load): every worker is woken when connections arrive,
    so each takes one in turn, and a burst (a client opening 50
    connections at once) spreads over the workers instead of going whole
    to the first one awake."""
    doRead = port.doRead

    def doReadOne():
        port.numberAccepts = 1
        return doRead()

    port.doRead = doReadOne


def tlsContext(endpoint):
    """The TLS context factory of an C{ssl:} endpoint, else C{None}.
    Twisted's SSL4ServerEndpoint keeps it (built from the description's
    privateKey, certKey, extraCertChain, dhParameters...) in an attribute
    it does not publish; reading it means the worker's TLS is exactly the
    one the description asks for, with no parsing of our own."""
    return getattr(endpoint, "_sslContextFactory", None)
