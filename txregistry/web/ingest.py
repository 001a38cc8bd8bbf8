"""Request bodies: streamed into storage as they arrive.

twisted.web normally buffers a whole request body (in memory, or a temporary
file) before any resource runs.  Our L{IngestRequest} instead asks its site,
as soon as the headers are in, where the body should go:

- an upload's body goes straight into the upload's data in storage, through
  an L{Appender} that hashes it as it arrives and pauses the connection when
  the disk falls behind (L{UploadBody});
- any other body is kept in memory up to a limit and counted, not kept,
  beyond it (L{BoundedBody}).

A body may say how long it may be (C{maxLength}): a request declaring a
longer Content-Length is answered 413 at once, before any of the body is
read.  A request body that arrives too slowly (L{BodyRateWatch}), a request
head that takes too long, and a response nobody reads (L{RegistryChannel})
end the connection.

Twisted gives a request no public way to know its method, path and version
before the body is read (nor a site's log date): those are read through
L{TwistedPrivate}, the one place that reaches into Twisted's private state.
"""

from twisted.internet.interfaces import ISSLTransport, ITCPTransport
from twisted.logger import Logger
from twisted.web import http, server

from txregistry.errors import RegistryError
from txregistry.limits import HTTPLimits
from txregistry.registry.appender import blobTooLarge
from txregistry.web import routes
from txregistry.web.accesslog import logAccess, logRefusal
from txregistry.web.bodies import BoundedBody, PendingBody, UploadBody
from txregistry.web.errors import HTTPError, rawErrorResponse, statusOf
from txregistry.web.guard import URLGuard, hostProblem
from txregistry.web.drain import OpenChannels
from txregistry.web.overload import ConnectionLimit, Overloaded
from txregistry.web.twistedprivate import TwistedPrivate

# First bytes of a TLS handshake record (0x16) or an SSLv2 hello (0x80).
_TLS_FIRST_BYTES = (0x16, 0x80)
_HTTPS_TO_HTTP = (
    b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n"
    b"Content-Length: 48\r\n\r\nClient sent an HTTPS request to an HTTP server.\n"
)


def bodyTooLarge(body, uri, limit):
    """The error (a 413) of a request declaring a body longer than C{limit}."""
    detail = {"limit": limit}
    if isinstance(body, UploadBody):
        return blobTooLarge(limit)
    if uri is not None and b"/manifests/" in uri.split(b"?", 1)[0]:
        return RegistryError("MANIFEST_INVALID", "manifest exceeds %d bytes" % (limit,), detail, limit=limit)
    return RegistryError("SIZE_INVALID", "request body exceeds %d bytes" % (limit,), detail, limit=limit)


class BodyRateWatch:
    """Calls C{onSlow(received)} when fewer than C{rate * window} bytes of a
    request body arrived in a window of C{window} seconds (the first window
    starts when the headers are in).  A window in which the body paused the
    connection itself (storage fell behind: the body's C{paused} and
    C{pauses}) is not judged; a new one starts."""

    def __init__(self, callLater, rate, window, body, onSlow):
        self._callLater = callLater
        self._rate = rate
        self._window = window
        self._body = body
        self._onSlow = onSlow
        self._call = None
        self._startWindow()

    def _startWindow(self):
        self.received = 0
        self._pauses = getattr(self._body, "pauses", 0)
        self._call = self._callLater(self._window, self._check)

    def feed(self, n):
        self.received += n

    def _check(self):
        self._call = None
        body = self._body
        if (self.received >= self._rate * self._window or getattr(body, "paused", False)
                or getattr(body, "pauses", 0) != self._pauses):
            self._startWindow()
        else:
            self._onSlow(self.received)

    def stop(self):
        if self._call is not None:
            self._call.cancel()
            self._call = None


