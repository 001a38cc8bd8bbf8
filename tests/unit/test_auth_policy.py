"""Pure parts of txregistry.auth: repository globs, scopes, challenges, redaction."""

import fnmatch

import pytest
from hypothesis import given
from hypothesis import strategies as st

from txregistry.auth import Authorizer, formatScope, parseScope, redact, redactHeaders
from txregistry.auth.policy import Policy, Rule, compileGlob
from txregistry.auth.settings import AuthSettings, TokenSettings


@pytest.mark.parametrize(
    "glob, name, matches",
    [
        ("team-a/*", "team-a/app", True),
        ("team-a/*", "team-a/x/y", True),
        ("team-a/*", "team-a", False),
        ("team-a/*", "team-ab/app", False),
        ("team-a/*", "other/team-a/app", False),
        ("*", "anything/at/all", True),
        ("*", "x", True),
        ("*/app", "a/b/app", True),
        ("*/app", "app", False),
        ("lib?/x", "lib1/x", True),
        ("lib?/x", "lib10/x", False),
        ("a?b", "a/b", False),
        ("library/alpine", "library/alpine", True),
        ("library/alpine", "library/alpine2", False),
        ("library/alpine", "xlibrary/alpine", False),
        ("a.b", "axb", False),  # "." is literal
        ("a**", "a/b/c", True),
    ],
)
def test_globs(glob, name, matches):
    assert (compileGlob(glob).fullmatch(name) is not None) == matches


@given(
    st.text(alphabet="ab/*", min_size=1, max_size=8).filter(
        lambda g: not g.startswith("/") and not g.endswith("/") and "//" not in g
    ),
    st.text(alphabet="ab/", max_size=10),
)
def test_globStarIsFnmatchCaseStar(glob, name):
    # Without "?", our globs mean what fnmatch.fnmatchcase means ("*" crosses "/").
    assert (compileGlob(glob).fullmatch(name) is not None) == fnmatch.fnmatchcase(name, glob)


def test_policyUnion():
    p = Policy(
        admins=frozenset(["root"]),
        anonymous=(Rule.make("public/*", ["pull"]),),
        users={"u": (Rule.make("u/*", ["push"]), Rule.make("u/*", ["pull"]))},
        groups={},
    )
    assert p.actionsFor("u", "u/x") == {"pull", "push"}
    assert p.actionsFor("u", "public/x") == {"pull"}
    assert p.actionsFor("root", "zzz") == {"pull", "push", "delete"}
    assert p.actionsFor(None, "u/x") == frozenset()
    assert not p.allows("root", "zzz", "admin")


# -- scopes --------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, parsed",
    [
        ("repository:team/app:pull,push", [("repository", "team/app", ["pull", "push"])]),
        ("repository:app:pull", [("repository", "app", ["pull"])]),
        ("registry:catalog:*", [("registry", "catalog", ["*"])]),
        ("repository:localhost:5000/app:pull", [("repository", "localhost:5000/app", ["pull"])]),
        ("repository(plugin):p:pull", [("repository(plugin)", "p", ["pull"])]),
        ("repository:a:pull,pull,push", [("repository", "a", ["pull", "push"])]),
        (
            "repository:a:pull  repository:b:push,delete",
            [("repository", "a", ["pull"]), ("repository", "b", ["push", "delete"])],
        ),
        ("", []),
        (b"repository:a:pull", [("repository", "a", ["pull"])]),
    ],
)
def test_parseScope(text, parsed):
    assert parseScope(text) == parsed


@pytest.mark.parametrize(
    "text",
    [
        "repository",
        "repository:app",
        "repository::pull",
        ":app:pull",
        "repository:app:",
        "repository:app:pull,",
        "repository:app:PULL",
        "Repository:app:pull",
        'repository:a"b:pull',
        "repository:a\\b:pull",
        b"repository:\xff:pull",
    ],
)
def test_parseScopeRejects(text):
    with pytest.raises(ValueError):
        parseScope(text)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["repository", "registry"]),
            st.from_regex(r"[a-z0-9]+(/[a-z0-9._-]+){0,3}", fullmatch=True),
            st.lists(st.sampled_from(["pull", "push", "delete", "*"]), min_size=1, max_size=3, unique=True),
        ),
        max_size=4,
    )
)
def test_scopeRoundTrip(scopes):
    text = " ".join(formatScope(s) for s in scopes)
    assert parseScope(text) == [(t, n, list(a)) for t, n, a in scopes]


