"""Fixtures of the mirror tests: an upstream registry (Distribution, or
txregistry itself) and a txregistry mirroring it, as real daemons on
loopback; each test on empty storage, every daemon stopped at its end."""

import json
import os
import shutil

import pytest

from tests.support import procs
from tests.support.required import missing


class Daemons:
    def __init__(self, logDir):
        self.logDir = str(logDir)
        self.started = []

    def add(self, daemon):
        self.started.append(daemon)
        return daemon

    def distribution(self, storage, extraConfig=""):
        """Distribution (Debian's docker-registry), anonymous; its access log
        (one JSON line per request) in its log file."""
        port = procs.freePort()
        os.makedirs(storage, exist_ok=True)
        path = os.path.join(self.logDir, "distribution-%d.yml" % (port,))
        with open(path, "w") as f:
            f.write(
                "version: 0.1\n"
                "log:\n  level: info\n  formatter: json\n"
                "storage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\n"
                "http:\n  addr: 127.0.0.1:%d\n%s" % (storage, port, extraConfig)
            )
        env = dict(os.environ)
        env.pop("REGISTRY_HTTP_ADDR", None)
        return self.add(procs.Daemon([procs.DISTRIBUTION, "serve", path], port,
                                     os.path.join(self.logDir, "distribution-%d.log" % (port,)), env=env))

    def txregistry(self, storage, config=None, env=None, args=()):
        """txregistry on C{storage}, with C{config} (a dict: the dev
        flavor's keys) as its configuration file."""
        extra = dict(env or {})
        if config is not None:
            path = os.path.join(self.logDir, "txregistry-%s.yml" % (len(self.started),))
            with open(path, "w") as f:
                json.dump({"dev": config}, f)  # (JSON is YAML)
            extra["DOCKER_REGISTRY_CONFIG"] = path
        extra.setdefault("LOGLEVEL", "info")
        os.makedirs(storage, exist_ok=True)
        return self.add(procs.startTxregistry(str(storage), self.logDir, env=extra, args=args))

    def stopAll(self):
        for d in reversed(self.started):
            try:
                d.stop()
            except Exception:
                pass


@pytest.fixture
def daemons(tmp_path):
    for tool in ("docker-registry", "skopeo"):
        if shutil.which(tool) is None:
            missing("%s is not installed" % (tool,))
    d = Daemons(tmp_path)
    yield d
    d.stopAll()


def mirrorConfig(upstreamURL, **upstream):
    """A configuration mirroring C{upstreamURL} as the default upstream."""
    u = {"name": "up", "url": upstreamURL, "default": True}
    u.update(upstream)
    return {"mirrors": {"upstreams": [u]}, "search_backend": "none"}
