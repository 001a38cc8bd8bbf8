"""Fixtures for resource tests: a real registry daemon as a subprocess on
loopback, on empty storage under pytest's tmp_path, stopped when the test
ends; its log is attached to the report of a failed test.

Tests taking C{registry} run against txregistry and against Distribution
(Debian's docker-registry), the reference.  Set C{PERF_REGISTRIES} to
C{txregistry} or C{distribution} to run one side only.
"""


import pytest

from tests.support import procs

KINDS = procs.KINDS
STARTERS = procs.STARTERS


def selectedKinds():
    return procs.selectedKinds("PERF_REGISTRIES")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    daemon = getattr(item, "funcargs", {}).get("registry")
    if daemon is not None and report.when in ("setup", "call") and (report.failed or report.skipped):
        try:
            text = daemon.log()
        except OSError:
            return
        report.sections.append(("%s log %s" % (daemon.kind, daemon.logPath), text[-6000:]))


@pytest.fixture(params=selectedKinds())
def registryKind(request):
    return request.param


@pytest.fixture
def registry(registryKind, tmp_path):
    """A running registry of the parametrized kind on empty storage
    (C{registry.storagePath})."""
    storage = tmp_path / "storage"
    logs = tmp_path / "logs"
    storage.mkdir()
    logs.mkdir()
    daemon = STARTERS[registryKind](str(storage), str(logs))
    daemon.kind = registryKind
    daemon.storagePath = str(storage)
    try:
        yield daemon
    finally:
        daemon.stop()
