"""Conditional request headers and Accept negotiation (RFC 9110 12, 13)."""

from txregistry.web import conditional as C

ETAG = b'"sha256:abc"'
DOCKER = "application/vnd.docker.distribution.manifest.v2+json"
OCI = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
TYPES = (DOCKER, OCI, OCI_INDEX)


def test_entityTags():
    assert C.parseEntityTags(None) is None
    assert C.parseEntityTags([b""]) is None
    assert C.parseEntityTags([b" * "]) == "*"
    assert C.parseEntityTags([b'"a", W/"b"', b'"c"']) == [(False, "a"), (True, "b"), (False, "c")]
    assert C.parseEntityTags([b'"a", , "b",']) == [(False, "a"), (False, "b")]
    assert C.parseEntityTags([b'""']) == [(False, "")]
    # Malformed: unquoted, a lower-case w/, junk between tags.
    for bad in (b"abc", b'w/"a"', b'"a" "b"', b'"a', b'"a"x'):
        assert C.parseEntityTags([bad]) is None, bad


def test_noneMatch():
    assert C.noneMatch([ETAG], ETAG)
    assert C.noneMatch([b"*"], ETAG)
    assert C.noneMatch([b'W/"sha256:abc"'], ETAG)  # weak comparison
    assert C.noneMatch([b'"other", "sha256:abc"'], ETAG)
    assert C.noneMatch([b'"other"', b'"sha256:abc"'], ETAG)  # several lines
    assert not C.noneMatch([b'"other"'], ETAG)
    assert not C.noneMatch([], ETAG)
    assert not C.noneMatch(None, ETAG)
    assert not C.noneMatch([b"sha256:abc"], ETAG)  # not an entity tag


def test_rangeApplies():
    assert C.rangeApplies(None, ETAG)
    assert C.rangeApplies([], ETAG)
    assert C.rangeApplies([ETAG], ETAG)
    assert C.rangeApplies([b' "sha256:abc" '], ETAG)
    assert not C.rangeApplies([b'"sha256:other"'], ETAG)
    assert not C.rangeApplies([b'W/"sha256:abc"'], ETAG)  # strong comparison only
    assert not C.rangeApplies([b"Wed, 21 Oct 2015 07:28:00 GMT"], ETAG)  # no Last-Modified: no date matches
    assert not C.rangeApplies([b'"sha256:abc", "x"'], ETAG)  # one entity tag, not a list
    assert not C.rangeApplies([b"*"], ETAG)


def test_parseAccept():
    assert C.parseAccept(None) == []
    assert C.parseAccept([b"A/B ; q=0.5 ; ext=1, c/d;charset=x", b"*/*;q=0"]) == [
        ("a/b", 0.5), ("c/d", 1.0), ("*/*", 0.0)]
    assert C.parseAccept([b"a/b;q=2, c/d;q=0.0001, e/f;q=x, g/h;Q=0.000"]) == [
        ("a/b", 1.0), ("c/d", 1.0), ("e/f", 1.0), ("g/h", 0.0)]


def test_acceptsManifest():
    ok = lambda *lines: C.acceptsManifest([l.encode() for l in lines], DOCKER, TYPES)  # noqa: E731
    assert ok()
    assert ok("*/*")
    assert ok("application/json")
    assert ok(DOCKER)
    assert ok(OCI, DOCKER + ";q=0.5")
    assert ok("%s, %s" % (OCI, DOCKER))
    assert not ok(OCI)
    assert not ok(OCI, OCI_INDEX)
    # q=0: not acceptable (RFC 9110 12.4.2), also when listed with others.
    assert not ok(DOCKER + ";q=0")
    assert not ok(DOCKER + ";q=0.000, " + OCI)
    assert not ok(DOCKER + ";q=0, */*")
    assert not ok("application/*;q=0")
    assert not ok("*/*;q=0")
    # A more specific range decides over a wildcard.
    assert ok("*/*;q=0", DOCKER)
    assert ok("application/*;q=0", DOCKER + ";q=0.1")
    # Only q=0 entries for manifest types: the client named none it takes.
    assert ok(OCI + ";q=0")
