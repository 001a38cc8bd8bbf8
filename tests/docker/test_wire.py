"""What docker push/pull (podman's containers/image) puts on the wire, as
seen by a relay in front of txregistry: what the access log cannot show
(layer PATCH bodies chunked with no length, separate Accept lines,
Connection: close) and that txregistry takes it."""

import json
import socket
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


def test_relayRoutesEachConnection():
    """With a route the relay is a load balancer: each connection goes where
    its request line says.  Bytes that are no request line (a TLS handshake,
    which containers/image tries first on a plain-HTTP registry, and whose
    client waits for an answer) are routed at once, as ("", "")."""
    upstreams = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(4)
        s.settimeout(5)
        upstreams.append(s)
    ports = [s.getsockname()[1] for s in upstreams]
    routed = []

    def route(method, target):
        routed.append((method, target))
        return ports[1] if method == "PATCH" else ports[0]

    tap = WireTap(0, route=route)
    try:
        for payload, upstream in (
            (b"PATCH /v2/a/blobs/uploads/1 HTTP/1.1\r\nHost: x\r\n\r\n", upstreams[1]),
            (b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n", upstreams[0]),
            (b"\x16\x03\x01\x00\x05hello", upstreams[0]),
        ):
            with socket.create_connection(("127.0.0.1", tap.port), timeout=5) as client:
                client.sendall(payload)
                server, _ = upstream.accept()
                with server:
                    server.settimeout(5)
                    got = b""
                    while len(got) < len(payload):
                        data = server.recv(65536)
                        assert data, got
                        got += data
                    assert got == payload
                    server.sendall(b"answer")
                    assert client.recv(100) == b"answer"
        assert routed == [("PATCH", "/v2/a/blobs/uploads/1"), ("GET", "/v2/"), ("", "")]
    finally:
        tap.stop()
        for s in upstreams:
            s.close()
