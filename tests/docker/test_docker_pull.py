"""``docker pull`` with the real docker CLI (through podman's Docker API)
from txregistry: by tag, by digest, one platform of a multi-arch index;
``docker images`` / ``docker image inspect`` show what landed and
``docker rmi`` removes it."""

import json

from tests.docker import images


def seed(cli, registry, tmp_path, ref, **kw):
    """Push a fresh image to C{registry} as C{ref} with skopeo, digests
    preserved; returns the L{images.BuiltImage}."""
    built = images.buildImage(tmp_path / "layout", tag="src", **kw)
    cli.skopeo("copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false",
               "oci:%s:src" % (built.layout,), "docker://%s/%s" % (registry.host, ref))
    return built


def listed(cli):
    out = cli.docker("images", "--digests", "--no-trunc", "--format", "{{json .}}").stdout
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def assertGone(cli, ref):
    proc = cli.docker("image", "inspect", ref, check=False)
    assert proc.returncode != 0, proc.stdout
    assert "no such image" in proc.stderr.lower(), proc.stderr


def test_pullByTag(cli, registry, tmp_path):
    built = seed(cli, registry, tmp_path, "lib/hello:v1")
    ref = "%s/lib/hello:v1" % (registry.host,)
    mark = registry.access.mark()

    out = cli.docker("pull", ref).stdout
    assert ref in out.splitlines()[-1]

    rows = [r for r in listed(cli) if r["Repository"] == "%s/lib/hello" % (registry.host,)]
    assert [(r["Tag"], r["ID"]) for r in rows] == [("v1", built.configDigest)]
    info = cli.inspect(ref)
    assert info["Id"] == built.configDigest
    assert ref in info["RepoTags"]
    assert "%s/lib/hello@%s" % (registry.host, built.manifestDigest) in info["RepoDigests"]
    assert info["RootFS"]["Layers"] == built.diffIDs
    assert (info["Os"], info["Architecture"]) == ("linux", "amd64")

    got = registry.access.requests(mark)
    assert ("GET", "/v2/lib/hello/manifests/v1", 200) in got
    fetched = {path.rsplit("/", 1)[1] for method, path, status in got
               if method == "GET" and "/blobs/" in path and status == 200}
    assert fetched == set(built.layerDigests) | {built.configDigest}

    out = cli.docker("rmi", ref).stdout
    assert "Untagged: %s" % (ref,) in out
    assertGone(cli, ref)
    assert [r for r in listed(cli) if r["Repository"] == "%s/lib/hello" % (registry.host,)] == []


def test_pullByDigest(cli, registry, tmp_path):
    built = seed(cli, registry, tmp_path, "lib/bydigest:v1")
    ref = "%s/lib/bydigest@%s" % (registry.host, built.manifestDigest)
    mark = registry.access.mark()

    cli.docker("pull", ref)

    assert ("GET", "/v2/lib/bydigest/manifests/%s" % (built.manifestDigest,), 200) in registry.access.requests(mark)
    info = cli.inspect(ref)
    assert info["Id"] == built.configDigest
    assert ref in info["RepoDigests"]
    assert info["RootFS"]["Layers"] == built.diffIDs
    rows = [r for r in listed(cli) if r["Repository"] == "%s/lib/bydigest" % (registry.host,)]
    assert [r["Digest"] for r in rows] == [built.manifestDigest]
    assert [r["ID"] for r in rows] == [built.configDigest]

    cli.docker("rmi", ref)
    assertGone(cli, ref)
    assertGone(cli, built.configDigest)


def test_pullPlatformFromIndex(cli, registry, tmp_path):
    multi = images.buildMultiArch(tmp_path / "multi", tag="src")
    cli.skopeo("copy", "--quiet", "--all", "--preserve-digests", "--dest-tls-verify=false",
               "oci:%s:src" % (tmp_path / "multi",), "docker://%s/lib/multi:latest" % (registry.host,))
    amd64, arm64 = multi.images
    ref = "%s/lib/multi:latest" % (registry.host,)

    for image, platform in ((arm64, "linux/arm64"), (amd64, "linux/amd64")):
        mark = registry.access.mark()
        cli.docker("pull", "--platform", platform, ref)

        info = cli.inspect(ref)
        assert (info["Os"], info["Architecture"]) == ("linux", platform.split("/")[1])
        assert info["Id"] == image.configDigest
        assert info["RootFS"]["Layers"] == image.diffIDs
        assert "%s/lib/multi@%s" % (registry.host, image.manifestDigest) in info["RepoDigests"]

        got = registry.access.requests(mark)
        assert ("GET", "/v2/lib/multi/manifests/latest", 200) in got
        manifests = [path for method, path, status in got if method == "GET" and "/manifests/sha256:" in path]
        assert manifests == ["/v2/lib/multi/manifests/%s" % (image.manifestDigest,)]
        other = amd64 if image is arm64 else arm64
        blobs = {path.rsplit("/", 1)[1] for method, path, status in got if "/blobs/" in path}
        assert other.configDigest not in blobs and other.layerDigests[-1] not in blobs

        cli.docker("rmi", ref)
        assertGone(cli, ref)


def test_pullUnknownTagFails(cli, registry, tmp_path):
    seed(cli, registry, tmp_path, "lib/hello:v1")
    proc = cli.docker("pull", "%s/lib/hello:nope" % (registry.host,), check=False)
    assert proc.returncode != 0
    assert "manifest unknown" in proc.stderr.lower(), proc.stderr
    assert cli.imageNames() == []
