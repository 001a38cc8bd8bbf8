"""``twistd txregistry``: the command line.  The only module that reads argv."""

import os
import sys

from twisted.python import usage

from txregistry import config


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Serve a container image registry (OCI Distribution Spec v1.1, what "
        "docker, podman, skopeo and oras speak).  Settings come from the command "
        "line, then the environment (STORAGE_PATH, SETTINGS_FLAVOR, "
        "DOCKER_REGISTRY_CONFIG, LOGLEVEL, LOG_FORMAT, REGISTRY_PORT), then the config file, "
        "then built-in defaults."
    )
    optParameters = [
        [
            "port",
            "p",
            None,
            "Where to listen: a port number (tcp on every IPv4 and IPv6 interface) or any strports "
            "description, e.g. tcp:5000:interface=127.0.0.1 or "
            "ssl:5443:privateKey=key.pem:certKey=cert.pem.  Default: $REGISTRY_PORT, else 5000.",
        ],
        [
            "storage-path",
            "s",
            None,
            "Directory under which the registry keeps its data (Distribution's layout, "
            "<dir>/docker/registry/v2/...).  Default: $STORAGE_PATH, else the config "
            "file's storage_path, else /tmp/registry.",
        ],
        [
            "config",
            "c",
            None,
            "YAML configuration file of flavors (the classic docker-registry format).  "
            "Default: $DOCKER_REGISTRY_CONFIG, else built-in settings.",
        ],
        ["flavor", "f", None, "The flavor (section) of the config file to use.  Default: $SETTINGS_FLAVOR, else dev."],
        [
            "log-format",
            None,
            None,
            "text (twistd's lines) or json (one JSON object a line), written where twistd writes its log "
            "(stdout with -n, --logfile, twistd.log).  Default: $LOG_FORMAT, else the config file's "
            "log_format, else text.  The config file's loglevel (or $LOGLEVEL) filters both.",
        ],
        [
            "debug-port",
            None,
            None,
            "Serve /metrics, /health and /ready on a listener of their own: a port (on 127.0.0.1), "
            "HOST:PORT, or a strports description.  Default: $DEBUG_ADDR, else the config file's "
            "debug_addr, else none (/health and /ready are on the main port anyway).",
        ],
        [
            "workers",
            "w",
            None,
            "Worker processes serving the port (a number, or auto: one per core, at most 8; 1 when "
            "notifications are on).  1: a single process, no master.  Default: $WORKERS, else the "
            "config file's workers, else auto.",
        ],
    ]

    def opt_version(self):
        """Print txregistry's version and exit."""
        from txregistry import versionLine

        print(versionLine())
        sys.exit(0)


def makeService(options, reactor=None, environ=None, serverOptions=None):
    """The registry service for C{options}.  C{serverOptions}: twistd's own
    options (its logging ones: nodaemon, logfile, syslog, prefix, logger),
    by default the parent of C{options} when twistd parsed them; without
    any the service leaves twistd's log observer alone."""
    environ = os.environ if environ is None else environ
    try:
        settings = config.load(
            configFile=options["config"],
            flavor=options["flavor"],
            storagePath=options["storage-path"],
            environ=environ,
            logFormat=options["log-format"],
            debugPort=options["debug-port"],
        )
    except config.ConfigError as e:
        raise SystemExit("txregistry: configuration error: %s" % (e,))
    from txregistry.service import RegistryService, checkSearchDatabase, checkStoragePath

    problem = (checkStoragePath(settings.storagePath) if settings.s3 is None else None) or checkSearchDatabase(settings)
    if problem:
        raise SystemExit("txregistry: configuration error: %s" % (problem,))
    port = options["port"] or environ.get("REGISTRY_PORT") or "5000"
    from txregistry.workers import WorkersConfigError, choose, parseWorkers

    try:
        requested = settings.workers if options["workers"] is None else parseWorkers(options["workers"], "--workers")
        count, reason = choose(requested, os.cpu_count(), settings)
    except WorkersConfigError as e:
        raise SystemExit("txregistry: configuration error: %s" % (e,))
    if reactor is None:
        from twisted.internet import reactor
    from txregistry.listen import CannotListen
    from txregistry.storage import StorageError

    try:
        if count > 1:
            from txregistry.workers.start import makeMaster

            registry = makeMaster(settings, _loadArguments(options), port, count, reason, reactor, environ)
        else:
            registry = RegistryService(settings, port, reactor)
    except (StorageError, config.ConfigError) as e:  # no S3 credentials anywhere, a bad --port
        raise SystemExit("txregistry: configuration error: %s" % (e,))
    try:
        # Now, not in privilegedStartService: twistd has not forked yet,
        # nor sent stderr to the log, so this line reaches the terminal and
        # the command ends at once, without a pidfile (a daemonized twistd's
        # waiting parent only hears of an Exception from its child, never of
        # a SystemExit, and then not in one line).
        registry.listen()
    except CannotListen as e:
        raise SystemExit("txregistry: %s" % (e,))
    if serverOptions is None:
        serverOptions = getattr(options, "parent", None)
    if serverOptions is not None:
        from txregistry.logs import makeObserver

        # twistd writes the pidfile after it forked, where a failure no
        # longer reaches the terminal in one line: check its directory now.
        problem = _checkPidfile(serverOptions)
        if problem:
            raise SystemExit("txregistry: %s" % (problem,))
        # Last, once nothing else can fail: this may open the log file.
        try:
            registry.logObserver = makeObserver(settings.logFormat, settings.loglevel, serverOptions, reactor)
            if hasattr(registry, "logLines"):  # (workers: their lines are written as they come)
                registry.logLines = getattr(registry.logObserver, "lines", None)
        except OSError as e:
            raise SystemExit("txregistry: cannot open log file %s: %s" % (
                e.filename or serverOptions.get("logfile"), e.strerror or e))
    return registry


def _loadArguments(options):
    """config.load's arguments from the command line, for worker processes
    (paths absolute: a daemon may change directory)."""

    def absolute(path):
        return os.path.abspath(path) if path else path

    return {"configFile": absolute(options["config"]), "flavor": options["flavor"],
            "storagePath": absolute(options["storage-path"]), "logFormat": options["log-format"]}


def _checkPidfile(serverOptions):
    """An error line if twistd could not write its pidfile, else C{None}."""
    try:
        pidfile, rundir, chroot = (serverOptions.get(k) for k in ("pidfile", "rundir", "chroot"))
    except AttributeError:
        return None
    if not pidfile or chroot:
        return None
    # (twistd changes to --rundir before it writes the pidfile)
    directory = os.path.dirname(os.path.join(os.path.abspath(rundir or "."), pidfile))
    if not os.path.isdir(directory):
        return "cannot write pidfile %s: no directory %s" % (pidfile, directory)
    if not os.access(directory, os.W_OK | os.X_OK):
        return "cannot write pidfile %s: directory %s is not writable" % (pidfile, directory)
    return None

