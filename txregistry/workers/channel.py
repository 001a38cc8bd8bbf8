"""What a worker and its master say to each other: lines of JSON.

Worker to master (its standard output, L{Messages}): C{{"log": EVENT}}
(a log event as Twisted's own JSON form), C{{"ready": PID}},
C{{"failed": CLIENT, "at": TIME}} (a failed login here), C{{"reply": N,
...}} (an answer to request N), C{{"ask": "scrape", "n": N}} (all workers'
metrics, added up, for the main port's C{/metrics}).  Master to worker (its
standard input, L{Control}): C{{"failed": CLIENT, "at": TIME}} (one
elsewhere), C{{"scrape": N}} (the metrics, as text), C{{"ready?": N}} (the
readiness checks), C{{"answer": N, "text": TEXT}} (to ask N; C{"error"}
instead when it failed)."""

import itertools
import json
import os
import threading

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol

ASK_TIMEOUT = 10.0  # seconds the master has to answer (it asks every worker in turn)


class Messages:
    """Writes whole lines to a descriptor, from any thread, one at a time
    (the pipe to the master is read promptly, so a write rarely waits).

    A signal handler may send too (Twisted's logs "Received SIGTERM" from
    inside it): it runs on the main thread between any two steps of a send
    under way there, so its line is queued and written by that send once
    its own line is whole, never in the middle of it and never waiting for
    a lock its own thread holds (that wait was a worker frozen for good)."""

    def __init__(self, fd):
        self._fd = fd
        self._lock = threading.RLock()  # (re-entered only by a signal handler)
        self._queue = []
        self._writing = False

    def send(self, message):
        data = (json.dumps(message, separators=(",", ":"), default=str) + "\n").encode("utf-8")
        with self._lock:
            self._queue.append(data)
            if self._writing:
                return  # re-entered: the send under way writes it next
            while self._queue:
                self._writing = True
                try:
                    self._write(self._queue.pop(0))
                finally:
                    self._writing = False

    def _write(self, data):
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._fd, view):]
            except BrokenPipeError:
                self._queue.clear()
                return  # the master is gone; this worker stops soon


def startLogging(messages, loglevel, forked=False, lines=None, index=0):
    """Send every log event at C{loglevel} or above (and the start-up line)
    to the master, which writes it where and as its log is configured,
    saying which worker it came from.  With C{lines} (the log's format,
    when the master writes to a file), events are sent as the lines to
    write, formatted here: the master only writes them.  Events with a
    failure are sent whole (Twisted's JSON form of an event) either way:
    the master's error mails read them."""
    from twisted.logger import eventAsJSON, globalLogBeginner

    from txregistry.logs import ACCESS_NAMESPACE, filtered, formatter

    format = formatter(lines) if lines else None
    system = "worker-%d" % (index,)

    def forward(event):
        if format is None or event.get("log_failure") is not None or event.get("isError"):
            messages.send({"log": eventAsJSON(event)})
        else:
            messages.send({"line": format(dict(event, log_system=system, worker=index)),
                           "access": event.get("log_namespace") == ACCESS_NAMESPACE})

    if forked:  # (the master's log began already; its observers were dropped)
        from twisted.logger import globalLogPublisher

        globalLogPublisher.addObserver(filtered(forward, loglevel))
    else:
        globalLogBeginner.beginLoggingTo([filtered(forward, loglevel)], redirectStandardIO=False)


class Control(Protocol):
    """The master's requests, read from the worker's standard input."""

    def __init__(self, service, messages):
        self.service = service
        self.messages = messages
        self._buffer = b""
        self._asked = {}
        self._numbers = itertools.count(1)
        authorizer = service.authorizer
        if authorizer is not None:
            authorizer.throttle.listeners.append(self._failedHere)

    def attach(self, reactor, fd):
        from twisted.internet import stdio

        self._reactor = reactor
        self._null = os.open(os.devnull, os.O_WRONLY)  # (stdio's writer; nothing is written there)
        stdio.StandardIO(self, stdin=fd, stdout=self._null, reactor=reactor)

    def _failedHere(self, client, now):
        self.messages.send({"failed": client, "at": now})

    def dataReceived(self, data):
        lines = (self._buffer + data).split(b"\n")
        self._buffer = lines.pop()
        for line in lines:
            if line.strip():
                self.heard(json.loads(line))

    def askMaster(self, key):
        """A Deferred of the master's answer to C{key} (C{"scrape"}: the
        text of all workers' metrics), failing after L{ASK_TIMEOUT}."""
        number = next(self._numbers)
        d = self._asked[number] = Deferred()
        d.addTimeout(ASK_TIMEOUT, self._reactor, onTimeoutCancel=lambda result, timeout: self._forget(number, result))
        self.messages.send({"ask": key, "n": number})
        return d

    def _forget(self, number, result):
        self._asked.pop(number, None)
        return result

    def heard(self, message):
        if "answer" in message:
            d = self._asked.pop(message["answer"], None)
            if d is not None:
                if "error" in message:
                    d.errback(RuntimeError(message["error"]))
                else:
                    d.callback(message["text"])
        elif "failed" in message:
            authorizer = self.service.authorizer
            if authorizer is not None:
                authorizer.throttle.failed(message["failed"], message["at"], elsewhere=True)
        elif "scrape" in message:
            text = self.service.metrics.render().decode("utf-8")
            self.messages.send({"reply": message["scrape"], "text": text})
        elif "ready?" in message:
            self.service.health.readiness().addCallback(
                lambda result: self.messages.send({"reply": message["ready?"], "ready": result[0], "doc": result[1]}))

    def connectionLost(self, reason):
        # The master is gone (killed with -9): do not serve on alone.
        if self._reactor.running:
            self._reactor.stop()


class AllWorkersMetrics:
    """The main port's C{/metrics} in a worker: every worker's, added up by
    the master (L{Control.askMaster}), as its debug listener shows them;
    a render is a Deferred of the text, as bytes."""

    def __init__(self, control):
        self.control = control

    def render(self):
        return self.control.askMaster("scrape").addCallback(lambda text: text.encode("utf-8"))
