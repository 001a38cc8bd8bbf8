"""Hostile input against one running txregistry: adversarial and random
repository names, references, digests, ranges, query strings, manifests and
headers, sent as raw bytes over a socket (a client library would resolve
``..``, re-encode ``%2f`` or refuse NUL before the server saw it).

For every request: no 5xx; an error answered by the registry (it carries
``Docker-Distribution-API-Version``), or to any well-formed request under
``/v2/``, has the spec's JSON body ``{"errors":[{"code","message","detail"}]}``
(a request that is not valid HTTP, or beyond the header limits, may get
Twisted's bare 400 or 431, or a close); nothing from outside the
storage is ever served; no traceback in the daemon's log.  After each test:
nothing created or changed outside the storage directory (the directory
around it, with a canary, is compared with its state at the start), nothing
in the storage outside Distribution's layout, and the daemon still answers
``GET /v2/`` and serves a normal push and pull.

One daemon per module (on empty storage).  Inputs are derandomized (the same
on each run) unless ``HOSTILE_RANDOM=1``; ``HOSTILE_EXAMPLES`` scales the
number of examples (default 1.0)."""

import hashlib
import json
import os
import re
from datetime import timedelta
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.hostile import rawhttp
from tests.hostile.checks import CANARY_TEXT, Env, LogCursor, isErrorEnvelope, pushAndPull, strayFiles
from tests.perf.registryclient import OCI_CONFIG, OCI_LAYER, OCI_MANIFEST, RegistryClient, configBlob

SCALE = float(os.environ.get("HOSTILE_EXAMPLES", "1"))


def fuzzSettings(examples):
    return settings(
        max_examples=max(1, int(examples * SCALE)),
        deadline=timedelta(seconds=10),
        database=None,
        derandomize=not os.environ.get("HOSTILE_RANDOM"),
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        print_blob=True,
    )


BASE = "fuzz/base"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


class Target:
    """The daemon under attack, what was seeded into it, and the checks."""

    def __init__(self, env, daemon):
        self.env = env
        self.daemon = daemon
        self.port = daemon.port
        self.cursor = LogCursor(daemon)
        self.snapshot = env.snapshot()
        self.sent = 0
        self.collect = {} if os.environ.get("HOSTILE_KEEP_GOING") else None

    def seed(self):
        """A small image in BASE: a layer, a config, a manifest tagged v1."""
        client = RegistryClient("127.0.0.1", self.port, timeout=30)
        try:
            self.layer = os.urandom(4096) + b"layer-of-" + BASE.encode()
            self.layerDigest = client.pushBlobMonolithic(BASE, self.layer)
            self.config = configBlob()
            self.configDigest = client.pushBlobMonolithic(BASE, self.config)
            self.manifestDoc = {
                "schemaVersion": 2,
                "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": self.configDigest, "size": len(self.config)},
                "layers": [{"mediaType": OCI_LAYER, "digest": self.layerDigest, "size": len(self.layer)}],
            }
            self.manifest = json.dumps(self.manifestDoc).encode()
            r = client.putManifest(BASE, "v1", self.manifest)
            self.manifestDigest = r.header("docker-content-digest")
        finally:
            client.close()
        self.digests = [self.layerDigest, self.configDigest, self.manifestDigest]

    # --- one request ---

    def send(self, data, timeout=10.0, why=""):
        """Send raw request bytes, check the answer, return it (or C{None}
        when the server closed without answering a request that is not
        valid HTTP)."""
        self.sent += 1
        method = data.split(b" ", 1)[0]
        target = data.split(b" ", 2)[1] if data.count(b" ") >= 2 else b""
        try:
            r = rawhttp.exchange(self.port, data, timeout=timeout)
        except rawhttp.NoResponse as e:
            r = None
            noResponse = str(e)
        self.checkLog(data)
        if r is None:
            # Twisted closes at once on some garbage (an invalid chunk
            # size...); a well-formed request must be answered.
            if _wellFormed(data):
                self.problem("no response", "no response to %r: %s" % (data[:600], noResponse))
            return None
        if r.status >= 500:
            self.problem("HTTP %d" % (r.status,), "HTTP %d for %r%s:\n%r" % (r.status, data[:600], why, r.raw[:1500]))
        if CANARY_TEXT in r.raw:
            self.problem("canary", "canary served for %r" % (data[:600],))
        # The registry's errors carry the envelope; so must any error to a
        # well-formed request for /v2/... within the header limits, whatever
        # layer answers it.
        fromApp = r.header("docker-distribution-api-version") is not None
        underV2 = target.startswith(b"/v2") and _wellFormed(data)
        if (fromApp or underV2) and r.status >= 400 and method.upper() != b"HEAD" and not isErrorEnvelope(r.body):
            self.problem("envelope", "HTTP %d without the error envelope for %r:\n%r" % (r.status, data[:600],
                                                                                          r.raw[:1500]))
        return r

    def problem(self, kind, message):
        """A check failed: raise at once (hypothesis then shrinks the
        input), or, in a deterministic sweep or with HOSTILE_KEEP_GOING=1,
        note the first case of each kind and go on."""
        if self.collect is None:
            raise AssertionError(message)
        self.collect.setdefault(kind, (0, message))
        count, first = self.collect[kind]
        self.collect[kind] = (count + 1, first)

    def sweep(self):
        """Collect the problems of a deterministic sweep (see L{problem})."""
        return _Sweep(self)

    def checkLog(self, data=b""):
        for text in self.cursor.problems():
            self.problem("log: " + _logSignature(text), "the daemon logged trouble after %r:\n%s" % (data[:600], text))

    # --- after a test ---

    def checkAfter(self):
        self.checkLog(b"(end of test)")
        after = self.env.snapshot()
        assert after == self.snapshot, "outside the storage changed: %r" % (
            sorted(set(after.items()) ^ set(self.snapshot.items())),)
        stray = strayFiles(self.env.storage)
        assert not stray, "files outside Distribution's layout in the storage: %r" % (stray[:30],)
        r = rawhttp.exchange(self.port, rawhttp.request("GET", "/v2/"))
        assert r.status == 200 and json.loads(r.body) == {}, r
        pushAndPull(self.daemon)
        self.checkLog(b"(push and pull after the test)")
        self.report()

    def report(self):
        """Raise for the problems collected so far (and forget them)."""
        found = dict(self.collect or {})
        if found:
            self.collect.clear()
            raise AssertionError("%d kind(s) of problem:\n\n%s" % (len(found), "\n\n".join(
                "[%s] x%d, first:\n%s" % (kind, count, message) for kind, (count, message) in sorted(found.items()))))


