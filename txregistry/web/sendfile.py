"""Blob bodies copied by the kernel: C{os.sendfile} from a stored file to
the client's socket, no byte through Python.

L{SendfileProducer.forRequest} says whether a response can be sent so: the
request came over plain TCP (not TLS: the kernel cannot encrypt), the
transport has a socket descriptor, the reader offers its file
(L{txregistry.storage.interface.ISendfileSource}: the filesystem driver's
readers do, memory and S3 readers do not), and this Twisted lets us see
what its transport still buffers.  Otherwise the caller streams through
L{txregistry.web.producer.ReaderProducer}, as before.

How the bytes stay in order.  The status line and headers go out through
twisted.web as always (C{request.write(b"")}): they land in the
transport's write buffer, and Twisted hands them to the kernel when the
socket becomes writable.  The body must follow them, never overtake them,
and Twisted offers no public "your buffer is empty" signal to a producer
that does not write through it (the transport resumes a streaming producer
only after pausing it for a full buffer, which a few hundred bytes of
headers never cause).  So we ask the transport how much it still holds
(L{TwistedPrivate.pendingWrites}, the one private read, tested against the
installed Twisted) each time the socket is writable, and call C{sendfile}
only when that is zero.  Nothing else writes to the transport while the
response is being sent (pipelined requests wait for it to finish).

How we hear that the socket is writable.  The reactor keeps one selectable
per descriptor number (epoll's table is keyed by it), so watching the
transport's own descriptor would take it away from the transport; we watch
a duplicate (C{os.dup}: the same socket, hence the same non-blocking flag)
and send through it, and close it when done.

Backpressure: C{sendfile} on the non-blocking socket copies what the
socket's buffer can take and then fails with C{EAGAIN}; we wait for
writability again.  At most L{TURN} bytes go per reactor turn, so that one
fast client does not hold the reactor.  The producer is registered with
the request (a push producer): it stops when the connection is lost (the
channel stops it, and C{notifyFinish} fails) and stops watching the socket
while paused.  A client that reads nothing for the channel's
C{sendTimeout} seconds is disconnected, as when the transport's buffer
stays full on the other path.  C{request.sentLength} grows with what the
kernel took, so the access log and the metrics count the bytes sent.

The file's pages come from the page cache; a cold blob is read from disk
inside C{sendfile}, on the reactor thread, a socket buffer's worth at a
time (as nginx's C{sendfile on}); the kernel's read-ahead follows the
sequential reads.
"""

import os

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.interfaces import IPushProducer, ISSLTransport, ITCPTransport, IWriteDescriptor
from twisted.logger import Logger
from zope.interface import implementer

from txregistry.storage.interface import ISendfileSource
from txregistry.web.twistedprivate import TwistedPrivate

# Bytes sent at most per reactor turn (for one response).
TURN = 4 * 1024 * 1024


@implementer(IWriteDescriptor)
class _Writable:
    """What the reactor watches: the duplicate of the client's socket."""

    def __init__(self, fd, producer):
        self._fd = fd
        self._producer = producer

    def fileno(self):
        return self._fd

    def doWrite(self):
        self._producer._send()

    def connectionLost(self, reason):
        # (The reactor saw the socket fail; the transport hears it too.)
        self._producer._socketFailed(reason)

    def logPrefix(self):
        return "sendfile"


