"""The master process of a daemon with several workers.

It binds the listening socket(s) (L{txregistry.workers.sockets}) and the
debug listener, then starts N workers (L{txregistry.workers.children}) and
supervises them:

- a worker that ends unasked is started again, after a pause that doubles
  with each quick failure (up to L{MAX_BACKOFF} seconds);
- C{SIGTERM} (twistd's stop) asks every worker to stop: each stops
  accepting, lets the requests under way finish (at most the role's drain
  seconds) and exits; one still there later is killed;
- C{SIGHUP} replaces the workers one at a time: the new one reads the
  configuration again (htpasswd and policy included) and the old one
  stops only once the new one serves, on the same socket, so no
  connection is refused; a new one that cannot start leaves the old ones;
- C{SIGUSR1}/C{SIGUSR2} (read-only on/off) reach every worker, and the
  workers started later;
- the workers' log events are written to the master's log (text, JSON,
  file, syslog: as configured) with the worker's number in the line;
  error mails, the search index's lag marker, the token signing key and
  the pages' session secret are the master's, shared by all workers.

Shared state otherwise lives where one process would keep it: in storage
(uploads, by the appender's own checks of the size on disk), in the search
database (SQLite in WAL mode, or PostgreSQL), and failed logins, which the
master relays to every worker."""

import os
import signal

from twisted.application import service
from twisted.internet.defer import Deferred, DeferredList, TimeoutError, gatherResults, succeed
from twisted.internet.threads import deferToThread
from twisted.logger import Logger, eventFromJSON, globalLogPublisher

from txregistry.listen import describePort
from txregistry.logs import STARTUP_NAMESPACE
from txregistry.workers.children import WorkerProcess
from txregistry.workers.sockets import descriptors

MAX_BACKOFF = 30.0
STEADY = 30.0  # seconds up after which a worker's end is not a "quick failure"
READY_TIMEOUT = 60.0  # seconds a new worker has to start serving on SIGHUP
KILL_GRACE = 10.0  # seconds after the drain bound before a stopping worker is killed

startupLog = Logger(namespace=STARTUP_NAMESPACE)


