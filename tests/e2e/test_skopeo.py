"""skopeo against a live registry: push OCI layouts, pull them back, and
check every digest survived the round trip."""

import json

import pytest

from tests.e2e import clients, oci


def assertPulledImage(out, tag, image):
    """The layout at C{out} holds C{image} under C{tag}, byte for byte."""
    ref = oci.resolve(out, tag)
    assert ref["digest"] == image.manifestDigest
    assert ref["mediaType"] == oci.MANIFEST
    assert ref["size"] == len(image.manifest)
    assert oci.readBlob(out, image.manifestDigest) == image.manifest
    present = oci.verifyBlobs(out)
    assert set(image.blobDigests) | {image.manifestDigest} <= present


def assertPulledMultiArch(out, tag, multi):
    ref = oci.resolve(out, tag)
    assert ref["digest"] == multi.indexDigest
    assert ref["mediaType"] == oci.INDEX
    assert oci.readBlob(out, multi.indexDigest) == multi.index
    present = oci.verifyBlobs(out)
    for image in multi.images:
        assert oci.readBlob(out, image.manifestDigest) == image.manifest
    assert set(multi.blobDigests) | set(multi.manifestDigests) | {multi.indexDigest} == present


def test_pushPullImage(registry, tmp_path):
    """A three-layer image pushed with skopeo comes back with the same
    manifest digest and the same blobs."""
    src, out = str(tmp_path / "src"), str(tmp_path / "out")
    image = oci.buildImage(src, tag="v1", layers=3)
    clients.push("oci:%s:v1" % (src,), registry, "e2e/app:v1")
    clients.pull(registry, "e2e/app:v1", "oci:%s:v1" % (out,))
    assertPulledImage(out, "v1", image)

    # By digest too.
    out2 = str(tmp_path / "out2")
    clients.pull(registry, "e2e/app@" + image.manifestDigest, "oci:%s:bydigest" % (out2,))
    assertPulledImage(out2, "bydigest", image)


def test_inspect(registry, tmp_path):
    """skopeo inspect: the raw manifest is the pushed bytes; the summary
    names the digest, layers and platform; the raw config is the config
    blob."""
    src = str(tmp_path / "src")
    image = oci.buildImage(src, tag="v1", layers=2)
    clients.push("oci:%s:v1" % (src,), registry, "e2e/inspect:v1")

    assert clients.inspect(registry, "e2e/inspect:v1", "--raw") == image.manifest
    assert clients.inspect(registry, "e2e/inspect@" + image.manifestDigest, "--raw") == image.manifest

    summary = clients.inspect(registry, "e2e/inspect:v1")
    assert summary["Digest"] == image.manifestDigest
    assert summary["Layers"] == image.layerDigests
    assert summary["Architecture"] == "amd64"
    assert summary["Os"] == "linux"
    assert "v1" in summary["RepoTags"]

    config = clients.inspect(registry, "e2e/inspect:v1", "--config", "--raw")
    assert oci.sha256(config) == image.configDigest
    assert json.loads(config)["rootfs"]["diff_ids"] == image.diffIDs


def test_multiArch(registry, tmp_path):
    """An OCI index of two platforms sharing a layer, pushed and pulled
    with --all, keeps its index digest and every manifest and blob."""
    src, out = str(tmp_path / "src"), str(tmp_path / "out")
    multi = oci.buildMultiArch(src, tag="multi")
    clients.push("oci:%s:multi" % (src,), registry, "e2e/multi:multi", "--all")
    clients.pull(registry, "e2e/multi:multi", "oci:%s:multi" % (out,), "--all")
    assertPulledMultiArch(out, "multi", multi)

    assert clients.inspect(registry, "e2e/multi:multi", "--raw") == multi.index
    for image in multi.images:
        arch = image.platform["architecture"]
        summary = clients.inspect(registry, "e2e/multi:multi", "--override-arch", arch)
        # skopeo reports the digest of what the reference names (the
        # index), and the rest from the platform's manifest and config.
        assert summary["Digest"] == multi.indexDigest
        assert summary["Architecture"] == arch
        assert summary["Layers"] == image.layerDigests
        raw = clients.inspect(registry, "e2e/multi@" + image.manifestDigest, "--raw")
        assert raw == image.manifest


