"""``txregistry import-v1`` end to end: a classic docker-registry store
written in its layout (on disk, and in a bucket of the S3 test server),
imported by the command (a subprocess), then pulled by skopeo and podman
from txregistry under twistd; the files of every layer compared with what
was written, ``/v1/search`` showing the old descriptions, a second run
changing nothing, and a run killed half-way completed by the next."""

import gzip
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import urllib.request

import pytest

from tests.support import procs, v1store
from tests.support.s3servers import MotoServer, skipUnlessAvailable

TXREGISTRY = os.path.join(procs.BIN, "txregistry")
DESCRIPTIONS = {"library/app": "The application", "team/tool": "A handy tool", "team/gone": "not in storage"}


# The command, and its peak RSS on stderr at the end.
MEASURED = (
    "import sys\n"
    "try:\n"
    "    from txregistry import cli\n"
    "    cli.main(sys.argv[1:])\n"
    "finally:\n"
    "    sys.stderr.write([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0])\n"
)


def importV1(*args, env=None):
    """Run ``txregistry import-v1 ARGS``; the completed process, its
    C{peak} RSS (bytes) set."""
    argv = [sys.executable, "-c", MEASURED, "import-v1"] + [str(a) for a in args]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, env=procs.twistdEnv(env),
                          cwd=procs.REPO)
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr + proc.stdout
    peak = [line for line in proc.stderr.splitlines() if line.startswith("VmHWM")]
    proc.peak = int(peak[-1].split()[1]) * 1024
    proc.stderr = "\n".join(line for line in proc.stderr.splitlines() if not line.startswith("VmHWM"))
    return proc


def layerFiles(blob, mediaType):
    """{path: bytes} of the regular files of a layer blob."""
    data = gzip.decompress(blob) if mediaType.endswith(("gzip", "+gzip")) else blob
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for member in t.getmembers():
            if member.isfile():
                out[member.name] = t.extractfile(member).read()
    return out


def pulledLayers(cli, daemon, ref, dest):
    """skopeo copy of C{ref} to a dir: C{(manifest, config, [files of each layer])}."""
    cli.skopeo("copy", "--quiet", "--src-tls-verify=false", "docker://%s/%s" % (daemon.host, ref), "dir:%s" % (dest,))
    with open(os.path.join(dest, "manifest.json"), "rb") as f:
        manifest = json.load(f)

    def blob(digest):
        with open(os.path.join(dest, digest.split(":", 1)[1]), "rb") as f:
            data = f.read()
        assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
        return data

    config = json.loads(blob(manifest["config"]["digest"]))
    return manifest, config, [layerFiles(blob(l["digest"]), l["mediaType"]) for l in manifest["layers"]]


def checkTag(cli, daemon, store, ids, ref, image, dest):
    """C{ref} pulls as the V1 image C{image} was: the same files in each
    layer, root first, and diff ids of the tars."""
    manifest, config, layers = pulledLayers(cli, daemon, ref, dest)
    expected = store.layerFiles(ids[image])
    assert layers == expected
    assert config["rootfs"]["diff_ids"] == [
        "sha256:" + hashlib.sha256(v1store.tarBytes(files)).hexdigest() for files in expected]
    assert len(config["history"]) == len(expected)
    assert not any(h.get("empty_layer") for h in config["history"])
    return manifest, config


def checkPodman(cli, daemon, ref, config):
    """podman pulls C{ref}: its layers are the config's diff ids."""
    full = "%s/%s" % (daemon.host, ref)
    cli.podman("pull", "--quiet", full)
    info = json.loads(cli.podman("image", "inspect", full).stdout)[0]
    assert info["RootFS"]["Layers"] == config["rootfs"]["diff_ids"]
    return full


def checkFilesystem(cli, daemon, ref, layers, tarPath):
    """A container of C{ref} (podman create, then export) sees the files
    of the V1 layers, each over those before."""
    container = cli.podman("create", "%s/%s" % (daemon.host, ref), "/bin/true").stdout.strip()
    try:
        cli.podman("export", "-o", tarPath, container)
    finally:
        cli.podman("rm", "-f", container, check=False)
    with open(tarPath, "rb") as f:
        seen = layerFiles(f.read(), "tar")
    expected = {}
    for files in layers:
        expected.update(files)
    assert {path: data for path, data in seen.items() if path in expected} == expected


def search(daemon, term):
    with urllib.request.urlopen(daemon.url + "/v1/search?q=" + term, timeout=30) as r:
        return {row["name"]: row["description"] for row in json.load(r)["results"]}