class _Sweep:
    def __init__(self, target):
        self.target = target

    def __enter__(self):
        self.saved = self.target.collect
        if self.saved is None:
            self.target.collect = {}
        return self

    def __exit__(self, *exc):
        if exc[0] is not None:
            if self.target.collect:
                print("problems found before the failure: %r" % (self.target.collect,))
            self.target.collect = self.saved
            return
        try:
            self.target.report()
        finally:
            self.target.collect = self.saved


def _logSignature(text):
    """What kind of problem a logged one is: where it was logged, its
    message without the quoted request parts, and the exception type."""
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    where = re.search(r"\[([^\]]*)\]", lines[0]) if lines else None
    first = re.sub(r"^\S+ \[[^]]*\] ?", "", lines[0]) if lines else ""
    first = re.sub(r"b?'[^']*'|b?\"[^\"]*\"", "...", first)[:60]
    exc = [l.split(":")[0] for l in lines if re.match(r"^[\w.]+(Error|Exception|Exit|Failure)\b", l)]
    where = re.sub(r",\d+,.*", "", where.group(1)) if where else ""
    return "%s %s %s" % (where, first, exc[-1] if exc else "")


_VALID_NAME = re.compile(r"(?=.{1,255}$)[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*")
_TOKEN = re.compile(rb"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_TARGET = re.compile(rb"^[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]*$")


def _wellFormed(data):
    """Is this an HTTP/1.1 request a strict server must answer (a token
    method, a target of URI characters, header lines with a colon, and no
    chunked body)?"""
    head, _, _ = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not _TOKEN.match(parts[0]) or not _TARGET.match(parts[1]) or parts[2] != b"HTTP/1.1":
        return False
    if len(lines) > 100 or len(head) > 60 * 1024:
        return False  # beyond the header limits: the HTTP layer's own 400/431
    seen = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not _TOKEN.match(name) or any(c < 0x20 and c != 9 or c == 0x7F for c in value):
            return False
        seen.setdefault(name.lower(), []).append(value.strip())
    if b"transfer-encoding" in seen:
        return False
    lengths = seen.get(b"content-length", [])
    if len(lengths) > 1 or any(not v.isdigit() for v in lengths):
        return False
    return True


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    env = Env(tmp_path_factory.mktemp("fuzz"))
    daemon = env.start()
    t = Target(env, daemon)
    try:
        t.seed()
        t.checkLog(b"(seeding)")
        yield t
    finally:
        daemon.stop()


# --- building blocks ---------------------------------------------------------

LONG = "a" * 300
# Path segments that have broken path handling somewhere (percent-encoded
# where a client library would encode them; raw where it would not send
# them at all).
EVIL = [
    "..", ".", "...", "%2e%2e", "%2E%2E", ".%2e", "%2e.", "%2e", "..%2f..", "..%2F..%2F..", "%2f", "%2F",
    "%5c", "%5C", "\\", "..\\..", "..%5c..", "%00", "a%00b", "%2500", "%252e%252e", "%252f", "%25",
    "", "/", "//", ";", "%3b", "..;", ";..", "%3f", "%23", "~", "~root", "$HOME", "*", "%2a",
    "_uploads", "_manifests", "_layers", "_a", "a/_uploads", "a/_manifests/tags", "blobs", "manifests",
    "uploads", "tags", "list", "referrers", "_catalog", "v2", "docker/registry/v2",
    "%c0%ae%c0%ae", "%e0%80%ae%e0%80%ae", "%c0%af", "%ef%bc%8e%ef%bc%8e", "%ef%bd%81", "%c4%b1", "%c4%b0",
    "%e2%84%aa", "%c5%bf", "%e2%80%ae", "%ef%bb%bf", "%e2%88%95", "%ef%bc%8f", "%e2%81%84",
    "%ff", "%", "%zz", "%2", "%%32%65%%32%65", "%u002e%u002e",
    LONG, "a" * 256, "a" * 255, "a-" * 150 + "a", "A", "LATEST", "con", "nul", "aux", "lpt1",
    "a..b", "a.-b", "a__b", "a___b", "-a", "a-", ".a", "a.",
]
# Raw non-ASCII and control bytes in the request target (not valid HTTP;
# Twisted should refuse them with a 400 of its own).
EVIL_RAW = ["ａ", "ı", "İ", "．．", "∕", "\u212a", "\x00", "a b", "\t", "\x7f", "é", "\ud800"]


def _canaryPaths(env):
    """Absolute and relative spellings of the canary, as names and
    references."""
    out = []
    canary = env.canary
    for depth in range(1, 9):
        rel = "../" * depth + "canary"
        out += [rel, rel + "/secret", rel.replace("/", "%2f"), rel.replace(".", "%2e"),
                rel.replace("/", "%2f").replace(".", "%2e"), rel.replace("/", "\\")]
    out += [canary, canary + "/secret", quote(canary, safe=""), quote(canary + "/secret", safe=""),
            "%2f" + quote(canary.lstrip("/"), safe=""), "/" + canary, "//" + canary.lstrip("/")]
    out += ["/etc/passwd", "%2fetc%2fpasswd", "..%2f..%2f..%2f..%2f..%2f..%2f..%2f..%2fetc%2fpasswd"]
    return out


validComponent = st.from_regex(r"[a-z0-9]{1,8}(?:[._-][a-z0-9]{1,8}){0,2}", fullmatch=True)
validTag = st.from_regex(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,20}", fullmatch=True)
hex64 = st.text("0123456789abcdef", min_size=64, max_size=64)
hex128 = st.text("0123456789abcdef", min_size=128, max_size=128)


def encodeSegment(draw, text):
    """Raw, percent-encoded (all or part), or double-encoded."""
    how = draw(st.sampled_from(["raw", "raw", "quote", "quoteAll", "double"]))
    if how == "raw":
        return text
    if how == "quote":
        return quote(text, safe="/%")
    if how == "quoteAll":
        return "".join("%%%02x" % b for b in text.encode("utf-8", "surrogatepass"))
    return quote(quote(text, safe=""), safe="")


@st.composite
def segments(draw, env=None):
    kind = draw(st.sampled_from(["valid", "valid", "evil", "evil", "raw", "text", "canary"]))
    if kind == "valid":
        return draw(validComponent)
    if kind == "evil":
        return draw(st.sampled_from(EVIL))
    if kind == "raw":
        return draw(st.sampled_from(EVIL_RAW))
    if kind == "canary" and env is not None:
        return draw(st.sampled_from(_canaryPaths(env)))
    text = draw(st.text(st.characters(codec="utf-8"), max_size=24))
    return encodeSegment(draw, text)


@st.composite
def repoNames(draw, env=None):
    parts = draw(st.lists(segments(env), min_size=1, max_size=4))
    sep = draw(st.sampled_from(["/", "/", "/", "//", "%2f", "\\", "/./", "/../"]))
    return sep.join(parts)


@st.composite
def digestStrings(draw, known=()):
    kind = draw(st.integers(0, 11))
    if kind == 0 and known:
        return draw(st.sampled_from(known))
    if kind == 1:
        return "sha256:" + draw(hex64)
    if kind == 2:
        return "sha512:" + draw(hex128)
    if kind == 3:
        return "sha256:" + draw(hex64).upper()
    if kind == 4:
        return "sha256:" + draw(st.text("0123456789abcdef", max_size=70).filter(lambda s: len(s) != 64))
    if kind == 5:
        alg = draw(st.sampled_from(["md5", "sha1", "sha384", "SHA256", "sha256+b64", "", "sha-256", "blake3",
                                    "sha256:sha256", "a" * 300]))
        return alg + ":" + draw(hex64)
    if kind == 6:
        return "sha256:" + draw(st.sampled_from(EVIL))
    if kind == 7:
        return draw(st.sampled_from(["sha256:", ":", "sha256::", "sha256%3a" + "0" * 64, "sha256%3A" + "0" * 64,
                                     "sha256:" + "0" * 64 + "%00", "sha256:" + "0" * 64 + "/..", "sha256:%2e%2e"]))
    if kind == 8 and known:
        d = draw(st.sampled_from(known))
        return draw(st.sampled_from([d.upper(), d + "/", d.replace(":", "%3a"), d.replace(":", "%3A"), " " + d,
                                     d + "%20", d.replace("sha256", "sha512"), d[:-1], d + "0"]))
    if kind == 9:
        return "sha256:" + "".join(draw(st.lists(st.sampled_from(["0", "a", "\uff10", "\u0660", "%30"]), min_size=64,
                                                 max_size=64)))
    return draw(segments())


@st.composite
def references(draw, known=()):
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return draw(validTag)
    if kind == 1:
        return draw(digestStrings(known))
    if kind == 2:
        return draw(st.sampled_from(["v1", "latest", "a" * 128, "a" * 129, "_", "-a", ".a", "a:b", "a@b", "a%3ab"]))
    return draw(segments())


@st.composite
def requestPaths(draw, t):
    known = tuple(t.digests)
    route = draw(st.sampled_from(["manifest", "blob", "upload", "uploadStart", "tags", "referrers", "catalog",
                                  "base", "raw", "v1"]))
    name = draw(repoNames(t.env))
    if route == "manifest":
        path = "/v2/%s/manifests/%s" % (name, draw(references(known)))
    elif route == "blob":
        path = "/v2/%s/blobs/%s" % (name, draw(digestStrings(known)))
    elif route == "upload":
        uid = draw(st.one_of(st.uuids().map(str), segments(t.env)))
        path = "/v2/%s/blobs/uploads/%s" % (name, uid)
    elif route == "uploadStart":
        path = "/v2/%s/blobs/uploads/" % (name,)
    elif route == "tags":
        path = "/v2/%s/tags/list" % (name,)
    elif route == "referrers":
        path = "/v2/%s/referrers/%s" % (name, draw(digestStrings(known)))
    elif route == "catalog":
        path = draw(st.sampled_from(["/v2/_catalog", "/v2/_catalog/", "/v2//_catalog", "/v2/%5fcatalog"]))
    elif route == "base":
        path = draw(st.sampled_from(["/v2", "/v2/", "/v2//", "/v2/.", "/v2/..", "/v2/%2e%2e", "/v2/../v2/",
                                     "//v2/", "/V2/", "/v2%2f", "/v2\\", "/v2/%00", "/v2;/", "/v2/;"]))
    elif route == "v1":
        path = draw(st.sampled_from(["/v1/_ping", "/v1/search", "/v1/../v2/", "/v1/%2e%2e/v2/", "/v1/search/.."]))
    else:
        path = "/v2/" + "/".join(draw(st.lists(segments(t.env), max_size=6)))
    prefix = draw(st.sampled_from(["", "", "", "", "http://127.0.0.1", "//", "/./", "/../", "/%2e%2e/"]))
    return prefix + path


methods = st.sampled_from(["GET", "GET", "HEAD", "PUT", "DELETE", "PATCH", "POST", "OPTIONS", "TRACE", "get",
                           "FOO", "CONNECT", "PROPFIND"])


# --- deterministic: the tricks listed by the issue, each on each route -------


def test_path_tricks_every_route(target):
    """Each trick of the list, as the name, the reference, the digest and
    the upload id, with each method of the route."""
    with target.sweep():
        tricks = EVIL + EVIL_RAW + _canaryPaths(target.env)
        layer = target.layerDigest
        for trick in tricks:
            names = [trick, "fuzz/" + trick, trick + "/base", "fuzz/" + trick + "/base", BASE + "/" + trick]
            paths = []
            for n in names:
                paths += [
                    ("GET", "/v2/%s/manifests/v1" % (n,)),
                    ("PUT", "/v2/%s/manifests/v1" % (n,)),
                    ("DELETE", "/v2/%s/manifests/v1" % (n,)),
                    ("GET", "/v2/%s/blobs/%s" % (n, layer)),
                    ("DELETE", "/v2/%s/blobs/%s" % (n, layer)),
                    ("POST", "/v2/%s/blobs/uploads/" % (n,)),
                    ("POST", "/v2/%s/blobs/uploads/?mount=%s&from=%s" % (n, layer, BASE)),
                    ("GET", "/v2/%s/tags/list" % (n,)),
                ]
            paths += [
                ("GET", "/v2/%s/manifests/%s" % (BASE, trick)),
                ("HEAD", "/v2/%s/manifests/%s" % (BASE, trick)),
                ("PUT", "/v2/%s/manifests/%s" % (BASE, trick)),
                ("DELETE", "/v2/tricks/manifests/%s" % (trick,)),
                ("GET", "/v2/%s/blobs/%s" % (BASE, trick)),
                ("GET", "/v2/%s/blobs/sha256:%s" % (BASE, trick)),
                ("GET", "/v2/%s/referrers/%s" % (BASE, trick)),
                ("GET", "/v2/%s/blobs/uploads/%s" % (BASE, trick)),
                ("PATCH", "/v2/%s/blobs/uploads/%s" % (BASE, trick)),
                ("PUT", "/v2/%s/blobs/uploads/%s?digest=%s" % (BASE, trick, layer)),
                ("DELETE", "/v2/%s/blobs/uploads/%s" % (BASE, trick)),
                ("POST", "/v2/tricks/blobs/uploads/?mount=%s&from=%s" % (layer, trick)),
                ("POST", "/v2/tricks/blobs/uploads/?digest=%s" % (trick,)),
                ("GET", "/v2/_catalog?last=%s" % (trick,)),
                ("GET", "/v2/%s/tags/list?last=%s&n=%s" % (BASE, trick, trick)),
            ]
            for method, path in paths:
                body = target.manifest if method in ("PUT", "PATCH") else b""
                headers = [("Content-Type", OCI_MANIFEST)] if body else []
                r = target.send(rawhttp.request(method, path, headers, body))
                if r is not None and r.status < 300 and method == "GET" and "/blobs/sha256:" in path:
                    # A name that is not a repository name reads nothing.
                    name = path[len("/v2/") :].rsplit("/blobs/", 1)[0]
                    assert _VALID_NAME.fullmatch(name), (path, r)
        target.checkAfter()


# --- random paths and methods --------------------------------------------------


@st.composite
def pathRequests(draw, t):
    method = draw(methods)
    path = draw(requestPaths(t))
    body = b""
    headers = []
    if method in ("PUT", "PATCH", "POST") and draw(st.booleans()):
        body = draw(st.one_of(st.binary(max_size=256), st.just(t.manifest)))
        headers.append(("Content-Type", draw(st.sampled_from([OCI_MANIFEST, "application/octet-stream", "x/y"]))))
    return rawhttp.request(method, path, headers, body)


def test_random_paths(target):
    @fuzzSettings(1000)
    @given(data=pathRequests(target))
    def run(data):
        r = target.send(data)
        if r is not None and r.status == 200 and data.startswith(b"GET /v2/") and b"/blobs/sha256:" in data:
            # Only BASE holds blobs before this test (and what a random
            # request pushed or mounted in, which a GET cannot tell): never
            # serve a blob through a name that is not a repository name.
            path = data.split(b" ")[1]
            name = path[len(b"/v2/") :].rsplit(b"/blobs/", 1)[0].decode("utf-8", "replace")
            assert _VALID_NAME.fullmatch(name), (data, r)

    run()
    target.checkAfter()


# --- query strings ---------------------------------------------------------------

NUMBERS = ["0", "1", "-1", "+1", " 1", "1 ", "01", "1e3", "0x10", "1.5", "99999999999999999999", "9" * 9, "9" * 10,
           "2147483648", "\u00b2", "\u00b9", "\u2460", "\uff11", "\u0661", "\u0967", "", "n", "%", "%00", "%ff",
           "1%00", "1&n=2", "NaN", "inf", "true", "[]", "null"]


@st.composite
def queryStrings(draw, t):
    keys = st.sampled_from(["n", "last", "digest", "mount", "from", "artifactType", "q", "page", "N", "n[]",
                            "", "%6e", "n%00", "digest%00"])
    values = st.one_of(
        st.sampled_from(NUMBERS),
        digestStrings(tuple(t.digests)),
        repoNames(t.env),
        st.sampled_from([BASE, "fuzz", "fuzz/", "fuzz/base/", "fuzz//base", "fuzz/./base", "FUZZ/BASE",
                         "fuzz%2fbase", "fuzz/base%00", "fuzz/base/../base"]),
        st.text(st.characters(codec="utf-8"), max_size=40).map(lambda s: quote(s, safe="")),
        st.text(max_size=40),
    )
    pairs = draw(st.lists(st.tuples(keys, values), max_size=5))
    sep = draw(st.sampled_from(["&", "&", ";", "&&"]))
    return sep.join(k + ("=" + v if draw(st.booleans()) or v else "") for k, v in pairs)


@st.composite
def queryRequests(draw, t):
    base = draw(st.sampled_from([
        ("GET", "/v2/_catalog"), ("GET", "/v2/%s/tags/list" % (BASE,)), ("GET", "/v2/nosuch/tags/list"),
        ("POST", "/v2/%s/blobs/uploads/" % (BASE,)), ("POST", "/v2/query/blobs/uploads/"),
        ("GET", "/v2/%s/referrers/%s" % (BASE, t.manifestDigest)), ("GET", "/v1/search"),
        ("PUT", "/v2/query/blobs/uploads/00000000-0000-0000-0000-000000000000"),
        ("GET", "/v2/%s/manifests/v1" % (BASE,)), ("GET", "/v2/%s/blobs/%s" % (BASE, t.layerDigest)),
    ]))
    method, path = base
    query = draw(queryStrings(t))
    body = draw(st.sampled_from([b"", b"", b"x", t.config]))
    return rawhttp.request(method, path + "?" + query + draw(st.sampled_from(["", "", "#frag", "?", "?&"])),
                           [("Content-Type", "application/octet-stream")] if body else [], body)


def test_random_query_strings(target):
    @fuzzSettings(600)
    @given(data=queryRequests(target))
    def run(data):
        r = target.send(data)
        if r is not None and r.status == 201 and b"mount=" in data:
            # A mount may only succeed from a repository that has the blob.
            query = data.split(b" ")[1].split(b"?", 1)[1]
            assert b"from=" in query, (data, r)

    run()
    target.checkAfter()


def test_query_number_grammar(target):
    """n and page: every odd spelling of a number, on each endpoint taking
    one (Python's str.isdigit is true for "\u00b2" and "\u2460", which int()
    refuses)."""
    with target.sweep():
        for n in NUMBERS:
            for path in ("/v2/_catalog?n=%s", "/v2/%s/tags/list?n=%%s" % (BASE,), "/v1/search?q=fuzz&n=%s",
                         "/v1/search?q=fuzz&page=%s", "/v2/_catalog?n=1&last=%s"):
                for spelling in {n, quote(n, safe="")}:
                    target.send(rawhttp.request("GET", path % (spelling,)), why=" (n=%r)" % (n,))
        target.checkAfter()


# --- headers ------------------------------------------------------------------------

RANGES = ["bytes=0-0", "bytes=0-", "bytes=-1", "bytes=-0", "bytes=0-99999999999999999999999", "bytes=5-1",
          "bytes=99999999999999999999-", "bytes=-99999999999999999999", "bytes=0-1,2-3", "bytes=1-2, 5-",
          "bytes=", "bytes", "bytes=-", "bytes=a-b", "bytes = 1 - 2", "items=0-1", "BYTES=0-1", "bytes=0-1-2",
          "bytes=\u0661-\u0662", "bytes=\xb2-\xb3", "bytes=0x10-", "bytes=+1-2", "bytes=1--2", "bytes=4096-",
          "bytes=4095-4096", "bytes=%d-" % (10**6), ""]
CONTENT_RANGES = ["0-0", "0-9", "0-", "-1", "bytes 0-9/10", "bytes 0-9/*", "bytes=0-9", "9-0", "0-99999999999999999999",
                  "99999999999999999999-99999999999999999999", "1-1", "a-b", "0-9/x", "\xb2-\xb3", "", " 0 - 9 "]


@st.composite
def headerValues(draw):
    return draw(st.one_of(
        st.binary(max_size=60).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
        st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=60).map(
            lambda s: s.encode("latin-1")),
        st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=30).map(
            lambda s: s.encode("utf-8", "surrogatepass")),
        st.sampled_from([b"", b" ", b"\x00", b"\xff\xfe", b"a" * 8000, b"%00", b"\x1b[31m", b"()"]),
    ))


