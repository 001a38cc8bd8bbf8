"""Real S3-compatible servers on loopback: moto's server (fast, does not
verify signatures) and Ceph's RADOS Gateway (verifies them, like AWS); the
session fixtures C{motoServer} and C{rgwServer} are in tests/conftest.py."""

import uuid

import pytest

from tests.support import procs


@pytest.fixture(params=["moto", "rgw"])
def s3(request):
    return request.getfixturevalue("motoServer" if request.param == "moto" else "rgwServer")


@pytest.fixture
def bucket(s3):
    name = "txr-" + uuid.uuid4().hex[:16]
    s3.createBucket(name)
    return name


# The classic S3 command line, shared with tests/docker.
s3env = procs.s3env
startOnS3 = procs.startTxregistryOnS3
