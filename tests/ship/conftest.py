"""The shipping tests: the container image (built with podman from a
locally made Debian base), the systemd unit, the wheel and sdist.  All are
marked C{ship}: ``pytest tests/ship`` runs them alone, ``-m "not ship"``
leaves them out."""

import os
import time

import pytest

from tests.ship import podman as podmanlib
from tests.support.required import missing

_facts = {}


def pytest_configure(config):
    config.addinivalue_line("markers", "ship: the shipping tests (container image, systemd unit, wheel and sdist)")


def pytest_collection_modifyitems(config, items):
    here = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        if str(item.fspath).startswith(here + os.sep):
            item.add_marker(pytest.mark.ship)


def pytest_terminal_summary(terminalreporter):
    for line in _facts.values():
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def podman(tmp_path_factory):
    tools = podmanlib.missingTools()
    if tools:
        missing("the image tests need %s (Debian: %s)" % (", ".join(tools), " ".join(podmanlib.DEBIAN_PACKAGES)))
    host = podmanlib.Podman(tmp_path_factory.mktemp("podman"))
    try:
        yield host
    finally:
        host.cleanup()


@pytest.fixture(scope="session")
def wheels():
    return podmanlib.wheelhouse()


@pytest.fixture(scope="session")
def image(podman, wheels):
    """txregistry's image, built from the worktree on the local base."""
    start = time.monotonic()
    tarball = podmanlib.baseRootfs()
    based = time.monotonic()
    podman.importBase(tarball)
    tag = podman.build(wheels)
    built = time.monotonic()
    size = int(podman.output("image", "inspect", "--format", "{{.Size}}", tag))
    baseSize = int(podman.output("image", "inspect", "--format", "{{.Size}}", podmanlib.BASE_TAG))
    _facts["image"] = (
        "txregistry image %s: %.0f MB (base %.0f MB); base root file system %.0fs (cached in %s), "
        "import and build %.0fs" % (tag, size / 1e6, baseSize / 1e6, based - start, podmanlib.cacheDir(), built - based)
    )
    return tag
