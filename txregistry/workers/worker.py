"""One worker process: ``python -m txregistry.workers.worker``, started by
the master (L{txregistry.workers.master}), never by hand.

It reads one line of JSON on its standard input: what to load (the same
command-line values the master had) and its L{Role}; then it builds the
whole registry service on the sockets it inherited (descriptors 3, 4...),
and runs.  It talks to the master in lines of JSON (L{txregistry.workers.channel}):
its log events, "ready" once it serves, failed logins (which every worker
counts), and the answers to scrapes; it hears on standard input the
master's requests (scrapes, readiness, failed logins elsewhere).  A
configuration that no longer loads (a SIGHUP after an edit) ends it with
one line on standard error, and the master keeps the worker it had.

Exit status: 0 after a stop with every search index update written, 3 when
some were not (the master then keeps the index's lag marker), 2 when it
could not start."""

import dataclasses
import json
import os
import signal
import sys

EXIT_INDEX_BEHIND = 3
EXIT_CANNOT_START = 2


@dataclasses.dataclass
class Role:
    """What the master tells a worker about its place."""

    index: int = 0  # 0, 1, ...: the number its log lines carry
    families: tuple = ()  # the address family of each inherited socket
    schedules: bool = False  # runs the scheduled collection and upload purging
    repairIndex: bool = False  # repairs the search index from storage at start
    drainSeconds: float = 30.0  # how long a stop waits for requests under way
    indexCurrent: bool = None  # set at stop: were all index updates written?


def _settings(spec):
    from txregistry import config

    settings = config.load(**spec["load"])
    changes = {"readonly": bool(spec.get("readonly", settings.readonly))}
    secrets = spec.get("secrets") or {}
    if settings.ui is not None and secrets.get("session") and not settings.ui.sessionSecret:
        changes["ui"] = dataclasses.replace(settings.ui, sessionSecret=secrets["session"])
    elif settings.ui is None and secrets.get("session"):
        from txregistry.ui import UISettings

        changes["ui"] = UISettings(sessionSecret=secrets["session"])
    if secrets.get("tokenKey") and settings.auth is not None and settings.auth.token is not None:
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        key = load_pem_private_key(secrets["tokenKey"].encode("ascii"), None)
        token = dataclasses.replace(settings.auth.token, signingKey=key)
        changes["auth"] = dataclasses.replace(settings.auth, token=token)
    return dataclasses.replace(settings, **changes)


def _firstLine(fd):
    """The first line on C{fd}, read byte by byte: what follows it is the
    control channel's (L{txregistry.workers.channel.Control}), unbuffered."""
    out = bytearray()
    while not out.endswith(b"\n"):
        byte = os.read(fd, 1)
        if not byte:
            break
        out += byte
    return bytes(out)


def main(argv):
    """Run the worker the master describes on standard input: exec'd
    (C{python -m}), or in a copy of the master (C{--forked}:
    L{txregistry.workers.fork})."""
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the master's signal (a reload), not ours
    spec = json.loads(_firstLine(0))
    from txregistry.workers.channel import Messages, startLogging

    messages = Messages(1)
    role = Role(**spec["role"])
    from txregistry import config

    try:
        settings = _settings(spec)
    except config.ConfigError as e:
        sys.stderr.write("configuration error: %s\n" % (e,))
        return EXIT_CANNOT_START
    startLogging(messages, settings.loglevel, forked="--forked" in argv, lines=spec.get("lines"), index=role.index)
    from twisted.internet import reactor

    from txregistry.service import RegistryService
    from txregistry.storage import StorageError

    try:
        registry = RegistryService(settings, spec["port"], reactor, worker=role)
        if "--check" in argv:
            return 0
        registry.listen()
    except (StorageError, config.ConfigError, OSError) as e:
        sys.stderr.write("configuration error: %s\n" % (e,))
        return EXIT_CANNOT_START
    from txregistry.workers.channel import AllWorkersMetrics, Control

    control = Control(registry, messages)
    control.attach(reactor, 0)
    registry.root.showMetrics(AllWorkersMetrics(control))  # (the main port's /metrics, if configured)

    def start():
        registry.startService()
        messages.send({"ready": os.getpid()})

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", registry.stopService)
    reactor.run()
    return EXIT_INDEX_BEHIND if role.indexCurrent is False else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
