"""Hostile credentials against a daemon with logins (bearer mode, the
built-in token endpoint, a policy with a private and a public repository).

Random and adversarial ``Authorization`` headers (garbage, wrong passwords,
malformed base64 and JWTs, ``alg: none``, HS256 signed with the public key
as secret, a real token with its claims changed, tokens for another
audience, issuer or repository, expired ones) and random token requests,
sent as raw bytes to every kind of route.  For every request: no 5xx, the
spec's error envelope on errors, and zero wrong grants: nothing of the
private repository is ever served, listed or written, and a token endpoint
never grants more than the policy gives the caller.  The daemon logs no
traceback and still serves its users afterwards."""

import base64
import hashlib
import hmac
import json
import os
import time
import urllib.error
import urllib.request

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given
from hypothesis import strategies as st

from tests.hostile import rawhttp
from tests.hostile.checks import Env, LogCursor, isErrorEnvelope
from tests.hostile.test_fuzz import fuzzSettings
from tests.support import secure

PRIVATE = "alice/private"
PUBLIC = "public/open"
MARK = b"private-layer-7d3c"


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def call(method, url, body=None, headers=None):
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


class AuthTarget:
    def __init__(self, env, daemon, keyPath):
        self.env = env
        self.daemon = daemon
        self.port = daemon.port
        self.cursor = LogCursor(daemon)
        with open(keyPath, "rb") as f:
            self.signingKey = serialization.load_pem_private_key(f.read(), None)
        self.publicPEM = self.signingKey.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def token(self, user, scopes):
        h = {"Authorization": basic(user, secure.PASSWORDS[user])} if user else {}
        q = "service=txregistry" + "".join("&scope=" + s for s in scopes)
        status, body = call("GET", "%s/auth/token?%s" % (self.daemon.url, q), headers=h)
        assert status == 200, body
        return json.loads(body)["token"]

    def seed(self):
        for name in (PRIVATE, PUBLIC):
            token = self.token("admin", ["repository:%s:pull,push" % name])
            h = {"Authorization": "Bearer " + token}
            layer = MARK + name.encode() if name == PRIVATE else b"public layer"
            digest = "sha256:" + hashlib.sha256(layer).hexdigest()
            status, body = call("POST", "%s/v2/%s/blobs/uploads/?digest=%s" % (self.daemon.url, name, digest),
                                layer, h)
            assert status == 201, body
            manifest = json.dumps({
                "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest,
                           "size": len(layer)},
                "layers": [],
            }).encode()
            status, body = call("PUT", "%s/v2/%s/manifests/v1" % (self.daemon.url, name), manifest,
                                dict(h, **{"Content-Type": "application/vnd.oci.image.manifest.v1+json"}))
            assert status == 201, body
            if name == PRIVATE:
                self.privateLayer, self.privateManifest = digest, hashlib.sha256(manifest).hexdigest()
        self.alice = self.token("alice", ["repository:%s:pull,push" % PRIVATE])

    def send(self, data):
        try:
            r = rawhttp.exchange(self.port, data, timeout=10)
        except rawhttp.NoResponse as e:
            raise AssertionError("no response to %r: %s" % (data[:500], e))
        for text in self.cursor.problems():
            raise AssertionError("the daemon logged trouble after %r:\n%s" % (data[:500], text))
        assert r.status < 500, (data[:500], r.raw[:1000])
        if r.status >= 400 and not data.startswith(b"HEAD"):
            assert isErrorEnvelope(r.body), (data[:500], r.raw[:1000])
        return r

    def checkNoGrant(self, path, r, data, listing=True):
        """C{r} answered a request without valid credentials for PRIVATE
        (C{listing}: nor a valid identity that may see it listed)."""
        assert MARK not in r.raw, (data[:500], r.raw[:500])
        assert self.privateManifest.encode() not in r.body, (data[:500], r.raw[:500])
        if PRIVATE in path and "/blobs/uploads/" not in path:
            assert r.status in (401, 403, 404), (data[:500], r.raw[:500])
        if "/blobs/uploads/" in path and PRIVATE in path:
            assert r.status in (401, 403), (data[:500], r.raw[:500])
        if listing and (path.startswith("/v2/_catalog") or path.startswith("/v1/search")):
            assert PRIVATE.encode() not in r.body, (data[:500], r.raw[:500])
        if path.startswith("/auth/token") and r.status == 200:
            claims = jwt.decode(json.loads(r.body)["token"], options={"verify_signature": False})
            for grant in claims.get("access", []):
                if grant["name"] == PRIVATE:
                    assert grant["actions"] == [], claims

    def checkAfter(self):
        token = self.token("alice", ["repository:%s:pull" % PRIVATE])
        status, body = call("GET", "%s/v2/%s/blobs/%s" % (self.daemon.url, PRIVATE, self.privateLayer),
                            headers={"Authorization": "Bearer " + token})
        assert status == 200 and body.startswith(MARK)
        status, _ = call("GET", "%s/v2/%s/tags/list" % (self.daemon.url, PRIVATE))
        assert status == 401


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    root = tmp_path_factory.mktemp("authfuzz")
    env = Env(root)
    conf = os.path.join(env.logs, "conf")
    key = ec.generate_private_key(ec.SECP256R1())
    os.makedirs(conf)
    keyPath = os.path.join(conf, "token.pem")
    with open(keyPath, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    # Throttling off: the fuzz sends thousands of wrong passwords from one
    # address, and each must reach the password check (429 would hide it).
    config = secure.CONFIG.replace("        mode: %(mode)s\n", "        mode: bearer\n        login_failures: 0\n"
                                   "        token:\n            key: token.pem\n")
    path = secure.writeConfig(conf, config=config)
    d = env.start(args=("--config", path, "--flavor", "secure"))
    t = AuthTarget(env, d, keyPath)
    try:
        t.seed()
        yield t
    finally:
        d.stop()


def claims(now, **over):
    c = {"iss": "txregistry", "sub": "alice", "aud": "txregistry", "exp": int(now) + 300, "nbf": int(now) - 1,
         "iat": int(now), "jti": "x", "access": [{"type": "repository", "name": PRIVATE, "actions": ["pull", "push"]}]}
    c.update(over)
    return {k: v for k, v in c.items() if v is not None}


def hs256(secret, payload):
    """A JWT signed with HMAC-SHA256 by hand (PyJWT refuses a PEM key as an
    HMAC secret: the key-confusion attack this is)."""
    signed = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(payload).encode())
    return signed + "." + b64(hmac.new(secret, signed.encode(), hashlib.sha256).digest())


