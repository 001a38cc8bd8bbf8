"""Pull through a txregistry mirroring Distribution (anonymous): skopeo
copies through the mirror, the upstream is stopped and what was pulled
still pulls."""

from tests.e2e import clients, oci
from tests.mirror.conftest import mirrorConfig


def test_pullThroughThenOffline(daemons, tmp_path):
    upstream = daemons.distribution(str(tmp_path / "up"))
    src = str(tmp_path / "src")
    image = oci.buildImage(src, tag="v1", layers=3)
    clients.push("oci:%s:v1" % (src,), upstream, "library/app:v1")
    mirror = daemons.txregistry(tmp_path / "mirror", mirrorConfig(upstream.url, tags_ttl=0))
    out = str(tmp_path / "out")
    clients.pull(mirror, "app:v1", "oci:%s:v1" % (out,))  # (library/app upstream)
    ref = oci.resolve(out, "v1")
    assert ref["digest"] == image.manifestDigest
    assert set(image.blobDigests) <= oci.verifyBlobs(out)
    upstream.stop()
    out2 = str(tmp_path / "out2")
    clients.pull(mirror, "app:v1", "oci:%s:v1" % (out2,))
    assert oci.resolve(out2, "v1")["digest"] == image.manifestDigest
    assert set(image.blobDigests) <= oci.verifyBlobs(out2)
    text = mirror.syncLog()
    assert "serving what is cached" in text
    assert "mirroring up (%s) for every other name, tags checked after 0 s" % (upstream.url,) in text
