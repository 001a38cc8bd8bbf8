"""What the search index makes of text no database stores as given."""

from txregistry.search.index import _catalogBound, storable


def test_storable_keeps_ordinary_text():
    for text in ("", "plain", "café", "日本語", "\U0001f600", "tab\tnew\nline"):
        assert storable(text) == text


def test_storable_replaces_lone_surrogates_and_nul():
    assert storable("\ud800 lone") == "\ufffd lone"
    assert storable("a\udfffb\ud800") == "a\ufffdb\ufffd"
    assert storable("nul\x00here\x00") == "nul\ufffdhere\ufffd"
    assert storable("\x00\ud800") == "\ufffd\ufffd"
    assert storable(None) == ""


def test_storable_joins_a_surrogate_pair_left_as_two_code_points():
    assert storable("\ud83d\ude00") == "\U0001f600"
    assert storable("\ude00\ud83d") == "\ufffd\ufffd"  # the wrong way round: two lone ones


def test_storable_text_encodes():
    for text in ("\ud800", "\udc00x\ud800\udc00", "a\x00\udfff"):
        out = storable(text)
        out.encode("utf-8")
        assert "\x00" not in out


def test_catalog_bound_selects_the_same_names():
    names = ["a", "a-b", "a/b", "ab", "b", "z/z"]
    for last in ("a\x00", "a\x00zzz", "a/\x00", "\x00", "a\ud800", "a/b\udfff", "a\ufffd"):
        bound = _catalogBound(last)
        "".join(bound).encode("utf-8")
        assert "\x00" not in bound
        assert [n for n in names if n > bound] == [n for n in names if n > last], last
