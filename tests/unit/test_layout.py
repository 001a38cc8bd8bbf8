"""The storage paths are Distribution's, exactly (a registry:2 data
directory or bucket must be served as it is): pinned here, since every
caller now asks txregistry.registry.layout for them."""

from txregistry import digest as digests
from txregistry.registry import layout

D = digests.parse("sha256:" + "ab" * 32)
R = "/docker/registry/v2/repositories/team/app"


def test_paths_are_distributions():
    assert layout.blobData(D) == "/docker/registry/v2/blobs/sha256/ab/%s/data" % (D.hex,)
    assert layout.layersDir("team/app") == R + "/_layers"
    assert layout.layerLink("team/app", D) == R + "/_layers/sha256/%s/link" % (D.hex,)
    assert layout.revisionsDir("team/app") == R + "/_manifests/revisions"
    assert layout.revisionLink("team/app", D) == R + "/_manifests/revisions/sha256/%s/link" % (D.hex,)
    assert layout.tagCurrentLink("team/app", "v1") == R + "/_manifests/tags/v1/current/link"
    assert layout.tagIndexLink("team/app", "v1", D) == R + "/_manifests/tags/v1/index/sha256/%s/link" % (D.hex,)
    assert layout.uploadsDir("team/app") == R + "/_uploads"
    assert layout.uploadData("team/app", "u1") == R + "/_uploads/u1/data"
    assert layout.uploadStartedAt("team/app", "u1") == R + "/_uploads/u1/startedat"


def test_link_directories_and_their_links():
    for linkDir, link in [
        (layout.layerLinkDir("team/app", D), layout.layerLink("team/app", D)),
        (layout.revisionDir("team/app", D), layout.revisionLink("team/app", D)),
        (layout.referrerDir("team/app", D, D), layout.referrerLink("team/app", D, D)),
    ]:
        assert layout.linkIn(linkDir) == link
        assert layout.linkDigestFromPath(linkDir) == layout.linkDigestFromPath(link) == str(D)


def test_repository_marks():
    assert layout.LISTED == {layout.LAYERS, layout.MANIFESTS}
    assert all(layout.isRepositoryOwn(m) for m in (layout.LAYERS, layout.MANIFESTS, layout.UPLOADS))
    assert not layout.isRepositoryOwn("nested")
    assert layout.baseName(layout.uploadDir("team/app", "u1")) == "u1"
