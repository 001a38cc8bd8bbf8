"""Real S3-compatible servers for tests and benchmarks, on 127.0.0.1.

Two servers share one small API::

    server = MotoServer().start()      # or CephRGW().start()
    server.endpoint                    # "http://127.0.0.1:PORT"
    server.region, server.accessKey, server.secretKey
    server.createBucket("name")
    server.client()                    # a botocore S3 client (path style, SigV4)
    server.requests("name")            # [(method, path?query, status)] it served for a bucket
    server.stop()                      # every process it started ends

    MotoServer.available(), CephRGW.available()     # can it run here?
    MotoServer.unavailableReason()                  # why not (for skips)
    skipUnlessAvailable(CephRGW)                    # in a pytest fixture

Both are context managers too.  Readiness is polled, never slept for; all
state lives in a temporary directory that C{stop} removes.

- L{MotoServer}: moto's standalone server (C{python -m moto.server}) in its
  own process.  Fast, in memory; it does not verify signatures.  Needs the
  PyPI package C{moto[server]}.
- L{CephRGW}: a single-node Ceph cluster (one mon, one OSD on memstore, no
  manager, cephx off) serving S3 through the RADOS Gateway, started and
  stopped by C{tests/support/ceph-rgw.sh}.  A real S3 implementation: it
  verifies SigV4 signatures and presigned-URL expiry and refuses chunked
  bodies without a length (411).  Needs the Debian packages C{ceph-mon
  ceph-osd radosgw}.  Starts in about 4 s.
"""

import importlib.util
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from tests.support import procs
from tests.support.procs import freePort

HERE = os.path.dirname(os.path.abspath(__file__))
CEPH_RGW_SCRIPT = os.path.join(HERE, "ceph-rgw.sh")

# What a fresh Debian machine needs, for tests/bootstrap.sh.
MOTO_PIP_PACKAGES = ("moto[server]",)
CEPH_RGW_DEBIAN_PACKAGES = ("ceph-mon", "ceph-osd", "radosgw")


def _answers(url):
    """Whether an HTTP server answers at C{url}, with any status."""
    try:
        urllib.request.urlopen(url, timeout=2).close()
        return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
        return False


def botocoreClient(endpoint, region, accessKey, secretKey, **configArgs):
    """A botocore S3 client for an S3-compatible endpoint: path-style
    addressing, SigV4, no retries, and checksums only where the API requires
    them (botocore >= 1.36 otherwise adds x-amz-checksum-crc32 headers to
    uploads, which not every S3-compatible server knows)."""
    import botocore.session
    from botocore.config import Config

    kwargs = dict(
        signature_version="s3v4",
        s3={"addressing_style": "path"},
        retries={"max_attempts": 1},
        connect_timeout=10,
        read_timeout=60,
    )
    if "request_checksum_calculation" in Config.OPTION_DEFAULTS:
        kwargs["request_checksum_calculation"] = "when_required"
        kwargs["response_checksum_validation"] = "when_required"
    kwargs.update(configArgs)
    session = botocore.session.Session()
    return session.create_client(
        "s3",
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id=accessKey,
        aws_secret_access_key=secretKey,
        config=Config(**kwargs),
    )


# A request line in an access log: moto's (werkzeug's) and radosgw's (beast's).
_REQUEST_LINE = re.compile(r'"(GET|HEAD|PUT|POST|DELETE) (/\S*) HTTP/1\.[01]" (\d{3}) ')
# werkzeug colours the lines of some statuses (a 204 is magenta), even in a file.
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def skipUnlessAvailable(cls):
    """Skip, naming what is missing, when C{cls} cannot run here (fail in
    CI: L{tests.support.required})."""
    from tests.support.required import missing

    reason = cls.unavailableReason()
    if reason:
        missing(reason)


