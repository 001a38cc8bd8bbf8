"""The request-body plumbing: the one use of Twisted internals
(requestLine), and backpressure from storage to the connection."""

from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import StringTransport
from twisted.trial import unittest
from twisted.web.resource import Resource

from txregistry.registry import uploads as U
from txregistry.web.ingest import BoundedBody, RegistrySite, UploadBody


class RecordingSite(RegistrySite):
    def __init__(self):
        self.seen = []
        self.bodies = []
        RegistrySite.__init__(self, Resource(), self._choose)

    def _choose(self, request, method, uri, length):
        self.seen.append((method, uri, length))
        body = BoundedBody(1000)
        self.bodies.append(body)
        return body


class RequestLineTests(unittest.TestCase):
    def test_siteSeesMethodAndPathBeforeTheBody(self):
        site = RecordingSite()
        channel = site.buildProtocol(None)
        transport = StringTransport()
        channel.makeConnection(transport)
        channel.dataReceived(
            b"PATCH /v2/a/blobs/uploads/x?y=1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        self.assertEqual(site.seen, [(b"PATCH", b"/v2/a/blobs/uploads/x?y=1", None)])
        channel.dataReceived(b"3\r\nabc\r\n")
        self.assertEqual(site.bodies[0].getvalue(), b"abc")
        channel.connectionLost(None)

    def test_boundedBodyOverflow(self):
        body = BoundedBody(5)
        body.write(b"abc")
        body.write(b"def")
        self.assertTrue(body.overflow)
        self.assertEqual(body.tell(), 6)
        self.assertEqual(body.getvalue(), b"")


class StalledWriter:
    def __init__(self):
        self.size = 0
        self.pending = []

    def write(self, data):
        d = Deferred()
        self.pending.append((d, len(data)))
        return d

    def release(self):
        pending, self.pending = self.pending, []
        for d, n in pending:
            self.size += n
            d.callback(None)

    def commit(self):
        return succeed(None)

    def close(self):
        return succeed(None)


class FakeUploads:
    maxConcurrent = 0
    maxBlobSize = 0
    active = 0

    def __init__(self, writer):
        self.driver = self
        self._writer = writer
        self.state = U._State()

    async def create(self, name):
        return "u1"

    async def _checkExists(self, name, uploadID):
        pass

    async def _acquire(self, uploadID):
        return self.state

    def _release(self, uploadID):
        pass

    def writer(self, path, append=False):
        return succeed(self._writer)

    def _inPool(self, f, *args):
        f(*args)
        return succeed(None)


class PausingTransport:
    def __init__(self):
        self.paused = False
        self.calls = []

    def pauseProducing(self):
        self.paused = True
        self.calls.append("pause")

    def resumeProducing(self):
        self.paused = False
        self.calls.append("resume")


class BackpressureTests(unittest.TestCase):
    def test_pauseAtHighWaterResumeAtLow(self):
        writer = StalledWriter()
        appender = U.Appender(FakeUploads(writer), "n", "u1", None, ("sha256",), None, None)
        transport = PausingTransport()
        body = UploadBody(appender, transport)
        chunk = b"x" * 65536
        written = 0
        while not transport.paused:
            body.write(chunk)
            written += len(chunk)
            self.assertLess(written, U.HIGH_WATER * 3, "never paused")
        self.assertGreaterEqual(written, U.HIGH_WATER)
        writer.release()  # the first batch lands
        writer.release()  # and everything queued since
        self.assertFalse(transport.paused)
        self.assertEqual(transport.calls, ["pause", "resume"])
        body.seek(0)  # the body is complete
        size = self.successResultOf(appender.finish())
        self.assertEqual(size, written)

    def test_noResumeOnceBodyComplete(self):
        # After the body is in, the HTTP channel owns the transport's state.
        writer = StalledWriter()
        appender = U.Appender(FakeUploads(writer), "n", "u1", None, ("sha256",), None, None)
        transport = PausingTransport()
        body = UploadBody(appender, transport)
        while not transport.paused:
            body.write(b"y" * 65536)
        body.seek(0)
        writer.release()
        writer.release()
        self.assertEqual(transport.calls, ["pause"])
