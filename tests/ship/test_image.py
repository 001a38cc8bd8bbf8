"""txregistry's container image, run with the classic docker-registry
command lines (the image's name in place of ``registry``), and skopeo
pushing and pulling through it."""

import json
import os
import time
import urllib.error
import urllib.request
import uuid

from tests.e2e import clients, oci
from tests.ship.podman import Container
from tests.support import procs


def pushAndPull(registry, tmp_path, repo="team/app", seed=1):
    image = oci.buildImage(str(tmp_path / ("src-%s" % seed)), tag="1.0", seed=seed)
    clients.push("oci:%s:1.0" % (tmp_path / ("src-%s" % seed)), registry, "%s:1.0" % repo)
    dest = tmp_path / ("copy-%s" % seed)
    clients.pull(registry, "%s:1.0" % repo, "oci:%s:1.0" % dest)
    assert oci.resolve(str(dest), "1.0")["digest"] == image.manifestDigest
    oci.verifyBlobs(str(dest))
    return image


def postUpload(registry, repo="team/app"):
    req = urllib.request.Request(registry.url + "/v2/%s/blobs/uploads/" % repo, method="POST", data=b"")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def waitForLog(container, text, count=1, timeout=30):
    deadline = time.monotonic() + timeout
    while container.logs().count(text) < count:
        assert time.monotonic() < deadline, container.logs()[-3000:]
        time.sleep(0.1)  # polling for the log line


def test_run_default(podman, image, tmp_path):
    """``podman run -d -p 5000:5000 IMAGE``: a registry on the port, as a
    non-root user, healthy, twistd as PID 1 taking the signals."""
    port = procs.freePort()
    c = Container(podman, ["-p", "%d:5000" % port, image], port)
    try:
        pushAndPull(c, tmp_path)
        assert podman.output("exec", c.id, "id", "-u") == "10000"
        cmdline = podman.output("exec", c.id, "cat", "/proc/1/cmdline").split("\0")
        assert "twistd" in cmdline[1] and "txregistry" in cmdline, cmdline
        assert podman("healthcheck", "run", c.id, check=False).returncode == 0, c.logs()[-3000:]
        inspected = json.loads(podman.output("image", "inspect", image))[0]
        assert "5000/tcp" in inspected["Config"]["ExposedPorts"]
        assert set(inspected["Config"]["Volumes"]) == {"/tmp/registry", "/etc/txregistry"}
        assert inspected["Healthcheck"]["Test"][0] == "CMD"

        # SIGUSR1: read-only; SIGUSR2: writable again; pulls served throughout.
        assert postUpload(c) == 202
        c.kill("USR1")
        waitForLog(c, "read-only mode on")
        assert postUpload(c) == 405
        clients.pull(c, "team/app:1.0", "oci:%s:again" % (tmp_path / "again"))
        c.kill("USR2")
        waitForLog(c, "read-only mode off")
        assert postUpload(c) == 202

        # SIGTERM (podman stop): a clean stop, well before podman's SIGKILL.
        start = time.monotonic()
        podman("stop", "--time", "30", c.id)
        assert time.monotonic() - start < 15
        assert c.exitCode() == 0, c.logs()[-3000:]
        assert "Server Shut Down." in c.logs()
    finally:
        c.remove()


