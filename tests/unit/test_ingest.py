"""The request-body plumbing: the one use of Twisted internals
(requestLine), and backpressure from storage to the connection."""

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.internet.testing import StringTransport
from twisted.trial import unittest
from twisted.web.resource import Resource

from txregistry.registry import appender as A
from txregistry.registry import uploads as U
from txregistry.web.bodies import BoundedBody, UploadBody
from txregistry.limits import HTTPLimits
from txregistry.web.ingest import RegistrySite


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
        channel.connectionLost(Failure(ConnectionDone()))

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

    def cancel(self):
        self.cancelled = True
        return succeed(None)

    def close(self):
        return succeed(None)


class FakeUploads(U.Uploads):
    """The upload sessions an Appender works with, on a writer of the
    test's (the flow control, claims and bookkeeping are the real ones):
    it is its own storage driver, where every upload exists, and records
    the claims given up and the uploads forgotten."""

    def __init__(self, writer):
        U.Uploads.__init__(self, self, None, None, None)
        self.nextWriter = writer
        self.released = []
        self.forgotten = []

    async def create(self, name):
        return "u1"

    async def claim(self, name, uploadID, created=False):
        state = await U.Uploads.claim(self, name, uploadID, created)
        state.uploadID = uploadID
        return state

    def release(self, state):
        self.released.append(state.uploadID)
        U.Uploads.release(self, state)

    async def forget(self, name, uploadID):
        self.forgotten.append(uploadID)

    # --- the storage driver ---

    def stat(self, path):
        return succeed(None)

    def writer(self, path, append=False):
        return succeed(self.nextWriter)


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
        appender = A.Appender(FakeUploads(writer), "n", "u1", None, ("sha256",))
        transport = PausingTransport()
        body = UploadBody(appender, transport)
        chunk = b"x" * 65536
        written = 0
        while not transport.paused:
            body.write(chunk)
            written += len(chunk)
            self.assertLess(written, A.HIGH_WATER * 3, "never paused")
        self.assertGreaterEqual(written, A.HIGH_WATER)
        # Batches of at most about A.BATCH land one by one: the body
        # resumes once less than LOW_WATER is queued, not before.
        released = 0
        while transport.paused:
            self.assertEqual(transport.calls, ["pause"])
            self.assertGreaterEqual(appender.queued, A.LOW_WATER)
            writer.release()
            released += 1
            self.assertLess(released, written // A.BATCH + 2, "never resumed")
        self.assertLess(appender.queued, A.LOW_WATER)
        self.assertEqual(transport.calls, ["pause", "resume"])
        while appender.queued:
            writer.release()
        body.seek(0)  # the body is complete
        size = self.successResultOf(appender.finish())
        self.assertEqual(size, written)

    def test_allUploadsTogetherAreBounded(self):
        """Bodies that each queue less than HIGH_WATER, but too much all
        together (Uploads.maxQueued), are paused until the total is back
        to half the bound; a body's own queue still pauses it as before."""
        writers = [StalledWriter() for _ in range(4)]
        uploads = FakeUploads(None)
        uploads.maxQueued = 3 * 1024 * 1024
        bodies = []
        for i, writer in enumerate(writers):
            uploads.nextWriter = writer
            appender = A.Appender(uploads, "n", "u%d" % (i,), None, ("sha256",))
            transport = PausingTransport()
            bodies.append((UploadBody(appender, transport), transport, writer))
        chunk = b"x" * (1024 * 1024)
        for body, transport, _ in bodies:
            body.write(chunk)  # the first MiB of each is being written
            body.write(chunk)  # the second waits in its queue
        # 8 MiB received, 4 in flight, more than 3 MiB waiting: each body
        # that queued past the bound is paused.
        self.assertGreater(uploads.queued, uploads.maxQueued)
        paused = [t for _, t, _ in bodies if t.paused]
        self.assertTrue(paused)
        self.assertLess(uploads.queued, uploads.maxQueued + 2 * len(chunk) * len(bodies))
        for _, _, writer in bodies:
            writer.release()  # the first MiBs land; the second ones go out
        for _, _, writer in bodies:
            writer.release()
        self.assertEqual(uploads.queued, 0)
        self.assertEqual([t.paused for _, t, _ in bodies], [False] * len(bodies))
        self.assertEqual(sum(t.calls.count("resume") for _, t, _ in bodies), len(paused))

    def test_aBodyWhoseStorageTookEverythingGoesOnOverTheBound(self):
        """Over the bound of all uploads, a body whose writer took all it
        was given resumes although the others keep the total over the
        bound (they may wait for what only it can free, as S3 writers wait
        for a part buffer), and is paused again by its next bytes."""
        uploads = FakeUploads(None)
        uploads.maxQueued = 3 * 1024 * 1024
        chunk = b"x" * (1024 * 1024)
        stuck = StalledWriter()
        uploads.nextWriter = stuck
        stuckBody = UploadBody(A.Appender(uploads, "n", "u1", None, ("sha256",)), PausingTransport())
        for _ in range(4):
            stuckBody.write(chunk)  # 4 MiB that go nowhere
        moving = StalledWriter()
        uploads.nextWriter = moving
        transport = PausingTransport()
        body = UploadBody(A.Appender(uploads, "n", "u2", None, ("sha256",)), transport)
        body.write(chunk)
        self.assertTrue(transport.paused)
        moving.release()
        self.assertFalse(transport.paused)
        self.assertGreater(uploads.queued, uploads.maxQueued)  # (all the stuck body's)
        body.write(chunk)
        self.assertTrue(transport.paused)
        moving.release()
        self.assertFalse(transport.paused)
        self.assertEqual(transport.calls, ["pause", "resume", "pause", "resume"])

    def test_noResumeOnceBodyComplete(self):
        # After the body is in, the HTTP channel owns the transport's state.
        writer = StalledWriter()
        appender = A.Appender(FakeUploads(writer), "n", "u1", None, ("sha256",))
        transport = PausingTransport()
        body = UploadBody(appender, transport)
        while not transport.paused:
            body.write(b"y" * 65536)
        body.seek(0)
        while appender.queued:
            writer.release()
        self.assertEqual(transport.calls, ["pause"])


class AppenderRefusalTests(unittest.TestCase):
    def test_refusedWhileCreatingRemovesTheUpload(self):
        """A monolithic POST refused while its upload is being created: the
        upload is removed again once created, and released."""
        created = Deferred()
        uploads = FakeUploads(StalledWriter())

        async def create(name):
            await created
            return "new"

        uploads.create = create
        appender = A.Appender(uploads, "n", None, None, ("sha256",))
        self.assertEqual(uploads.active, 1)
        from txregistry.errors import RegistryError

        error = RegistryError("SIZE_INVALID", limit=1)
        appender.refuse(error)
        done = appender.finish()
        self.assertNoResult(done)  # still opening
        created.callback(None)
        self.assertIs(self.failureResultOf(done).value, error)
        self.assertEqual(uploads.forgotten, ["new"])
        self.assertEqual(uploads.released, ["new"])
        self.assertEqual(uploads.active, 0)

    def test_rejectedWhileOpeningWaitsForTheOpen(self):
        """A body over the limit, ended before its upload was opened: the
        writer opened meanwhile is closed and the upload released (it was
        left open and locked)."""
        opened = Deferred()
        writer = StalledWriter()
        closed = []
        writer.close = lambda: closed.append(True) or succeed(None)
        uploads = FakeUploads(writer)
        uploads.maxBlobSize = 3
        uploads.writer = lambda path, append=False: opened
        appender = A.Appender(uploads, "n", "u1", None, ("sha256",))
        appender.write(b"abcd")
        done = appender.finish()
        self.assertNoResult(done)
        opened.callback(writer)
        self.assertEqual(self.failureResultOf(done).value.code, "SIZE_INVALID")
        self.assertEqual(closed, [True])
        self.assertEqual(uploads.released, ["u1"])
        self.assertEqual(uploads.active, 0)


# --- refusals, early 413, slow clients, the URL guard -----------------------------

import json

from twisted.internet.interfaces import ITCPTransport
from twisted.internet.task import Clock
from twisted.web.server import NOT_DONE_YET
from zope.interface import implementer

from txregistry.web.ingest import BodyRateWatch, RegistryChannel


@implementer(ITCPTransport)
class TCPStringTransport(StringTransport):
    """A StringTransport that can half-close, like TCP."""

    writeClosed = False

    def setTcpNoDelay(self, enabled):
        pass

    def loseWriteConnection(self):
        self.writeClosed = True


class Leaf(Resource):
    """Records the requests it serves; answers 200 "ok"."""

    isLeaf = True

    def __init__(self):
        Resource.__init__(self)
        self.served = []

    def render(self, request):
        self.served.append((request.method, request.path))
        return b"ok"


class LimitSite(RegistrySite):
    def __init__(self, limit=1000, clock=None, body=None, **limits):
        self.leaf = Leaf()
        self.bodies = []
        self._limit = limit
        self._body = body
        RegistrySite.__init__(self, self.leaf, self._choose, reactor=clock or Clock(), limits=HTTPLimits(**limits))

    def _choose(self, request, method, uri, length):
        body = self._body() if self._body is not None else BoundedBody(self._limit)
        self.bodies.append(body)
        return body


def connect(site, transport=None):
    channel = site.buildProtocol(None)
    transport = transport or StringTransport()
    channel.makeConnection(transport)
    return channel, transport


def response(transport):
    """(status, headers {lowercase name: value}, body) of the first response."""
    head, _, body = transport.value().partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = dict((k.strip().lower(), v.strip()) for k, _, v in (l.partition(b":") for l in lines[1:]))
    return int(lines[0].split(b" ")[1]), headers, body


def errorCode(body):
    doc = json.loads(body)
    assert set(doc["errors"][0]) >= {"code", "message", "detail"}, doc
    return doc["errors"][0]["code"]


class FramingTests(unittest.TestCase):
    FOLLOWER = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"

    def test_twoTransferEncodingsRefused(self):
        site = LimitSite()
        channel, transport = connect(site)
        channel.dataReceived(b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                             b"Transfer-Encoding: identity\r\n\r\n0\r\n\r\n" + self.FOLLOWER)
        status, headers, body = response(transport)
        self.assertEqual((status, errorCode(body)), (400, "UNSUPPORTED"))
        self.assertEqual(headers[b"connection"], b"close")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(site.leaf.served, [])
        self.assertEqual(transport.value().count(b"HTTP/1.1 "), 1)

    def test_onlyChunkedAccepted(self):
        for value in (b"identity", b"chunked, identity", b"gzip", b"\x0bchunked"):
            site = LimitSite()
            channel, transport = connect(site)
            channel.dataReceived(b"POST /a HTTP/1.1\r\nTransfer-Encoding: " + value + b"\r\nHost: x\r\n\r\n"
                                 + b"0\r\n\r\n" + self.FOLLOWER)
            self.assertTrue(transport.value().startswith(b"HTTP/1.1 400 "), (value, transport.value()))
            self.assertEqual(site.leaf.served, [], value)

    def test_oneChunkedAccepted(self):
        site = LimitSite()
        channel, transport = connect(site)
        channel.dataReceived(b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        self.assertEqual(site.leaf.served, [(b"POST", b"/a")])
        self.assertEqual(site.bodies[0].getvalue(), b"abc")

    def test_lingeringCloseOnTCP(self):
        """On TCP a refusal half-closes, drops what the client still sends,
        and aborts after LINGER seconds."""
        clock = Clock()
        site = LimitSite(clock=clock)
        channel, transport = connect(site, TCPStringTransport())
        channel.dataReceived(b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                             b"Transfer-Encoding: chunked\r\n\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 400 "))
        self.assertTrue(transport.writeClosed)
        self.assertFalse(transport.disconnecting)
        written = transport.value()
        channel.dataReceived(b"0\r\n\r\n" + self.FOLLOWER)
        self.assertEqual(transport.value(), written)
        self.assertEqual(site.leaf.served, [])
        clock.advance(RegistryChannel.LINGER)
        self.assertTrue(transport.disconnected)


class DeclaredLengthTests(unittest.TestCase):
    def test_overTheLimitAtOnce(self):
        site = LimitSite(limit=100)
        channel, transport = connect(site)
        channel.dataReceived(b"PUT /v2/a/manifests/t HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n"
                             b"Expect: 100-continue\r\n\r\n")
        status, headers, body = response(transport)
        self.assertEqual((status, errorCode(body)), (413, "MANIFEST_INVALID"))
        self.assertEqual(headers[b"docker-distribution-api-version"], b"registry/2.0")
        self.assertNotIn(b"100 Continue", transport.value())
        self.assertTrue(transport.disconnecting)
        self.assertEqual(site.leaf.served, [])

    def test_otherBodiesSizeInvalid(self):
        site = LimitSite(limit=100)
        channel, transport = connect(site)
        channel.dataReceived(b"POST /v2/a/x HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n")
        status, _, body = response(transport)
        self.assertEqual((status, errorCode(body)), (413, "SIZE_INVALID"))

    def test_atTheLimitOrChunkedServed(self):
        site = LimitSite(limit=3)
        channel, transport = connect(site)
        channel.dataReceived(b"PUT /v2/a/manifests/t HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        channel.dataReceived(b"PUT /v2/a/manifests/t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                             b"4\r\nabcd\r\n0\r\n\r\n")
        self.assertEqual(len(site.leaf.served), 2)
        self.assertTrue(site.bodies[1].overflow)  # counted; the handler answers

    def test_uploadRefusedBeforeItsBody(self):
        writer = StalledWriter()
        uploads = FakeUploads(writer)
        uploads.maxBlobSize = 50
        bodies = []

        def body():
            appender = A.Appender(uploads, "n", "u1", None, ("sha256",))
            bodies.append(UploadBody(appender, None))
            return bodies[-1]

        site = LimitSite(body=body)
        channel, transport = connect(site)
        channel.dataReceived(b"PATCH /v2/n/blobs/uploads/u1 HTTP/1.1\r\nHost: x\r\nContent-Length: 51\r\n\r\n")
        status, _, answer = response(transport)
        self.assertEqual((status, errorCode(answer)), (413, "SIZE_INVALID"))
        self.assertEqual(bodies[0].maxLength, 50)
        self.assertEqual(writer.pending, [])  # nothing written
        self.assertEqual(uploads.released, ["u1"])


class SlowClientTests(unittest.TestCase):
    def test_headDeadline(self):
        clock = Clock()
        site = LimitSite(clock=clock, headerTimeout=10)
        channel, transport = connect(site)
        for _ in range(9):  # a byte a second: never idle
            channel.dataReceived(b"G")
            clock.advance(1)
        self.assertFalse(transport.disconnecting)
        clock.advance(1)
        self.assertTrue(transport.disconnecting)

    def test_headInTimeThenIdleIsNotCut(self):
        clock = Clock()
        site = LimitSite(clock=clock, headerTimeout=10, idleTimeout=300)
        channel, transport = connect(site)
        channel.dataReceived(b"GET /a HTTP/1.1\r\nHost: x\r\n")
        clock.advance(9)
        channel.dataReceived(b"\r\n")
        self.assertEqual(site.leaf.served, [(b"GET", b"/a")])
        clock.advance(100)  # keep-alive, between requests
        self.assertFalse(transport.disconnecting)
        # The next head has its own deadline, from its first byte.
        channel.dataReceived(b"GET /b HTTP/1.1\r\n")
        clock.advance(10)
        self.assertTrue(transport.disconnecting)

    def test_pipelinedHeadHasADeadline(self):
        """A head replayed from the buffer after the previous response
        (not through dataReceived) is timed too."""
        clock = Clock()
        site = LimitSite(clock=clock, headerTimeout=10)
        pending = []

        class Slow(Resource):
            isLeaf = True

            def render(self, request):
                pending.append(request)
                return NOT_DONE_YET

        site.resource.wrapped = Slow()
        channel, transport = connect(site)
        channel.dataReceived(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHo")
        clock.advance(20)  # the first request takes its time: not the head's
        self.assertFalse(transport.disconnecting)
        pending[0].finish()
        clock.advance(9)
        self.assertFalse(transport.disconnecting)
        clock.advance(1)
        self.assertTrue(transport.disconnecting)

    def test_sendStall(self):
        clock = Clock()
        site = LimitSite(clock=clock, sendTimeout=5)
        channel, transport = connect(site)
        channel.pauseProducing()  # the transport's buffer is full
        clock.advance(4)
        channel.resumeProducing()  # it drained
        clock.advance(10)
        self.assertFalse(transport.disconnected)
        channel.pauseProducing()
        clock.advance(5)
        self.assertTrue(transport.disconnected)

    def test_slowBodyCutOff(self):
        clock = Clock()
        site = LimitSite(limit=10**6, clock=clock, minBodyRate=100, bodyRateWindow=10, idleTimeout=300)
        channel, transport = connect(site)
        channel.dataReceived(b"PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
        for _ in range(10):
            channel.dataReceived(b"x" * 200)  # 200 bytes/s
            clock.advance(1)
        self.assertFalse(transport.disconnected)
        for _ in range(10):
            channel.dataReceived(b"x" * 50)  # 50 bytes/s
            clock.advance(1)
        self.assertTrue(transport.disconnected)

    def test_completeBodyStopsTheWatch(self):
        clock = Clock()
        site = LimitSite(clock=clock, minBodyRate=100, bodyRateWindow=10, idleTimeout=300)
        channel, transport = connect(site)
        channel.dataReceived(b"PUT /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc")
        clock.advance(100)
        self.assertFalse(transport.disconnected)
        self.assertEqual(site.leaf.served, [(b"PUT", b"/a")])


class BodyRateWatchTests(unittest.TestCase):
    def test_pausedWindowNotJudged(self):
        clock = Clock()
        slow = []

        class Body:
            paused = False
            pauses = 0

        body = Body()
        watch = BodyRateWatch(clock.callLater, 100, 10, body, slow.append)
        body.paused, body.pauses = True, 1  # storage fell behind
        clock.advance(10)
        self.assertEqual(slow, [])
        body.paused = False
        clock.advance(10)  # a whole window without pause and without bytes
        self.assertEqual(slow, [0])
        watch.stop()

    def test_stop(self):
        clock = Clock()
        slow = []
        watch = BodyRateWatch(clock.callLater, 100, 10, object(), slow.append)
        watch.feed(5)
        watch.stop()
        clock.advance(100)
        self.assertEqual(slow, [])
        self.assertEqual(clock.getDelayedCalls(), [])


class URLGuardTests(unittest.TestCase):
    def send(self, data):
        site = LimitSite()
        channel, transport = connect(site)
        channel.dataReceived(data)
        return site, response(transport)

    def test_nonUTF8Path(self):
        site, (status, headers, body) = self.send(b"GET /v2/%c0%ae/manifests/v1 HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual((status, errorCode(body)), (400, "NAME_INVALID"))
        self.assertEqual(headers[b"content-type"], b"application/json")
        self.assertEqual(site.leaf.served, [])
        _, (status, _, body) = self.send(b"GET /v1/search%ff HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual((status, errorCode(body)), (400, "UNSUPPORTED"))

    def test_nonUTF8Host(self):
        site, (status, headers, body) = self.send(b"GET /v2/ HTTP/1.1\r\nHost: \x82\r\n\r\n")
        self.assertEqual((status, errorCode(body)), (400, "UNSUPPORTED"))
        self.assertEqual(headers[b"docker-distribution-api-version"], b"registry/2.0")
        self.assertEqual(site.leaf.served, [])

    def test_hostIDNACannotEncode(self):
        for host in (b"\xef\xbf\xb9", b"a..b", b"a" * 64 + b".example", b".", b"x\xe2\x80\xae:80"):
            site, (status, _, body) = self.send(b"GET /v2/ HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
            self.assertEqual((status, errorCode(body)), (400, "UNSUPPORTED"), host)
            self.assertEqual(site.leaf.served, [])

    def test_headGetsNoBody(self):
        site, (status, headers, body) = self.send(b"HEAD /v2/%ff HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual((status, body), (400, b""))

    def test_validURLsPassThrough(self):
        site, (status, _, body) = self.send(b"GET /v2/%c3%a9/x?%ff HTTP/1.1\r\nHost: h:5000\r\n\r\n")
        self.assertEqual((status, body), (200, b"ok"))
        self.assertEqual(site.leaf.served, [(b"GET", b"/v2/%c3%a9/x")])