@st.composite
def headerRequests(draw, t):
    kind = draw(st.sampled_from(["range", "contentRange", "accept", "contentType", "misc", "version"]))
    blob = "/v2/%s/blobs/%s" % (BASE, t.layerDigest)
    if kind == "range":
        value = draw(st.one_of(st.sampled_from(RANGES), headerValues().map(lambda b: b"bytes=" + b)))
        method = draw(st.sampled_from(["GET", "HEAD"]))
        return rawhttp.request(method, blob, [("Range", value)]), ("range", value)
    if kind == "contentRange":
        value = draw(st.one_of(st.sampled_from(CONTENT_RANGES), headerValues()))
        uid = draw(st.one_of(st.uuids().map(str), st.sampled_from(EVIL)))
        body = draw(st.binary(max_size=64))
        method = draw(st.sampled_from(["PATCH", "PUT"]))
        path = "/v2/hdr/blobs/uploads/%s" % (uid,) + ("?digest=sha256:%s" % (hashlib.sha256(body).hexdigest(),)
                                                      if method == "PUT" else "")
        return rawhttp.request(method, path, [("Content-Range", value)], body), None
    if kind == "accept":
        values = draw(st.lists(st.one_of(st.sampled_from([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, "*/*", "",
                                                          OCI_MANIFEST + ";q=0", ",,,", "a/b, c/d;;;q=x"]),
                                         headerValues()), max_size=4))
        ref = draw(st.sampled_from(["v1", t.manifestDigest, "nosuch"]))
        return rawhttp.request("GET", "/v2/%s/manifests/%s" % (BASE, ref), [("Accept", v) for v in values]), None
    if kind == "contentType":
        value = draw(st.one_of(st.sampled_from([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST, "",
                                                "application/json", OCI_MANIFEST + "; charset=utf-16",
                                                OCI_MANIFEST.upper(), " " + OCI_MANIFEST]), headerValues()))
        tag = draw(validTag)
        return rawhttp.request("PUT", "/v2/hdr/manifests/%s" % (tag,), [("Content-Type", value)], t.manifest), None
    if kind == "misc":
        names = st.one_of(
            st.sampled_from([b"Host", b"Content-Length", b"Transfer-Encoding", b"Expect", b"If-None-Match",
                             b"Connection", b"Authorization", b"Cookie", b"X-Forwarded-For", b"Range", b"Accept",
                             b"Content-Type", b"Docker-Content-Digest", b"Upgrade"]),
            st.binary(min_size=1, max_size=30).filter(lambda b: b"\r" not in b and b"\n" not in b and b":" not in b),
        )
        headers = draw(st.lists(st.tuples(names, headerValues()), max_size=6))
        method, path = draw(st.sampled_from([("GET", "/v2/"), ("GET", blob), ("HEAD", blob),
                                             ("GET", "/v2/%s/manifests/v1" % (BASE,)),
                                             ("GET", "/v2/%s/tags/list" % (BASE,))]))
        return rawhttp.request(method, path, headers, host=draw(st.sampled_from([b"127.0.0.1", None, b""]))), None
    version = draw(st.sampled_from([b"HTTP/1.0", b"HTTP/0.9", b"HTTP/2.0", b"HTTP/1.1x", b"http/1.1", b"HTTP/1.10",
                                    b"HTTP/9.9", b"", b"HTTP/1.1 extra"]))
    return rawhttp.request("GET", "/v2/", version=version), None


