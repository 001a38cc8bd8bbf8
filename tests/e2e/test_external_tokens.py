"""Docker's token authentication with an EXTERNAL token server: txregistry
issues no tokens (``issue: false``), trusts the server's root certificate
(``rootcertbundle``) and verifies the ``x5c`` chain each token carries, as
Docker's own auth servers make them.  skopeo logs in through the server and
pushes and pulls.

The token server is a few lines of test code (http.server in a thread): it
checks a password and grants pull and push on ``alice/*`` to alice."""

import base64
import datetime
import http.server
import json
import threading
import time
import uuid
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.e2e import clients, oci
from tests.support import procs

SERVICE = "registry.test"
ISSUER = "test-token-server"


def _cert(subject, key, issuer, issuerKey, ca):
    now = datetime.datetime.now(datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(issuerKey, hashes.SHA256())
    )


class TokenServer:
    """Grants pull and push on alice/* to alice (password "wonderland")."""

    def __init__(self, directory):
        rootKey = ec.generate_private_key(ec.SECP256R1())
        self.root = _cert("token root", rootKey, "token root", rootKey, True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.leaf = _cert("token signer", self.key, "token root", rootKey, False)
        self.bundle = str(directory / "token-root.pem")
        with open(self.bundle, "wb") as f:
            f.write(self.root.public_bytes(serialization.Encoding.PEM))
        self.requests = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                self.reply(*server.answer(self.path, self.headers.get("Authorization")))

            def reply(self, status, doc):
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d/token" % (self.httpd.server_address[1],)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def answer(self, path, authorization):
        query = parse_qs(urlsplit(path).query)
        user = None
        if authorization:
            scheme, _, creds = authorization.partition(" ")
            name, _, password = base64.b64decode(creds).decode().partition(":")
            if scheme.lower() != "basic" or (name, password) != ("alice", "wonderland"):
                return 401, {"details": "bad credentials"}
            user = name
        access = []
        for scope in query.get("scope", []):
            for item in scope.split():
                rtype, rest = item.split(":", 1)
                name, _, actions = rest.rpartition(":")
                granted = [a for a in actions.split(",") if a in ("pull", "push")]
                if user != "alice" or rtype != "repository" or not name.startswith("alice/"):
                    granted = []
                access.append({"type": rtype, "name": name, "actions": granted})
        now = int(time.time())
        claims = {"iss": ISSUER, "sub": user or "", "aud": SERVICE, "exp": now + 300, "nbf": now - 5, "iat": now,
                  "jti": uuid.uuid4().hex, "access": access}
        x5c = [base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in (self.leaf, self.root)]
        token = jwt.encode(claims, self.key, algorithm="ES256", headers={"x5c": x5c})
        return 200, {"token": token, "access_token": token, "expires_in": 300}

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def externalAuth(tmp_path):
    server = TokenServer(tmp_path)
    config = tmp_path / "config.yml"
    config.write_text(
        "external:\n"
        "    storage: local\n"
        "    auth:\n"
        "        mode: bearer\n"
        "        token:\n"
        "            issue: false\n"
        "            realm: %s\n"
        "            service: %s\n"
        "            issuer: %s\n"
        "            rootcertbundle: %s\n" % (server.url, SERVICE, ISSUER, server.bundle)
    )
    d = procs.startTxregistry(str(tmp_path / "data"), str(tmp_path), args=("--config", str(config), "--flavor",
                                                                           "external"))
    try:
        yield server, d
    finally:
        d.stop()
        server.stop()


def test_skopeo_through_an_external_token_server(externalAuth, tmp_path):
    server, d = externalAuth
    image = oci.buildImage(str(tmp_path / "img"), "v1", layers=2)
    dest = "docker://%s/alice/app:v1" % d.host
    clients.skopeo("copy", "--preserve-digests", "--dest-tls-verify=false", "--dest-creds", "alice:wonderland",
                   "oci:%s:v1" % (tmp_path / "img"), dest)
    assert any("scope=repository%3Aalice%2Fapp%3Apull%2Cpush" in p or "alice/app" in p for p in server.requests)
    out = str(tmp_path / "out")
    clients.skopeo("copy", "--src-tls-verify=false", "--src-creds", "alice:wonderland", dest, "oci:%s:v1" % out)
    assert oci.resolve(out, "v1")["digest"] == image.manifestDigest
    # the server grants nothing outside alice/*, and nothing to a wrong password
    r = clients.skopeo("copy", "--dest-tls-verify=false", "--dest-creds", "alice:wonderland",
                       "oci:%s:v1" % (tmp_path / "img"), "docker://%s/bob/app:v1" % d.host, check=False)
    assert r.returncode != 0
    r = clients.skopeo("inspect", "--tls-verify=false", "--creds", "alice:wrong", dest, check=False)
    assert r.returncode != 0
    r = clients.skopeo("inspect", "--tls-verify=false", dest, check=False)
    assert r.returncode != 0
    log = d.syncLog()
    assert "authentication: bearer mode, 1 external token key(s)" in log
