"""A program a test needs that this machine lacks (an S3 server, PostgreSQL,
htpasswd): the test is skipped here, but fails where it must run (CI sets
TXREGISTRY_REQUIRE_SERVERS=1, since tests/bootstrap.sh installs them all)."""

import os
import unittest

ENV = "TXREGISTRY_REQUIRE_SERVERS"


def required():
    return os.environ.get(ENV, "") not in ("", "0")


def missing(reason):
    """Skip the calling test (or fixture) for C{reason}; fail instead when
    L{ENV} is set.  Works in pytest tests, fixtures and trial test cases."""
    if required():
        raise AssertionError("%s (%s is set: this machine should have it)" % (reason, ENV))
    raise unittest.SkipTest(reason)