def test_random_headers(target):
    size = len(target.layer)

    @fuzzSettings(600)
    @given(case=headerRequests(target))
    def run(case):
        data, info = case
        r = target.send(data)
        if r is None or info is None:
            return
        if info[0] == "range" and data.startswith(b"GET") and _wellFormed(data):
            if r.status == 206:
                m = re.fullmatch(rb"bytes (\d+)-(\d+)/(\d+)", r.header("content-range") or b"")
                assert m, r
                first, last, total = map(int, m.groups())
                assert total == size and r.body == target.layer[first : last + 1], (data, r)
            elif r.status == 200:
                assert r.body == target.layer, (data, r)
            elif r.status == 416:
                assert r.header("content-range") == b"bytes */%d" % (size,), (data, r)
            else:
                raise AssertionError("GET blob with Range: HTTP %d: %r" % (r.status, r))

    run()
    target.checkAfter()


# Framing a server must refuse (RFC 9112 6.1, 6.3): whatever follows is not a
# request of its own.  (name, headers, must be refused)
FRAMINGS = [
    ("cl+te", [(b"Content-Length", b"4"), (b"Transfer-Encoding", b"chunked")], True),
    ("te+cl", [(b"Transfer-Encoding", b"chunked"), (b"Content-Length", b"4")], True),
    ("cl4+cl5", [(b"Content-Length", b"4"), (b"Content-Length", b"5")], True),
    ("cl+4", [(b"Content-Length", b"+4")], True),
    ("cl-4", [(b"Content-Length", b"-4")], True),
    ("cl0x4", [(b"Content-Length", b"0x4")], True),
    ("cl4a", [(b"Content-Length", b"4a")], True),
    ("te-xchunked", [(b"Transfer-Encoding", b"xchunked")], True),
    ("te-chunked-identity", [(b"Transfer-Encoding", b"chunked, identity")], True),
    ("te-space-colon", [(b"Transfer-Encoding ", b"chunked")], True),
    ("te-twice", [(b"Transfer-Encoding", b"chunked"), (b"Transfer-Encoding", b"identity")], True),
    ("te-vtab", [(b"Transfer-Encoding", b"\x0bchunked")], True),
    ("cl-space", [(b"Content-Length", b" 4")], False),
    ("cl-list", [(b"Content-Length", b"4, 4")], False),
]
CHUNKED_BODIES = [b"0\r\n\r\n", b"4\r\nabcd\r\n0\r\n\r\n", b"zz\r\n", b"-1\r\n",
                  b"4;ext=\x00\r\nabcd\r\n0\r\n\r\n", b"4\r\nabcdXX0\r\n\r\n"]


