"""An upstream answering 5xx: what is cached is served (and the log says
so), what is not gets 503, never a 500; a 404 stays a 404.  The upstream is
a small real HTTP server on loopback that can be switched to failing."""

import hashlib
import http.server
import json
import threading

import pytest

from tests.e2e import clients, oci
from tests.mirror.conftest import mirrorConfig


class FlakyUpstream:
    def __init__(self):
        config = b"{}"
        self.manifest = json.dumps({
            "schemaVersion": 2, "mediaType": oci.MANIFEST,
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": "sha256:" + hashlib.sha256(config).hexdigest(), "size": len(config)},
            "layers": []}).encode()
        self.digest = "sha256:" + hashlib.sha256(self.manifest).hexdigest()
        self.failing = False
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                if server.failing:
                    return self.reply(503, b"down", "text/plain")
                if self.path in ("/v2/library/app/manifests/v1", "/v2/library/app/manifests/" + server.digest):
                    return self.reply(200, server.manifest, oci.MANIFEST, server.digest)
                return self.reply(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"no","detail":{}}]}')

            do_HEAD = do_GET

            def reply(self, status, body, contentType="application/json", digest=None):
                self.send_response(status)
                self.send_header("Content-Type", contentType)
                self.send_header("Content-Length", str(len(body)))
                if digest:
                    self.send_header("Docker-Content-Digest", digest)
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % (self.httpd.server_address[1],)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def flaky():
    server = FlakyUpstream()
    yield server
    server.stop()


def test_5xxServesWhatIsCached(daemons, tmp_path, flaky):
    mirror = daemons.txregistry(tmp_path / "mirror", mirrorConfig(flaky.url, tags_ttl=0))
    accept = {"Accept": oci.MANIFEST}
    status, headers, body = clients.request(mirror, "/v2/app/manifests/v1", headers=accept)
    assert status == 200 and body == flaky.manifest and headers["Docker-Content-Digest"] == flaky.digest
    status, _, _ = clients.request(mirror, "/v2/app/manifests/nope", headers=accept)
    assert status == 404
    flaky.failing = True
    status, _, body = clients.request(mirror, "/v2/app/manifests/v1", headers=accept)
    assert status == 200 and body == flaky.manifest
    status, _, body = clients.request(mirror, "/v2/app/manifests/" + flaky.digest, headers=accept)
    assert status == 200 and body == flaky.manifest  # (by digest: never asked again)
    status, _, body = clients.request(mirror, "/v2/app/manifests/v2", headers=accept)
    assert status == 503 and json.loads(body)["errors"][0]["code"] == "UNAVAILABLE"
    log = mirror.syncLog()
    assert "up cannot be asked about app:v1" in log and "answered 503" in log
    assert "Traceback" not in log
