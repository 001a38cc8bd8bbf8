import pytest

from txregistry import digest, names

HEX64 = "a" * 64


@pytest.mark.parametrize(
    "value",
    ["sha256:" + HEX64, "sha512:" + "0" * 128, b"sha256:" + HEX64.encode()],
)
def test_validDigests(value):
    d = digest.parse(value)
    assert d.algorithm in ("sha256", "sha512")
    assert len(d.hex) in (64, 128)


@pytest.mark.parametrize(
    "value",
    [
        "sha256:totallywrong",
        "sha256:" + "A" * 64,
        "sha256:" + "a" * 63,
        "sha512:" + "a" * 64,
        "md5:" + "a" * 32,
        "sha256" + HEX64,
        "",
        "sha256:" + HEX64 + "\n",
        "../sha256:" + HEX64,
        b"\xff\xfe",
        "x" * 1000,
    ],
)
def test_invalidDigests(value):
    with pytest.raises(digest.InvalidDigest):
        digest.parse(value)


def test_digestOf():
    assert digest.of(b"") == "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert digest.of(b"", "sha512").startswith("sha512:cf83e135")


@pytest.mark.parametrize(
    "name",
    ["a", "library/ubuntu", "a-b/c.d/e__f", "x0/y1/z2", "foo--bar", "a" * 255, "a/b/c/d/e/f"],
)
def test_validNames(name):
    assert names.isValidName(name)


@pytest.mark.parametrize(
    "name",
    [
        "", "A", "a/", "/a", "a//b", "a/../b", "..", "a/..", "_a", "a_", "a.", ".a", "a/_manifests",
        "a%2fb", "a%2e%2e", "a\\b", "a\x00b", "a" * 256, "ａ", "a b", "a/-b", "a___b",
    ],
)
def test_invalidNames(name):
    assert not names.isValidName(name)


@pytest.mark.parametrize("tag", ["latest", "v1.0", "_x", "A" * 128, "1-2_3.4"])
def test_validTags(tag):
    assert names.isValidTag(tag)


@pytest.mark.parametrize("tag", ["", ".x", "-x", "A" * 129, "a:b", "a/b", "a b", "..", "é"])
def test_invalidTags(tag):
    assert not names.isValidTag(tag)


@pytest.mark.parametrize(
    "header,size,expected",
    [
        (None, 10, None),
        ("bytes=0-4", 10, (0, 4)),
        ("bytes=5-", 10, (5, 9)),
        ("bytes=-3", 10, (7, 9)),
        ("bytes=-30", 10, (0, 9)),
        ("bytes=2-100", 10, (2, 9)),
        ("bytes=0-1,3-4", 10, None),  # several ranges: serve everything
        ("items=0-1", 10, None),
        ("bytes=5-2", 10, None),
        ("garbage", 10, None),
    ],
)
def test_parseRange(header, size, expected):
    assert names.parseRange(header, size) == expected


@pytest.mark.parametrize("header,size", [("bytes=10-", 10), ("bytes=100-200", 10), ("bytes=-0", 10), ("bytes=0-", 0)])
def test_unsatisfiableRange(header, size):
    with pytest.raises(names.RangeNotSatisfiable):
        names.parseRange(header, size)


@pytest.mark.parametrize(
    "header,expected",
    [("0-99", (0, 99)), ("100-199", (100, 199)), ("bytes 0-9/10", (0, 9)), ("bytes=5-9", (5, 9))],
)
def test_contentRange(header, expected):
    assert names.parseContentRange(header) == expected


@pytest.mark.parametrize("header", ["", "5", "9-5", "a-b", "-5", "bytes */10"])
def test_badContentRange(header):
    with pytest.raises(ValueError):
        names.parseContentRange(header)
