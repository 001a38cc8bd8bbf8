"""What a mirror does besides fetching: multi-arch indexes through skopeo,
tags re-checked after their TTL, pushes to mirrored names refused (local
names beside them pushable), cached repositories in the catalog and in
``docker search``'s index, metrics."""

import json
import time
import urllib.request

from tests.e2e import clients, oci
from tests.mirror.conftest import mirrorConfig

ACCEPT = ", ".join([oci.INDEX, oci.MANIFEST, "application/vnd.docker.distribution.manifest.v2+json",
                    "application/vnd.docker.distribution.manifest.list.v2+json"])


def manifestDigest(daemon, ref):
    name, tag = ref.split(":")
    status, headers, _ = clients.request(daemon, "/v2/%s/manifests/%s" % (name, tag), "HEAD", {"Accept": ACCEPT})
    assert status == 200, status
    return headers["Docker-Content-Digest"]


def test_multiArchIndexThroughTheMirror(daemons, tmp_path):
    upstream = daemons.distribution(str(tmp_path / "up"))
    src = str(tmp_path / "src")
    multi = oci.buildMultiArch(src, tag="multi")
    clients.push("oci:%s:multi" % (src,), upstream, "library/multi:v1", "--all")
    config = mirrorConfig(upstream.url)
    config["search_backend"] = "sqlalchemy"
    config["metrics_main_port"] = True
    mirror = daemons.txregistry(tmp_path / "mirror", config)
    out = str(tmp_path / "out")
    clients.pull(mirror, "multi:v1", "oci:%s:multi" % (out,), "--all")
    ref = oci.resolve(out, "multi")
    assert ref["digest"] == multi.indexDigest
    assert oci.readBlob(out, multi.indexDigest) == multi.index
    assert set(multi.blobDigests) | set(multi.manifestDigests) <= oci.verifyBlobs(out)
    # Cached content is an ordinary repository: in the catalog, and in the search index.
    assert clients.getJSON(mirror, "/v2/_catalog")["repositories"] == ["multi"]
    deadline = time.monotonic() + 20
    while True:
        with urllib.request.urlopen(mirror.url + "/v1/search?q=multi") as r:
            found = [x["name"] for x in json.load(r)["results"]]
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.1)  # polling interval: the index is updated asynchronously
    assert found == ["multi"]
    with urllib.request.urlopen(mirror.url + "/metrics") as r:
        metrics = r.read().decode()
    assert 'txregistry_mirror_misses_total{kind="blob",upstream="up"}' in metrics
    assert 'txregistry_mirror_upstream_bytes_total{upstream="up"}' in metrics


def test_tagMovedUpstreamSeenAfterTTL(daemons, tmp_path):
    upstream = daemons.distribution(str(tmp_path / "up"))
    first, second = str(tmp_path / "a"), str(tmp_path / "b")
    imageA = oci.buildImage(first, tag="v1", layers=1, seed=1)
    imageB = oci.buildImage(second, tag="v1", layers=1, seed=2)
    clients.push("oci:%s:v1" % (first,), upstream, "library/app:v1")
    mirror = daemons.txregistry(tmp_path / "mirror", mirrorConfig(upstream.url, tags_ttl=3))
    assert manifestDigest(mirror, "app:v1") == imageA.manifestDigest
    clients.push("oci:%s:v1" % (second,), upstream, "library/app:v1")
    moved = time.monotonic()
    # Within the TTL the cached tag is served without asking upstream...
    assert manifestDigest(mirror, "app:v1") == imageA.manifestDigest
    # ... after it, the upstream's new digest.
    deadline = moved + 20
    while manifestDigest(mirror, "app:v1") != imageB.manifestDigest:
        assert time.monotonic() < deadline, "the moved tag was never seen"
        time.sleep(0.2)  # polling interval
    assert time.monotonic() - moved >= 2.0  # (not before the TTL: the first check was at most ~1 s before)
    out = str(tmp_path / "out")
    clients.pull(mirror, "app:v1", "oci:%s:v1" % (out,))
    assert oci.resolve(out, "v1")["digest"] == imageB.manifestDigest
    # The tags list is the upstream's (with those cached here); offline, those cached.
    clients.push("oci:%s:v1" % (first,), upstream, "library/app:old")
    assert clients.getJSON(mirror, "/v2/app/tags/list")["tags"] == ["old", "v1"]
    # A tag the upstream does not have is a 404 here.
    status, _, body = clients.request(mirror, "/v2/app/manifests/nope")
    assert status == 404 and b"MANIFEST_UNKNOWN" in body
    upstream.stop()
    assert clients.getJSON(mirror, "/v2/app/tags/list")["tags"] == ["v1"]
    status, _, _ = clients.request(mirror, "/v2/other/tags/list")
    assert status == 404