def test_request_smuggling(target):
    """Ambiguous framing (Content-Length with Transfer-Encoding, two
    lengths, signed or hex lengths, unknown codings) is refused, and what
    follows the ambiguous body is never served as a request.  (An unknown
    transfer coding may get 501, as RFC 9112 6.1 says.)"""
    with target.sweep():
        for label, headers, refused in FRAMINGS:
            marker = ("smuggled-%s" if refused else "pipelined-%s") % (label,)
            # The follower asks for the connection to end: reading up to
            # the close shows whether it was served.
            follower = b"GET /v2/%s/tags/list HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % (marker.encode(),)
            for body in CHUNKED_BODIES:
                for method, path in (("POST", "/v2/smuggle/blobs/uploads/"), ("PUT", "/v2/smuggle/manifests/t"),
                                     ("GET", "/v2/")):
                    data = rawhttp.request(method, path, headers, body + follower, close=False)
                    raw, closed = rawhttp.converse(target.port, data, timeout=5)
                    target.checkLog(data)
                    statuses = [int(s) for s in re.findall(rb"^HTTP/1\.1 (\d{3}) ", raw, re.M)]
                    for status in statuses:
                        if status >= 500 and not (status == 501 and label == "te-xchunked"):
                            target.problem("HTTP %d" % (status,), "HTTP %d for %r: %r" % (status, data, raw[:800]))
                    if refused and marker.encode() in raw:
                        target.problem("smuggled " + label, "the request after an ambiguous body was served: "
                                       "%r\ngot %r" % (data, raw[:1500]))
        # Every request is answered by now; what the server parsed out of the
        # bodies would be in the access log.
        pushAndPull(target.daemon)
        log = target.daemon.syncLog().encode("utf-8")
        served = sorted(set(re.findall(rb"smuggled-[a-z0-9+-]+", log)))
        if served:
            target.problem("smuggled (log)", "requests hidden behind ambiguous framing were served: %r" % (served,))
        target.checkAfter()


