"""Fixtures for the docker-workflow tests: the real docker CLI, podman and
skopeo against txregistry running under ``twistd`` as a subprocess.

One ``podman system service`` (the Docker-compatible API the docker CLI
talks to) serves the whole session from temporary directories; every test
gets a fresh txregistry on empty storage, on the port the service's
``registries.conf`` names, and leaves the engine without images.
"""

import re
import socket

import pytest

from tests.docker import engine
from tests.support import procs


def portFree(port):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
        return True
    except OSError:
        return False
    finally:
        s.close()


@pytest.fixture(scope="session")
def podmanHost(tmp_path_factory):
    missing = engine.missingTools()
    if missing:
        pytest.fail("the docker tests need %s (Debian: podman, skopeo, docker.io)" % (", ".join(missing),))
    host = engine.PodmanHost(tmp_path_factory.mktemp("podman"), procs.freePort())
    host.start()
    try:
        yield host
    finally:
        host.cleanup()


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if not (report.failed and report.when in ("setup", "call")):
        return
    funcargs = getattr(item, "funcargs", {})
    registries = funcargs.get("registries")
    if registries is not None:
        for daemon in registries.started:
            try:
                report.sections.append(("txregistry log %s" % (daemon.logPath,), daemon.log()[-6000:]))
            except OSError:
                pass
    host = funcargs.get("podmanHost")
    if host is not None:
        report.sections.append(("podman service log %s" % (host.logPath,), host.log(3000)))


class AccessLog:
    """The requests a txregistry daemon logged (its access log lines)."""

    LINE = re.compile(r'"(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) (\S+) HTTP/1\.[01]" (\d{3}) ')

    def __init__(self, daemon):
        self.daemon = daemon

    def mark(self):
        """A position: L{requests} C{since} it lists only later requests."""
        return len(self.daemon.syncLog())

    def requests(self, since=0):
        """C{[(method, path, status)]} in the order they were logged (the
        markers of L{Daemon.syncLog} left out)."""
        out = []
        for line in self.daemon.syncLog()[since:].splitlines():
            m = self.LINE.search(line)
            if m and not m.group(2).startswith("/txregistry-log-mark/"):
                out.append((m.group(1), m.group(2), int(m.group(3))))
        return out


class Registries:
    """Starts txregistry daemons for one test, on the port the podman
    service trusts for plain HTTP; stops them when the test ends."""

    def __init__(self, host, tmp_path):
        self.host = host
        self.tmp_path = tmp_path
        self.logDir = tmp_path / "logs"
        self.logDir.mkdir()
        self.started = []

    def start(self, name="storage", env=None, port=None):
        """A txregistry on empty storage C{name}, on the engine's trusted
        port (or on C{port}, e.g. behind a relay on the trusted one)."""
        storage = self.tmp_path / name
        storage.mkdir()
        # Two worker processes: the docker CLI's and podman's parallel layer
        # pushes and pulls spread over both.
        env = dict({"WORKERS": "2"}, **(env or {}))
        return self._launch(
            lambda p: procs.startTxregistry(str(storage), str(self.logDir), port=p, env=env), port)

    def startOnS3(self, server, bucket, name="s3", port=None, **extra):
        """A txregistry on C{bucket} of the S3 server C{server}, started with
        the classic S3 command line (L{procs.s3env}; C{extra} adds to it),
        on the engine's trusted port or on C{port}.  C{name} names its log
        and its SQLite search index (fresh unless C{name} was started
        before; C{SQLALCHEMY_INDEX_DATABASE} in C{extra} chooses another)."""
        return self._launch(
            lambda p: procs.startTxregistryOnS3(server, bucket, self.logDir, port=p, name=name, **extra), port)

    def _launch(self, starter, port):
        """C{starter(port)} on C{port}, else on the engine's trusted port,
        once what this test started there has stopped."""
        for running in self.started:
            if running.port == (port or self.host.port):
                running.stop()
        try:
            daemon = starter(port or self.host.port)
        except RuntimeError:
            if port is not None or portFree(self.host.port):
                raise
            # Something else took the port between two tests: move the
            # engine's trust to a new one.
            self.host.restart(procs.freePort())
            daemon = starter(self.host.port)
        daemon.access = AccessLog(daemon)
        self.started.append(daemon)
        return daemon

    def stopAll(self):
        for daemon in reversed(self.started):
            daemon.stop()


@pytest.fixture
def registries(podmanHost, tmp_path):
    r = Registries(podmanHost, tmp_path)
    try:
        yield r
    finally:
        r.stopAll()


@pytest.fixture
def registry(registries):
    """A fresh txregistry on empty storage, at C{registry.host}; the podman
    service talks plain HTTP to it."""
    return registries.start()


@pytest.fixture
def cli(podmanHost):
    """The clients (L{engine.PodmanHost}), for a test that starts with no
    images in the engine and leaves none behind.  Take C{registry} too for
    a registry."""
    podmanHost.removeAllImages()
    try:
        yield podmanHost
    finally:
        podmanHost.removeAllImages()
