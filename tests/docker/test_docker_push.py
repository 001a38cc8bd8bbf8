"""``docker tag`` + ``docker push`` of a local image to txregistry, with the
real docker CLI (podman does the registry traffic: containers/image).
The registry's access log shows what the client sent; skopeo pulls the
image back to check the digests."""

import json
import re
import urllib.parse

from tests.docker import images
from tests.e2e import oci

PUSHED = re.compile(r"digest: (sha256:[0-9a-f]{64}) size: (\d+)")


def localImage(cli, tmp_path, name, **kw):
    """A fresh random image in the engine's storage as C{name}."""
    built = images.buildImage(tmp_path / ("layout-" + re.sub(r"\W", "_", name)), tag="src", **kw)
    cli.loadLayout(built.layout, "src", name)
    return built


def pushedDigest(output):
    m = PUSHED.search(output)
    assert m, "no digest in docker push output:\n" + output
    return m.group(1), int(m.group(2))


def pullBack(cli, registry, ref, dest):
    """skopeo copy C{ref} into an OCI layout at C{dest}; returns the
    manifest digest and the parsed manifest."""
    cli.skopeo("copy", "--quiet", "--preserve-digests", "--src-tls-verify=false",
               "docker://%s/%s" % (registry.host, ref), "oci:%s:back" % (dest,))
    descriptor = oci.resolve(str(dest), "back")
    manifest = json.loads(oci.readBlob(str(dest), descriptor["digest"]))
    present = oci.verifyBlobs(str(dest))
    for d in [manifest["config"]] + manifest["layers"]:
        assert d["digest"] in present
    return descriptor["digest"], manifest


def test_tagAndPush(cli, registry, tmp_path):
    built = localImage(cli, tmp_path, "localhost/txr-push:1")
    local = cli.inspect("localhost/txr-push:1")
    assert local["RootFS"]["Layers"] == built.diffIDs

    first = "%s/first/app:1" % (registry.host,)
    cli.docker("tag", "localhost/txr-push:1", first)
    assert first in cli.inspect("localhost/txr-push:1")["RepoTags"]
    mark = registry.access.mark()
    digest, size = pushedDigest(cli.docker("push", first).stdout)
    got = registry.access.requests(mark)

    # Before uploading a layer, containers/image asks whether the registry
    # has it under its uncompressed digest (the layer id it knows locally);
    # each blob's HEAD ends before its POST starts, so a HEAD comes first.
    heads = [(path, status) for method, path, status in got if method == "HEAD"]
    for diffID in built.diffIDs:
        assert ("/v2/first/app/blobs/%s" % (diffID,), 404) in heads
    firstBlobRequest = next(r for r in got if "/blobs/" in r[1])
    assert firstBlobRequest[0] == "HEAD" and firstBlobRequest[1].rsplit("/", 1)[1] in built.diffIDs, got
    # Then POST, PATCH (the bytes), PUT ?digest= for each layer and the config.
    blobs = len(built.diffIDs) + 1
    posts = [r for r in got if r[:2] == ("POST", "/v2/first/app/blobs/uploads/")]
    patches = [r for r in got if r[0] == "PATCH" and r[1].startswith("/v2/first/app/blobs/uploads/")]
    puts = [r for r in got if r[0] == "PUT" and r[1].startswith("/v2/first/app/blobs/uploads/")]
    assert [s for _, _, s in posts] == [202] * blobs, got
    assert [s for _, _, s in patches] == [202] * blobs, got
    assert [s for _, _, s in puts] == [201] * blobs, got
    putDigests = {urllib.parse.parse_qs(urllib.parse.urlsplit(p).query)["digest"][0] for _, p, _ in puts}
    assert got[-1] == ("PUT", "/v2/first/app/manifests/1", 201)

    # What the registry holds is what docker pushed.
    back, manifest = pullBack(cli, registry, "first/app:1", tmp_path / "back1")
    assert back == digest
    assert manifest["config"]["digest"] == local["Id"] == built.configDigest
    assert putDigests == {d["digest"] for d in manifest["layers"]} | {built.configDigest}
    assert [images.diffID(oci.readBlob(str(tmp_path / "back1"), d["digest"])) for d in manifest["layers"]] \
        == built.diffIDs
    assert size == len(oci.readBlob(str(tmp_path / "back1"), back))

    # A second repository: the layers are mounted from the first, not sent again.
    second = "%s/second/app:2" % (registry.host,)
    cli.docker("tag", "localhost/txr-push:1", second)
    mark = registry.access.mark()
    digest2, _ = pushedDigest(cli.docker("push", second).stdout)
    got = registry.access.requests(mark)
    mounts = {}
    for method, path, status in got:
        split = urllib.parse.urlsplit(path)
        query = urllib.parse.parse_qs(split.query)
        if method == "POST" and split.path == "/v2/second/app/blobs/uploads/" and "mount" in query:
            assert query["from"] == ["first/app"], path
            mounts[query["mount"][0]] = status
    assert mounts == {d["digest"]: 201 for d in manifest["layers"]}, got
    uploaded = {urllib.parse.parse_qs(urllib.parse.urlsplit(p).query)["digest"][0]
                for method, p, _ in got if method == "PUT" and "/blobs/uploads/" in p}
    assert uploaded <= {built.configDigest}, got
    assert got[-1] == ("PUT", "/v2/second/app/manifests/2", 201)
    assert digest2 == digest
    back2, _ = pullBack(cli, registry, "second/app:2", tmp_path / "back2")
    assert back2 == digest

    # The registry lists both repositories and their tags.
    for repo, tag in (("first/app", "1"), ("second/app", "2")):
        listed = cli.skopeo("list-tags", "--tls-verify=false", "docker://%s/%s" % (registry.host, repo)).stdout
        assert json.loads(listed)["Tags"] == [tag]


def test_pushedImagePullsBack(cli, registry, tmp_path):
    """docker push, docker rmi, docker pull: the same image comes back."""
    built = localImage(cli, tmp_path, "localhost/txr-roundtrip:1")
    ref = "%s/round/trip:1" % (registry.host,)
    cli.docker("tag", "localhost/txr-roundtrip:1", ref)
    digest, _ = pushedDigest(cli.docker("push", ref).stdout)
    cli.removeAllImages()
    assert cli.imageNames() == []

    mark = registry.access.mark()
    cli.docker("pull", ref)
    assert ("GET", "/v2/round/trip/manifests/1", 200) in registry.access.requests(mark)
    info = cli.inspect(ref)
    assert info["Id"] == built.configDigest
    assert info["RootFS"]["Layers"] == built.diffIDs
    assert "%s/round/trip@%s" % (registry.host, digest) in info["RepoDigests"]
    assert cli.imageNames() == [ref]


def test_pushUnknownLocalImageFails(cli, registry):
    proc = cli.docker("push", "%s/nothing/here:1" % (registry.host,), check=False)
    assert proc.returncode != 0
    assert "nothing/here:1" in proc.stderr, proc.stderr
    assert any(m in proc.stderr.lower() for m in ("not known", "no such image", "does not exist")), proc.stderr
    assert not [r for r in registry.access.requests() if r[0] in ("POST", "PATCH", "PUT")]
