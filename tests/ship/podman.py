"""Build and run txregistry's container image with podman, on a machine
without internet and without systemd.

- The base image is a minimal Debian with python3 made by
  C{contrib/debian-base.sh} (mmdebstrap, from the apt sources this machine
  uses) and imported with C{podman import}; the root file system tarball is
  cached between runs (L{cacheDir}), keyed by the script and the sources.
- The project's dependencies come from a wheelhouse that this machine's pip
  downloads (with its own index configuration) and that is cached the same
  way, keyed by C{setup.py} and C{pyproject.toml}; C{podman build} runs with
  C{--network none} and the wheelhouse mounted.
- podman runs with its own configuration and storage in a temporary
  directory: runc (crun refuses this machine's hybrid cgroups), cgroupfs,
  no systemd, and resource limits it may set here (no CAP_SYS_RESOURCE).
"""

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from tests.support import procs

PODMAN = shutil.which("podman") or "/usr/bin/podman"
RUNC = shutil.which("runc") or "/usr/bin/runc"
MMDEBSTRAP = shutil.which("mmdebstrap") or "/usr/bin/mmdebstrap"
SKOPEO = shutil.which("skopeo") or "/usr/bin/skopeo"
BASE_SCRIPT = os.path.join(procs.REPO, "contrib", "debian-base.sh")
APT_SOURCES = "/etc/apt/sources.list.d/debian.sources"
BASE_TAG = "localhost/txregistry-base:bookworm"
IMAGE_TAG = "localhost/txregistry:test"

# What a fresh Debian machine needs, for tests/bootstrap.sh.
DEBIAN_PACKAGES = ("podman", "runc", "skopeo", "mmdebstrap")


class CommandError(AssertionError):
    pass


def missingTools():
    if os.geteuid() != 0:
        return ["root (rootful podman, mmdebstrap)"]
    return [p for p in (PODMAN, RUNC, MMDEBSTRAP, SKOPEO) if not os.access(p, os.X_OK)]


def cacheDir():
    """Where base root file systems and wheelhouses are kept between runs:
    C{$TXREGISTRY_SHIP_CACHE}, else C{~/.cache/txregistry-ship}."""
    path = os.environ.get("TXREGISTRY_SHIP_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "txregistry-ship")
    os.makedirs(path, exist_ok=True)
    return path


def _key(*paths):
    h = hashlib.sha256()
    for path in paths:
        h.update(path.encode() + b"\0")
        if os.path.exists(path):
            with open(path, "rb") as f:
                h.update(f.read())
    return h.hexdigest()[:16]


def run(argv, env=None, timeout=600, check=True, **kwargs):
    proc = subprocess.run(argv, env=env, capture_output=True, timeout=timeout, **kwargs)
    if check and proc.returncode != 0:
        raise CommandError(
            "%s exited %d\nstdout: %s\nstderr: %s"
            % (" ".join(argv), proc.returncode, proc.stdout.decode(errors="replace")[-4000:],
               proc.stderr.decode(errors="replace")[-4000:])
        )
    return proc


SOURCE_IGNORE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "*.pyc",
                                       ".pytest_cache", ".hypothesis", "_trial_temp", "dropin.cache", "tests.*")


def copySource(dest):
    """The worktree's sources (no venv, caches or build output) at C{dest}."""
    shutil.copytree(procs.REPO, dest, ignore=SOURCE_IGNORE, symlinks=True)
    return dest


def _dropStale(current, prefix):
    """Remove what the cache holds for older keys (not partial ones: another
    run may be making them)."""
    for name in os.listdir(cacheDir()):
        path = os.path.join(cacheDir(), name)
        if name.startswith(prefix) and path != current and "partial" not in name:
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)


def baseRootfs():
    """The cached tarball of the base root file system, made on a miss (about
    half a minute to two minutes, from the apt mirror)."""
    mirror = APT_SOURCES if os.path.exists(APT_SOURCES) else "http://deb.debian.org/debian"
    path = os.path.join(cacheDir(), "debian-base-%s.tar" % (_key(BASE_SCRIPT, mirror),))
    if not os.path.exists(path):
        partial = "%s.partial-%d.tar" % (path[:-4], os.getpid())
        try:
            run(["sh", BASE_SCRIPT, partial, "bookworm", mirror], timeout=1200)
            os.rename(partial, path)
            _dropStale(path, "debian-base-")
        finally:
            if os.path.exists(partial):
                os.unlink(partial)
    return path


def wheelhouse():
    """The cached directory of the wheels txregistry needs (and setuptools
    for its build), downloaded by this machine's pip on a miss."""
    key = _key(os.path.join(procs.REPO, "setup.py"), os.path.join(procs.REPO, "pyproject.toml"))
    path = os.path.join(cacheDir(), "wheels-%s" % (key,))
    if not os.path.isdir(path):
        partial = tempfile.mkdtemp(prefix="wheels-partial-", dir=cacheDir())
        source = tempfile.mkdtemp(prefix="txregistry-source-")
        try:
            # From a copy: setuptools writes its egg-info beside setup.py.
            copySource(os.path.join(source, "tree"))
            run([sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check", "--dest", partial,
                 "--only-binary=:all:", os.path.join(source, "tree"), "setuptools>=61", "wheel", "build"],
                timeout=900)
            for name in os.listdir(partial):
                if name.startswith("txregistry-"):
                    os.unlink(os.path.join(partial, name))
            try:
                os.rename(partial, path)
            except OSError:
                if not os.path.isdir(path):  # else another run made it meanwhile
                    raise
            _dropStale(path, "wheels-")
        finally:
            shutil.rmtree(partial, ignore_errors=True)
            shutil.rmtree(source, ignore_errors=True)
    return path