# -- challenges ------------------------------------------------------------------

def authorizer(mode, realm="/auth/token"):
    token = None
    if mode == "bearer":
        token = TokenSettings(service="registry.example", issuers=("x",), realm=realm, issue=False,
                              expiration=300)
    return Authorizer(AuthSettings(mode=mode, realm="txregistry", token=token), reactor=None, threadpool=None)


def test_basicChallenge():
    a = authorizer("basic")
    assert a.challenge() == 'Basic realm="txregistry"'
    assert a.challenge(["repository:a:pull"], error="invalid_token") == 'Basic realm="txregistry"'


def test_bearerChallenge():
    a = authorizer("bearer", realm="https://auth.example/token")
    assert a.challenge() == 'Bearer realm="https://auth.example/token",service="registry.example"'
    assert a.challenge([("repository", "samalba/my-app", ["pull", "push"])]) == (
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:samalba/my-app:pull,push"'
    )
    assert a.challenge(["repository:a:pull", ("repository", "b", "pull,push")], error="insufficient_scope") == (
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:a:pull repository:b:pull,push",error="insufficient_scope"'
    )
    with pytest.raises(ValueError):
        a.challenge(error="nope")


def test_bearerChallengeRelativeRealm():
    a = authorizer("bearer")
    assert a.challenge(baseURL="https://reg.example:5443/").startswith('Bearer realm="https://reg.example:5443/auth/token"')
    assert a.challenge(baseURL=b"http://[::1]:5000").startswith('Bearer realm="http://[::1]:5000/auth/token"')
    assert a.challenge().startswith('Bearer realm="/auth/token"')
    # A Host header cannot break out of the quoted value.
    for evil in ('http://x",error="a', "http://a b", "javascript://x", "http://x/\r\n"):
        assert a.challenge(baseURL=evil).startswith('Bearer realm="/auth/token",service=')


def test_challengeDropsMalformedScopes():
    a = authorizer("bearer", realm="https://a/t")
    assert a.challenge(['repository:x":pull']) == 'Bearer realm="https://a/t",service="registry.example"'


# -- redaction ---------------------------------------------------------------------

@pytest.mark.parametrize(
    "name, value, shown",
    [
        ("Authorization", "Basic YWxpY2U6c2VjcmV0", "Basic [redacted]"),
        (b"authorization", b"Bearer eyJhbGciOi.eyJpc3Mi.c2ln", b"Bearer [redacted]"),
        ("AUTHORIZATION", "garbage-without-scheme", "[redacted]"),
        ("Proxy-Authorization", "Basic Zm9vOmJhcg==", "Basic [redacted]"),
        ("Cookie", "session=abc", "[redacted]"),
        (b"Set-Cookie", b"session=abc; HttpOnly", b"[redacted]"),
        ("X-Registry-Auth", "eyJ1c2VybmFtZSI6ImEifQ==", "[redacted]"),
        ("User-Agent", "docker/24.0", "docker/24.0"),
        (b"Accept", b"application/json", b"application/json"),
    ],
)
def test_redact(name, value, shown):
    assert redact(name, value) == shown


@given(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=60))
def test_redactNeverShowsCredentials(secret):
    for scheme in ("Basic", "Bearer", "Digest"):
        out = redact("Authorization", "%s %s" % (scheme, secret))
        assert out == "%s [redacted]" % scheme
    assert redact("Authorization", secret) == "[redacted]"


def test_redactHeaders():
    assert redactHeaders([(b"Authorization", b"Basic eA=="), (b"Host", b"h")]) == [
        (b"Authorization", b"Basic [redacted]"),
        (b"Host", b"h"),
    ]
