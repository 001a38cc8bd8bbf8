"""contrib/push_images.sh: tag local images for a registry and push them,
run for real through the docker CLI (podman's Docker API) against
txregistry."""

import json
import os
import subprocess

from tests.docker import images
from tests.support import procs

SCRIPT = os.path.join(procs.REPO, "contrib", "push_images.sh")


def script(host, *args, env=None):
    """Run the script in the engine's environment (DOCKER_HOST set, docker
    and podman on PATH); returns the completed process."""
    return subprocess.run([SCRIPT] + [str(a) for a in args], capture_output=True, text=True, timeout=180,
                          env=host.env(env), stdin=subprocess.DEVNULL)


def localImages(cli, tmp_path, *names):
    built = {}
    for i, name in enumerate(names):
        image = images.buildImage(tmp_path / ("layout-%d" % i), tag="src", layers=1)
        cli.loadLayout(image.layout, "src", name)
        built[name] = image
    return built


def configOf(cli, registry, ref):
    """The config digest of C{ref} in C{registry}, or None if absent."""
    proc = cli.skopeo("inspect", "--raw", "--tls-verify=false", "docker://%s/%s" % (registry.host, ref), check=False)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout)["config"]["digest"]


def test_help(podmanHost):
    proc = script(podmanHost, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: push_images.sh [OPTIONS] IMAGE...")
    for word in ("--registry", "--engine", "--insecure", "--dry-run", "PUSH_IMAGES_REGISTRY", "PUSH_IMAGES_ENGINE",
                 "127.0.0.1:5000", "docker", "podman"):
        assert word in proc.stdout
    assert script(podmanHost, "-h").stdout == proc.stdout


def test_usageErrors(podmanHost):
    for args, message in (
        ((), "no IMAGE given"),
        (("--frobnicate", "a"), "unknown option: --frobnicate"),
        (("--engine", "rkt", "a"), "unknown engine: 'rkt'"),
        (("--registry", "host/path", "a"), "bad registry"),
        (("--registry",), "--registry needs a value"),
    ):
        proc = script(podmanHost, *args)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert message in proc.stderr, (args, proc.stderr)
        assert proc.stdout == ""


def test_dryRunNames(podmanHost):
    """The registry host of each image is replaced; no tag means latest;
    the default registry is 127.0.0.1:5000."""
    proc = script(podmanHost, "--dry-run", "--engine", "docker",
                  "localhost/app:1", "quay.io/team/tool", "plain", "localhost:5000/x/y@sha256:" + "0" * 64,
                  "ns/name:2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "docker tag localhost/app:1 127.0.0.1:5000/app:1",
        "docker push 127.0.0.1:5000/app:1",
        "docker tag quay.io/team/tool 127.0.0.1:5000/team/tool:latest",
        "docker push 127.0.0.1:5000/team/tool:latest",
        "docker tag plain 127.0.0.1:5000/plain:latest",
        "docker push 127.0.0.1:5000/plain:latest",
        "docker tag localhost:5000/x/y@sha256:%s 127.0.0.1:5000/x/y:latest" % ("0" * 64,),
        "docker push 127.0.0.1:5000/x/y:latest",
        "docker tag ns/name:2 127.0.0.1:5000/ns/name:2",
        "docker push 127.0.0.1:5000/ns/name:2",
    ]
    proc = script(podmanHost, "-n", "-e", "podman", "-k", "app:3", env={"PUSH_IMAGES_REGISTRY": "reg.example:8443"})
    assert proc.stdout.splitlines() == [
        "podman tag app:3 reg.example:8443/app:3",
        "podman push --tls-verify=false reg.example:8443/app:3",
    ]


def test_pushesWithDocker(cli, registry, tmp_path):
    built = localImages(cli, tmp_path, "localhost/txr-batch-a:1", "localhost/team/txr-batch-b:2")
    mark = registry.access.mark()

    proc = script(cli, "--registry", registry.host, *built)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    # docker answers through DOCKER_HOST, so the script chose it.
    assert "pushing localhost/txr-batch-a:1 as %s/txr-batch-a:1 with docker" % (registry.host,) in proc.stdout
    assert "pushed %s/team/txr-batch-b:2" % (registry.host,) in proc.stdout
    assert configOf(cli, registry, "txr-batch-a:1") == built["localhost/txr-batch-a:1"].configDigest
    assert configOf(cli, registry, "team/txr-batch-b:2") == built["localhost/team/txr-batch-b:2"].configDigest
    manifests = [r for r in registry.access.requests(mark) if r[0] == "PUT" and "/manifests/" in r[1]]
    assert manifests == [("PUT", "/v2/txr-batch-a/manifests/1", 201), ("PUT", "/v2/team/txr-batch-b/manifests/2", 201)]
    # The tags made for the push stay in the engine.
    names = cli.imageNames()
    assert "%s/txr-batch-a:1" % (registry.host,) in names
    assert "%s/team/txr-batch-b:2" % (registry.host,) in names


def test_registryAndEngineFromEnvironment(cli, registry, tmp_path):
    built = localImages(cli, tmp_path, "localhost/txr-env:1")
    proc = script(cli, "localhost/txr-env:1",
                  env={"PUSH_IMAGES_REGISTRY": registry.host, "PUSH_IMAGES_ENGINE": "docker"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "with docker" in proc.stdout
    assert configOf(cli, registry, "txr-env:1") == built["localhost/txr-env:1"].configDigest
    # The option wins over the environment.
    proc = script(cli, "--registry", registry.host, "--dry-run", "localhost/txr-env:1",
                  env={"PUSH_IMAGES_REGISTRY": "elsewhere:1", "PUSH_IMAGES_ENGINE": "docker"})
    assert proc.stdout.splitlines()[0] == "docker tag localhost/txr-env:1 %s/txr-env:1" % (registry.host,)


def test_failingImageIsNamed(cli, registry, tmp_path):
    """One missing image: the others are still pushed, the exit status is
    1 and stderr names the one that failed."""
    built = localImages(cli, tmp_path, "localhost/txr-good-a:1", "localhost/txr-good-b:1")
    proc = script(cli, "--engine", "docker", "--registry", registry.host,
                  "localhost/txr-good-a:1", "localhost/txr-missing:9", "localhost/txr-good-b:1")

    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert "push_images.sh: failed to push localhost/txr-missing:9 (as %s/txr-missing:9)" % (registry.host,) in lines
    assert lines[-1] == "push_images.sh: 1 of 3 image(s) failed: localhost/txr-missing:9"
    assert "txr-good" not in proc.stderr.replace("failed:", "")
    for name in ("txr-good-a", "txr-good-b"):
        assert configOf(cli, registry, name + ":1") == built["localhost/%s:1" % (name,)].configDigest
    assert configOf(cli, registry, "txr-missing:9") is None


def test_unreachableRegistryFails(cli, registry, tmp_path):
    """The push itself fails (nothing listens there): exit 1, image named."""
    localImages(cli, tmp_path, "localhost/txr-nowhere:1")
    nowhere = "127.0.0.1:%d" % (procs.freePort(),)
    proc = script(cli, "--engine", "docker", "--registry", nowhere, "localhost/txr-nowhere:1")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "failed to push localhost/txr-nowhere:1 (as %s/txr-nowhere:1)" % (nowhere,) in proc.stderr
    assert proc.stderr.splitlines()[-1] == "push_images.sh: 1 of 1 image(s) failed: localhost/txr-nowhere:1"


def test_pushesWithPodman(cli, registry, tmp_path):
    built = localImages(cli, tmp_path, "localhost/txr-podman-batch:1")
    proc = script(cli, "--engine", "podman", "--insecure", "--registry", registry.host, "localhost/txr-podman-batch:1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "with podman" in proc.stdout
    assert configOf(cli, registry, "txr-podman-batch:1") == built["localhost/txr-podman-batch:1"].configDigest