def forgedTokens(t):
    """Tokens an attacker could make: each must be refused."""
    now = time.time()
    other = ec.generate_private_key(ec.SECP256R1())
    header, payload, signature = t.alice.split(".")
    escalated = json.loads(base64.urlsafe_b64decode(payload + "=="))
    escalated["sub"] = "admin"
    out = {
        "alg-none": jwt.encode(claims(now), None, algorithm="none"),
        "hs256-public-key": hs256(t.publicPEM, claims(now)),
        "other-key": jwt.encode(claims(now), other, algorithm="ES256"),
        "claims-changed": header + "." + b64(json.dumps(escalated).encode()) + "." + signature,
        "signature-dropped": header + "." + payload + ".",
        "expired": jwt.encode(claims(now - 3600), t.signingKey, algorithm="ES256"),
        "not-yet": jwt.encode(claims(now + 3600), t.signingKey, algorithm="ES256"),
        "other-audience": jwt.encode(claims(now, aud="elsewhere"), t.signingKey, algorithm="ES256"),
        "other-issuer": jwt.encode(claims(now, iss="evil"), t.signingKey, algorithm="ES256"),
        "no-exp": jwt.encode(claims(now, exp=None), t.signingKey, algorithm="ES256"),
        "for-another-repo": t.token("alice", ["repository:alice/other:pull,push"]),
        "anonymous": t.token(None, ["repository:%s:pull,push" % PRIVATE]),
        "bob-reader-push": t.token("bob", ["repository:%s:push" % PRIVATE]),
    }
    return out


ROUTES = [
    ("GET", "/v2/%s/manifests/v1" % PRIVATE),
    ("HEAD", "/v2/%s/manifests/v1" % PRIVATE),
    ("GET", "/v2/%s/tags/list" % PRIVATE),
    ("GET", "/v2/%s/blobs/{layer}" % PRIVATE),
    ("POST", "/v2/%s/blobs/uploads/" % PRIVATE),
    ("POST", "/v2/%s/blobs/uploads/?digest={layer}" % PRIVATE),
    ("POST", "/v2/%s/blobs/uploads/?mount={layer}&from=%s" % (PUBLIC, PRIVATE)),
    ("DELETE", "/v2/%s/manifests/v1" % PRIVATE),
    ("GET", "/v2/_catalog"),
    ("GET", "/v1/search?q=alice"),
    ("GET", "/auth/token?service=txregistry&scope=repository:%s:pull,push,delete" % PRIVATE),
]


def sendAll(t, authorization, listing=True):
    for method, path in ROUTES:
        path = path.replace("{layer}", t.privateLayer)
        headers = [("Authorization", authorization)] if authorization is not None else []
        body = MARK + b"-written" if method == "POST" and "digest=" in path else b""
        data = rawhttp.request(method, path, headers, body)
        r = t.send(data)
        if "mount=" in path:
            # public/open is not alice's to push to: refused anyway
            assert r.status in (401, 403), r.raw[:500]
            continue
        t.checkNoGrant(path, r, data, listing)


