"""Distribution-style notifications: a durable queue per endpoint (see
L{journal}) fed by the registry's events, and a sender per endpoint that
delivers them, retrying with backoff.  Delivery never holds up a request:
the listener only hands the event to the queue's writer."""

import json
import os
import socket
import uuid

from twisted.internet.defer import Deferred, CancelledError
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger

from txregistry.notify.journal import Journal, JournalError
from txregistry.notify.sender import Delivery, Sender

MAX_WAITING = 10000  # events held in memory while the queue's disk is slow; beyond: dropped, counted


class Endpoint:
    log = Logger()

    def __init__(self, settings, journal, reactor, pool, metrics, notifier):
        self.settings = settings
        self.name = settings.name
        self.journal = journal
        self._reactor = reactor
        self._pool = pool
        self._metrics = metrics
        self._notifier = notifier
        self.sender = Sender(reactor, settings.url, settings.headers, settings.timeout)
        self._waiting = []  # lines not yet in the journal
        self._writing = None  # the Deferred of the append in progress
        self._wake = None  # the sender waiting for events
        self._loop = None
        self.running = False
        self.failures = 0  # in a row

    def _inPool(self, f, *args):
        return deferToThreadPool(self._reactor, self._pool, f, *args)

    # --- fed by the listener, on the reactor thread ---

    def offer(self, event, line):
        if not self.settings.wants(event):
            return
        if len(self._waiting) >= MAX_WAITING:
            self._metrics.notificationEvent(self.name, "dropped")
            self.log.warn("notifications to {endpoint}: queue writes behind, {action} event dropped",
                          endpoint=self.name, action=event.action)
            return
        self._waiting.append(line)
        if self._writing is None:
            self._writing = Deferred.fromCoroutine(self._write())

    async def _write(self):
        try:
            while self._waiting:
                lines, self._waiting = self._waiting, []
                try:
                    await self._inPool(self.journal.append, lines)
                except OSError as e:
                    for _ in lines:
                        self._metrics.notificationEvent(self.name, "dropped")
                    self.log.error("notifications to {endpoint}: cannot queue {count} event(s): {error}",
                                   endpoint=self.name, count=len(lines), error=e.strerror or str(e))
                    continue
                for _ in lines:
                    self._metrics.notificationEvent(self.name, "queued")
                self._kick()
        finally:
            self._writing = None

    def _kick(self):
        wake, self._wake = self._wake, None
        if wake is not None:
            wake.callback(None)

    # --- the sender ---

    def start(self):
        self.running = True
        self._loop = Deferred.fromCoroutine(self._run())
        self._loop.addErrback(lambda f: None if f.check(CancelledError) else
                              self.log.failure("notifications to {endpoint} stopped", f, endpoint=self.name))

    async def _run(self):
        s = self.settings
        while self.running:
            if self.journal.pending == 0:
                self._wake = Deferred()
                await self._wake
                continue
            lines, position = await self._inPool(self.journal.read, s.batch)
            if not lines:
                self.journal.pending = 0  # (nothing readable: the count was off)
                continue
            body = self._notifier.envelope(lines)
            try:
                await self.sender.send(body)
            except Delivery as e:
                self.failures += 1
                self._metrics.notificationFailure(self.name)
                if self.failures == 1 or self.failures == s.threshold:
                    self.log.warn("notifications to {endpoint} ({url}) failed: {error}; {count} event(s) queued",
                                  endpoint=self.name, url=s.url, error=str(e), count=self.journal.pending)
                if self.failures >= s.threshold:
                    await deferLater(self._reactor, self._backoff(), lambda: None)
                continue
            await self._inPool(self.journal.ack, position, len(lines))
            if self.failures >= s.threshold:
                self.log.info("notifications to {endpoint} delivered again", endpoint=self.name)
            self.failures = 0
            for _ in lines:
                self._metrics.notificationEvent(self.name, "sent")

    def _backoff(self):
        s = self.settings
        exponent = min(self.failures - s.threshold, 32)
        return min(s.backoff * (2 ** exponent), s.maxBackoff)

    async def stop(self):
        self.running = False
        if self._loop is not None:
            self._loop.cancel()
        if self._writing is not None:
            await self._writing  # what was announced is in the queue before the pool stops
        await self.sender.close()

    def close(self):
        self.journal.close()


class Notifier:
    """The endpoints of L{NotifySettings}; L{listen} is the registry's
    event listener."""

    log = Logger()

    def __init__(self, settings, reactor, pool, metrics):
        self.settings = settings
        self._reactor = reactor
        self.source = {"addr": socket.gethostname(), "instanceID": str(uuid.uuid4())}
        self.endpoints = [
            Endpoint(e, Journal(os.path.join(settings.stateDir, e.name)), reactor, pool, metrics, self)
            for e in settings.endpoints
        ]
        for e in self.endpoints:
            metrics.watchNotifications(e.name, lambda e=e: e.journal.pending + len(e._waiting))

    def open(self):
        """Open every queue (blocking: local files; before the reactor runs).
        L{JournalError} (one line) if one cannot be used."""
        opened = []
        try:
            for e in self.endpoints:
                e.journal.open()
                opened.append(e)
        except JournalError:
            for e in opened:
                e.journal.close()
            raise

    def setAddress(self, host, port):
        self.source["addr"] = "%s:%s" % (host, port)

    def listen(self, event):
        line = None
        for e in self.endpoints:
            if e.settings.wants(event):
                if line is None:
                    record = event.record(self.source, self.settings.includeReferences)
                    line = json.dumps(record, separators=(",", ":")).encode("utf-8") + b"\n"
                e.offer(event, line)

    def envelope(self, lines):
        return b'{"events":[' + b",".join(line.rstrip(b"\n") for line in lines) + b"]}"

    def start(self):
        for e in self.endpoints:
            e.start()
            if e.journal.pending:
                self.log.info("notifications to {endpoint}: {count} event(s) queued from before",
                              endpoint=e.name, count=e.journal.pending)

    async def stop(self):
        for e in self.endpoints:
            await e.stop()

    def close(self):
        """Release the queues (once their thread pool has stopped)."""
        for e in self.endpoints:
            e.close()
