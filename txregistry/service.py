"""The running registry: builds the object graph, owns the I/O thread pool
and the listening port."""

import os
import signal
import socket

from twisted.application import internet, service
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool
from twisted.web.server import Site

from txregistry import config
from txregistry.limits import asKeys
from txregistry.volatile import storageVolatility
from txregistry.listen import describePort, endpointFor, listenNow
from txregistry.registry import Registry, layout
from txregistry.storage import PathNotFound, StorageError
from txregistry.storage.filesystem import FilesystemDriver
from txregistry.logs import LEVELS, STARTUP_NAMESPACE
from txregistry.web.app import RegistryApp
from txregistry.ui import UISettings
from txregistry.ui.app import WebUI
from txregistry.metrics import Metrics
from txregistry.metrics.health import HealthChecks
from txregistry.metrics.resources import DebugRoot, WithHealth
from txregistry.metrics.storage import MeasuredDriver
from txregistry.web.bodies import BodyBudget
from txregistry.web.bodyrouter import BodyRouter
from txregistry.web.ingest import RegistrySite


startupLog = Logger(namespace=STARTUP_NAMESPACE)

CREDENTIALS_REFRESH_INTERVAL = 300
LOOKUP_THREADS = 2


def storageCredentials(settings):
    """The S3 credentials the settings name (static keys, else botocore's
    chain), or C{None} without S3.  Blocks (it may call the network): call
    it before the reactor runs or in a thread."""
    if settings.s3 is None:
        return None
    from txregistry.storage.s3.credentials import resolve

    return resolve(settings.s3.accessKey or None, settings.s3.secretKey or None)


def makeDriver(settings, reactor, threadpool, lookupPool=None, credentials=None):
    """The storage driver the settings ask for.  For S3 without
    C{credentials} (L{storageCredentials}) this resolves them (maybe through
    the network): then call it before the reactor runs."""
    if settings.s3 is None:
        return FilesystemDriver(settings.storagePath, reactor, threadpool, lookupPool)
    from txregistry.storage.s3 import S3Driver

    s3 = settings.s3
    return S3Driver(
        reactor,
        s3.bucket,
        region=s3.region,
        endpoint=s3.endpoint or None,
        accessKey=s3.accessKey or None,
        secretKey=s3.secretKey or None,
        rootDirectory=s3.rootDirectory,
        secure=s3.secure,
        encrypt=s3.encrypt,
        redirect=s3.redirect,
        credentials=credentials,
        threadpool=threadpool,  # (where large bodies are hashed)
        partMemory=settings.limits.storage.maxPartMemory,
    )