def test_blobs_do_not_leak_across_repositories(target):
    """The seeded blobs and manifest are readable through their repository
    only: not through another (never pushed to), nor through spellings of
    the same name, nor mounted from a name that is not it."""
    with target.sweep():
        others = ["fuzz/other-never-used", "fuzz", "base", "fuzz/base/x", "fuzz/base2", "fuzz/bas", "fuzzbase"]
        spellings = ["fuzz//base", "fuzz/./base", "fuzz/base/", "FUZZ/BASE", "fuzz%2fbase", "fuzz/base%00",
                     "./fuzz/base", "fuzz/x/../base", "fuzz%2Fbase", "fuzz/bas%65", "%66uzz/base", "fuzz/base/."]
        for name in others + spellings:
            for digest in target.digests:
                for method in ("GET", "HEAD"):
                    r = target.send(rawhttp.request(method, "/v2/%s/blobs/%s" % (name, digest)))
                    assert r.status in (400, 404), (name, digest, r)
                r = target.send(rawhttp.request("GET", "/v2/%s/manifests/%s" % (name, target.manifestDigest)))
                assert r.status in (400, 404), (name, r)
                r = target.send(rawhttp.request("GET", "/v2/%s/manifests/v1" % (name,)))
                assert r.status in (400, 404), (name, r)
        for i, source in enumerate(spellings + ["fuzz/other-never-used", ""]):
            into = "leak/into%d" % (i,)
            # (quoted whole: the server decodes a query, so "fuzz%2fbase" must
            # reach it as those 11 characters, not as "fuzz/base")
            r = target.send(rawhttp.request("POST", "/v2/%s/blobs/uploads/?mount=%s&from=%s"
                                            % (into, target.layerDigest, quote(source, safe=""))))
            assert r.status != 201, (source, r)  # a mount from a name that has it not
            if r.status == 202:
                target.send(rawhttp.request("DELETE", r.header("location").decode()))
            r = target.send(rawhttp.request("GET", "/v2/%s/blobs/%s" % (into, target.layerDigest)))
            assert r.status == 404, (into, r)
        target.checkAfter()


def test_header_limits(target):
    """Many headers, one overlong header, a header block just at the limit:
    a 4xx (or a close for what is not HTTP), never a 5xx, and nothing held
    afterwards."""
    with target.sweep():
        cases = [
            rawhttp.request("GET", "/v2/", [("X-H%d" % i, "v") for i in range(101)]),
            rawhttp.request("GET", "/v2/", [("X-H%d" % i, "v") for i in range(5000)]),
            rawhttp.request("GET", "/v2/", [("X-Long", "a" * (64 * 1024 + 1))]),
            rawhttp.request("GET", "/v2/", [("X-Long", "a" * (1024 * 1024))]),
            rawhttp.request("GET", "/v2/", [("X-L%d" % i, "a" * 1000) for i in range(80)]),
            rawhttp.request("GET", "/v2/" + "a" * (64 * 1024 + 1)),
            rawhttp.request("GET", "/v2/" + "a/" * 40000 + "tags/list"),
            rawhttp.request("GET", "/v2/_catalog?last=" + "a" * 60000),
            rawhttp.request("GET", "/v2/", [(" X-Folded", "v")]),
            rawhttp.request("GET", "/v2/", [("Host", b"\x82")], host=None),
            rawhttp.request("GET", "/v2/", [("Host", "\u0130.example")], host=None),
            rawhttp.request("GET", "/v2/", [("Host", "127.0.0.1"), ("Host", "evil.example")], host=None),
            b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n continued\r\nConnection: close\r\n\r\n",
            b"GET /v2/ HTTP/1.1\r\nHost: x\r\nNoColon\r\nConnection: close\r\n\r\n",
            b"GET /v2/ HTTP/1.1\nHost: x\nConnection: close\n\n",
            b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX: \x00\r\nConnection: close\r\n\r\n",
            b"\r\n\r\nGET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b" GET /v2/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b"GET  /v2/  HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + b"\x00" * 40,
            b"\x00\x00\x00\x00\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ]
        for data in cases:
            target.send(data, timeout=3)
        target.checkAfter()


def test_declared_length_over_the_manifest_limit(target):
    """A manifest PUT announcing more than max_manifest_size (4 MiB) gets
    413 at once: the server need not (and should not) wait for, or read, a
    body it will refuse."""
    with target.sweep():
        for length in ("99999999999999999999999", str(4 * 1024 * 1024 + 1), str(2**63)):
            data = rawhttp.request("PUT", "/v2/lim/manifests/t", [("Content-Type", OCI_MANIFEST),
                                                                 ("Content-Length", length)], close=False)
            r = target.send(data, timeout=2, why=" (Content-Length %s, body not sent)" % (length,))
            if r is not None and r.status != 413:
                target.problem("status", "HTTP %d, not 413, for %r" % (r.status, data))
        target.checkAfter()


# --- manifests -------------------------------------------------------------------------

jsonScalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(codec="utf-8"), max_size=30),
    st.sampled_from([2, -1, 0, 2**63, 2**64 + 1, 10**30, 1e308, -0.0, "2", "sha256:", "\x00", "\ud800", "\u202e"]),
)
jsonValues = st.recursive(jsonScalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.text(max_size=12), children, max_size=4)), max_leaves=20)


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


