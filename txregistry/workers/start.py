"""Making the master (L{txregistry.workers.master.Master}) from the
settings, in C{makeService}: before twistd forks, so that whatever cannot
start ends the command with one line on stderr."""

import json
import os
import subprocess
import sys

from txregistry import config
from txregistry.listen import endpointFor, listenNow

CHECK_TIMEOUT = 120.0


def _secrets(settings):
    """What every worker must share and the configuration may not say: the
    pages' session secret and the token signing key, made here once."""
    out = {}
    ui = settings.ui
    if ui is None or (ui.enabled and not ui.sessionSecret):
        out["session"] = os.urandom(32).hex()
    token = settings.auth.token if settings.auth is not None else None
    if token is not None and token.issue and token.signingKey is None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        out["tokenKey"] = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()).decode("ascii")
    return out


def check(spec, environ):
    """Build a worker's whole service once, in a process of its own that
    then exits (the configuration loads, storage and its credentials, the
    keys, the database); the error line, or C{None}."""
    try:
        done = subprocess.run([sys.executable, "-m", "txregistry.workers.worker", "--check"],
                              input=json.dumps(spec).encode("utf-8"), capture_output=True, env=dict(environ),
                              timeout=CHECK_TIMEOUT)
    except subprocess.TimeoutExpired:
        return "a worker did not start within %d s" % (CHECK_TIMEOUT,)
    if done.returncode == 0:
        return None
    lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
    return lines[-1] if lines else "a worker could not start (status %d)" % (done.returncode,)


def makeMaster(settings, load, port, count, reason, reactor, environ):
    from txregistry.workers.master import Master

    endpointFor(reactor, port)  # a bad --port: ConfigError now
    master = Master(settings, load, str(port).strip(), count, reason, reactor, _secrets(settings), environ)
    problem = check(master.spec(0, False), environ)
    if problem:
        raise config.ConfigError(problem)
    from txregistry.workers.fork import preload

    preload(settings)  # (before the reactor runs)
    master.fork = True
    if settings.mail is not None:
        from txregistry.mail import ErrorMailer

        master.mailer = ErrorMailer(settings.mail, reactor)
    try:
        master.armIndexMarker()
    except OSError as e:
        from txregistry.storage import StorageError

        raise StorageError("cannot write %s: %s" % (e.filename, e.strerror or e))
    debug = (settings.metrics or config.MetricsSettings()).debugListen
    if debug:
        master.debugEndpoint = endpointFor(reactor, debug)
        master.debugDescription = debug
    return master


def listenMaster(master):
    """Bind the shared sockets and the debug listener (L{Master.listen})."""
    from twisted.web.server import Site

    from txregistry.metrics.resources import DebugRoot
    from txregistry.workers.debug import WorkersHealth, WorkersMetrics
    from txregistry.workers.sockets import bindShared

    if master.port is None:
        master.port, master.families = bindShared(master.reactor, master.description)
    if master.debugEndpoint is not None and master.debugPort is None:
        site = Site(DebugRoot(WorkersHealth(master), WorkersMetrics(master)), reactor=master.reactor)
        site.noisy = False
        site.log = lambda request: None
        master.debugPort = listenNow(master.debugEndpoint, site, "%s (debug_addr)" % (master.debugDescription,))
