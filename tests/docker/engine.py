"""podman as a Docker-compatible engine for end-to-end tests, on a machine
with no Docker engine: ``podman system service`` on a unix socket in a
temporary directory, with its own storage (vfs), run root, temporary
directory, network configuration and ``registries.conf``, and the real
docker CLI pointed at it with ``DOCKER_HOST``.

A running ``podman system service`` reads ``registries.conf`` once and
caches it, so the registry port it treats as plain HTTP is fixed for the
life of the service: tests start each fresh registry on L{PodmanHost.port},
and L{PodmanHost.restart} moves the service to another port if that one
was taken meanwhile.
"""

import http.client
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

from tests.support import procs

DOCKER = shutil.which("docker") or "/usr/bin/docker"
PODMAN = shutil.which("podman") or "/usr/bin/podman"
SKOPEO = shutil.which("skopeo") or "/usr/bin/skopeo"

# Variables of the caller's environment that would point a client somewhere
# else than the engine and registry of the test.
FOREIGN_ENV = (
    "DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONFIG",
    "DOCKER_API_VERSION", "CONTAINER_HOST", "CONTAINER_CONNECTION", "CONTAINERS_CONF",
    "CONTAINERS_STORAGE_CONF", "CONTAINERS_REGISTRIES_CONF", "REGISTRY_AUTH_FILE",
    "PUSH_IMAGES_REGISTRY", "PUSH_IMAGES_ENGINE",
)


class CommandError(AssertionError):
    """A client exited non-zero where the test wanted success."""


def missingTools():
    return [path for path in (DOCKER, PODMAN, SKOPEO) if not os.access(path, os.X_OK)]


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path, timeout=2):
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self._path)
        self.sock = sock


def pingEngine(socketPath):
    """True if the engine behind C{socketPath} answers C{GET /_ping}."""
    conn = _UnixHTTPConnection(socketPath)
    try:
        conn.request("GET", "/_ping")
        response = conn.getresponse()
        return response.status == 200 and response.read().strip() == b"OK"
    except OSError:
        return False
    finally:
        conn.close()