def test_multiArchPullOnePlatform(registry, tmp_path):
    """Without --all, skopeo pulls the platform it is asked for out of
    the index."""
    src, out = str(tmp_path / "src"), str(tmp_path / "out")
    multi = oci.buildMultiArch(src, tag="multi")
    clients.push("oci:%s:multi" % (src,), registry, "e2e/multi:multi", "--all")
    arm = [image for image in multi.images if image.platform["architecture"] == "arm64"][0]
    clients.skopeo(
        "--override-arch", "arm64", "copy", "--src-tls-verify=false",
        "docker://%s/e2e/multi:multi" % (registry.host,), "oci:%s:arm" % (out,),
    )
    assertPulledImage(out, "arm", arm)


def test_listTagsAndCatalog(registry, tmp_path):
    """Tags pushed show up in skopeo list-tags and repositories in the
    catalog."""
    src = str(tmp_path / "src")
    oci.buildImage(src, tag="v1", layers=1)
    for tag in ("v1", "v2", "latest"):
        clients.push("oci:%s:v1" % (src,), registry, "e2e/tags:" + tag)
    clients.push("oci:%s:v1" % (src,), registry, "other:v1")

    listed = clients.listTags(registry, "e2e/tags")
    assert listed["Repository"] == "%s/e2e/tags" % (registry.host,)
    assert sorted(listed["Tags"]) == ["latest", "v1", "v2"]
    assert clients.listTags(registry, "other")["Tags"] == ["v1"]

    clients.assertTags(registry, "e2e/tags", ["latest", "v1", "v2"])
    assert clients.getJSON(registry, "/v2/_catalog") == {"repositories": ["e2e/tags", "other"]}


def test_delete(registry, tmp_path):
    """skopeo delete removes a manifest (it resolves the tag to a digest
    and deletes by digest); the other image in the repository stays."""
    srcA, srcB = str(tmp_path / "a"), str(tmp_path / "b")
    a = oci.buildImage(srcA, tag="v1", layers=1)
    b = oci.buildImage(srcB, tag="v1", layers=1)
    clients.push("oci:%s:v1" % (srcA,), registry, "e2e/del:a")
    clients.push("oci:%s:v1" % (srcB,), registry, "e2e/del:b")

    clients.delete(registry, "e2e/del:a")
    gone = clients.skopeo("inspect", "--tls-verify=false", "--raw",
                          "docker://%s/e2e/del:a" % (registry.host,), check=False)
    assert gone.returncode != 0
    status, _, _ = clients.request(registry, "/v2/e2e/del/manifests/" + a.manifestDigest, method="HEAD",
                                   headers={"Accept": oci.MANIFEST})
    assert status == 404
    assert clients.inspect(registry, "e2e/del:b", "--raw") == b.manifest
    assert clients.listTags(registry, "e2e/del")["Tags"] == ["b"]

    clients.delete(registry, "e2e/del@" + b.manifestDigest)
    status, _, _ = clients.request(registry, "/v2/e2e/del/manifests/b", method="HEAD",
                                   headers={"Accept": oci.MANIFEST})
    assert status == 404
    # Blobs are not deleted with their manifests (that is garbage collection).
    status, _, _ = clients.request(registry, "/v2/e2e/del/blobs/" + b.layerDigests[0], method="HEAD")
    assert status == 200


@pytest.mark.parametrize("layers", [5])
def test_pushTwiceIsIdempotent(registry, tmp_path, layers):
    """Pushing the same image again (every blob already there) succeeds
    and changes nothing."""
    src, out = str(tmp_path / "src"), str(tmp_path / "out")
    image = oci.buildImage(src, tag="v1", layers=layers)
    clients.push("oci:%s:v1" % (src,), registry, "e2e/again:v1")
    clients.push("oci:%s:v1" % (src,), registry, "e2e/again:v1")
    clients.pull(registry, "e2e/again:v1", "oci:%s:v1" % (out,))
    assertPulledImage(out, "v1", image)
