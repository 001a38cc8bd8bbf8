"""podman itself (no Docker API in between) against txregistry: push in
both manifest formats, pull by tag and by digest, pull one platform of a
multi-arch index.  (``podman search``: see test_docker_search.)"""

import json

from tests.docker import images


def localImage(cli, tmp_path, name):
    built = images.buildImage(tmp_path / "layout", tag="src")
    cli.loadLayout(built.layout, "src", name)
    return built


def rawManifest(cli, registry, ref):
    raw = cli.skopeo("inspect", "--raw", "--tls-verify=false", "docker://%s/%s" % (registry.host, ref)).stdout
    return json.loads(raw)


def test_podmanPushAndPull(cli, registry, tmp_path):
    built = localImage(cli, tmp_path, "localhost/txr-podman:1")
    ref = "%s/pod/app:1" % (registry.host,)
    digestFile = tmp_path / "digest"
    mark = registry.access.mark()

    cli.podman("push", "--digestfile", digestFile, "localhost/txr-podman:1", ref)

    digest = digestFile.read_text().strip()
    got = registry.access.requests(mark)
    for diffID in built.diffIDs:
        assert ("HEAD", "/v2/pod/app/blobs/%s" % (diffID,), 404) in got
    assert [r for r in got if r[0] == "POST"] == [("POST", "/v2/pod/app/blobs/uploads/", 202)] * (len(built.diffIDs) + 1)
    assert len([r for r in got if r[0] == "PATCH" and r[2] == 202]) == len(built.diffIDs) + 1
    assert got[-1] == ("PUT", "/v2/pod/app/manifests/1", 201)
    manifest = rawManifest(cli, registry, "pod/app:1")
    assert manifest["config"]["digest"] == built.configDigest

    cli.podman("rmi", "localhost/txr-podman:1")
    assert cli.imageNames() == []
    mark = registry.access.mark()
    cli.podman("pull", "--quiet", ref)
    assert ("GET", "/v2/pod/app/manifests/1", 200) in registry.access.requests(mark)
    info = json.loads(cli.podman("image", "inspect", ref).stdout)[0]
    assert info["Id"] == built.configDigest.split(":", 1)[1]
    assert info["Digest"] == digest
    assert info["RootFS"]["Layers"] == built.diffIDs

    # And by digest.
    cli.podman("rmi", ref)
    byDigest = "%s/pod/app@%s" % (registry.host, digest)
    cli.podman("pull", "--quiet", byDigest)
    info = json.loads(cli.podman("image", "inspect", byDigest).stdout)[0]
    assert info["Id"] == built.configDigest.split(":", 1)[1]
    assert byDigest in info["RepoDigests"]


def test_podmanPushFormats(cli, registry, tmp_path):
    """podman push --format oci and --format v2s2: the registry stores and
    serves each manifest as sent."""
    localImage(cli, tmp_path, "localhost/txr-formats:1")
    expected = {
        "oci": "application/vnd.oci.image.manifest.v1+json",
        "v2s2": "application/vnd.docker.distribution.manifest.v2+json",
    }
    digests = {}
    for fmt, mediaType in expected.items():
        digestFile = tmp_path / ("digest-" + fmt)
        cli.podman("push", "--format", fmt, "--digestfile", digestFile,
                   "localhost/txr-formats:1", "%s/formats/%s:1" % (registry.host, fmt))
        digests[fmt] = digestFile.read_text().strip()
        manifest = rawManifest(cli, registry, "formats/%s:1" % (fmt,))
        assert manifest["mediaType"] == mediaType
        inspected = json.loads(cli.skopeo("inspect", "--tls-verify=false",
                                          "docker://%s/formats/%s:1" % (registry.host, fmt)).stdout)
        assert inspected["Digest"] == digests[fmt]
    assert digests["oci"] != digests["v2s2"]


def test_podmanPullArch(cli, registry, tmp_path):
    multi = images.buildMultiArch(tmp_path / "multi", tag="src")
    cli.skopeo("copy", "--quiet", "--all", "--preserve-digests", "--dest-tls-verify=false",
               "oci:%s:src" % (tmp_path / "multi",), "docker://%s/lib/multi:2" % (registry.host,))
    arm64 = multi.images[1]
    ref = "%s/lib/multi:2" % (registry.host,)
    cli.podman("pull", "--quiet", "--arch", "arm64", ref)
    info = json.loads(cli.podman("image", "inspect", ref).stdout)[0]
    assert info["Architecture"] == "arm64"
    assert info["Id"] == arm64.configDigest.split(":", 1)[1]
    assert "%s/lib/multi@%s" % (registry.host, arm64.manifestDigest) in info["RepoDigests"]