def checkStoragePath(path):
    """Create the storage root if needed; return an error line or C{None}."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        return "cannot create storage path %s: %s" % (path, e.strerror)
    if not os.access(path, os.W_OK | os.X_OK):
        return "storage path %s is not writable" % (path,)
    return None


def _withoutPassword(text, url):
    """C{text} with the password of the database URL C{url} (if any) replaced."""
    try:
        from sqlalchemy.engine import make_url

        password = make_url(url).password
    except Exception:
        return text
    return text.replace(password, "***") if password else text


def checkSearchDatabase(settings):
    """Make the embedded database's directory and check the database driver
    is installed; return an error line or C{None}."""
    if settings.searchBackend != "sqlalchemy":
        return None
    url = shown = settings.searchDatabase
    try:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        shown = parsed.render_as_string(hide_password=True)  # the line may end up in a log
        if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
            os.makedirs(os.path.dirname(os.path.abspath(parsed.database)), exist_ok=True)
        create_engine(url).dispose()
    except ImportError as e:
        return "sqlalchemy_index_database %s needs a database driver that is not installed (%s)" % (shown, e)
    except Exception as e:
        detail = str(e).splitlines()[0] if str(e) else repr(e)
        return "sqlalchemy_index_database %s: %s" % (shown, _withoutPassword(detail, url))
    return None


class RegistryService(service.MultiService):
    log = Logger()
    # The log observer for the application (see txregistry.logs), set by
    # makeService; None leaves twistd's own.
    logObserver = None

    def __init__(self, settings, port, reactor, ioThreads=16, worker=None):
        """C{worker}: a L{txregistry.workers.worker.Role} when this is one
        of several worker processes (it then adopts the master's sockets,
        and runs the schedules, the debug listener and error mails only
        where the role says), else C{None}: the whole daemon."""
        service.MultiService.__init__(self)
        self.worker = worker
        self.settings = settings
        # Raises ConfigError for a bad --port, before anything is made.
        self.endpoint = endpointFor(reactor, port)
        self.description = str(port).strip()
        self._reactor = reactor
        self.threadpool = ThreadPool(minthreads=1, maxthreads=ioThreads, name="txregistry-io")
        # Small reads of storage (links, manifests, stat) in a pool of
        # their own: spread over many threads they contend for the GIL
        # (manifest GETs: about 1800/s with 16 threads, 2150/s with 2, on
        # 2 cores); two, so that one slow read does not hold up the rest.
        self.lookupPool = ThreadPool(minthreads=1, maxthreads=LOOKUP_THREADS, name="txregistry-lookup")
        self.metrics = Metrics()
        self.rawDriver = makeDriver(settings, reactor, self.threadpool, self.lookupPool)
        if hasattr(self.rawDriver, "metrics"):
            self.rawDriver.metrics = self.metrics  # S3: requests and retries
        self.driver = MeasuredDriver(self.rawDriver, self.metrics)
        limits = settings.limits
        self.registry = Registry(self.driver, reactor, self.threadpool, limits.registry)
        self.mirror = None
        if settings.mirror is not None:
            from txregistry.mirror import Mirror

            self.mirror = Mirror(settings.mirror, self.registry, reactor, self.metrics, self.threadpool)
            self.mirror.install()  # (its stores in the registry's place: web does not know)
        self.updater = None
        if settings.searchBackend == "sqlalchemy":
            from txregistry.search.index import SearchIndex
            from txregistry.search.updater import IndexUpdater

            sqlite = settings.searchDatabase.startswith("sqlite")
            self.indexPool = ThreadPool(minthreads=1, maxthreads=1 if sqlite else 4, name="txregistry-index")
            self.index = SearchIndex(settings.searchDatabase, reactor, self.indexPool, readTimeout=limits.indexWait)
            from txregistry.search.marker import LagMarker, markerPath

            self.indexMarker = LagMarker(markerPath(settings))
            if worker is not None:
                lagged = worker.repairIndex  # (the master keeps the marker)
            else:
                try:
                    lagged = self.indexMarker.arm()  # before the reactor runs: a local file
                except OSError as e:
                    raise StorageError("cannot write %s: %s" % (self.indexMarker.path, e.strerror or e))
            self.updater = IndexUpdater(self.index, self.registry, reactor, lagged=lagged)
        self.notifier = None
        if settings.notifications is not None:
            self._notifications(settings.notifications, reactor)
        self.authorizer = None
        if settings.auth is not None:
            from txregistry.auth import Authorizer

            # bcrypt is CPU work: a pool of its own, as big as the machine
            # has cores to spare, so logins never wait behind storage I/O.
            self.authPool = ThreadPool(minthreads=0, maxthreads=2, name="txregistry-auth")
            self.authorizer = Authorizer(settings.auth, reactor, self.authPool)
        self.sharedFailures = None
        if self.authorizer is not None and settings.auth.loginFailures and self.updater is not None \
                and not self.index.sqlite:  # (nodes share a server database, not a file)
            from txregistry.auth.sharedfailures import nodeName, SharedFailures

            self.sharedFailures = SharedFailures(self.index, self.authorizer.throttle, nodeName(worker), reactor)
        self.app = RegistryApp(
            self.registry,
            search=self.updater,
            readonly=settings.readonly,
            authorizer=self.authorizer,
            publicURL=settings.publicURL,
        )
        if self.mirror is not None:
            self.app.pushRefusal = self.mirror.refusal
        ui = settings.ui or UISettings()
        if ui.enabled:
            self.app.ui = WebUI(self.app, ui)  # the web pages, on the main port
        self.bodies = BodyRouter(self.app, BodyBudget(limits.http.maxBodyMemory))
        metricsSettings = settings.metrics or config.MetricsSettings()
        self.health = self._healthChecks(metricsSettings.healthTimeout)
        self.root = WithHealth(self.app.resource(), self.health, self.metrics if metricsSettings.mainPort else None)
        self.site = RegistrySite(
            self.root,
            self.bodies.choose,
            # The level filter would drop the access events too; not making
            # them at all saves the work.
            accessLog=LEVELS[settings.loglevel] <= LEVELS["info"],
            limits=limits.http,
            serverHeader=settings.serverHeader.encode("ascii") or None,
            # Connection timers (idle, slow clients) on the service's reactor.
            reactor=reactor,
        )
        self.site.metrics = self.metrics
        self._watch()
        self.port = None
        self.debugDescription = metricsSettings.debugListen
        self.debugEndpoint = None
        if self.debugDescription and worker is None:  # (with workers, the master's)
            self.debugEndpoint = endpointFor(reactor, self.debugDescription)
            self.debugSite = Site(DebugRoot(self.health, self.metrics), reactor=reactor)
            self.debugSite.noisy = False
            self.debugSite.log = lambda request: None  # scrapes stay out of the access log
        self.debugPort = None
        self.mailer = None
        if settings.mail is not None and worker is None:  # (with workers, the master's)
            from txregistry.mail import ErrorMailer

            self.mailer = ErrorMailer(settings.mail, reactor)
        from txregistry.config import UploadPurging

        self.uploadPurging = settings.uploadPurging or UploadPurging()
        schedules = worker is None or worker.schedules
        if self.uploadPurging.enabled and schedules:
            purger = internet.TimerService(self.uploadPurging.interval, self.purgeUploads)
            purger.clock = reactor
            purger.setServiceParent(self)
        self.collection = None
        if settings.gc is not None and settings.gc.scheduled and schedules:
            from txregistry.maintenance.schedule import ScheduledCollection

            self.collection = ScheduledCollection(self.driver, settings.gc, limits.registry.maxManifestSize,
                                                  self.metrics, paused=lambda: self.app.readonly,
                                                  events=self.registry.events)
            collector = internet.TimerService(settings.gc.interval, self.collection)
            collector.clock = reactor
            collector.setServiceParent(self)
        if settings.s3 is not None:
            refresher = internet.TimerService(
                CREDENTIALS_REFRESH_INTERVAL, lambda: self.driver.refreshCredentials(self.threadpool)
            )
            refresher.clock = reactor
            refresher.setServiceParent(self)

    def _notifications(self, settings, reactor):
        from txregistry.notify import JournalError, Notifier

        # Queue writes (an fsync each) and reads, one at a time.
        self.notifyPool = ThreadPool(minthreads=1, maxthreads=1, name="txregistry-notify")
        self.notifier = Notifier(settings, reactor, self.notifyPool, self.metrics)
        try:
            self.notifier.open()  # before the reactor runs: local files
        except JournalError as e:
            raise StorageError(str(e))
        self.registry.events.add(self.notifier.listen)

    def _healthChecks(self, timeout):
        checks = HealthChecks(self._reactor)
        # The storage answers: a stat of the registry's root (on S3 a HEAD;
        # "not found" is an answer too).
        checks.add("storage", lambda: self.driver.stat(layout.ROOT).addErrback(lambda f: f.trap(PathNotFound)),
                   timeout)
        if self.updater is not None:
            # The database answers; its count is the size metric too.
            checks.add("search_index", lambda: self.index.count().addCallback(self.metrics.indexRepositories.set),
                       timeout)
        return checks

    def _watch(self):
        """Gauges read at each scrape."""
        m = self.metrics
        m.watch(m.uploads, lambda: self.registry.uploads.active)
        m.watch(m.connections, lambda: self.site.connectionLimit.open)
        m.watch(m.bodyMemory, lambda: self.bodies.budget.held)
        if self.authorizer is not None:
            self.authorizer.metrics = m
        if self.updater is not None:
            m.watch(m.indexLag, lambda: self.updater.lag)

    def setServiceParent(self, parent):
        from txregistry.logs import installObserver

        installObserver(parent, self.logObserver)  # (see txregistry.logs for why this is the hook)
        service.MultiService.setServiceParent(self, parent)

    def purgeUploads(self):
        """Remove uploads abandoned for upload_purging.age (a week by
        default, as Distribution does); with dryrun, only log them."""
        purging = self.uploadPurging
        d = Deferred.fromCoroutine(self.registry.uploads.purge(purging.age, dryRun=purging.dryrun))

        def report(count):
            if count:
                self.log.info("{verb} {count} abandoned upload(s)", count=count,
                              verb="would purge" if purging.dryrun else "purged")

        d.addCallbacks(report, lambda f: self.log.failure("purging uploads failed", f))
        return d

    def listen(self):
        """Listen now if not yet; L{txregistry.listen.CannotListen} (one
        line) if that fails.  makeService calls it, so that twistd has not
        forked yet and a failure ends the command with that line on stderr;
        else privilegedStartService does (before twistd drops privileges)."""
        if self.port is None and self.worker is not None:
            from txregistry.workers.sockets import adopt

            self.port = adopt(self._reactor, self.description, self.worker.families, self.site)
        elif self.port is None:
            self.port = listenNow(self.endpoint, self.site, self.description)
        if self.debugEndpoint is not None and self.debugPort is None:
            self.debugPort = listenNow(self.debugEndpoint, self.debugSite, "%s (debug_addr)" % (self.debugDescription,))

    def privilegedStartService(self):
        self.listen()
        service.MultiService.privilegedStartService(self)
        service.MultiService.privilegedStartService(self)

    def setReadonly(self, readonly):
        self.app.readonly = readonly
        self.log.warn(
            "read-only mode {state}: {what}",
            state="on" if readonly else "off",
            what="pushes and deletes refused" if readonly else "pushes and deletes accepted",
        )

    def _onSignal(self, signum, frame):
        # SIGUSR1 turns read-only mode on, SIGUSR2 off (e.g. around a backup).
        self._reactor.callFromThread(self.setReadonly, signum == signal.SIGUSR1)

    def startService(self):
        if self.port is None and not self.running:
            self.privilegedStartService()
        if hasattr(signal, "SIGUSR1"):
            signal.signal(signal.SIGUSR1, self._onSignal)
            signal.signal(signal.SIGUSR2, self._onSignal)
        self.threadpool.start()
        self.lookupPool.start()
        if self.authorizer is not None:
            self.authPool.start()
        if self.updater is not None:
            self.indexPool.start()
            Deferred.fromCoroutine(self.updater.start())
        if self.sharedFailures is not None:
            self.sharedFailures.start()
        if self.notifier is not None:
            self.notifyPool.start()
            self.notifier.setAddress(socket.gethostname(), getattr(self.port.getHost(), "port", ""))
            self.notifier.start()
        service.MultiService.startService(self)
        if self.mailer is not None:
            # On the global publisher, which every Logger writes to: so it
            # works whatever twistd's log observer (ours, --logger, a .tac).
            from twisted.logger import globalLogPublisher

            self.mailer.start(globalLogPublisher)
        s = self.settings
        # In a namespace of its own, which the loglevel never hides (see
        # txregistry.logs.filtered): the one line saying the daemon is up.
        startupLog.info(
            "txregistry listening on {address}, storage {storage} at {path}, flavor {flavor}",
            address=describePort(self.port),
            storage=self.driver.name,
            path=s.storagePath if s.s3 is None else "%s (bucket %s, prefix %s)" % (
                s.s3.endpoint or "AWS", s.s3.bucket, s.s3.rootDirectory),
            flavor=s.flavor,
        )
        if self.debugPort is not None:
            self.log.info("metrics and health on {address} (/metrics, /health, /ready)",
                          address=describePort(self.debugPort))
        volatile = None if s.s3 is not None else storageVolatility(s.storagePath)
        if volatile:
            self.log.warn(
                "storage path {path}: {reason}, the data will not survive a reboot",
                path=s.storagePath, reason=volatile,
            )
        if s.readonly:
            self.log.warn("read-only mode: pushes and deletes refused (SIGUSR2 to accept them)")
        if s.auth is not None:
            self._logAuth(s.auth)
        if self.mirror is not None:
            self.log.info("mirroring {upstreams}", upstreams=self.mirror.describe())
        if self.mailer is not None:
            self.log.info("{what}", what=self.mailer.describe())
        if self.collection is not None:
            self.log.info("{what}", what=self.collection.describe())
        if s.ignoredKeys:
            self.log.info("configuration keys not used by txregistry: {keys}", keys=", ".join(s.ignoredKeys))
        self.log.debug(
            # (not log_format=: that key is the event's format)
            "settings: loglevel {loglevel}, log_format {logFormat}, search {search}, read-only {readonly}, "
            "limits {limits}",
            loglevel=s.loglevel,
            logFormat=s.logFormat,
            search=s.searchBackend,
            readonly=s.readonly,
            limits=asKeys(s.limits),
        )

    def _logAuth(self, auth):
        parts = ["%s mode" % (auth.mode,)]
        if auth.htpasswd:
            parts.append("%d user(s) from %s" % (len(auth.users), auth.htpasswd))
        if auth.token is not None:
            if auth.token.issue:
                parts.append("token endpoint %s" % (auth.token.realm,))
            if auth.token.trustedKeys:
                parts.append("%d external token key(s)" % (len(auth.token.trustedKeys),))
        parts.append("no policy: logged-in users may do everything" if auth.policy is None else "access policy")
        self.log.info("authentication: {what}", what=", ".join(parts))
        if auth.token is not None and auth.token.issue and auth.token.keyFile is None:
            self.log.warn(
                "auth.token.key is not set: tokens are signed with a key made at start, so they do not "
                "survive a restart and other nodes refuse them"
            )
        for line in auth.warnings:
            self.log.warn("{line}", line=line)

    def stopService(self):
        self.health.stopping = True
        if self.collection is not None:
            self.collection.stop()  # a collection under way ends at its next step
        if self.mailer is not None:
            self.mailer.stop()
        d = service.MultiService.stopService(self)
        port, self.port = self.port, None
        if port is not None:
            d.addCallback(lambda _: port.stopListening())
        if self.worker is not None:
            d.addCallback(lambda _: self._drain(self.worker.drainSeconds))
        debugPort, self.debugPort = self.debugPort, None
        if debugPort is not None:
            d.addCallback(lambda _: debugPort.stopListening())
        if self.updater is not None:
            d.addCallback(lambda _: self._disarmIndexMarker())
        d.addCallback(lambda _: self.threadpool.stop())
        d.addCallback(lambda _: self.lookupPool.stop())
        if self.authorizer is not None:
            d.addCallback(lambda _: self.authPool.stop())
        if self.sharedFailures is not None:
            self.sharedFailures.stop()
        if self.updater is not None:
            self.updater.stop()
            d.addCallback(lambda _: self.indexPool.stop())
        if self.notifier is not None:
            d.addCallback(lambda _: Deferred.fromCoroutine(self.notifier.stop()))
            d.addCallback(lambda _: self.notifyPool.stop())
            d.addCallback(lambda _: self.notifier.close())
        return d

    def _drain(self, bound):
        """Wait (at most C{bound} seconds) for the requests under way."""
        channels = self.site.openChannels
        busy = channels.busy()
        if busy:
            self.log.info("stopping: waiting for {count} request(s) under way", count=busy)

        def done(left):
            if left:
                self.log.warn("stopping: {count} request(s) cut after {bound} s", count=left, bound=bound)

        return channels.drain(self._reactor, bound).addCallback(done)

    def _disarmIndexMarker(self):
        """Every update in the index: the next start need not repair it."""
        u = self.updater
        if self.worker is not None:  # the master keeps the marker: tell it
            self.worker.indexCurrent = not (u.lag or not (u.ready and u.healthy))
            return None
        if u.lag or not (u.ready and u.healthy):
            self.log.warn("search index behind storage at shutdown ({lag} repositories): repaired at next start",
                          lag=u.lag)
            return None
        return deferToThreadPool(self._reactor, self.threadpool, self.indexMarker.disarm).addErrback(
            lambda f: self.log.failure("removing {path} failed", f, path=self.indexMarker.path)
        )