class IngestRequest(server.Request):
    log = Logger()
    _bodyWatch = None

    def gotLength(self, length):
        channel = self.channel
        site = channel.site
        channel.txrRequests = getattr(channel, "txrRequests", 0) + 1  # (see web.drain)
        clock = getattr(site, "reactor", None)
        if clock is not None:
            # The head is in: the access log's duration counts from here.
            self.txrStarted = clock.seconds()
        body = None
        uri = None
        chooser = getattr(site, "chooseBody", None)
        if chooser is not None:
            method, uri = TwistedPrivate.requestLine(channel)
            if method is not None:
                body = chooser(self, method, uri, length)
        if body is None:
            server.Request.gotLength(self, length)
        else:
            self.content = body
            release = getattr(body, "release", None)
            if release is not None:
                self.notifyFinish().addBoth(lambda _: release())
            if isinstance(body, PendingBody):
                self._holdContinue()
        refusal = getattr(body, "refusal", None)
        if refusal is not None and self.refuseBody(refusal):
            return
        limit = getattr(body, "maxLength", None)
        if limit and length is not None and length > limit and getattr(channel, "refuse", None) is not None:
            # Refuse now, without reading (or waiting for) the body.
            error = bodyTooLarge(body, uri, limit)
            if hasattr(body, "refuse"):
                body.refuse(error)
            self.refuseBody(error)
            return
        rate = getattr(site, "minBodyRate", 0)
        window = getattr(site, "bodyRateWindow", 0)
        if length != 0 and rate and window:
            self._bodyWatch = BodyRateWatch(channel.callLater, rate, window, self.content, self._bodyTooSlow)

    _continueHeld = False

    def _holdContinue(self):
        """The body's destination is not decided yet: no C{100 Continue}
        until it is (L{continueBody}), so that a refused client sends none
        of its body."""
        expect = self.requestHeaders.getRawHeaders(b"expect")
        if expect and expect[0].lower() == b"100-continue":
            self.requestHeaders.removeHeader(b"expect")
            self._continueHeld = TwistedPrivate.version(self.channel) == b"HTTP/1.1"

    def continueBody(self):
        """The body may come: send the C{100 Continue} held back, if the
        client asked for one and sent no body yet."""
        if not self._continueHeld:
            return
        self._continueHeld = False
        channel = self.channel
        if channel is None or channel.transport is None or self.content.tell() != 0:
            return
        channel.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def refuseBody(self, error):
        """Answer C{error} now, before (the rest of) the body, and end the
        connection; C{False} if this channel cannot (then the handler
        answers once the body is in)."""
        refuse = getattr(self.channel, "refuse", None)
        if refuse is None:
            return False
        self._stopWatch()
        self._continueHeld = False
        self.content = BoundedBody(0)
        self.requestHeaders.removeHeader(b"expect")  # no "100 Continue" after the answer
        refuse(error)
        return True

    def handleContentChunk(self, data):
        if self._bodyWatch is not None:
            self._bodyWatch.feed(len(data))
        server.Request.handleContentChunk(self, data)

    def _stopWatch(self):
        if self._bodyWatch is not None:
            self._bodyWatch.stop()
            self._bodyWatch = None

    def _bodyTooSlow(self, received):
        self._bodyWatch = None
        channel = self.channel
        if channel is None or channel.transport is None:
            return
        site = channel.site
        self.log.info(
            "request body from {peer} too slow ({received} bytes in {window} s, min_body_rate {rate} bytes/s): "
            "closing",
            peer=str(channel.transport.getPeer()), received=received, window=site.bodyRateWindow,
            rate=site.minBodyRate,
        )
        # The body's close() (from connectionLost) releases an upload it was
        # feeding; what arrived stays, so the client can resume.
        channel.transport.abortConnection()

    def requestReceived(self, command, path, version):
        self._stopWatch()
        server.Request.requestReceived(self, command, path, version)

    def connectionLost(self, reason):
        self._stopWatch()
        server.Request.connectionLost(self, reason)


