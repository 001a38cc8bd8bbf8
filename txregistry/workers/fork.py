"""Workers forked from the master, after the master imported what they run,
so that their code and the modules' objects are pages they share (copy on
write) instead of each interpreter's own: the memory of a daemon of N
workers is much less than N daemons'.

Twisted's own process class does the work of a child process (the pipes,
the inherited sockets, closing every other descriptor, reaping); only the
exec is replaced: the child, a copy of the master, drops the master's
reactor, signal handlers and log observers, and runs the worker
(L{txregistry.workers.worker.serve}) in a reactor of its own."""

import gc
import importlib
import os
import signal
import sys

from twisted.internet import process


def preload(settings):
    """Import, in the master, the modules a worker with C{settings} runs."""
    names = ["txregistry.service", "txregistry.workers.worker", "txregistry.workers.channel",
             "twisted.internet.stdio", "twisted.protocols.tls"]
    if settings.searchBackend == "sqlalchemy":
        names += ["txregistry.search.index", "txregistry.search.updater", "sqlalchemy"]
        if settings.searchDatabase.startswith("sqlite"):
            names += ["sqlalchemy.dialects.sqlite", "sqlite3"]
    if settings.auth is not None:
        names += ["txregistry.auth", "bcrypt", "jwt"]
    if settings.s3 is not None:
        names += ["txregistry.storage.s3", "botocore"]
    if settings.mirror is not None:
        names += ["txregistry.mirror", "treq"]
    if settings.ui is None or settings.ui.enabled:
        names += ["txregistry.ui.app"]
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # (the worker says what is missing)
    # What the master has made so far is never collected in the workers:
    # the collector does not write to (and so copy) those pages.
    gc.collect()
    gc.freeze()


class ForkedWorker(process.Process):
    """A worker process forked from this one (see the module's docstring)."""

    def __init__(self, reactor, protocol, childFDs, environ, run):
        self._run = run
        process.Process.__init__(self, reactor, sys.executable, [sys.executable, "txregistry-worker"], environ,
                                 None, protocol, childFDs=childFDs)

    def _trySpawnInsteadOfFork(self, *args, **kwargs):
        return False  # (no exec: the copy runs on)

    def _execChild(self, path, uid, gid, executable, args, environment):
        # In the child, its descriptors in place.  Never returns.
        code = 1
        try:
            _forget(environment)
            code = self._run()
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 1
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            try:
                sys.stderr.flush()
            finally:
                os._exit(code)


def _forget(environment):
    """Drop what belongs to the master: its signal handlers and wake-up
    descriptor, its reactor (a new one is installed), its log observers."""
    gc.enable()  # (Twisted stops the collector around the fork)
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, signal.SIG_DFL)
    os.environ.clear()
    os.environ.update(environment)
    import twisted.internet
    from twisted.internet.main import installReactor

    old = sys.modules.pop("twisted.internet.reactor", None)
    if hasattr(twisted.internet, "reactor"):
        del twisted.internet.reactor
    installReactor(type(old)())  # the master's kind (twistd --reactor)
    from twisted.logger import globalLogPublisher

    # (the publisher has no public list of its observers)
    for observer in list(globalLogPublisher._observers):
        globalLogPublisher.removeObserver(observer)
