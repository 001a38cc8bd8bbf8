"""The master's side of one worker process: starts it, relays what it
says, asks it questions, and hears it end."""

import itertools
import json
import signal
import sys

from twisted.internet.defer import Deferred
from twisted.internet.error import ProcessExitedAlready
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger

from txregistry.workers.sockets import FIRST_FD

ASK_TIMEOUT = 5.0  # seconds a worker has to answer a scrape or a readiness check


class WorkerProcess(ProcessProtocol):
    log = Logger(namespace="txregistry.workers")

    def __init__(self, master, index, spec):
        self.master = master
        self.index = index
        self.spec = spec
        self.pid = None
        self.readyAt = None
        self.started = None
        self.ended = Deferred()  # fires with (exit code, signal) once it ended
        self.serving = Deferred()  # fires with True once it serves, False if it ends first
        self.stopping = False  # the master asked it to stop
        self._out = b""
        self._err = b""
        self._asked = {}
        self._numbers = itertools.count(1)

    def spawn(self, reactor, descriptors, environ, fork=True):
        """Start the worker: forked from this process (see
        L{txregistry.workers.fork}), or exec'd anew."""
        childFDs = {0: "w", 1: "r", 2: "r"}
        for i, fd in enumerate(descriptors):
            childFDs[FIRST_FD + i] = fd
        self.started = reactor.seconds()
        self._reactor = reactor
        if fork:
            from txregistry.workers import worker
            from txregistry.workers.fork import ForkedWorker

            ForkedWorker(reactor, self, childFDs, environ, lambda: worker.main(["--forked"]))
        else:
            reactor.spawnProcess(self, sys.executable, [sys.executable, "-m", "txregistry.workers.worker"],
                                 env=environ, childFDs=childFDs)
        return self

    @property
    def ready(self):
        return self.readyAt is not None and not self.ended.called

    def connectionMade(self):
        self.pid = self.transport.pid
        self.send(self.spec)

    def send(self, message):
        if self.transport is not None and not self.ended.called:
            self.transport.writeToChild(0, (json.dumps(message, separators=(",", ":")) + "\n").encode("utf-8"))

    def signal(self, name):
        """Send the signal C{name} ("TERM", "USR1"...) unless it ended."""
        if not self.ended.called:
            try:
                self.transport.signalProcess(getattr(signal, "SIG" + name))
            except ProcessExitedAlready:
                pass

    def childDataReceived(self, fd, data):
        if fd == 1:
            lines = (self._out + data).split(b"\n")
            self._out = lines.pop()
            for line in lines:
                if line.strip():
                    self._heard(json.loads(line))
        elif fd == 2:
            lines = (self._err + data).split(b"\n")
            self._err = lines.pop()
            for line in lines:
                self._stderr(line)

    def _stderr(self, line):
        text = line.decode("utf-8", "replace").rstrip()
        if text:
            self.log.error("worker {worker} (pid {pid}): {line}", worker=self.index, pid=self.pid, line=text,
                           log_system="worker-%d" % (self.index,))

    def _heard(self, message):
        if "reply" in message:
            d = self._asked.pop(message["reply"], None)
            if d is not None:
                d.callback(message)
        elif "line" in message:
            self.master.logLines.writeText(message["line"], message["access"])
        elif "log" in message:
            self.master.relayLog(self, message["log"])
        elif "ready" in message:
            self.readyAt = self._reactor.seconds()
            if not self.serving.called:
                self.serving.callback(True)
        elif "failed" in message:
            self.master.failedLogin(self, message["failed"], message["at"])
        elif "ask" in message:
            self.master.asked(self, message["ask"], message["n"])

    def ask(self, key):
        """Ask C{key} (C{"scrape"}, C{"ready?"}); a Deferred of the reply
        (a dict), failing after L{ASK_TIMEOUT} or if the worker ends."""
        number = next(self._numbers)
        d = self._asked[number] = Deferred()
        d.addTimeout(ASK_TIMEOUT, self._reactor, onTimeoutCancel=lambda result, timeout: self._forget(number, result))
        self.send({key: number})
        return d

    def _forget(self, number, result):
        self._asked.pop(number, None)
        return result

    def processEnded(self, reason):
        if self._err:
            self._stderr(self._err)
        code = getattr(reason.value, "exitCode", None)
        sig = getattr(reason.value, "signal", None)
        asked, self._asked = self._asked, {}
        for d in asked.values():
            d.errback(RuntimeError("worker %d ended" % (self.index,)))
        if not self.serving.called:
            self.serving.callback(False)
        self.ended.callback((code, sig))
        self.master.workerEnded(self, code, sig)