class PodmanHost:
    """Configuration files, storage and the API service of one podman, all
    under C{root}; L{docker}, L{podman} and L{skopeo} run the real clients
    against it."""

    def __init__(self, root, port):
        self.root = str(root)
        self.port = port
        self.graphRoot = os.path.join(self.root, "graphroot")
        self.runRoot = os.path.join(self.root, "runroot")
        self.tmpDir = os.path.join(self.root, "tmp")
        self.networkDir = os.path.join(self.root, "networks")
        self.dockerConfig = os.path.join(self.root, "docker-config")
        self.socketPath = os.path.join(self.root, "podman.sock")
        self._socketDir = None
        if len(self.socketPath) > 100:  # sun_path holds 108 bytes
            self._socketDir = tempfile.mkdtemp(prefix="txr-podman-")
            self.socketPath = os.path.join(self._socketDir, "podman.sock")
        self.logPath = os.path.join(self.root, "podman-service.log")
        for path in (self.graphRoot, self.runRoot, self.tmpDir, self.networkDir, self.dockerConfig):
            os.makedirs(path, exist_ok=True)
        self.storageConf = os.path.join(self.root, "storage.conf")
        self.containersConf = os.path.join(self.root, "containers.conf")
        self.registriesConf = os.path.join(self.root, "registries.conf")
        self.authFile = os.path.join(self.root, "auth.json")
        self.proc = None
        self._log = None
        self.writeConfig()

    # Configuration ----------------------------------------------------------

    @property
    def registryHost(self):
        return "127.0.0.1:%d" % (self.port,)

    def writeConfig(self):
        with open(self.storageConf, "w") as f:
            f.write(
                "# rootful podman without overlay support\n"
                "[storage]\n"
                'driver = "vfs"\n'
                "runroot = %s\n"
                "graphroot = %s\n" % (json.dumps(self.runRoot), json.dumps(self.graphRoot))
            )
        with open(self.containersConf, "w") as f:
            f.write(
                "# no systemd on these machines; keep every path of this engine in %s\n"
                "[containers]\n"
                'netns = "host"\n'
                "[engine]\n"
                'cgroup_manager = "cgroupfs"\n'
                'events_logger = "file"\n'
                "events_logfile_path = %s\n"
                "tmp_dir = %s\n"
                "static_dir = %s\n"
                "volume_path = %s\n"
                "[network]\n"
                "network_config_dir = %s\n"
                % (
                    self.root,
                    json.dumps(os.path.join(self.root, "events.log")),
                    json.dumps(self.tmpDir),
                    json.dumps(os.path.join(self.graphRoot, "libpod")),
                    json.dumps(os.path.join(self.graphRoot, "volumes")),
                    json.dumps(self.networkDir),
                )
            )
        with open(self.registriesConf, "w") as f:
            f.write(
                "# plain HTTP to the test registry on loopback\n"
                'unqualified-search-registries = ["127.0.0.1:%(port)d"]\n'
                "[[registry]]\n"
                'location = "127.0.0.1:%(port)d"\n'
                "insecure = true\n"
                "[[registry]]\n"
                'location = "localhost:%(port)d"\n'
                "insecure = true\n" % {"port": self.port}
            )
        with open(self.authFile, "w") as f:
            f.write('{"auths": {}}\n')
        with open(os.path.join(self.dockerConfig, "config.json"), "w") as f:
            f.write('{"auths": {}}\n')

    def env(self, extra=None):
        env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV}
        env.update(
            CONTAINERS_CONF=self.containersConf,
            CONTAINERS_STORAGE_CONF=self.storageConf,
            CONTAINERS_REGISTRIES_CONF=self.registriesConf,
            REGISTRY_AUTH_FILE=self.authFile,
            DOCKER_HOST="unix://" + self.socketPath,
            DOCKER_CONFIG=self.dockerConfig,
            DOCKER_CLI_HINTS="false",
        )
        env.update(extra or {})
        return env

    # The API service ----------------------------------------------------------

    def start(self, timeout=30.0):
        if os.path.exists(self.socketPath):
            os.unlink(self.socketPath)
        self._log = open(self.logPath, "ab")
        self.proc = subprocess.Popen(
            [PODMAN, "system", "service", "--time=0", "unix://" + self.socketPath],
            stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            env=self.env(), start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        delay = 0.02
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("podman system service exited with %s:\n%s" % (self.proc.returncode, self.log()))
            if os.path.exists(self.socketPath) and pingEngine(self.socketPath):
                return
            time.sleep(delay)  # polling interval, not a wait for readiness
            delay = min(delay * 2, 0.2)
        self.stop()
        raise RuntimeError("podman system service did not answer on %s within %ss" % (self.socketPath, timeout))

    def stop(self, timeout=20):
        if self.proc is not None:
            procs.terminate(self.proc, timeout)
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def restart(self, port):
        """Serve plain HTTP to a registry on C{port} instead."""
        self.stop()
        self.port = port
        self.writeConfig()
        self.start()

    def log(self, tail=6000):
        try:
            with open(self.logPath, "rb") as f:
                return f.read().decode("utf-8", "replace")[-tail:]
        except OSError:
            return ""

    def cleanup(self):
        """Remove this engine's storage (vfs keeps whole copies of layers)."""
        self.stop()
        for path in (self.graphRoot, self.runRoot, self.tmpDir, self._socketDir):
            if path:
                shutil.rmtree(path, ignore_errors=True)

    # Clients ------------------------------------------------------------------

    def run(self, argv, check=True, timeout=120, env=None, input=None):
        """Run C{argv} in this engine's environment; returns the completed
        process (text).  With C{check}, a non-zero exit fails the test with
        the command's output."""
        proc = subprocess.run(
            [str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
            env=self.env(env), input=input, stdin=None if input is not None else subprocess.DEVNULL,
        )
        if check and proc.returncode != 0:
            raise CommandError(
                "%s exited %d\nstdout: %s\nstderr: %s"
                % (" ".join(str(a) for a in argv), proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:])
            )
        return proc

    def docker(self, *args, **kw):
        return self.run([DOCKER] + list(args), **kw)

    def podman(self, *args, **kw):
        return self.run([PODMAN] + list(args), **kw)

    def skopeo(self, *args, **kw):
        return self.run([SKOPEO, "--insecure-policy"] + list(args), **kw)

    def removeAllImages(self):
        self.podman("rmi", "--all", "--force", check=False)

    def imageNames(self):
        """Every C{repository:tag} the engine holds, as C{docker images} lists them."""
        out = self.docker("images", "--format", "{{.Repository}}:{{.Tag}}").stdout
        return sorted(line for line in out.splitlines() if line.strip())

    def inspect(self, ref):
        return json.loads(self.docker("image", "inspect", ref).stdout)[0]

    def loadLayout(self, layoutPath, tag, name):
        """Copy the image C{tag} of the OCI layout at C{layoutPath} into this
        engine's storage as the local image C{name} (e.g. C{localhost/app:1})."""
        self.skopeo("copy", "--quiet", "oci:%s:%s" % (layoutPath, tag), "containers-storage:" + name)