def checkSkipped(proc):
    assert proc.returncode == 2, proc.stdout + proc.stderr
    for label, reason in v1store.BAD_TAGS.items():
        lines = [line for line in proc.stdout.splitlines() if line.startswith("skipped %s: " % (label,))]
        assert lines and reason in lines[0], (label, proc.stdout)


def snapshot(root):
    """{path: (sha256, mtime)} of every file under C{root} but the search index."""
    out = {}
    for base, _, files in os.walk(root):
        for name in files:
            path = os.path.join(base, name)
            if "search.db" in name:
                continue
            with open(path, "rb") as f:
                out[os.path.relpath(path, root)] = (hashlib.sha256(f.read()).hexdigest(), os.stat(path).st_mtime_ns)
    return out


def test_importDiskStoreWhileServing(cli, registries, tmp_path):
    """Into a running registry: every tag pulls as it was written, the
    bad ones are named, search shows the old descriptions, and a second
    run changes nothing."""
    daemon = registries.start()
    storage = tmp_path / "storage"
    store = v1store.V1Store(v1store.DiskTarget(tmp_path / "v1"))
    ids = v1store.buildStore(store)
    db = v1store.classicSearchDatabase(tmp_path / "docker-registry.db", DESCRIPTIONS)

    proc = importV1("--storage-path", storage, "--v1-search-db", db, tmp_path / "v1")
    checkSkipped(proc)
    assert "4 tag(s) imported, 0 already up to date" in proc.stdout

    catalog = json.load(urllib.request.urlopen(daemon.url + "/v2/_catalog", timeout=30))["repositories"]
    assert catalog == ["app", "team/base", "team/tool"]
    for i, (ref, image) in enumerate(sorted(v1store.GOOD_TAGS.items())):
        _, config = checkTag(cli, daemon, store, ids, ref, image, tmp_path / ("pull%d" % i))
        checkPodman(cli, daemon, ref, config)
    checkFilesystem(cli, daemon, "app:latest", store.layerFiles(ids["app"]), tmp_path / "fs.tar")
    assert search(daemon, "app") == {"app": "The application"}
    assert search(daemon, "handy") == {"team/tool": "A handy tool"}
    assert search(daemon, "base") == {"team/base": ""}
    # what docker search prints
    out = cli.docker("search", "--no-trunc", "--format", "{{.Name}}\t{{.Description}}", "%s/handy" % (daemon.host,))
    assert out.stdout.splitlines() == ["%s/team/tool\tA handy tool" % (daemon.host,)]

    before = snapshot(storage)
    again = importV1("--storage-path", storage, "--v1-search-db", db, tmp_path / "v1")
    checkSkipped(again)
    assert "0 tag(s) imported, 4 already up to date" in again.stdout
    assert "0 layer blob(s) stored" in again.stdout
    assert snapshot(storage) == before


def test_dryRunListsAndWritesNothing(tmp_path):
    store = v1store.V1Store(v1store.DiskTarget(tmp_path / "v1"))
    v1store.buildStore(store)
    storage = tmp_path / "storage"
    proc = importV1("--dry-run", "--storage-path", storage, tmp_path / "v1")
    checkSkipped(proc)
    for ref in v1store.GOOD_TAGS:
        assert "would import as %s" % (ref,) in proc.stdout
    assert "dry run: 4 tag(s) would be imported" in proc.stdout
    assert not os.path.exists(storage / "docker")
    bad = importV1("--storage-path", storage, tmp_path / "nowhere")
    assert bad.returncode == 1 and bad.stderr.strip().endswith("is not a directory")


def test_progressOnATerminal(tmp_path):
    """On a terminal: one status line rewritten in place, the skips above
    it, then the summary."""
    import pty

    store = v1store.V1Store(v1store.DiskTarget(tmp_path / "v1"))
    v1store.buildStore(store)
    master, slave = pty.openpty()
    argv = [TXREGISTRY, "import-v1", "--storage-path", str(tmp_path / "storage"), str(tmp_path / "v1")]
    child = subprocess.Popen(argv, stdout=slave, stderr=slave, env=procs.twistdEnv(), cwd=procs.REPO)
    os.close(slave)
    chunks = []
    try:
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        assert child.wait(60) == 2
    finally:
        os.close(master)
        procs.terminate(child)
    text = b"".join(chunks).decode()
    assert "\r\x1b[K[1/8] app:1.0" not in text  # (names are V1's)
    assert "\r\x1b[K[1/8] library/app:1.0" in text
    assert "\r\x1b[Kskipped team/broken:latest: " in text
    assert "4 tag(s) imported" in text
    # no line per layer on a terminal
    assert "  layer " not in text