@implementer(IPushProducer)
class SendfileProducer:
    """Sends C{length} bytes of a stored file (C{fd} from C{offset}) on
    the socket of C{request}; see the module's docstring.

    L{start} writes the headers, registers with the request and returns a
    Deferred firing once every byte was sent and the producer unregistered
    (with C{None} also when stopped early; with a failure when the socket
    or the file failed).  C{onSent(n)} is told of every C{n} bytes sent."""

    log = Logger()

    def __init__(self, reactor, request, fd, offset, length, onSent=None):
        self._reactor = reactor
        self._request = request
        self._transport = request.channel.transport
        self._file = fd
        self._offset = offset
        self._remaining = length
        self._onSent = onSent
        self._socket = None
        self._writable = None
        self._watching = False
        self._paused = False
        self._done = Deferred()
        self._sendTimeout = getattr(request.channel, "sendTimeout", 0) or 0
        self._lastProgress = None
        self._stallCall = None

    @classmethod
    def forRequest(cls, reactor, request, reader, length, onSent=None):
        """A producer sending C{length} bytes of C{reader} as the body of
        C{request}, or C{None} when this response cannot be sent so."""
        if reactor is None or not hasattr(os, "sendfile"):
            return None
        channel = getattr(request, "channel", None)
        transport = getattr(channel, "transport", None)
        if transport is None or not ITCPTransport.providedBy(transport) or ISSLTransport.providedBy(transport):
            return None
        if TwistedPrivate.pendingWrites(transport) is None:
            return None
        try:
            if transport.fileno() < 0:
                return None
        except Exception:
            return None
        if not ISendfileSource.providedBy(reader):
            return None
        source = reader.sendfileSource()
        if source is None:
            return None
        fd, offset, available = source
        if length > available:
            return None
        return cls(reactor, request, fd, offset, length, onSent)

    def start(self):
        try:
            self._socket = os.dup(self._transport.fileno())
        except OSError as e:
            self._done.errback(e)
            return self._done
        self._writable = _Writable(self._socket, self)
        self._request.write(b"")  # the status line and headers, into the transport's buffer
        self._lastProgress = self._reactor.seconds()
        self._request.registerProducer(self, True)
        if self._sendTimeout:
            self._stallCall = self._reactor.callLater(self._sendTimeout, self._checkStall)
        self._watch()
        return self._done

    # --- the reactor says the socket can take more ---

    def _send(self):
        if self._done.called:
            return
        if TwistedPrivate.pendingWrites(self._transport):
            return  # the transport's bytes first (it is writing them now)
        sent = 0
        while self._remaining > 0 and sent < TURN:
            try:
                n = os.sendfile(self._socket, self._file, self._offset, min(self._remaining, TURN - sent))
            except BlockingIOError:
                break
            except OSError as e:
                # The client went away (EPIPE, ECONNRESET) or the file failed.
                self._count(sent)
                self._finish(e)
                return
            if n == 0:
                self.log.error("stored file ended {n} bytes early", n=self._remaining)
                self._count(sent)
                self._finish(RuntimeError("short read"))
                return
            self._offset += n
            self._remaining -= n
            sent += n
        self._count(sent)
        if self._remaining <= 0:
            self._finish(None)

    def _count(self, n):
        if not n:
            return
        self._lastProgress = self._reactor.seconds()
        self._request.sentLength += n
        if self._onSent is not None:
            self._onSent(n)

    def _socketFailed(self, reason):
        self._watching = False  # (the reactor dropped it)
        self._finish(ConnectionLost(str(reason.value)))

    def _checkStall(self):
        self._stallCall = None
        if self._done.called:
            return
        idle = self._reactor.seconds() - self._lastProgress
        if idle < self._sendTimeout:
            self._stallCall = self._reactor.callLater(self._sendTimeout - idle, self._checkStall)
            return
        self.log.info(
            "client {peer} read nothing for {seconds} s: aborting the connection",
            peer=str(self._transport.getPeer()), seconds=self._sendTimeout,
        )
        self._transport.abortConnection()  # the channel then stops us

    # --- watching the socket ---

    def _watch(self):
        if not self._watching and not self._paused and not self._done.called:
            self._watching = True
            self._reactor.addWriter(self._writable)

    def _unwatch(self):
        if self._watching:
            self._watching = False
            self._reactor.removeWriter(self._writable)

    def _finish(self, error):
        if self._done.called:
            return
        self._unwatch()
        if self._stallCall is not None:
            self._stallCall.cancel()
            self._stallCall = None
        if self._socket is not None:
            os.close(self._socket)
            self._socket = None
        # The transport stops its producer before the request hears that
        # the connection is gone, so the request may finish before that: it
        # must find no producer registered.
        try:
            self._request.unregisterProducer()
        except Exception:
            pass
        if error is None:
            self._done.callback(None)
        else:
            self._done.errback(error)

    # --- IPushProducer ---

    def pauseProducing(self):
        self._paused = True
        self._unwatch()

    def resumeProducing(self):
        self._paused = False
        self._watch()

    def stopProducing(self):
        self._finish(None)
