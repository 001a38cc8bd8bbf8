"""L{TwistedPrivate} against the installed Twisted: these fail (rather than
the registry quietly routing bodies later, logging no request line, or
dropping its log date) when a Twisted upgrade renames or moves the private
attributes it reads."""

from twisted.internet import defer, protocol, reactor
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial import unittest
from twisted.web import http
from twisted.web.resource import Resource

from txregistry.web.ingest import RegistrySite
from txregistry.web.twistedprivate import TwistedPrivate


class Leaf(Resource):
    isLeaf = True

    def render(self, request):
        return b"ok"


class Recorder(RegistrySite):
    """Records what L{TwistedPrivate} reads when the headers are in (when
    the site is asked where the body goes)."""

    def __init__(self):
        self.seen = []
        RegistrySite.__init__(self, Leaf(), self._choose, reactor=Clock())

    def _choose(self, request, method, uri, length):
        channel = request.channel
        self.seen.append((method, uri, TwistedPrivate.requestLine(channel), TwistedPrivate.version(channel)))
        return None


class TwistedPrivateTests(unittest.TestCase):
    def exchange(self, data):
        site = Recorder()
        channel = site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(data)
        return site, transport

    def test_requestLineAndVersionBeforeTheBody(self):
        # A body follows the headers: what is read must be there before it.
        site, transport = self.exchange(
            b"PUT /v2/a/manifests/t?x=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n")
        self.assertEqual(site.seen, [
            (b"PUT", b"/v2/a/manifests/t?x=1", (b"PUT", b"/v2/a/manifests/t?x=1"), b"HTTP/1.1"),
        ])
        self.assertEqual(transport.value(), b"")  # still waiting for the body

    def test_http10(self):
        site, _ = self.exchange(b"POST /t HTTP/1.0\r\nContent-Length: 1\r\n\r\n")
        self.assertEqual([seen[3] for seen in site.seen], [b"HTTP/1.0"])

    def test_theChannelAttributesAreWhereTheAdapterLooks(self):
        # Named outright: a Twisted that renames them fails here, loudly.
        channel = http.HTTPChannel()
        channel.makeConnection(StringTransport())
        channel.dataReceived(b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n")
        self.assertEqual((channel._command, channel._path, channel._version), (b"POST", b"/p", b"HTTP/1.1"))

    def test_logDate(self):
        site = RegistrySite(Leaf(), lambda *a: None, reactor=Clock())
        self.assertIsNone(TwistedPrivate.logDate(site))  # not started
        site.startFactory()
        self.addCleanup(site.stopFactory)
        self.assertEqual(TwistedPrivate.logDate(site), site._logDateTime)
        self.assertRegex(TwistedPrivate.logDate(site), r"^\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d \+0000\]$")
        self.assertEqual(site.logStamp(), site._logDateTime)


class _Collect(protocol.Protocol):
    def __init__(self, want):
        self.want = want
        self.got = 0
        self.done = defer.Deferred()

    def dataReceived(self, data):
        self.got += len(data)
        if self.got >= self.want and not self.done.called:
            self.done.callback(None)


class PendingWritesTests(unittest.TestCase):
    """What a real TCP transport of this Twisted buffers, as sendfile's
    producer reads it: a Twisted that keeps it elsewhere fails here (and
    blobs then go through the transport, not sendfile)."""

    @defer.inlineCallbacks
    def test_realTCPTransport(self):
        served = defer.Deferred()

        class Server(protocol.Protocol):
            def connectionMade(self):
                served.callback(self.transport)

        port = reactor.listenTCP(0, protocol.Factory.forProtocol(Server), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        client = _Collect(300000)
        connected = yield protocol.ClientCreator(reactor, lambda: client).connectTCP("127.0.0.1", port.getHost().port)
        self.addCleanup(connected.transport.loseConnection)
        transport = yield served
        self.addCleanup(transport.loseConnection)
        self.assertEqual(TwistedPrivate.pendingWrites(transport), 0)
        transport.write(b"x" * 100000)
        transport.writeSequence([b"y" * 100000, b"z" * 100000])
        # Twisted writes to the socket when the reactor says it can: all
        # of it is still held.
        self.assertEqual(TwistedPrivate.pendingWrites(transport), 300000)
        yield client.done
        self.assertEqual(TwistedPrivate.pendingWrites(transport), 0)
        self.assertEqual((transport.dataBuffer, transport.offset, transport._tempDataLen), (b"", 0, 0))

    def test_notAFileDescriptor(self):
        self.assertIsNone(TwistedPrivate.pendingWrites(StringTransport()))
