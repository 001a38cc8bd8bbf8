"""Start and stop real daemons for tests and benchmarks: txregistry under
twistd, and Distribution's registry (Debian's docker-registry).  Readiness
is polled, never slept for."""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)


def freePort():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def terminate(proc, timeout=15, sig=signal.SIGTERM):
    """Stop a subprocess: C{sig}, then SIGKILL if it is still there after
    C{timeout} seconds."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def waitFor(url, proc=None, timeout=30.0, logPath=None, context=None):
    """Poll C{url} until it answers (any HTTP status) or C{timeout};
    C{context}: the SSL context for an https URL."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            log = open(logPath).read() if logPath and os.path.exists(logPath) else ""
            raise RuntimeError("process exited with %s before answering:\n%s" % (proc.returncode, log[-4000:]))
        try:
            urllib.request.urlopen(url, timeout=2, context=context).close()
            return
        except urllib.error.HTTPError:
            return
        except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
            time.sleep(delay)  # polling interval, not a wait for readiness
            delay = min(delay * 2, 0.2)
    raise RuntimeError("%s did not answer within %ss" % (url, timeout))


class Daemon:
    """A subprocess serving a registry on 127.0.0.1:C{port}."""

    def __init__(self, args, port, logPath, env=None, cwd=None, caFile=None):
        self.port = port
        self.url = "%s://127.0.0.1:%d" % ("https" if caFile else "http", port)
        self.host = "127.0.0.1:%d" % (port,)
        self.logPath = logPath
        self.sslContext = ssl.create_default_context(cafile=caFile) if caFile else None
        self._log = open(logPath, "ab")
        self.proc = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, env=env, cwd=cwd, start_new_session=True
        )
        try:
            waitFor(self.url + "/v2/", self.proc, logPath=logPath, context=self.sslContext)
        except Exception:
            self.stop()
            raise

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        with open(self.logPath, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def syncLog(self, timeout=10):
        """The log once the access lines of every request answered so far
        are in it (txregistry holds access lines for a few milliseconds to
        write them together): a marker request is sent, and its own line
        polled for.  Needs the access log on (loglevel info or debug)."""
        mark = "/txregistry-log-mark/%s" % (uuid.uuid4().hex,)
        try:
            urllib.request.urlopen(self.url + mark, timeout=timeout, context=self.sslContext).close()
        except urllib.error.HTTPError:
            pass
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()
            if mark in text or time.monotonic() > deadline:
                return text
            time.sleep(0.01)  # polling interval

    def stop(self, sig=signal.SIGTERM, timeout=15):
        terminate(self.proc, timeout, sig)
        self._log.close()

    def kill(self):
        self.stop(signal.SIGKILL)


def twistdEnv(extra=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = REPO + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    for key in ("STORAGE_PATH", "SETTINGS_FLAVOR", "DOCKER_REGISTRY_CONFIG", "REGISTRY_PORT", "LOGLEVEL", "LOG_FORMAT"):
        env.pop(key, None)
    # One process unless the test (or $TXREGISTRY_TEST_WORKERS) asks for
    # more: tests/daemon/test_workers.py and the end-to-end tests run several.
    env["WORKERS"] = os.environ.get("TXREGISTRY_TEST_WORKERS", "1")
    env.update(extra or {})
    return env


def startTxregistry(storagePath, logDir, port=None, args=(), env=None, tls=None):
    """txregistry under ``twistd -n``, on 127.0.0.1, storing in C{storagePath};
    over TLS with C{tls} (the paths of L{tests.support.pki.makePKI})."""
    port = port or freePort()
    twistd = os.path.join(BIN, "twistd")
    listen = "tcp:%d:interface=127.0.0.1" % (port,)
    if tls:
        listen = "ssl:%d:interface=127.0.0.1:privateKey=%s:certKey=%s" % (port, tls["key"], tls["cert"])
    argv = [twistd, "-n", "--pidfile=", "txregistry", "--port", listen, "--storage-path", storagePath] + list(args)
    return Daemon(argv, port, os.path.join(logDir, "txregistry-%d.log" % (port,)), env=twistdEnv(env), cwd=REPO,
                  caFile=tls["ca"] if tls else None)


def s3env(server, bucket, **extra):
    """The classic environment of the s3 flavor, for C{bucket} on C{server}
    (a L{tests.support.s3servers} server)."""
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


def startTxregistryOnS3(server, bucket, logDir, port=None, name=None, **extra):
    """txregistry started as the classic command line says (no
    --storage-path: STORAGE_PATH is the key prefix), on 127.0.0.1.

    Its log is C{txregistry-s3-NAME.log} in C{logDir} and, unless C{extra}
    names a C{SQLALCHEMY_INDEX_DATABASE}, its search index the SQLite file
    C{index-NAME.db} there; NAME is C{name}, else the port (so a daemon
    started again on the same port keeps its index, as a restarted one
    would)."""
    port = port or freePort()
    name = name or str(port)
    argv = [os.path.join(BIN, "twistd"), "-n", "--pidfile=", "txregistry",
            "--port", "tcp:%d:interface=127.0.0.1" % (port,)]
    env = twistdEnv(s3env(server, bucket, **extra))
    if "SQLALCHEMY_INDEX_DATABASE" not in extra:
        env["SQLALCHEMY_INDEX_DATABASE"] = "sqlite:///%s/index-%s.db" % (logDir, name)
    return Daemon(argv, port, os.path.join(str(logDir), "txregistry-s3-%s.log" % (name,)), env=env, cwd=REPO)


DISTRIBUTION = shutil.which("docker-registry") or "/usr/bin/docker-registry"


def startDistribution(storagePath, logDir, port=None):
    """Debian's docker-registry (Distribution 2.8) on the same layout."""
    port = port or freePort()
    configPath = os.path.join(logDir, "distribution-%d.yml" % (port,))
    with open(configPath, "w") as f:
        f.write(
            "version: 0.1\n"
            "log:\n  level: warn\n"
            "storage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\n"
            "http:\n  addr: 127.0.0.1:%d\n" % (storagePath, port)
        )
    env = dict(os.environ)
    env.pop("REGISTRY_HTTP_ADDR", None)
    return Daemon(
        [DISTRIBUTION, "serve", configPath], port, os.path.join(logDir, "distribution-%d.log" % (port,)), env=env
    )


KINDS = ("txregistry", "distribution")
STARTERS = {"txregistry": startTxregistry, "distribution": startDistribution}


def selectedKinds(variable):
    """The registries a comparative test runs against: both, unless the
    environment variable C{variable} names one ("txregistry",
    "distribution")."""
    wanted = os.environ.get(variable)
    if not wanted:
        return KINDS
    return tuple(k for k in KINDS if k in wanted.replace(",", " ").split())


def processStats(pid):
    """Current and peak RSS (bytes) and bytes written to storage so far."""
    out = {}
    with open("/proc/%d/status" % (pid,)) as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                out[line.split(":")[0]] = int(line.split()[1]) * 1024
    with open("/proc/%d/io" % (pid,)) as f:
        for line in f:
            key, value = line.split(":")
            out[key] = int(value)
    return out