class Master(service.Service):
    log = Logger(namespace="txregistry.workers")
    logObserver = None  # as RegistryService's (set by makeService)
    logLines = None  # where the workers' formatted lines go (a txregistry.logs.BatchingFileLogObserver), if any

    def __init__(self, settings, load, description, count, reason, reactor, secrets, environ,
                 drainSeconds=30.0):
        self.settings = settings
        self._load = load  # config.load's arguments, for the workers
        self.description = description
        self.count = count
        self.reason = reason
        self.reactor = self._reactor = reactor
        self.environ = dict(environ)
        self.port = None  # (listen)
        self.families = ()
        self._secrets = secrets
        self.drainSeconds = drainSeconds
        self.readonly = settings.readonly
        self.workers = [None] * count
        self._failures = [0] * count
        self.stopping = False
        self._reloading = None
        self.indexMarker = None
        self._repair = False
        self.mailer = None
        self.debugPort = None
        self.debugEndpoint = None
        self.indexBehind = False  # a worker ended with updates unwritten
        self.fork = False  # workers forked from this process (else exec'd): see makeMaster

    # -- set up, before the reactor runs --------------------------------

    def armIndexMarker(self):
        """Make the search index's lag marker (a local file): the workers'
        updates may lag from now on; whether the last run left some."""
        if self.settings.searchBackend != "sqlalchemy":
            return
        from txregistry.search.marker import LagMarker, markerPath

        self.indexMarker = LagMarker(markerPath(self.settings))
        self._repair = self.indexMarker.arm()

    def listen(self):
        """Bind the port(s) the workers share, and the debug listener;
        L{txregistry.listen.CannotListen} (one line) if that fails."""
        from txregistry.workers.start import listenMaster

        listenMaster(self)

    def privilegedStartService(self):
        self.listen()
        service.Service.privilegedStartService(self)

    def setServiceParent(self, parent):
        from txregistry.logs import installObserver

        installObserver(parent, self.logObserver)
        service.Service.setServiceParent(self, parent)

    # -- the workers ------------------------------------------------------

    def spec(self, index, repair):
        return {
            "load": self._load,
            "port": self.description,
            "readonly": self.readonly,
            "secrets": self._secrets,
            "lines": self.settings.logFormat if self.logLines is not None else None,
            "role": {"index": index, "families": list(self.families), "schedules": index == 0,
                     "repairIndex": repair, "drainSeconds": self.drainSeconds},
        }

    def _spawn(self, index, repair=False):
        worker = WorkerProcess(self, index, self.spec(index, repair))
        return worker.spawn(self._reactor, descriptors(self.port), self.environ, self.fork)

    def startService(self):
        service.Service.startService(self)
        for sig, handler in ((signal.SIGHUP, self.reload), (signal.SIGUSR1, lambda: self.setReadonly(True)),
                             (signal.SIGUSR2, lambda: self.setReadonly(False))):
            signal.signal(sig, lambda signum, frame, handler=handler: self._reactor.callFromThread(handler))
        for i in range(self.count):
            # One repair of the index is enough: the first worker's.
            self.workers[i] = self._spawn(i, repair=self._repair and i == 0)
        if self.mailer is not None:
            self.mailer.start(globalLogPublisher)
        startupLog.info(
            "txregistry master (pid {pid}) listening on {address}: {count} worker process(es) ({reason})",
            pid=os.getpid(), address=describePort(self.port), count=self.count, reason=self.reason)
        if self.debugPort is not None:
            self.log.info("metrics and health on {address} (/metrics, /health, /ready), for all workers",
                          address=describePort(self.debugPort))

    def relayLog(self, worker, data):
        try:
            event = eventFromJSON(data)
        except Exception:
            return
        event["log_system"] = "worker-%d" % (worker.index,)
        event["worker"] = worker.index
        globalLogPublisher(event)

    def asked(self, worker, key, number):
        """Answer a worker's question C{key} (C{"scrape"}: every worker's
        metrics, added up, as the debug listener shows them)."""
        if key != "scrape":
            worker.send({"answer": number, "error": "no such question: %s" % (key,)})
            return
        from txregistry.workers.debug import WorkersMetrics

        WorkersMetrics(self).render().addCallbacks(
            lambda text: worker.send({"answer": number, "text": text.decode("utf-8")}),
            lambda failure: worker.send({"answer": number, "error": str(failure.value)}))

    def failedLogin(self, source, client, at):
        for worker in self.workers:
            if worker is not None and worker is not source:
                worker.send({"failed": client, "at": at})

    def workerEnded(self, worker, code, sig):
        if self.workers[worker.index] is not worker:
            return  # replaced (SIGHUP): it was asked to stop
        if code not in (0, None) or sig is not None:
            self.indexBehind = True
        if self.stopping or worker.stopping:
            return
        how = "killed by signal %s" % (sig,) if sig is not None else "exited with status %s" % (code,)
        up = self._reactor.seconds() - worker.started
        if up >= STEADY:
            self._failures[worker.index] = 0
        self._failures[worker.index] += 1
        delay = min(MAX_BACKOFF, 0.25 * 2 ** (self._failures[worker.index] - 1))
        self.log.warn("worker {worker} (pid {pid}) {how} after {up:.1f} s: starting another in {delay:.2f} s",
                      worker=worker.index, pid=worker.pid, how=how, up=up, delay=delay)
        # A worker that died may have left index updates unwritten: its
        # successor repairs the index from storage.
        repair = sig is not None or code != 0
        self._reactor.callLater(delay, self._restart, worker.index, worker, repair)

    def _restart(self, index, old, repair):
        if not self.stopping and self.workers[index] is old:
            self.workers[index] = self._spawn(index, repair=repair)

    # -- signals ----------------------------------------------------------

    def setReadonly(self, readonly):
        self.readonly = readonly
        for worker in self.workers:
            if worker is not None:
                worker.signal("USR1" if readonly else "USR2")
        self.log.warn("read-only mode {state} in every worker", state="on" if readonly else "off")

    def reload(self):
        """Replace the workers one by one (SIGHUP)."""
        if self._reloading is not None or self.stopping:
            self.log.info("SIGHUP: a reload is under way already")
            return self._reloading
        self.log.info("SIGHUP: replacing {count} worker(s) one at a time", count=self.count)
        self._reloading = Deferred.fromCoroutine(self._reload())
        self._reloading.addErrback(lambda f: self.log.failure("reload failed", f))
        self._reloading.addBoth(lambda _: setattr(self, "_reloading", None))
        return self._reloading

    async def _reload(self):
        for index in range(self.count):
            if self.stopping:
                return
            old = self.workers[index]
            new = self._spawn(index)
            ready = await self._whenReady(new)
            if not ready:
                self.log.error("reload: the new worker {worker} did not start: keeping the workers there are",
                               worker=index)
                if not new.ended.called:
                    new.stopping = True
                    new.signal("KILL")
                return
            self.workers[index] = new
            if old is not None:
                old.stopping = True
                old.signal("TERM")
                self._killLater(old)
        self.log.info("reload done: {count} new worker(s)", count=self.count)

    async def _whenReady(self, worker):
        try:
            return await worker.serving.addTimeout(READY_TIMEOUT, self._reactor)
        except TimeoutError:
            return False

    def _killLater(self, worker):
        timer = self._reactor.callLater(self.drainSeconds + KILL_GRACE, worker.signal, "KILL")
        worker.ended.addCallback(lambda _: timer.active() and timer.cancel())

    # -- stop -------------------------------------------------------------

    def stopService(self):
        service.Service.stopService(self)
        self.stopping = True
        if self.mailer is not None:
            self.mailer.stop()
        live = [w for w in self.workers if w is not None and not w.ended.called]
        for worker in live:
            worker.stopping = True
            worker.signal("TERM")
            self._killLater(worker)
        d = DeferredList([w.ended for w in live])
        d.addCallback(lambda results: self._ended([r for ok, r in results]))
        return d

    def _ended(self, outcomes):
        if any(code not in (0, None) or sig is not None for code, sig in outcomes):
            self.indexBehind = True
        stops = [self.port.stopListening()]
        if self.debugPort is not None:
            stops.append(self.debugPort.stopListening())
        d = gatherResults([s if s is not None else succeed(None) for s in stops])
        if self.indexMarker is not None:
            if self.indexBehind:
                self.log.warn("search index may be behind storage: repaired at next start")
            else:
                d.addCallback(lambda _: deferToThread(self.indexMarker.disarm))
        return d

