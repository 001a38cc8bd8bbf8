"""S3 credentials from botocore's chain are resolved off the reactor: the
commands (which run under the reactor) resolve them in a thread, and
missing ones stop a command with one line."""

import os
import subprocess
import sys
import time
import uuid

from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.internet.task import LoopingCall
from twisted.python.threadpool import ThreadPool
from twisted.trial import unittest

from tests.support import procs
from txregistry.storage.s3.credentials import resolveInThread

SLOW = 1.0  # how long the credential process takes


def chainEnv(directory, process=None):
    """An environment where botocore's chain finds nothing but
    C{process} (a credential_process command line), if given."""
    config = os.path.join(directory, "aws-config")
    with open(config, "w") as f:
        f.write("[default]\n" + ("credential_process = %s\n" % (process,) if process else ""))
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(AWS_CONFIG_FILE=config, AWS_SHARED_CREDENTIALS_FILE=os.path.join(directory, "none"),
               AWS_EC2_METADATA_DISABLED="true")
    return env


def slowProcess(directory, accessKey):
    script = os.path.join(directory, "credentials.py")
    with open(script, "w") as f:
        f.write("import json, time\ntime.sleep(%r)\nprint(json.dumps({'Version': 1, 'AccessKeyId': %r, "
                "'SecretAccessKey': 'secret'}))\n" % (SLOW, accessKey))
    return "%s %s" % (sys.executable, script)


class ResolveInThreadTests(unittest.TestCase):
    def test_theReactorRunsWhileTheChainIsResolved(self):
        directory = self.mktemp()
        os.makedirs(directory)
        env = chainEnv(directory, slowProcess(directory, "SLOWKEY"))
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(env)
        self.addCleanup(lambda: (os.environ.clear(), os.environ.update(saved)))
        pool = ThreadPool(1, 1, name="test-credentials")
        pool.start()
        self.addCleanup(pool.stop)
        ticks = []
        ticker = LoopingCall(lambda: ticks.append(time.monotonic()))
        ticker.clock = reactor
        ticker.start(0.05)

        async def go():
            started = time.monotonic()
            credentials = await resolveInThread(reactor, pool)
            ticker.stop()
            self.assertEqual(credentials.frozen.access_key, "SLOWKEY")
            self.assertGreaterEqual(time.monotonic() - started, SLOW)
            # The reactor kept its timer going all the while.
            self.assertGreater(len([t for t in ticks if t > started]), SLOW / 0.05 / 2)

        return ensureDeferred(go())


def runGC(env):
    return subprocess.run([os.path.join(procs.BIN, "txregistry"), "gc", "--dry-run", "--min-age", "0"],
                          capture_output=True, text=True, timeout=120, env=procs.twistdEnv(env))


def test_gc_resolves_the_chain(motoServer, tmp_path):
    # No keys in the settings: the chain's (slow) process gives them.
    bucket = "cred-" + uuid.uuid4().hex[:16]
    motoServer.createBucket(bucket)
    env = chainEnv(str(tmp_path), slowProcess(str(tmp_path), motoServer.accessKey))
    env.update(procs.s3env(motoServer, bucket, AWS_KEY="", AWS_SECRET="", SEARCH_BACKEND="",
                           SQLALCHEMY_INDEX_DATABASE="sqlite:///%s" % (tmp_path / "i.db")))
    r = runGC(env)
    assert r.returncode == 0, r.stderr
    assert "0 manifest(s)" in r.stdout, r.stdout


def test_gc_without_credentials(motoServer, tmp_path):
    env = chainEnv(str(tmp_path))
    env.update(procs.s3env(motoServer, "nobucket", AWS_KEY="", AWS_SECRET="", SEARCH_BACKEND=""))
    r = runGC(env)
    assert r.returncode != 0
    assert r.stderr.strip().splitlines() == ["txregistry: no AWS credentials: set s3_access_key/s3_secret_key "
                                             "(AWS_KEY/AWS_SECRET) or configure the AWS credential chain"], r.stderr