class Podman:
    """podman with its configuration, storage and temporary files under
    C{root}."""

    def __init__(self, root):
        self.root = str(root)
        self.graphRoot = os.path.join(self.root, "graph")
        self.runRoot = os.path.join(self.root, "run")
        self.tmpDir = os.path.join(self.root, "tmp")
        for path in (self.graphRoot, self.runRoot, self.tmpDir):
            os.makedirs(path, exist_ok=True)
        self.storageConf = os.path.join(self.root, "storage.conf")
        self.containersConf = os.path.join(self.root, "containers.conf")
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
        nofile = 65536 if nofile == resource.RLIM_INFINITY else min(nofile, 65536)
        nproc = 4096 if nproc == resource.RLIM_INFINITY else min(nproc // 2, 4096)
        with open(self.storageConf, "w") as f:
            f.write('[storage]\ndriver = "overlay"\nrunroot = %s\ngraphroot = %s\n'
                    % (json.dumps(self.runRoot), json.dumps(self.graphRoot)))
        with open(self.containersConf, "w") as f:
            f.write(
                "[containers]\n"
                "default_ulimits = %s\n"
                "[engine]\n"
                "runtime = %s\n"
                'cgroup_manager = "cgroupfs"\n'
                'events_logger = "file"\n'
                "events_logfile_path = %s\n"
                "tmp_dir = %s\n"
                "volume_path = %s\n"
                % (
                    json.dumps(["nofile=%d:%d" % (nofile, nofile), "nproc=%d:%d" % (nproc, nproc)]),
                    json.dumps(RUNC),
                    json.dumps(os.path.join(self.root, "events.log")),
                    json.dumps(self.tmpDir),
                    json.dumps(os.path.join(self.graphRoot, "volumes")),
                )
            )

    def env(self):
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CONTAINERS_", "CONTAINER_", "DOCKER_", "REGISTRY_AUTH"))}
        env.update(CONTAINERS_CONF=self.containersConf, CONTAINERS_STORAGE_CONF=self.storageConf)
        return env

    def __call__(self, *args, timeout=600, check=True):
        return run([PODMAN] + list(args), env=self.env(), timeout=timeout, check=check)

    def output(self, *args, **kwargs):
        return self(*args, **kwargs).stdout.decode().strip()

    def importBase(self, tarball, tag=BASE_TAG):
        self("import", "--change", 'CMD ["/bin/sh"]', tarball, tag)
        return tag

    def build(self, wheels, base=BASE_TAG, tag=IMAGE_TAG):
        """C{podman build} of the worktree's Containerfile on C{base}, with
        no network: pip installs from C{wheels}."""
        self("build", "--format", "docker", "--network", "none", "--pull=never",
             "--build-arg", "BASE=" + base,
             "--build-arg", "PIP_NO_INDEX=1", "--build-arg", "PIP_FIND_LINKS=/wheels",
             "--volume", "%s:/wheels:ro" % (wheels,),
             "-f", os.path.join(procs.REPO, "Containerfile"), "-t", tag, procs.REPO, timeout=1200)
        return tag

    def cleanup(self):
        self("rm", "--all", "--force", "--volumes", "--time", "5", check=False, timeout=120)
        self("rmi", "--all", "--force", check=False, timeout=300)
        shutil.rmtree(self.root, ignore_errors=True)


class Container:
    """A running container serving the registry on 127.0.0.1:C{port} of
    this machine."""

    def __init__(self, podman, runArgs, port, timeout=60):
        self.podman = podman
        self.port = port
        self.host = "127.0.0.1:%d" % (port,)
        self.url = "http://" + self.host
        self.id = podman.output("run", "-d", *runArgs)
        deadline = time.monotonic() + timeout
        while True:
            if not self.running():
                raise CommandError("the container exited with %s:\n%s" % (self.exitCode(), self.logs()))
            try:
                procs.waitFor(self.url + "/health", timeout=2)
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise CommandError("the container did not answer within %ss:\n%s" % (timeout, self.logs()))

    def inspect(self, fmt):
        return self.podman.output("inspect", "--format", fmt, self.id)

    def running(self):
        return self.inspect("{{.State.Running}}") == "true"

    def exitCode(self):
        return int(self.inspect("{{.State.ExitCode}}"))

    def logs(self):
        proc = self.podman("logs", self.id, check=False)
        return (proc.stdout + proc.stderr).decode(errors="replace")

    def kill(self, signal):
        self.podman("kill", "--signal", signal, self.id)

    def remove(self):
        self.podman("rm", "--force", "--volumes", "--time", "5", self.id, check=False)
