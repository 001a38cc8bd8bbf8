"""What docker push/pull (podman's containers/image) puts on the wire, as
seen by a relay in front of txregistry: what the access log cannot show
(layer PATCH bodies chunked with no length, separate Accept lines,
Connection: close) and that txregistry takes it."""

import json
import urllib.parse

import pytest

from tests.docker import images
from tests.docker.wiretap import WireTap
from tests.support import procs


@pytest.fixture
def tapped(registries, podmanHost):
    """A fresh txregistry on some port, behind a relay on the port the
    engine trusts; the test talks to C{podmanHost.registryHost}."""
    registry = registries.start(port=procs.freePort())
    try:
        tap = WireTap(podmanHost.port, registry.port)
    except OSError:  # the trusted port was taken meanwhile
        podmanHost.restart(procs.freePort())
        tap = WireTap(podmanHost.port, registry.port)
    try:
        yield registry, tap
    finally:
        tap.stop()


def test_pushOnTheWire(cli, tapped, tmp_path):
    registry, tap = tapped
    host = cli.registryHost
    built = images.buildImage(tmp_path / "layout", tag="src", layers=2, layerSize=256 * 1024)
    cli.loadLayout(built.layout, "src", "localhost/txr-wire:1")
    cli.docker("tag", "localhost/txr-wire:1", "%s/wire/app:1" % (host,))
    cli.docker("push", "%s/wire/app:1" % (host,))

    sent = tap.requests()
    assert sent and all(r.header("connection") == ["close"] for r in sent)
    manifest = json.loads(cli.skopeo("inspect", "--raw", "--tls-verify=false",
                                     "docker://%s/wire/app:1" % (host,)).stdout)
    layerSizes = sorted(d["size"] for d in manifest["layers"])

    # The layers podman compresses as it sends: chunked, no length.
    patches = [r for r in sent if r.method == "PATCH"]
    layerPatches = [r for r in patches if r.chunked]
    assert sorted(r.bodyLength for r in layerPatches) == layerSizes
    assert all(r.header("content-length") == [] for r in layerPatches)
    # The config, whose size is known: a Content-Length.
    assert [r.bodyLength for r in patches if not r.chunked] == [manifest["config"]["size"]]
    # Each upload closes with an empty PUT ?digest=.
    closes = [r for r in sent if r.method == "PUT" and "/blobs/uploads/" in r.target]
    assert sorted(urllib.parse.parse_qs(urllib.parse.urlsplit(r.target).query)["digest"][0] for r in closes) == \
        sorted(d["digest"] for d in manifest["layers"] + [manifest["config"]])
    assert all(r.bodyLength == 0 for r in closes)
    put = [r for r in sent if r.method == "PUT" and "/manifests/" in r.target]
    assert [(r.target, r.header("content-type")) for r in put] == [("/v2/wire/app/manifests/1", [manifest["mediaType"]])]

    # The registry logged the same requests, all answered as expected.
    logged = {(m, p): status for m, p, status in registry.access.requests()}
    for r in sent:
        assert logged[(r.method, r.target)] in ((404,) if r.method == "HEAD" else (200, 201, 202)), r


def test_pullOnTheWire(cli, tapped, tmp_path):
    registry, tap = tapped
    host = cli.registryHost
    built = images.buildImage(tmp_path / "layout", tag="src")
    cli.skopeo("copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false",
               "oci:%s:src" % (built.layout,), "docker://%s/wire/pull:1" % (host,))
    first = len(tap.requests())
    cli.docker("pull", "%s/wire/pull:1" % (host,))

    sent = tap.requests()[first:]
    gets = [r for r in sent if r.method == "GET" and r.target == "/v2/wire/pull/manifests/1"]
    assert gets
    accept = gets[0].header("accept")
    assert len(accept) > 1, gets[0].headers  # several Accept lines, one type each
    assert "application/vnd.oci.image.manifest.v1+json" in accept
    assert "application/vnd.docker.distribution.manifest.v2+json" in accept
    assert cli.inspect("%s/wire/pull:1" % (host,))["Id"] == built.configDigest
