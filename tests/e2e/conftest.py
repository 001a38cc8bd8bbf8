"""Fixtures for end-to-end tests: real registry daemons as subprocesses on
loopback, each test on its own empty storage directory, every daemon
stopped when the test ends.

Tests that take the C{registry} fixture run once against txregistry and
once against Distribution (Debian's docker-registry), the reference: a
test that fails only against txregistry points at txregistry, one that
fails against both points at the test.  Set C{E2E_REGISTRIES} to
C{txregistry} or C{distribution} to run one side only.
"""

import os

import pytest

from tests.support import procs

KINDS = procs.KINDS
STARTERS = procs.STARTERS


def selectedKinds():
    return procs.selectedKinds("E2E_REGISTRIES")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    daemons = getattr(item, "funcargs", {}).get("daemons")
    if report.failed and report.when in ("setup", "call") and daemons is not None:
        for title, text in daemons.logs():
            report.sections.append((title, text))


class Daemons:
    """Starts registry daemons for one test; stops them all at the end and,
    if the test failed, attaches the tail of each daemon's log to the
    report."""

    def __init__(self, logDir):
        self.logDir = logDir
        self.started = []

    def start(self, kind, storagePath):
        os.makedirs(storagePath, exist_ok=True)
        if kind == "txregistry":
            # Two worker processes: every client's pushes and pulls spread
            # over both (uploads, tags, search shared through storage).
            daemon = procs.startTxregistry(str(storagePath), str(self.logDir), env={"WORKERS": "2"})
        else:
            daemon = STARTERS[kind](str(storagePath), str(self.logDir))
        daemon.kind = kind
        self.started.append(daemon)
        return daemon

    def stopAll(self):
        errors = []
        for daemon in reversed(self.started):
            try:
                daemon.stop()
            except Exception as e:  # keep stopping the others
                errors.append(e)
        if errors:
            raise errors[0]

    def logs(self, tail=6000):
        out = []
        for daemon in self.started:
            text = daemon.log()
            out.append(("%s log %s" % (daemon.kind, daemon.logPath), text[-tail:]))
        return out


@pytest.fixture
def logDir(tmp_path):
    path = tmp_path / "logs"
    path.mkdir()
    return path


@pytest.fixture
def daemons(logDir):
    d = Daemons(logDir)
    try:
        yield d
    finally:
        d.stopAll()


@pytest.fixture(params=selectedKinds())
def registryKind(request):
    return request.param


@pytest.fixture
def storage(tmp_path):
    path = tmp_path / "storage"
    path.mkdir()
    return path


@pytest.fixture
def registry(daemons, registryKind, storage):
    """A running registry of the parametrized kind on empty storage."""
    return daemons.start(registryKind, storage)
