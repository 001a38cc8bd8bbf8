"""podman with a ``registries.conf`` mirror entry for docker.io pulls
through txregistry (there is no internet here: the pull works only through
the mirror), and so does the docker CLI through podman's Docker-compatible
service; once the upstream is stopped the cached image still pulls."""

import json

import pytest

from tests.docker import engine, images
from tests.mirror.conftest import mirrorConfig
from tests.support.required import missing

REGISTRIES = """\
unqualified-search-registries = ["docker.io"]
[[registry]]
prefix = "docker.io"
location = "docker.io"
[[registry.mirror]]
location = "127.0.0.1:%d"
insecure = true
"""


@pytest.fixture
def podman(tmp_path):
    if engine.missingTools():
        missing("podman, skopeo and docker are needed")
    host = engine.PodmanHost(tmp_path / "podman", 0)
    yield host
    host.cleanup()


def test_podmanAndDockerPullThroughMirror(daemons, podman, tmp_path):
    upstream = daemons.distribution(str(tmp_path / "up"))
    built = images.buildImage(tmp_path / "layout", tag="src")
    podman.skopeo("copy", "--dest-tls-verify=false", "oci:%s:src" % (built.layout,),
                  "docker://%s/library/app:v1" % (upstream.host,))
    mirror = daemons.txregistry(tmp_path / "mirror", mirrorConfig(upstream.url, tags_ttl=0))
    with open(podman.registriesConf, "w") as f:
        f.write(REGISTRIES % (mirror.port,))

    podman.podman("pull", "--quiet", "docker.io/library/app:v1")
    info = json.loads(podman.podman("image", "inspect", "docker.io/library/app:v1").stdout)[0]
    assert info["Id"] == built.configDigest.split(":", 1)[1]
    assert info["RootFS"]["Layers"] == built.diffIDs
    log = mirror.syncLog()
    assert "GET /v2/library/app/manifests/v1 HTTP/1.1\" 200" in log

    # The docker CLI, through podman's service (which reads the same registries.conf).
    podman.podman("rmi", "--all", "--force")
    podman.start()
    podman.docker("pull", "app:v1")
    assert podman.inspect("docker.io/library/app:v1")["Id"].endswith(built.configDigest.split(":", 1)[1])

    # Offline: the upstream is gone, the cached image still pulls.
    upstream.stop()
    podman.podman("rmi", "--all", "--force")
    podman.podman("pull", "--quiet", "docker.io/library/app:v1")
    assert "serving what is cached" in mirror.syncLog()
