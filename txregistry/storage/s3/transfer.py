"""Bodies in and out of S3: request bodies sent from a buffer in pieces,
small response bodies collected (bounded or not), and the streaming reader
of an object, which buffers a bounded amount and pauses the connection."""

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Protocol
from twisted.web.client import ResponseDone
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from txregistry.storage.interface import ContentTooLarge, IReader, StorageError

READ_HIGH = 4 * 1024 * 1024
READ_LOW = 1024 * 1024
SEND_CHUNK = 128 * 1024


def fail(e):
    """A Deferred that has failed with C{e}."""
    return Deferred.fromCoroutine(_raise(e))


async def _raise(e):
    raise e


@implementer(IBodyProducer)
class BytesProducer:
    """A request body from bytes or a bytearray, handed to the transport
    SEND_CHUNK bytes at a time while it asks for more (it pauses us when
    its buffer is full), so that a part is never copied whole: the
    transport holds one piece, not the part.  A new producer is made for
    each attempt of a request (see L{S3Client.send})."""

    def __init__(self, data, chunkSize=SEND_CHUNK):
        self._view = memoryview(data)
        self.length = self._view.nbytes
        self._chunkSize = chunkSize
        self._offset = 0
        self._paused = False
        self._consumer = None
        self._done = None
        self._writing = False

    def startProducing(self, consumer):
        self._consumer = consumer
        self._done = Deferred()
        self._produce()
        return self._done

    def _produce(self):
        if self._writing:  # (a write made the transport resume us)
            return
        self._writing = True
        try:
            while not self._paused and self._consumer is not None and self._offset < self.length:
                end = min(self._offset + self._chunkSize, self.length)
                piece = self._view[self._offset:end].tobytes()  # transports take bytes only
                self._offset = end
                self._consumer.write(piece)
        finally:
            self._writing = False
        if self._consumer is not None and self._offset >= self.length:
            self._consumer = None
            self._view.release()  # the buffer may be resized again
            self._done.callback(None)

    def pauseProducing(self):
        self._paused = True

    def resumeProducing(self):
        self._paused = False
        self._produce()

    def stopProducing(self):
        # (The Deferred of startProducing need not fire after this.)
        if self._consumer is not None:
            self._consumer = None
            self._view.release()


class IntoBytearray(Protocol):
    """Collects a (small) response body into one bytearray, without the
    list and join of L{readBody}."""

    def __init__(self, finished):
        self.data = bytearray()
        self._finished = finished

    def dataReceived(self, data):
        self.data += data

    def connectionLost(self, reason):
        if reason.check(ResponseDone):
            self._finished.callback(self.data)
        else:
            self._finished.errback(reason)


def readIntoBytearray(response):
    d = Deferred()
    response.deliverBody(IntoBytearray(d))
    return d


class AtMost(IntoBytearray):
    """Collects a response body of at most C{maxSize} bytes; past that, the
    connection is dropped (nothing more is read) and C{finished} fails with
    L{ContentTooLarge}."""

    def __init__(self, finished, maxSize, path):
        IntoBytearray.__init__(self, finished)
        self._maxSize = maxSize
        self._path = path

    def dataReceived(self, data):
        if self._finished is None:
            return
        self.data += data
        if len(self.data) > self._maxSize:
            finished, self._finished = self._finished, None
            self.data = bytearray()
            self.transport.stopProducing()
            finished.errback(ContentTooLarge(self._path, self._maxSize))

    def connectionLost(self, reason):
        if self._finished is not None:
            IntoBytearray.connectionLost(self, reason)


def readAtMost(response, maxSize, path):
    """The body of C{response}, failing with L{ContentTooLarge} past
    C{maxSize} bytes."""
    d = Deferred()
    response.deliverBody(AtMost(d, maxSize, path))
    return d


class BufferingProtocol(Protocol):
    """Receives a response body, buffering at most about READ_HIGH bytes: it
    pauses the connection above that and resumes below READ_LOW."""

    def __init__(self):
        self.buffer = bytearray()
        self.done = False
        self.error = None
        self.waiting = None
        self.paused = False

    def dataReceived(self, data):
        self.buffer += data
        if len(self.buffer) > READ_HIGH and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pauseProducing()
        self._wake()

    def connectionLost(self, reason):
        self.done = True
        if not reason.check(ResponseDone):
            self.error = reason
        self._wake()

    def _wake(self):
        d, self.waiting = self.waiting, None
        if d is not None:
            d.callback(None)

    def take(self, n):
        chunk = bytes(self.buffer[:n])
        del self.buffer[:n]
        if self.paused and len(self.buffer) < READ_LOW:
            self.paused = False
            self.transport.resumeProducing()
        return chunk

    def stop(self):
        if not self.done and self.transport is not None:
            self.transport.stopProducing()


@implementer(IReader)
class S3Reader:
    def __init__(self, protocol, size):
        self._protocol = protocol
        self.size = size

    def read(self, n):
        p = self._protocol
        if p.buffer:
            return succeed(p.take(n))
        if p.done:
            if p.error is not None:
                return fail(StorageError("S3 read failed: %s" % (p.error.value,)))
            return succeed(b"")
        d = Deferred()
        p.waiting = d
        return d.addCallback(lambda _: self.read(n))

    def close(self):
        self._protocol.stop()


class EmptyReader:
    size = 0

    def read(self, n):
        return succeed(b"")

    def close(self):
        pass