class _S3Server:
    region = "us-east-1"
    accessKey = None
    secretKey = None
    endpoint = None
    root = None

    @classmethod
    def unavailableReason(cls):
        """None if this server can run here, else why not (a skip message)."""
        raise NotImplementedError

    @classmethod
    def available(cls):
        return cls.unavailableReason() is None

    def client(self, **configArgs):
        return botocoreClient(self.endpoint, self.region, self.accessKey, self.secretKey, **configArgs)

    def createBucket(self, name):
        self.client().create_bucket(Bucket=name)
        return name

    def accessLog(self):
        """The text of the server's log of the requests it served."""
        raise NotImplementedError

    def requests(self, bucket):
        """C{[(method, path, status)]} of the requests the server has logged
        for C{bucket} so far, in order; C{path} is the path within the bucket
        with its query (C{/key?uploads}).  A server may log a request a
        little after answering it: poll for what a test expects."""
        out = []
        prefix = "/" + bucket
        for m in _REQUEST_LINE.finditer(_ANSI_ESCAPE.sub("", self.accessLog())):
            method, target, status = m.group(1), m.group(2), int(m.group(3))
            if target == prefix or target.startswith((prefix + "/", prefix + "?")):
                out.append((method, target[len(prefix):], status))
        return out

    def start(self):
        raise NotImplementedError

    def stop(self):
        raise NotImplementedError

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def __repr__(self):
        return "<%s %s>" % (type(self).__name__, self.endpoint or "not started")


class MotoServer(_S3Server):
    """moto's standalone server in a subprocess on a free port.  Accepts
    any credentials; keeps everything in memory."""

    accessKey = "testing"
    secretKey = "testing"

    def __init__(self, startTimeout=30.0):
        self.startTimeout = startTimeout
        self.proc = None
        self.port = None
        self._log = None

    @classmethod
    def unavailableReason(cls):
        missing = [m for m in ("moto", "flask", "flask_cors", "botocore") if importlib.util.find_spec(m) is None]
        if missing:
            return "moto's server needs the PyPI package moto[server] (missing: %s)" % (", ".join(missing),)
        return None

    @property
    def logPath(self):
        return os.path.join(self.root, "moto.log") if self.root else None

    def log(self):
        with open(self.logPath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def accessLog(self):
        return self.log()

    def start(self):
        reason = self.unavailableReason()
        if reason:
            raise RuntimeError(reason)
        self.root = tempfile.mkdtemp(prefix="txregistry-moto-")
        env = dict(os.environ)
        for key in list(env):
            if key.startswith(("AWS_", "MOTO_")):
                del env[key]
        env["AWS_ACCESS_KEY_ID"] = self.accessKey
        env["AWS_SECRET_ACCESS_KEY"] = self.secretKey
        env["AWS_DEFAULT_REGION"] = self.region
        self._log = open(self.logPath, "ab")
        try:
            # A free port can be taken between our probe and moto's bind:
            # try another if the server exits at once.
            for attempt in range(3):
                self.port = freePort()
                self.endpoint = "http://127.0.0.1:%d" % (self.port,)
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                    stdin=subprocess.DEVNULL,
                    stdout=self._log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=self.root,
                    start_new_session=True,
                )
                if self._waitReady():
                    return self
            raise RuntimeError("moto's server did not start:\n" + self.log()[-3000:])
        except BaseException:
            self.stop()
            raise

    def _waitReady(self):
        deadline = time.monotonic() + self.startTimeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if _answers(self.endpoint + "/moto-api/"):
                return True
            time.sleep(0.05)  # polling interval
        raise RuntimeError("moto's server did not answer within %ss:\n%s" % (self.startTimeout, self.log()[-3000:]))

    def stop(self):
        if self.proc is not None:
            procs.terminate(self.proc, 10)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None


