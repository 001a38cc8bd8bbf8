"""The release: ``python -m build`` makes an sdist and a wheel (the wheel
from the sdist), the wheel installs in a fresh venv, and the daemon started
from there serves pushes and pulls.  pip runs offline on the cached
wheelhouse (L{tests.ship.podman.wheelhouse})."""

import importlib.util
import os
import subprocess
import sys
import tarfile
import zipfile

import txregistry
from tests.e2e import clients, oci
from tests.ship import podman as podmanlib
from tests.support import procs

def offlineEnv(wheels):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") and k != "PYTHONPATH"}
    env.update(PIP_NO_INDEX="1", PIP_FIND_LINKS=wheels, PIP_DISABLE_PIP_VERSION_CHECK="1")
    return env


def venv(path, env):
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(path)], check=True, timeout=120, env=env)
    return os.path.join(str(path), "bin")


def build(source, dist, wheels, tmp_path):
    """``python -m build`` (the test extra), or from a venv of its own
    where this Python lacks it."""
    env = offlineEnv(wheels)
    python = sys.executable
    if importlib.util.find_spec("build") is None:
        tools = venv(tmp_path / "tools", env)
        podmanlib.run([os.path.join(tools, "pip"), "install", "-q", "build"], env=env)
        python = os.path.join(tools, "python")
    podmanlib.run([python, "-m", "build", "--outdir", str(dist), str(source)], env=env, timeout=600)


def test_wheel_in_fresh_venv(tmp_path):
    wheels = podmanlib.wheelhouse()
    source = podmanlib.copySource(str(tmp_path / "source"))
    dist = tmp_path / "dist"
    build(source, dist, wheels, tmp_path)
    version = txregistry.__version__
    names = sorted(os.listdir(dist))
    assert names == ["txregistry-%s-py3-none-any.whl" % version, "txregistry-%s.tar.gz" % version], names

    with tarfile.open(dist / names[1]) as sdist:
        members = {m.split("/", 1)[1] for m in sdist.getnames() if "/" in m}
    for path in ("LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", "setup.py", "Containerfile",
                 "twisted/plugins/txregistry.py", "config/config_sample.yml", "contrib/txregistry.service",
                 "txregistry/__init__.py"):
        assert path in members, path
    with zipfile.ZipFile(dist / names[0]) as wheel:
        files = wheel.namelist()
    assert "twisted/plugins/txregistry.py" in files
    assert "twisted/__init__.py" not in files and "twisted/plugins/__init__.py" not in files
    assert not [f for f in files if f.startswith(("tests/", "benchmarks/"))]
    assert "txregistry-%s.dist-info/licenses/LICENSE" % version in files

    env = offlineEnv(wheels)
    bin_ = venv(tmp_path / "venv", env)
    podmanlib.run([os.path.join(bin_, "pip"), "install", "-q", str(dist / names[0])], env=env, timeout=600)
    run = podmanlib.run([os.path.join(bin_, "txregistry"), "--version"], env=env, cwd=str(tmp_path))
    assert run.stdout.decode().startswith("txregistry %s " % version)

    port = procs.freePort()
    argv = [os.path.join(bin_, "twistd"), "-n", "--pidfile=", "txregistry", "--port",
            "tcp:%d:interface=127.0.0.1" % port, "--storage-path", str(tmp_path / "data")]
    # Not from the source tree: its directory is neither the cwd nor on the path.
    daemon = procs.Daemon(argv, port, str(tmp_path / "daemon.log"), env=env, cwd=str(tmp_path))
    try:
        image = oci.buildImage(str(tmp_path / "src"), tag="1.0", seed=7)
        clients.push("oci:%s:1.0" % (tmp_path / "src"), daemon, "rel/app:1.0")
        clients.pull(daemon, "rel/app:1.0", "oci:%s:1.0" % (tmp_path / "copy"))
        assert oci.resolve(str(tmp_path / "copy"), "1.0")["digest"] == image.manifestDigest
        oci.verifyBlobs(str(tmp_path / "copy"))
    finally:
        daemon.stop()
    # twistd ends by its SIGTERM once it has shut down cleanly.
    assert daemon.proc.returncode in (0, -15) and "Server Shut Down." in daemon.log(), daemon.log()[-3000:]
    where = podmanlib.run([os.path.join(bin_, "python"), "-c", "import txregistry; print(txregistry.__file__)"],
                          env=env, cwd=str(tmp_path)).stdout.decode()
    assert where.startswith(str(tmp_path / "venv")), where