def _set(doc, path, value):
    if not path:
        return value
    doc = json.loads(json.dumps(doc))
    node = doc
    for p in path[:-1]:
        node = node[p]
    if value is _DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return doc


_DELETE = object()


@st.composite
def manifestBodies(draw, t):
    kind = draw(st.sampled_from(["mutate", "mutate", "mutate", "random", "text", "nesting", "numbers", "unicode",
                                 "index", "bytes"]))
    base = draw(st.sampled_from([
        t.manifestDoc,
        dict(t.manifestDoc, mediaType=DOCKER_MANIFEST),
        {"schemaVersion": 2, "mediaType": OCI_INDEX,
         "manifests": [{"mediaType": OCI_MANIFEST, "digest": t.manifestDigest, "size": len(t.manifest)}]},
        dict(t.manifestDoc, subject={"mediaType": OCI_MANIFEST, "digest": t.manifestDigest,
                                     "size": len(t.manifest)}, artifactType="application/x-fuzz",
             annotations={"org.opencontainers.image.description": "fuzz"}),
    ]))
    if kind == "mutate":
        doc = base
        for _ in range(draw(st.integers(1, 3))):
            paths = list(_paths(doc))
            path = draw(st.sampled_from(paths))
            value = draw(st.one_of(jsonValues, st.just(_DELETE) if path else st.nothing(),
                                   digestStrings(tuple(t.digests))))
            doc = _set(doc, path, value)
        return json.dumps(doc, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")
    if kind == "random":
        return json.dumps(draw(jsonValues)).encode()
    if kind == "text":
        return draw(st.text(st.characters(codec="utf-8"), max_size=200)).encode("utf-8", "surrogatepass")
    if kind == "nesting":
        depth = draw(st.sampled_from([100, 900, 1000, 2000, 10000, 100000, 1000000]))
        shape = draw(st.sampled_from(["list", "dict", "inLayers", "inAnnotations"]))
        if shape == "list":
            return b"[" * depth + b"]" * depth
        if shape == "dict":
            return b'{"a":' * depth + b"1" + b"}" * depth
        inner = b"[" * depth + b"]" * depth
        doc = json.dumps(dict(t.manifestDoc, layers="@@")).encode() if shape == "inLayers" else json.dumps(
            dict(t.manifestDoc, annotations={"x": "@@"})).encode()
        return doc.replace(b'"@@"', inner)
    if kind == "numbers":
        number = draw(st.sampled_from([b"1e999999", b"-1e400", b"NaN", b"Infinity", b"-Infinity", b"1" * 5000,
                                       b"1" * 100000, b"0.0000000001e-99999", b"2.0", b"2e0", b"0x2", b"02", b"-0",
                                       b"18446744073709551617", b"1" * 4300, b"1" * 4301]))
        where = draw(st.sampled_from(["schemaVersion", "size", "layerSize"]))
        doc = dict(t.manifestDoc)
        if where == "schemaVersion":
            doc["schemaVersion"] = "@@"
        elif where == "size":
            doc["config"] = dict(doc["config"], size="@@")
        else:
            doc["layers"] = [dict(doc["layers"][0], size="@@")]
        return json.dumps(doc).encode().replace(b'"@@"', number)
    if kind == "unicode":
        value = draw(st.sampled_from(["\ud800", "\udfff", "\x00", "\u202e", "\ufeff", "\uffff", "\U0010ffff",
                                      "ａ", "sha256:\uff10" * 2]))
        where = draw(st.sampled_from(["description", "mediaType", "artifactType", "configType", "key"]))
        doc = dict(t.manifestDoc)
        if where == "description":
            doc["annotations"] = {"org.opencontainers.image.description": value}
        elif where == "mediaType":
            doc["mediaType"] = OCI_MANIFEST + value
        elif where == "artifactType":
            doc["artifactType"] = value
        elif where == "configType":
            doc["config"] = dict(doc["config"], mediaType=value)
        else:
            doc["annotations"] = {value: "x"}
        body = json.dumps(doc, ensure_ascii=draw(st.booleans()))
        enc = draw(st.sampled_from(["utf-8", "utf-16", "utf-8-sig", "utf-32"]))
        return body.encode(enc, "surrogatepass")
    if kind == "index":
        children = draw(st.lists(st.one_of(jsonValues, st.fixed_dictionaries({
            "mediaType": st.sampled_from([OCI_MANIFEST, OCI_INDEX, "x"]),
            "digest": digestStrings(tuple(t.digests)),
            "size": st.one_of(st.integers(), jsonScalars)})), max_size=4))
        return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}).encode("utf-8",
                                                                                                        "surrogatepass")
    return draw(st.binary(max_size=300))


@st.composite
def manifestRequests(draw, t):
    body = draw(manifestBodies(t))
    ref = draw(st.one_of(validTag, st.just("sha256:" + hashlib.sha256(body).hexdigest()),
                         st.just("sha512:" + hashlib.sha512(body).hexdigest()), references(tuple(t.digests))))
    contentType = draw(st.one_of(st.sampled_from([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST,
                                                  "application/json", "", None, "text/plain",
                                                  "application/vnd.docker.distribution.manifest.v1+prettyjws"]),
                                 headerValues()))
    name = draw(st.sampled_from([BASE, BASE, "fuzz/other"]))
    headers = [] if contentType is None else [("Content-Type", contentType)]
    return name, ref, body, rawhttp.request("PUT", "/v2/%s/manifests/%s" % (name, ref), headers, body)


