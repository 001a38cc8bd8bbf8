"""The upstream is txregistry itself with bearer-token logins over TLS
(standing in for Docker Hub's token flow): the mirror follows the 401's
challenge to the token endpoint, with credentials or anonymously, keeps
its tokens, trusts the upstream's CA bundle; an upstream answering 429
(its per-client login throttle) is a 429 with Retry-After here."""

import shutil
import urllib.error
import urllib.request

import pytest

from tests.e2e import clients, oci
from tests.mirror.conftest import mirrorConfig
from tests.support import secure
from tests.support.required import missing

THROTTLING = secure.CONFIG.replace("        mode: %(mode)s\n", "        mode: %(mode)s\n        login_failures: 1\n"
                                   "        login_failure_window: 600\n        cache_seconds: 0\n")


@pytest.fixture
def secureUpstream(tmp_path, daemons):
    if shutil.which("htpasswd") is None:
        missing("htpasswd is not installed")

    def start(config=secure.CONFIG):
        d = daemons.add(secure.startSecure(tmp_path / "upstream", config=config))
        return d

    return start


def pushTo(upstream, src, ref):
    clients.skopeo("copy", "--preserve-digests", "--dest-creds", "alice:" + secure.PASSWORDS["alice"],
                   "--dest-cert-dir", upstream.certDir, "oci:%s:v1" % (src,), "docker://%s/%s" % (upstream.host, ref))


def tokenRequests(upstream):
    return upstream.syncLog().count("GET /auth/token")


def test_bearerTokensWithAndWithoutCredentials(secureUpstream, daemons, tmp_path):
    upstream = secureUpstream()
    src = str(tmp_path / "src")
    image = oci.buildImage(src, tag="v1", layers=2)
    pushTo(upstream, src, "alice/app:v1")
    pushTo(upstream, src, "public/app:v1")
    config = mirrorConfig(upstream.url, username="alice", password=secure.PASSWORDS["alice"],
                          ca_bundle=upstream.pki["ca"], tags_ttl=0)
    config["mirrors"]["upstreams"].append(
        {"name": "anon", "url": upstream.url, "prefix": "anon", "ca_bundle": upstream.pki["ca"], "tags_ttl": 0})
    mirror = daemons.txregistry(tmp_path / "mirror", config)

    out = str(tmp_path / "out")
    clients.pull(mirror, "alice/app:v1", "oci:%s:v1" % (out,))
    assert oci.resolve(out, "v1")["digest"] == image.manifestDigest
    assert set(image.blobDigests) <= oci.verifyBlobs(out)
    first = tokenRequests(upstream)
    assert first >= 1
    # Tokens are kept: a second pull (its tag checked again, ttl 0) asks for none.
    clients.pull(mirror, "alice/app:v1", "oci:%s:v1" % (str(tmp_path / "out2"),))
    assert tokenRequests(upstream) == first

    # Anonymous: public/* is pullable with an anonymous token; alice/* is not (404 here).
    clients.pull(mirror, "anon/public/app:v1", "oci:%s:v1" % (str(tmp_path / "out3"),))
    status, _, _ = clients.request(mirror, "/v2/anon/alice/app/manifests/v1")
    assert status == 404


def test_upstreamRateLimitIs429(secureUpstream, daemons, tmp_path):
    upstream = secureUpstream(THROTTLING)
    config = mirrorConfig(upstream.url, username="alice", password="wrong", ca_bundle=upstream.pki["ca"])
    mirror = daemons.txregistry(tmp_path / "mirror", config)
    seen = []
    for _ in range(4):
        status, headers, body = clients.request(mirror, "/v2/alice/app/manifests/v1")
        seen.append(status)
        if status == 429:
            break
    assert seen[-1] == 429, seen
    assert int(headers["Retry-After"]) > 0
    assert b"TOOMANYREQUESTS" in body
    assert 500 not in seen
    # Retry-After is honoured: until it passes, the upstream is not asked again.
    asked = tokenRequests(upstream)
    status, headers, _ = clients.request(mirror, "/v2/alice/other/manifests/v1")
    assert status == 429 and int(headers["Retry-After"]) > 0
    assert tokenRequests(upstream) == asked


def test_basicUpstream(secureUpstream, daemons, tmp_path):
    upstream = daemons.add(secure.startSecure(tmp_path / "basic", mode="basic"))
    src = str(tmp_path / "src")
    image = oci.buildImage(src, tag="v1", layers=1)
    pushTo(upstream, src, "alice/app:v1")
    config = mirrorConfig(upstream.url, username="bob", password=secure.PASSWORDS["bob"], ca_bundle=upstream.pki["ca"])
    mirror = daemons.txregistry(tmp_path / "mirror", config)
    out = str(tmp_path / "out")
    clients.pull(mirror, "alice/app:v1", "oci:%s:v1" % (out,))
    assert oci.resolve(out, "v1")["digest"] == image.manifestDigest
    assert "GET /auth/token" not in upstream.syncLog()
