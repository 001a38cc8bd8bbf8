"""``txregistry mirror prefetch``: images fetched into storage before any
pull, with progress; then served with the upstream gone."""

import json
import os
import subprocess

from tests.e2e import clients, oci
from tests.mirror.conftest import mirrorConfig
from tests.support import procs


def prefetch(configPath, storage, *images):
    env = procs.twistdEnv({"DOCKER_REGISTRY_CONFIG": configPath})
    return subprocess.run([os.path.join(procs.BIN, "txregistry"), "mirror", "prefetch", "--storage-path",
                           str(storage)] + list(images), capture_output=True, text=True, env=env, timeout=120,
                          cwd=procs.REPO)


def test_prefetchThenOffline(daemons, tmp_path):
    upstream = daemons.distribution(str(tmp_path / "up"))
    src, multiSrc = str(tmp_path / "src"), str(tmp_path / "multi")
    image = oci.buildImage(src, tag="v1", layers=2)
    multi = oci.buildMultiArch(multiSrc, tag="m")
    clients.push("oci:%s:v1" % (src,), upstream, "library/app:v1")
    clients.push("oci:%s:m" % (multiSrc,), upstream, "tools/multi:m", "--all")
    configPath = str(tmp_path / "mirror.yml")
    config = mirrorConfig(upstream.url)
    config["search_backend"] = "sqlalchemy"
    config["sqlalchemy_index_database"] = "sqlite:///%s/index.db" % (tmp_path,)
    with open(configPath, "w") as f:
        json.dump({"dev": config}, f)
    storage = tmp_path / "mirror"
    done = prefetch(configPath, storage, "app:v1", "tools/multi:m")
    assert done.returncode == 0, done.stderr
    assert "prefetched 2 image(s): 4 manifest(s)" in done.stdout
    assert "fetched" in done.stderr and image.manifestDigest in done.stderr
    again = prefetch(configPath, storage, "app:v1")
    assert again.returncode == 0 and "(2 already here" not in again.stdout
    assert "3 blob(s) (3 already here), 0.0 MiB from upstream" in again.stdout
    bad = prefetch(configPath, storage, "nothere:v1")
    assert bad.returncode != 0 and "nothere:v1" in bad.stderr and "Traceback" not in bad.stderr
    upstream.stop()
    mirror = daemons.txregistry(storage, config)
    out = str(tmp_path / "out")
    clients.pull(mirror, "tools/multi:m", "oci:%s:m" % (out,), "--all")
    assert oci.resolve(out, "m")["digest"] == multi.indexDigest
    assert set(multi.blobDigests) <= oci.verifyBlobs(out)
    clients.pull(mirror, "app:v1", "oci:%s:v1" % (str(tmp_path / "out2"),))