class RegistryChannel(http.HTTPChannel):
    """HTTP/1.1 that answers a TLS handshake on a plain port at once, refuses
    ambiguous framing and requests without a valid Host (L{hostProblem}),
    and bounds slow clients.

    Clients told a registry is "insecure" (docker, podman, skopeo) try HTTPS
    first; a ClientHello rarely holds a CRLF, so the line-based parser would
    wait for one until the client's handshake timeout (10 s per command).

    Besides the idle timeout (silence), three limits (0 turns one off):
    C{headerTimeout}, seconds from the first byte of a request head to its
    end; C{sendTimeout}, seconds the transport's send buffer may stay full
    (the client reads nothing); and the minimum body rate (see
    L{IngestRequest} and L{BodyRateWatch})."""

    log = Logger()
    _sniffed = False
    _refused = False
    headerTimeout = 0
    sendTimeout = 0
    # Seconds a refused connection is still read (and the bytes dropped)
    # after the answer, so that a client still sending sees the answer, not
    # a reset (RFC 9112 9.6).
    LINGER = 5
    _headCall = None
    _stallCall = None
    _lingerCall = None

    def dataReceived(self, data):
        if self._refused:
            return
        if not self._sniffed and data:
            self._sniffed = True
            if data[0] in _TLS_FIRST_BYTES:
                self.transport.write(_HTTPS_TO_HTTP)
                self.transport.loseConnection()
                return
        if data and self.line_mode:
            self._startHead()  # the first byte of a request head
        http.HTTPChannel.dataReceived(self, data)

    def lineReceived(self, line):
        if self._refused:
            return
        # (A pipelined head is replayed from the buffer without dataReceived.)
        self._startHead()
        http.HTTPChannel.lineReceived(self, line)

    def rawDataReceived(self, data):
        if self._refused:
            return
        http.HTTPChannel.rawDataReceived(self, data)

    def headerReceived(self, line):
        name, _, value = line.partition(b":")
        if name.lower() == b"transfer-encoding":
            # RFC 9112 6.1, 6.3: one coding we know, once, or the framing is
            # ambiguous (whatever follows could be taken for a request).
            if self.requests[-1].requestHeaders.hasHeader(b"transfer-encoding") or (
                value.strip(b" \t").lower() != b"chunked"
            ):
                self.refuse(HTTPError(
                    "UNSUPPORTED", "ambiguous message framing: only one Transfer-Encoding, chunked, is accepted",
                    status=400,
                ))
                return False
            if (TwistedPrivate.version(self) or b"HTTP/1.1") != b"HTTP/1.1":
                # RFC 9112 6.1: in an HTTP/1.0 message the framing is faulty.
                self.refuse(HTTPError(
                    "UNSUPPORTED", "ambiguous message framing: Transfer-Encoding in an HTTP/1.0 request", status=400,
                ))
                return False
        return http.HTTPChannel.headerReceived(self, line)

    def allHeadersReceived(self):
        self._stopHead()
        # Before anything routes the request or its body.
        error = hostProblem(self.requests[-1].requestHeaders.getRawHeaders(b"host"), TwistedPrivate.version(self))
        if error is not None:
            self.refuse(error)
            return
        http.HTTPChannel.allHeadersReceived(self)

    def allContentReceived(self):
        if self._refused:
            return  # (refused at its headers: no body follows, nothing is served)
        http.HTTPChannel.allContentReceived(self)

    def lineLengthExceeded(self, line):
        # One header line longer than all headers may be: say so, then close
        # (Twisted's line parser would just drop the connection).
        self.refuse(HTTPError(
            "UNSUPPORTED", "a request line or header line is longer than %d bytes" % (self.MAX_LENGTH,), status=431))

    def refuse(self, error):
        """Answer C{error} (any exception: L{errorAnswer}) before the request's body,
        and end the connection: nothing more the client sends is parsed.
        On plain TCP the connection is half-closed and read (the bytes
        dropped) for up to L{LINGER} seconds, so the client sees the answer."""
        if self._refused:
            return
        self._refused = True
        self._stopHead()
        transport = self.transport
        response = rawErrorResponse(error)
        transport.write(response)
        self._logRefusal(error, len(response) - response.index(b"\r\n\r\n") - 4)
        if ITCPTransport.providedBy(transport) and not ISSLTransport.providedBy(transport):
            transport.loseWriteConnection()
            self._lingerCall = self.callLater(self.LINGER, self._lingerOver)
        else:
            self.loseConnection()

    def _logRefusal(self, error, sent):
        """The access line of a request refused here (no handler logs it),
        and its count in the metrics."""
        site = getattr(self, "site", None)
        request = self.requests[-1] if self.requests else None
        metrics = getattr(site, "metrics", None)
        method, uri = TwistedPrivate.requestLine(self)
        status = statusOf(error)
        if metrics is not None:
            metrics.request(
                routes.labelOf(uri.split(b"?", 1)[0]) if uri is not None else "other",
                method.decode("ascii", "replace") if method is not None else "other", status, None, 0, sent,
            )
        if not getattr(site, "_accessLog", False):
            return
        peer = self.transport.getPeer()
        logRefusal(
            site.logStamp(),
            getattr(peer, "host", None),
            (method, uri, TwistedPrivate.version(self)),
            request.requestHeaders if request is not None else None,
            status,
            sent,
        )

    def _lingerOver(self):
        self._lingerCall = None
        self.transport.abortConnection()

    # --- the request head deadline ---

    def _startHead(self):
        if self.headerTimeout and self._headCall is None:
            self._headCall = self.callLater(self.headerTimeout, self._headTimedOut)

    def _stopHead(self):
        if self._headCall is not None:
            self._headCall.cancel()
            self._headCall = None

    def _headTimedOut(self):
        self._headCall = None
        self.log.info(
            "request head from {peer} not complete after {seconds} s: closing",
            peer=str(self.transport.getPeer()), seconds=self.headerTimeout,
        )
        self.timeoutConnection()

    def writeHeaders(self, version, code, reason, headers):
        # Every response's head passes here: Twisted's Request set Server
        # to its own name and version; the site's value instead, or none.
        value = getattr(self.site, "serverHeader", None)
        if not hasattr(headers, "setRawHeaders"):
            pass  # (pairs: Twisted itself always passes Headers)
        elif value:
            headers.setRawHeaders(b"server", [value])
        else:
            headers.removeHeader(b"server")
        http.HTTPChannel.writeHeaders(self, version, code, reason, headers)

    # --- a client that does not read: the transport's buffer stays full ---

    def pauseProducing(self):
        if self.sendTimeout and self._stallCall is None:
            self._stallCall = self.callLater(self.sendTimeout, self._sendStalled)
        http.HTTPChannel.pauseProducing(self)

    def resumeProducing(self):
        self._stopStall()
        http.HTTPChannel.resumeProducing(self)

    def _stopStall(self):
        if self._stallCall is not None:
            self._stallCall.cancel()
            self._stallCall = None

    def _sendStalled(self):
        self._stallCall = None
        self.log.info(
            "client {peer} read nothing for {seconds} s: aborting the connection",
            peer=str(self.transport.getPeer()), seconds=self.sendTimeout,
        )
        # connectionLost stops the response's producer.
        self.transport.abortConnection()

    connectionLimit = None

    def connectionLost(self, reason):
        if self.connectionLimit is not None:
            self.connectionLimit.closed()
            self.connectionLimit = None
            self.site.openChannels.closed(self)
        self._stopHead()
        self._stopStall()
        if self._lingerCall is not None:
            self._lingerCall.cancel()
            self._lingerCall = None
        http.HTTPChannel.connectionLost(self, reason)


