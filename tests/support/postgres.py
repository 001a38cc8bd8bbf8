"""A private PostgreSQL server for tests: its own data directory and port on
127.0.0.1, run as the ``postgres`` user when the tests run as root."""

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

from tests.support.procs import freePort


def _bindir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return os.path.dirname(found[-1]) if found else None


def available():
    return _bindir() is not None


class PostgresServer:
    def __init__(self):
        self.bindir = _bindir()
        if self.bindir is None:
            raise RuntimeError("PostgreSQL is not installed (Debian package postgresql)")
        self.root = tempfile.mkdtemp(prefix="txregistry-pg-")
        self.data = os.path.join(self.root, "data")
        self.port = freePort()
        self.user = None
        if os.getuid() == 0:
            self.user = pwd.getpwnam("postgres")
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        self._run(["initdb", "-D", self.data, "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"])
        self.url = "postgresql+psycopg2://postgres@127.0.0.1:%d/postgres" % (self.port,)

    def _run(self, args, check=True):
        argv = [os.path.join(self.bindir, args[0])] + args[1:]
        kwargs = {}
        if self.user is not None:
            kwargs = {"user": self.user.pw_uid, "group": self.user.pw_gid, "extra_groups": []}
        return subprocess.run(argv, check=check, capture_output=True, text=True, cwd=self.root, **kwargs)

    def start(self):
        self._run(
            [
                "pg_ctl", "-D", self.data, "-l", os.path.join(self.root, "log"), "-w", "-t", "60",
                "-o", "-p %d -k %s -c listen_addresses=127.0.0.1 -c fsync=off" % (self.port, self.root),
                "start",
            ]
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)  # polling for the port
        raise RuntimeError("PostgreSQL did not start")

    def stop(self):
        self._run(["pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop"], check=False)

    def destroy(self):
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