def test_forged_tokens_grant_nothing(target):
    for label, token in forgedTokens(target).items():
        # Real tokens of alice and bob for other scopes still say who they
        # are: the catalog and search list what alice or bob may pull.
        sendAll(target, "Bearer " + token, listing=label not in ("for-another-repo", "bob-reader-push"))
    target.checkAfter()


def test_wrong_passwords_grant_nothing(target):
    for authorization in (basic("alice", "wrong"), basic("alice", secure.PASSWORDS["alice"] + "x"),
                          basic("alice", secure.PASSWORDS["alice"][:-1]), basic("nobody", "x"),
                          basic("alice", ""), basic("", secure.PASSWORDS["alice"]),
                          basic("ALICE", secure.PASSWORDS["alice"]), basic("alice\x00", secure.PASSWORDS["alice"]),
                          "Basic " + base64.b64encode(b"alice" + secure.PASSWORDS["alice"].encode()).decode(),
                          "Basic " + base64.b64encode(b"alice:" + secure.PASSWORDS["alice"].encode() + b"\n").decode()):
        sendAll(target, authorization)
    target.checkAfter()


_TEXT = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, blacklist_categories=["Cs"]), max_size=80)


@st.composite
def authorizations(draw):
    scheme = draw(st.sampled_from(["Basic", "Bearer", "basic", "BEARER", "Digest", "Negotiate", "", "Basic  ",
                                   "Bearer\t"]))
    kind = draw(st.sampled_from(["text", "b64", "jwt-ish", "huge", "b64-user"]))
    if kind == "text":
        cred = draw(_TEXT)
    elif kind == "b64":
        cred = base64.b64encode(draw(st.binary(max_size=200))).decode()
    elif kind == "b64-user":
        cred = base64.b64encode(("alice:" + draw(_TEXT)).encode("utf-8")).decode()
    elif kind == "jwt-ish":
        parts = [b64(json.dumps(draw(st.dictionaries(st.sampled_from(["alg", "typ", "kid", "x5c", "jku", "crit"]),
                                                     st.one_of(_TEXT, st.integers(), st.lists(_TEXT, max_size=3)),
                                                     max_size=4))).encode()),
                 b64(json.dumps(draw(st.dictionaries(_TEXT, _TEXT, max_size=4))).encode()),
                 b64(draw(st.binary(max_size=80)))]
        cred = ".".join(parts[: draw(st.integers(1, 3))])
    else:
        cred = "A" * draw(st.integers(1000, 60000))
    return (scheme + " " + cred) if scheme else cred


@fuzzSettings(150)
@given(authorizations(), st.sampled_from(ROUTES))
def test_random_authorization_headers(target, authorization, route):
    method, path = route
    path = path.replace("{layer}", target.privateLayer)
    value = authorization.encode("utf-8")
    if b"\r" in value or b"\n" in value:
        value = value.replace(b"\r", b" ").replace(b"\n", b" ")
    data = rawhttp.request(method, path, [(b"Authorization", value)])
    r = target.send(data)
    if "mount=" not in path:
        target.checkNoGrant(path, r, data)


@fuzzSettings(100)
@given(st.lists(st.one_of(_TEXT, st.sampled_from([
    "repository:%s:pull,push,delete" % PRIVATE, "repository:%s:*" % PRIVATE, "registry:catalog:*",
    "repository(plugin):%s:pull" % PRIVATE, "repository:%s:pull:push" % PRIVATE, "repository::pull",
    "repository:%s" % PRIVATE, "repository:ALICE/PRIVATE:pull", "repository:alice/private/:pull",
    "repository:alice//private:pull", "repository:%s:pull " % PRIVATE])), max_size=4),
    st.sampled_from([None, "txregistry", "other", ""]), st.booleans())
def test_random_token_requests(target, scopes, service, anonymous):
    from urllib.parse import quote

    q = "&".join((["service=" + quote(service)] if service is not None else []) +
                 ["scope=" + quote(s, safe=":,*()/") for s in scopes])
    headers = [] if anonymous else [("Authorization", basic("bob", secure.PASSWORDS["bob"]))]
    data = rawhttp.request("GET", "/auth/token?" + q, headers)
    r = target.send(data)
    if r.status == 200:
        claims = jwt.decode(json.loads(r.body)["token"], options={"verify_signature": False})
        for grant in claims.get("access", []):
            if grant["name"] == PRIVATE:
                # bob may pull alice/*, nothing more; anonymous nothing
                assert set(grant["actions"]) <= (set() if anonymous else {"pull"}), claims
            if grant["name"] not in (PRIVATE, PUBLIC) and grant["name"].startswith("alice/"):
                assert set(grant["actions"]) <= (set() if anonymous else {"pull"}), claims
