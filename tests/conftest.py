"""Fixtures shared by more than one test directory."""

import pytest

from tests.support import postgres, s3servers
from tests.support.required import missing


@pytest.fixture(scope="session")
def motoServer():
    """moto's S3 server, started once for the session (tests/s3, tests/docker)."""
    s3servers.skipUnlessAvailable(s3servers.MotoServer)
    server = s3servers.MotoServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rgwServer():
    """Ceph's RADOS Gateway, started once for the session (tests/s3, tests/docker)."""
    s3servers.skipUnlessAvailable(s3servers.CephRGW)
    server = s3servers.CephRGW().start()
    yield server
    server.stop()


@pytest.fixture
def sharedIndex():
    """A fresh PostgreSQL server for one test, for a search index several
    daemons share: C{sharedIndex.url} is its SQLALCHEMY_INDEX_DATABASE."""
    if not postgres.available():
        missing("PostgreSQL is not installed")
    pg = postgres.PostgresServer().start()
    yield pg
    pg.destroy()