def test_random_manifests(target):
    @fuzzSettings(600)
    @given(case=manifestRequests(target))
    def run(case):
        name, ref, body, data = case
        r = target.send(data, why=" (manifest %r)" % (body[:300],))
        if r is not None and r.status == 201:
            digest = r.header("docker-content-digest").decode()
            algorithm = digest.split(":")[0]
            assert digest == "%s:%s" % (algorithm, hashlib.new(algorithm, body).hexdigest()), (digest, body)
            got = target.send(rawhttp.request("GET", "/v2/%s/manifests/%s" % (name, digest),
                                              [("Accept", OCI_MANIFEST + ", " + OCI_INDEX + ", " + DOCKER_MANIFEST
                                                + ", " + DOCKER_LIST)]))
            assert got.status == 200 and got.body == body, (data[:400], got)
            # Anything the registry accepted must also be listed, described
            # and served without trouble.
            target.send(rawhttp.request("GET", "/v2/%s/tags/list" % (name,)))
            target.send(rawhttp.request("GET", "/v2/%s/referrers/%s" % (name, target.manifestDigest)))
            target.send(rawhttp.request("GET", "/v1/search?q=fuzz"))

    run()
    target.checkAfter()


def test_manifest_extremes(target):
    """Deep nesting, huge numbers, non-UTF-8 and oversized bodies: each gets
    a 4xx (413 over the size limit), never a 5xx or a traceback."""
    with target.sweep():
        cases = []
        for depth in (999, 1000, 1001, 5000, 100000, 2 * 1024 * 1024 - 8):
            cases.append(b"[" * depth + b"]" * depth)
            cases.append(b'{"a":' * min(depth, 800000) + b"1" + b"}" * min(depth, 800000))
        doc = json.dumps(dict(target.manifestDoc, annotations={"x": "@@"})).encode()
        cases.append(doc.replace(b'"@@"', b"[" * 100000 + b"]" * 100000))
        for number in (b"1e999999", b"1" * 4301, b"1" * 1000000, b"NaN", b"-Infinity"):
            cases.append(json.dumps(dict(target.manifestDoc, schemaVersion="@@")).encode().replace(b'"@@"', number))
        cases += [
            b"\xff\xfe" + json.dumps(target.manifestDoc).encode("utf-16-le"),
            b"\xef\xbb\xbf" + target.manifest,
            target.manifest + b"\x00",
            target.manifest[:-1] + b"\xff}",
            b" " * (4 * 1024 * 1024 - len(target.manifest)) + target.manifest,  # just at the limit
            b" " * (4 * 1024 * 1024 + 1),
            target.manifest + b" " * (8 * 1024 * 1024),
            b'{"schemaVersion":2,"mediaType":"%s","layers":[%s]}' % (
                OCI_MANIFEST.encode(), b",".join([b'{"digest":"sha256:%s","size":1}' % (b"0" * 64,)] * 40000)),
            b'{"a":1,' * 1 + b'"a":2}',
            b'{"schemaVersion":2,"schemaVersion":2,"mediaType":"%s"}' % (OCI_INDEX.encode(),),
        ]
        for body in cases:
            for ctype in (OCI_MANIFEST, "application/json"):
                target.send(rawhttp.request("PUT", "/v2/%s/manifests/extreme" % (BASE,), [("Content-Type", ctype)], body),
                            timeout=30, why=" (manifest of %d bytes starting %r)" % (len(body), body[:60]))
        target.checkAfter()


# --- uploads: sequences of steps with adversarial ranges and digests -----------------------


@st.composite
def uploadFlows(draw, t):
    steps = []
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["patch", "patch", "put", "get", "delete", "badchunk", "mount", "monolithic"]))
        body = draw(st.one_of(st.binary(max_size=2048), st.sampled_from([b"", t.layer, t.config])))
        crange = draw(st.one_of(st.none(), st.sampled_from(CONTENT_RANGES),
                                st.tuples(st.integers(0, 5000), st.integers(0, 5000)).map(lambda p: "%d-%d" % p)))
        digest = draw(st.one_of(st.just("sha256:" + hashlib.sha256(body).hexdigest()), digestStrings(tuple(t.digests))))
        steps.append((kind, body, crange, digest))
    return draw(st.sampled_from(["flow/a", "flow/b", BASE])), steps


def test_random_upload_flows(target):
    @fuzzSettings(250)
    @given(flow=uploadFlows(target))
    def run(flow):
        name, steps = flow
        r = target.send(rawhttp.request("POST", "/v2/%s/blobs/uploads/" % (name,)))
        assert r.status == 202, r
        location = r.header("location").decode()
        for kind, body, crange, digest in steps:
            headers = [("Content-Range", crange)] if crange is not None else []
            if kind == "patch":
                r = target.send(rawhttp.request("PATCH", location, headers, body))
                if r.status == 202:
                    location = r.header("location").decode()
            elif kind == "put":
                r = target.send(rawhttp.request("PUT", location + "?digest=" + digest, headers, body))
                if r.status == 201:
                    checkBlob(target, name, r.header("docker-content-digest").decode())
            elif kind == "monolithic":
                r = target.send(rawhttp.request("POST", "/v2/%s/blobs/uploads/?digest=%s" % (name, digest),
                                                [("Content-Type", "application/octet-stream")], body))
                if r.status == 201:
                    checkBlob(target, name, r.header("docker-content-digest").decode())
            elif kind == "get":
                target.send(rawhttp.request("GET", location))
            elif kind == "delete":
                target.send(rawhttp.request("DELETE", location))
            elif kind == "mount":
                r = target.send(rawhttp.request("POST", "/v2/flow/m/blobs/uploads/?mount=%s&from=%s" % (digest, name)))
            else:
                # A chunked body with a malformed chunk: the connection is
                # dropped, and the upload must not stay locked.
                body = body or b"x"
                data = rawhttp.request("PATCH", location, [("Transfer-Encoding", "chunked")] + headers,
                                       b"%x\r\n" % (len(body),) + body + b"\r\nzz\r\n")
                target.send(data, timeout=5)
                # The upload is usable at once (not locked by the dead request).
                target.send(rawhttp.request("GET", location), timeout=5)
        target.send(rawhttp.request("DELETE", location))

    run()
    target.checkAfter()


def checkBlob(target, name, digest):
    r = target.send(rawhttp.request("GET", "/v2/%s/blobs/%s" % (name, digest)))
    assert r.status == 200, r
    algorithm = digest.split(":")[0]
    assert "%s:%s" % (algorithm, hashlib.new(algorithm, r.body).hexdigest()) == digest, (name, digest, r)
