"""TLS through a strports description, with a throwaway CA that the
clients trust; the wrong kind of request on either kind of port fails fast."""

import shutil
import socket
import ssl
import time
import urllib.request

import pytest

from tests.e2e import clients, oci
from tests.support import pki, procs


@pytest.fixture
def tlsDaemon(tmp_path):
    paths = pki.makePKI(str(tmp_path / "pki"))
    d = procs.startTxregistry(str(tmp_path / "data"), str(tmp_path), tls=paths)
    certDir = tmp_path / "certs"
    certDir.mkdir()
    shutil.copy(paths["ca"], certDir / "ca.crt")
    try:
        yield {"port": d.port, "host": d.host, "ca": paths["ca"], "certDir": str(certDir), "log": d.logPath}
    finally:
        d.stop()


def test_skopeo_push_pull_over_tls_trusting_the_ca(tlsDaemon, tmp_path):
    image = oci.buildImage(str(tmp_path / "img"), "v1", layers=2)
    dest = "docker://%s/secure/app:v1" % tlsDaemon["host"]
    clients.skopeo("copy", "--preserve-digests", "--dest-cert-dir", tlsDaemon["certDir"], "oci:%s:v1" % (tmp_path / "img"), dest)
    out = str(tmp_path / "out")
    clients.skopeo("copy", "--src-cert-dir", tlsDaemon["certDir"], dest, "oci:%s:v1" % out)
    assert oci.resolve(out, "v1")["digest"] == image.manifestDigest
    assert set(image.blobDigests) <= oci.verifyBlobs(out)
    # and a client that does not trust the CA is refused
    r = clients.skopeo("inspect", "docker://%s/secure/app:v1" % tlsDaemon["host"], check=False)
    assert r.returncode != 0 and b"certificate" in r.stderr


def test_plain_http_on_tls_port_fails_fast(tlsDaemon):
    t = time.monotonic()
    s = socket.create_connection(("127.0.0.1", tlsDaemon["port"]), timeout=10)
    s.sendall(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        data = s.recv(1000)
    except ConnectionResetError:
        data = b""
    s.close()
    assert time.monotonic() - t < 5
    assert not data.startswith(b"HTTP/1.1 200")


def test_tls_on_plain_port_fails_fast(tmp_path):
    d = procs.startTxregistry(str(tmp_path / "data"), str(tmp_path))
    try:
        t = time.monotonic()
        context = ssl.create_default_context()
        with pytest.raises((ssl.SSLError, OSError)):
            urllib.request.urlopen("https://127.0.0.1:%d/v2/" % d.port, context=context, timeout=10)
        assert time.monotonic() - t < 5
    finally:
        d.stop()


def test_refusals_before_the_body_over_tls(tlsDaemon):
    """Over TLS (no half-close) the answers given before a body still
    arrive whole: 413 for a declared length over the manifest limit, 400
    for two Transfer-Encoding lines, and nothing after them is served."""
    import json

    context = ssl.create_default_context(cafile=tlsDaemon["ca"])
    cases = [
        (b"PUT /v2/tls/manifests/t HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 99999999\r\n\r\n", 413,
         "MANIFEST_INVALID"),
        (b"POST /v2/tls/blobs/uploads/ HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
         b"Transfer-Encoding: identity\r\n\r\n0\r\n\r\nGET /v2/ HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 400, "UNSUPPORTED"),
    ]
    for data, status, code in cases:
        with socket.create_connection(("127.0.0.1", tlsDaemon["port"]), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as s:
                s.sendall(data)
                out = b""
                while True:
                    try:
                        chunk = s.recv(65536)
                    except (ssl.SSLError, ConnectionResetError):
                        break
                    if not chunk:
                        break
                    out += chunk
        head, _, body = out.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 %d " % (status,)), out
        assert json.loads(body)["errors"][0]["code"] == code, out
        assert out.count(b"HTTP/1.1 ") == 1, out
