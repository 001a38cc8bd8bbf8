"""Real S3-compatible servers on loopback: moto's server (fast, does not
verify signatures) and Ceph's RADOS Gateway (verifies them, like AWS)."""

import os
import uuid

import pytest

from tests.support import procs, s3servers


@pytest.fixture(scope="session")
def motoServer():
    s3servers.skipUnlessAvailable(s3servers.MotoServer)
    server = s3servers.MotoServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rgwServer():
    s3servers.skipUnlessAvailable(s3servers.CephRGW)
    server = s3servers.CephRGW().start()
    yield server
    server.stop()


@pytest.fixture(params=["moto", "rgw"])
def s3(request):
    return request.getfixturevalue("motoServer" if request.param == "moto" else "rgwServer")


@pytest.fixture
def bucket(s3):
    name = "txr-" + uuid.uuid4().hex[:16]
    s3.createBucket(name)
    return name


def s3env(server, bucket, **extra):
    """The classic environment of the s3 flavor."""
    env = {
        "SETTINGS_FLAVOR": "s3",
        "AWS_BUCKET": bucket,
        "STORAGE_PATH": "/registry",
        "AWS_KEY": server.accessKey,
        "AWS_SECRET": server.secretKey,
        "AWS_ENDPOINT": server.endpoint,
        "AWS_REGION": server.region,
        "SEARCH_BACKEND": "sqlalchemy",
    }
    env.update(extra)
    return env


def startOnS3(server, bucket, logDir, port=None, **extra):
    """txregistry started as the classic command line says (no --storage-path:
    STORAGE_PATH is the key prefix)."""
    port = port or procs.freePort()
    argv = [os.path.join(procs.BIN, "twistd"), "-n", "--pidfile=", "txregistry",
            "--port", "tcp:%d:interface=127.0.0.1" % (port,)]
    env = procs.twistdEnv(s3env(server, bucket, **extra))
    if "SQLALCHEMY_INDEX_DATABASE" not in extra:
        env["SQLALCHEMY_INDEX_DATABASE"] = "sqlite:///%s/index-%d.db" % (logDir, port)
    return procs.Daemon(argv, port, os.path.join(str(logDir), "txregistry-s3-%d.log" % (port,)), env=env, cwd=procs.REPO)