@pytest.fixture
def s3server():
    skipUnlessAvailable(MotoServer)
    with MotoServer() as server:
        yield server


def test_importS3StoreIntoS3(cli, registries, s3server, tmp_path):
    """The classic registry's bucket, named by its environment (an env
    file), into txregistry on another bucket, OCI images this time."""
    s3server.createBucket("classic")
    s3server.createBucket("txr")
    store = v1store.V1Store(v1store.S3Target(s3server.client(), "classic", "/registry"))
    ids = v1store.buildStore(store)
    db = v1store.classicSearchDatabase(tmp_path / "docker-registry.db", DESCRIPTIONS)
    envFile = tmp_path / "classic.env"
    envFile.write_text(
        "# the classic registry's environment\n"
        "SETTINGS_FLAVOR=s3\nAWS_BUCKET=classic\nSTORAGE_PATH=/registry\nAWS_KEY=%s\nAWS_SECRET=%s\n"
        "AWS_ENDPOINT=%s\nSEARCH_BACKEND=sqlalchemy\nSQLALCHEMY_INDEX_DATABASE=%s\n"
        % (s3server.accessKey, s3server.secretKey, s3server.endpoint, db))
    index = "sqlite:///%s/index-s3.db" % (registries.logDir,)
    env = procs.s3env(s3server, "txr", SQLALCHEMY_INDEX_DATABASE=index)

    proc = importV1("--source-env", envFile, "--oci", env=env)
    checkSkipped(proc)
    assert "importing s3://classic/registry into s3://txr/registry" in proc.stdout

    daemon = registries.startOnS3(s3server, "txr", name="s3")
    for i, (ref, image) in enumerate(sorted(v1store.GOOD_TAGS.items())):
        manifest, config = checkTag(cli, daemon, store, ids, ref, image, tmp_path / ("pull%d" % i))
        assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
        checkPodman(cli, daemon, ref, config)
    assert search(daemon, "app") == {"app": "The application"}

    again = importV1("--source-env", envFile, "--oci", env=env)
    assert "0 tag(s) imported, 4 already up to date" in again.stdout


def test_killedImportCompletesOnTheNextRun(cli, registries, tmp_path):
    """kill -9 in the middle of a large layer: nothing of its image is
    visible; the next run imports it, and it pulls as written."""
    store = v1store.V1Store(v1store.DiskTarget(tmp_path / "v1"))
    base = store.image(v1store.imageID("small"), files={"etc/hello": b"hello\n"})
    big = os.urandom(64 * 1024 * 1024)
    top = store.image(v1store.imageID("big"), parent=base, files={"data/big.bin": big}, compression="tar")
    store.tag("team", "big", "1", top)
    storage = tmp_path / "storage"

    argv = [TXREGISTRY, "import-v1", "--storage-path", str(storage), str(tmp_path / "v1")]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             env=procs.twistdEnv(), cwd=procs.REPO)
    try:
        seen = []
        for line in child.stdout:  # (plain progress lines: stdout is a pipe)
            seen.append(line)
            if line.startswith("  layer %s: " % (top,)) and "%" in line:
                child.send_signal(signal.SIGKILL)
                break
        child.wait(60)
    finally:
        procs.terminate(child)
    assert child.returncode == -signal.SIGKILL, "".join(seen)
    # killed mid-layer: an unfinished upload, no tag
    uploads = [base for base, _, files in os.walk(storage) if "/_uploads/" in base and "data" in files]
    assert uploads, "".join(seen)
    assert not os.path.exists(storage / "docker/registry/v2/repositories/team/big/_manifests/tags")

    idle = importV1("--dry-run", "--storage-path", storage, tmp_path / "v1")
    proc = importV1("--storage-path", storage, tmp_path / "v1")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 tag(s) imported" in proc.stdout and "1 already imported" in proc.stdout
    # the upload of the killed run is gone with it
    assert not [base for base, _, files in os.walk(storage) if "/_uploads/" in base and "data" in files]
    marks = storage / "txregistry/import-v1/uploads"
    assert not os.path.exists(marks) or not os.listdir(marks)
    # streamed: the 64 MiB layer never was in memory
    assert proc.peak - idle.peak < 32 * 1024 * 1024, (proc.peak, idle.peak)
    daemon = procs.startTxregistry(str(storage), str(registries.logDir))
    try:
        checkTag(cli, daemon, store, {"big": top}, "team/big:1", "big", tmp_path / "pull")
    finally:
        daemon.stop()