def test_host_directory(podman, image, tmp_path):
    """``-v HOSTDIR:/tmp/registry``: the data is in the host's directory, in
    Distribution's layout, and a new container serves it."""
    data = tmp_path / "data"
    data.mkdir()
    port = procs.freePort()
    # Owned by root, it is refused at start, in one line.
    proc = podman("run", "--rm", "-p", "%d:5000" % port, "-v", "%s:/tmp/registry" % data, image, check=False)
    assert proc.returncode == 1
    assert "txregistry: configuration error: storage path /tmp/registry is not writable" in proc.stderr.decode()
    os.chown(data, 10000, 10000)  # the image's user (README)
    c = Container(podman, ["-p", "%d:5000" % port, "-v", "%s:/tmp/registry" % data, image], port)
    try:
        pushed = pushAndPull(c, tmp_path, repo="keep/me")
    finally:
        c.remove()
    assert (data / "docker/registry/v2/repositories/keep/me/_manifests/tags/1.0/current/link").exists()
    assert (data / ("docker/registry/v2/blobs/sha256/%s/%s/data"
                    % (pushed.configDigest[7:9], pushed.configDigest[7:]))).exists()
    c = Container(podman, ["-p", "%d:5000" % port, "-v", "%s:/tmp/registry" % data, image], port)
    try:
        dest = tmp_path / "later"
        clients.pull(c, "keep/me:1.0", "oci:%s:1.0" % dest)
        assert oci.resolve(str(dest), "1.0")["digest"] == pushed.manifestDigest
    finally:
        c.remove()


def test_mounted_config(podman, image, tmp_path):
    """A config directory mounted and named by DOCKER_REGISTRY_CONFIG (its
    flavor chosen by SETTINGS_FLAVOR)."""
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "config.yml").write_text(
        "common: &common\n"
        "    loglevel: info\n"
        "acme:\n"
        "    <<: *common\n"
        "    storage: local\n"
        "    storage_path: /var/lib/txregistry/data\n"
        "    server_header: acme-registry\n"
    )
    port = procs.freePort()
    c = Container(podman, ["-p", "%d:5000" % port, "-v", "%s:/etc/txregistry:ro" % conf,
                           "-e", "DOCKER_REGISTRY_CONFIG=/etc/txregistry/config.yml",
                           "-e", "SETTINGS_FLAVOR=acme", image], port)
    try:
        with urllib.request.urlopen(c.url + "/v2/", timeout=10) as r:
            assert r.headers["Server"] == "acme-registry"
        pushAndPull(c, tmp_path)
        listing = podman.output("exec", c.id, "ls", "/var/lib/txregistry/data/docker/registry/v2/repositories/team")
        assert listing.split() == ["app"]
    finally:
        c.remove()


def test_s3(podman, image, tmp_path, motoServer):
    """``-e SETTINGS_FLAVOR=s3 -e AWS_BUCKET=… -e STORAGE_PATH=/registry
    -e AWS_KEY=… -e AWS_SECRET=… -e SEARCH_BACKEND=sqlalchemy`` and the S3
    server's endpoint (moto on this machine's loopback: host networking)."""
    bucket = "ship-%s" % (uuid.uuid4().hex[:12],)
    motoServer.createBucket(bucket)
    port = procs.freePort()
    env = procs.s3env(motoServer, bucket, REGISTRY_PORT=str(port))
    args = ["--network", "host"]
    for key in ("SETTINGS_FLAVOR", "AWS_BUCKET", "STORAGE_PATH", "AWS_KEY", "AWS_SECRET", "SEARCH_BACKEND",
                "AWS_ENDPOINT", "REGISTRY_PORT"):
        args += ["-e", "%s=%s" % (key, env[key])]
    c = Container(podman, args + [image], port)
    try:
        pushed = pushAndPull(c, tmp_path)
        # The healthcheck follows REGISTRY_PORT.
        assert podman("healthcheck", "run", c.id, check=False).returncode == 0, c.logs()[-3000:]
        with urllib.request.urlopen(c.url + "/v1/search?q=team", timeout=10) as r:
            assert [x["name"] for x in json.loads(r.read())["results"]] == ["team/app"]
    finally:
        c.remove()
    keys = [o["Key"] for o in motoServer.client().list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert "registry/docker/registry/v2/repositories/team/app/_manifests/tags/1.0/current/link" in keys
    assert "registry/docker/registry/v2/blobs/sha256/%s/%s/data" % (
        pushed.configDigest[7:9], pushed.configDigest[7:]) in keys