class RegistrySite(server.Site):
    """A L{Site} whose requests stream their bodies where L{chooseBody}
    says, behind a L{URLGuard}, with the slow-client limits of
    L{RegistryChannel}."""

    requestFactory = IngestRequest
    protocol = RegistryChannel

    def __init__(self, resource, chooseBody, accessLog=True, limits=HTTPLimits(), serverHeader=b"txregistry",
                 **kwargs):
        """C{limits}: the L{HTTPLimits} of connections, heads and slow
        clients (all but C{maxBodyMemory}, which the body chooser keeps)."""
        kwargs.setdefault("parsePOSTFormSubmission", False)
        server.Site.__init__(self, URLGuard(resource), timeout=limits.idleTimeout, **kwargs)
        self._chooseBody = chooseBody
        self._accessLog = accessLog
        self._maxHeaders = limits.maxHeaders
        self._maxHeaderBytes = limits.maxHeaderBytes
        self.headerTimeout = limits.headerTimeout
        self.minBodyRate = limits.minBodyRate
        self.bodyRateWindow = limits.bodyRateWindow
        self.sendTimeout = limits.sendTimeout
        self.connectionLimit = ConnectionLimit(limits.maxConnections, self.reactor)
        self.openChannels = OpenChannels()  # for a graceful stop
        self.serverHeader = serverHeader  # the Server header; None or b"": none

    def buildProtocol(self, addr):
        if not self.connectionLimit.admit():
            return Overloaded(self.connectionLimit)
        channel = server.Site.buildProtocol(self, addr)
        channel.connectionLimit = self.connectionLimit
        channel.maxHeaders = self._maxHeaders
        channel.totalHeadersSize = self._maxHeaderBytes
        channel.MAX_LENGTH = self._maxHeaderBytes
        channel.headerTimeout = self.headerTimeout
        channel.sendTimeout = self.sendTimeout
        self.openChannels.opened(channel)
        return channel

    metrics = None  # a txregistry.metrics.Metrics, told of every request answered

    def log(self, request):
        # One structured event per request (see txregistry.web.accesslog),
        # instead of a line written to the legacy log file.
        if self._accessLog or self.metrics is not None:
            clock = getattr(self, "reactor", None)
            now = clock.seconds() if clock is not None else None
        if self._accessLog:
            logAccess(self.logStamp(now), request, now)
        if self.metrics is not None:
            started = getattr(request, "txrStarted", None)
            tell = getattr(request.content, "tell", None)
            self.metrics.request(
                routes.label(request), request.method.decode("ascii", "replace"), request.code,
                None if started is None or now is None else max(0.0, now - started),
                tell() if tell is not None else 0, request.sentLength,
            )

    def logStamp(self, now=None):
        """The date for an access line: twisted's, remade once a second
        while the site is started, else made now."""
        return TwistedPrivate.logDate(self) or http.datetimeToLogString(now)

    def chooseBody(self, request, method, uri, length):
        return self._chooseBody(request, method, uri, length)