class CephRGW(_S3Server):
    """A single-node Ceph cluster serving S3 through radosgw on loopback,
    driven by C{tests/support/ceph-rgw.sh}.

    C{memstoreBytes} is the OSD's capacity (memory is used only for what is
    stored; past 95% of it writes are refused).  C{keep=True} leaves the
    directory (configuration and logs) after C{stop}, for debugging;
    C{TXREGISTRY_KEEP_CEPH=1} in the environment does the same."""

    accessKey = "TXREGISTRYTESTKEY000"
    secretKey = "txregistryTestSecretKey0000000000000000"

    def __init__(self, memstoreBytes=8 << 30, startTimeout=180.0, keep=None):
        self.memstoreBytes = memstoreBytes
        self.startTimeout = startTimeout
        self.keep = keep if keep is not None else bool(os.environ.get("TXREGISTRY_KEEP_CEPH"))
        self.port = None
        self.startSeconds = None
        self._started = False

    @classmethod
    def unavailableReason(cls):
        tools = ("ceph-mon", "ceph-osd", "radosgw", "radosgw-admin", "monmaptool", "ceph", "bash", "python3")
        missing = [t for t in tools if shutil.which(t) is None]
        if missing:
            return "Ceph RGW needs the Debian packages %s (missing: %s)" % (
                " ".join(CEPH_RGW_DEBIAN_PACKAGES),
                ", ".join(missing),
            )
        if importlib.util.find_spec("botocore") is None:
            return "the PyPI package botocore is missing"
        return None

    def _script(self, command, timeout):
        env = dict(os.environ)
        env["MEMSTORE_BYTES"] = str(int(self.memstoreBytes))
        env["ACCESS_KEY"] = self.accessKey
        env["SECRET_KEY"] = self.secretKey
        for key in ("MON_PORT", "RGW_PORT"):
            env.pop(key, None)
        return subprocess.run(
            ["bash", CEPH_RGW_SCRIPT, command, self.root],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )

    def start(self):
        reason = self.unavailableReason()
        if reason:
            raise RuntimeError(reason)
        self.root = tempfile.mkdtemp(prefix="txregistry-rgw-")
        self._started = True
        try:
            result = self._script("start", self.startTimeout)
        except BaseException:
            self.stop()
            raise
        if result.returncode != 0:
            output = result.stdout + result.stderr
            self.stop()
            raise RuntimeError("ceph-rgw.sh start failed (%s):\n%s" % (result.returncode, output[-6000:]))
        values = dict(line.split("=", 1) for line in result.stdout.splitlines() if "=" in line)
        self.endpoint = values["ENDPOINT"]
        self.region = values["REGION"]
        self.port = int(values["RGW_PORT"])
        self.startSeconds = float(values["START_SECONDS"])
        return self

    def pids(self):
        """The pids of the daemons running now (mon, OSD, radosgw)."""
        out = {}
        run = os.path.join(self.root, "run") if self.root else None
        if run and os.path.isdir(run):
            for name in os.listdir(run):
                if name.endswith(".pid"):
                    with open(os.path.join(run, name)) as f:
                        out[name[:-4]] = int(f.read().strip())
        return out

    def logs(self):
        """(file name, last lines) of each daemon's log, while the directory exists."""
        out = []
        if self.root and os.path.isdir(os.path.join(self.root, "log")):
            for name in sorted(os.listdir(os.path.join(self.root, "log"))):
                with open(os.path.join(self.root, "log", name), "rb") as f:
                    out.append((name, f.read()[-4000:].decode("utf-8", "replace")))
        return out

    def accessLog(self):
        # radosgw logs each request (beast's line) at its default level 1.
        try:
            with open(os.path.join(self.root, "log", "client.rgw.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except (OSError, TypeError):
            return ""

    def stop(self):
        if not self._started:
            return
        self._started = False
        try:
            result = self._script("stop", 60)
            if result.returncode != 0:
                raise RuntimeError("ceph-rgw.sh stop failed:\n" + result.stdout + result.stderr)
        finally:
            if not self.keep:
                shutil.rmtree(self.root, ignore_errors=True)
                self.root = None