def test_pushesRefusedToMirroredNames(daemons, tmp_path):
    upstream = daemons.distribution(str(tmp_path / "up"))
    config = {"mirrors": {"upstreams": [{"name": "hub", "url": upstream.url, "prefix": "hub"}]},
              "search_backend": "none"}
    mirror = daemons.txregistry(tmp_path / "mirror", config)
    src = str(tmp_path / "src")
    oci.buildImage(src, tag="v1", layers=1)
    status, _, body = clients.request(mirror, "/v2/hub/app/blobs/uploads/", "POST")
    assert status == 405 and json.loads(body)["errors"][0]["code"] == "UNSUPPORTED"
    status, _, body = clients.request(mirror, "/v2/hub/app/manifests/v1", "PUT", {"Content-Type": oci.MANIFEST},
                                      b"{}")
    assert status == 405 and json.loads(body)["errors"][0]["code"] == "UNSUPPORTED"
    proc = clients.skopeo("copy", "--dest-tls-verify=false", "oci:%s:v1" % (src,),
                          "docker://%s/hub/app:v1" % (mirror.host,), check=False)
    assert proc.returncode != 0
    # A name no upstream claims is a local repository.
    clients.push("oci:%s:v1" % (src,), mirror, "local/app:v1")
    # A mixed registry takes pushes to mirrored names too.
    config["mirrors"]["mixed"] = True
    mixed = daemons.txregistry(tmp_path / "mixed", config)
    clients.push("oci:%s:v1" % (src,), mixed, "hub/app:v1")
    out = str(tmp_path / "out")
    clients.pull(mixed, "hub/app:v1", "oci:%s:v1" % (out,))  # (not upstream: the local one)


def test_localPolicyDecidesWhoPullsThrough(daemons, tmp_path):
    import base64
    import shutil

    from tests.support import procs, secure
    from tests.support.required import missing

    if shutil.which("htpasswd") is None:
        missing("htpasswd is not installed")
    upstream = daemons.distribution(str(tmp_path / "up"))
    src = str(tmp_path / "src")
    oci.buildImage(src, tag="v1", layers=1)
    clients.push("oci:%s:v1" % (src,), upstream, "alice/app:v1")
    config = secure.CONFIG + ("    mirrors:\n        upstreams:\n"
                              "            - {name: up, url: \"%s\", default: true}\n" % (upstream.url,))
    path = secure.writeConfig(str(tmp_path / "conf"), "basic", config=config)
    mirror = daemons.add(procs.startTxregistry(str(tmp_path / "mirror"), str(tmp_path),
                                               args=("--config", path, "--flavor", "secure")))

    def get(user=None):
        headers = {"Accept": ACCEPT}
        if user:
            token = base64.b64encode(("%s:%s" % (user, secure.PASSWORDS[user])).encode()).decode()
            headers["Authorization"] = "Basic " + token
        return clients.request(mirror, "/v2/alice/app/manifests/v1", "GET", headers)[0]

    def asked():
        return upstream.log().count('"HEAD /v2/alice/app/manifests/v1 ')

    before = asked()
    assert get() == 401  # nobody anonymous: the upstream is not even asked
    assert asked() == before
    assert get("bob") == 200  # bob may pull alice/*
    status, _, body = clients.request(mirror, "/v2/alice/app/blobs/uploads/", "POST", {
        "Authorization": "Basic " + base64.b64encode(b"alice:" + secure.PASSWORDS["alice"].encode()).decode()})
    assert status == 405 and b"UNSUPPORTED" in body  # alice may push alice/*, but it is mirrored
