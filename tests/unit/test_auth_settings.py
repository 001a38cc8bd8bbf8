"""parseAuth: the auth section is checked at start, each problem one line naming its key."""

import os
import shutil
import subprocess
import sys

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support.required import missing
from tests.unit.test_auth_helpers import (
    bcryptLine,
    certificate,
    certPEM,
    ecKey,
    jwk,
    privatePEM,
    publicPEM,
    rsaKey,
    settingsFrom,
    writeHtpasswd,
)
from txregistry.auth import AuthConfigError, parseAuth
from txregistry.auth.htpasswd import parseHtpasswd

HTPASSWD = shutil.which("htpasswd")


@pytest.fixture
def users(tmp_path):
    return writeHtpasswd(tmp_path / "htpasswd", {"alice": "a-secret", "bob": "b-secret"})


def fails(tmp_path, text, *fragments):
    with pytest.raises(AuthConfigError) as info:
        settingsFrom(tmp_path, text)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("test.yml: ")
    for fragment in fragments:
        assert fragment in message, message
    return message


def test_offWhenAbsent():
    assert parseAuth(None, "x.yml", "/") is None
    assert parseAuth(False, "x.yml", "/") is None


def test_htpasswdDefaultsToBearerWithBuiltInEndpoint(tmp_path, users):
    s = settingsFrom(tmp_path, "auth: {htpasswd: htpasswd}")
    assert s.mode == "bearer"
    assert s.htpasswd == str(tmp_path / "htpasswd")
    assert sorted(s.users) == ["alice", "bob"]
    assert s.realm == "txregistry"
    assert s.policy is None
    assert s.cacheSeconds == 60
    t = s.token
    assert (t.service, t.issuers, t.realm, t.issue, t.expiration) == (
        "txregistry", ("txregistry",), "/auth/token", True, 300)
    assert t.signingKey is None and t.trustedKeys == ()
    assert s.tokenEndpointPath == "/auth/token"


def test_basicMode(tmp_path, users):
    s = settingsFrom(tmp_path, "auth: {htpasswd: htpasswd, mode: basic, realm: My Registry, cache_seconds: 0}")
    assert (s.mode, s.realm, s.token, s.cacheSeconds, s.tokenEndpointPath) == ("basic", "My Registry", None, 0, None)


def test_loginThrottleSettings(tmp_path, users):
    s = settingsFrom(tmp_path, "auth: {htpasswd: htpasswd}")
    assert (s.loginFailures, s.loginFailureWindow, s.clientAddressHeader) == (10, 60, None)
    s = settingsFrom(tmp_path, "auth: {htpasswd: htpasswd, login_failures: 0, login_failure_window: 600, "
                               "client_address_header: X-Forwarded-For}")
    assert (s.loginFailures, s.loginFailureWindow, s.clientAddressHeader) == (0, 600, "X-Forwarded-For")


def test_fullExample(tmp_path, users):
    key = ecKey()
    (tmp_path / "key.pem").write_bytes(privatePEM(key))
    (tmp_path / "certs.pem").write_bytes(certPEM(certificate(ecKey(), "auth.example")))
    s = settingsFrom(tmp_path, """
        auth:
          realm: txregistry
          htpasswd: htpasswd
          mode: bearer
          token:
            service: registry.example
            issuer: [txregistry, auth.example]
            realm: https://registry.example/auth/token
            key: key.pem
            rootcertbundle: certs.pem
            expiration: 600
          policy:
            admins: [alice]
            anonymous: [{repository: "public/*", actions: [pull]}]
            users: {bob: [{repository: "team-a/*", actions: [pull, push]}]}
            groups: {devs: {members: [bob], rules: [{repository: [b/*, c], actions: ["*"]}]}}
        """)
    t = s.token
    assert t.service == "registry.example" and t.issuer == "txregistry"
    assert t.issuers == ("txregistry", "auth.example")
    assert t.expiration == 600 and t.issue
    assert t.signingKey.private_numbers() == key.private_numbers()
    assert len(t.trustedKeys) == 1 and len(t.rootCerts) == 1
    assert s.tokenEndpointPath == "/auth/token"
    p = s.policy
    assert p.admins == {"alice"}
    assert p.groupsOf("bob") == {"devs"}
    assert p.actionsFor("bob", "b/x") == {"pull", "push", "delete"}
    assert p.actionsFor("bob", "team-a/app") == {"pull", "push"}
    assert p.actionsFor(None, "public/x") == {"pull"}
    assert s.warnings == ()


def test_relativePathsFromBaseDir(tmp_path):
    sub = tmp_path / "etc"
    sub.mkdir()
    writeHtpasswd(sub / "users", {"u": "p"})
    s = parseAuth({"htpasswd": "users"}, "cfg", str(sub))
    assert s.htpasswd == str(sub / "users")


def test_reprHidesSecrets(tmp_path, users):
    (tmp_path / "key.pem").write_bytes(privatePEM(ecKey()))
    s = settingsFrom(tmp_path, "auth: {htpasswd: htpasswd, token: {key: key.pem}}")
    text = repr(s)
    assert "$2b$" not in text and "PRIVATE" not in text and "a-secret" not in text


# -- htpasswd -------------------------------------------------------------

def test_bcryptVariantsCommentsAndCRLF(tmp_path):
    lines = [
        "# users",
        bcryptLine("a", "pa", b"2a"),
        "",
        bcryptLine("b", "pb", b"2b"),
        bcryptLine("y", "py", b"2b").replace("$2b$", "$2y$") + ":ignored extra field",
    ]
    (tmp_path / "h").write_bytes("\r\n".join(lines).encode() + b"\r\n")
    s = settingsFrom(tmp_path, "auth: {htpasswd: h}")
    assert sorted(s.users) == ["a", "b", "y"]
    assert s.users["y"].startswith(b"$2y$04$") and s.users["y"].count(b":") == 0


@pytest.mark.parametrize(
    "hashed, kind",
    [
        ("$apr1$hS0AXtst$2x9Ez5Jt2N0x1c7ZvBSkb/", "MD5"),
        ("{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=", "SHA-1"),
        ("$1$abcdefgh$abcdefghijklmnopqrstuv", "MD5-crypt"),
        ("$5$rounds=5000$salt$abc", "SHA-256-crypt"),
        ("$6$salt$abc", "SHA-512-crypt"),
        ("abJnggxhB/yWI", "DES crypt"),
        ("hunter2-Sw0rdfish", "plain-text"),
        ("", "empty"),
        ("$2y$05$tooshort", "malformed bcrypt"),
        ("$2y$99$" + "a" * 53, "malformed bcrypt"),
        ("$2x$05$" + "a" * 53, "malformed bcrypt"),
    ],
)
def test_nonBcryptRejectedWithFileAndLine(tmp_path, hashed, kind):
    (tmp_path / "h").write_text(bcryptLine("ok", "p") + "\n\n# comment\nbob:" + hashed + "\n")
    message = fails(tmp_path, "auth: {htpasswd: h}", "auth.htpasswd", str(tmp_path / "h"), "line 4", "'bob'", kind,
                    "bcrypt")
    if hashed:
        assert hashed not in message


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("no-colon-here\n", "line 1: expected user:hash"),
        (":$2y$05$" + "a" * 53 + "\n", "line 1: empty user name"),
        ("{a}\n{b}\n{a2}\n", "line 3: user 'a' is already on line 1"),
    ],
)
def test_malformedHtpasswd(tmp_path, content, fragment):
    content = content.format(a=bcryptLine("a", "1"), b=bcryptLine("b", "2"), a2=bcryptLine("a", "3"))
    (tmp_path / "h").write_text(content)
    fails(tmp_path, "auth: {htpasswd: h}", fragment)


def test_htpasswdNotUTF8(tmp_path):
    (tmp_path / "h").write_bytes(b"\xff\xfe:" + bcryptLine("x", "y").split(":", 1)[1].encode() + b"\n")
    fails(tmp_path, "auth: {htpasswd: h}", "line 1", "not UTF-8")


def test_unreadableHtpasswd(tmp_path):
    fails(tmp_path, "auth: {htpasswd: missing}", "auth.htpasswd", "cannot read", str(tmp_path / "missing"))
    (tmp_path / "dir").mkdir()
    fails(tmp_path, "auth: {htpasswd: dir}", "auth.htpasswd", "cannot read")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_htpasswdWithoutPermission(tmp_path, users):
    os.chmod(users, 0)
    fails(tmp_path, "auth: {htpasswd: htpasswd}", "auth.htpasswd", "Permission denied")


def test_emptyHtpasswdIsAWarning(tmp_path):
    (tmp_path / "h").write_text("# nobody yet\n")
    s = settingsFrom(tmp_path, "auth: {htpasswd: h}")
    assert s.users == {} and any("has no users" in w for w in s.warnings)


def test_realHtpasswdTool(tmp_path):
    if HTPASSWD is None:
        missing("apache2-utils (htpasswd) is not installed")
    path = str(tmp_path / "h")
    subprocess.run([HTPASSWD, "-cbB", "-C", "4", path, "alice", "pw1"], check=True, capture_output=True)
    subprocess.run([HTPASSWD, "-bB", "-C", "5", path, "bob", "pw2"], check=True, capture_output=True)
    s = settingsFrom(tmp_path, "auth: {htpasswd: h}")
    assert sorted(s.users) == ["alice", "bob"]
    assert s.users["alice"].startswith(b"$2y$04$") and s.users["bob"].startswith(b"$2y$05$")
    for flag, kind in (("-m", "MD5"), ("-s", "SHA-1"), ("-p", "plain-text")):
        other = str(tmp_path / ("h" + flag))
        shutil.copy(path, other)
        subprocess.run([HTPASSWD, "-b" + flag[1:], other, "carol", "pw3"], check=True, capture_output=True)
        with pytest.raises(AuthConfigError) as info:
            parseAuth({"htpasswd": other}, "cfg", str(tmp_path))
        assert "line 3" in str(info.value) and "'carol'" in str(info.value) and kind in str(info.value)


def test_parseHtpasswdDirect():
    line = bcryptLine("x", "y").encode()
    assert parseHtpasswd(b"  " + line + b"  \n") == {"x": line.split(b":", 1)[1]}


# -- structure and values ---------------------------------------------------

@pytest.mark.parametrize(
    "text, fragments",
    [
        ("auth: [a]", ["auth must be a mapping"]),
        ("auth: {htpasswd: htpasswd, nope: 1}", ["auth has unknown keys: nope"]),
        ("auth: {htpasswd: htpasswd, token: {audience: x}}", ["auth.token has unknown keys: audience"]),
        ("auth: {htpasswd: htpasswd, policy: {user: {}}}", ["auth.policy has unknown keys: user"]),
        ("auth: {htpasswd: htpasswd, policy: {groups: {g: {member: [a]}}}}",
         ["auth.policy.groups.g has unknown keys: member"]),
        ("auth: {htpasswd: htpasswd, policy: {anonymous: [{repository: x, actions: [pull], tag: y}]}}",
         ["auth.policy.anonymous[0] has unknown keys: tag"]),
        ("auth: {htpasswd: htpasswd, policy: {anonymous: [{repository: x}]}}",
         ["auth.policy.anonymous[0] needs actions"]),
        ("auth: {htpasswd: htpasswd, mode: token}", ["auth.mode must be basic or bearer"]),
        ("auth: {mode: basic}", ["auth.mode basic needs auth.htpasswd"]),
        ("auth: {}", ["auth needs htpasswd"]),
        ("auth: {htpasswd: htpasswd, mode: basic, token: {service: x}}", ["auth.token is set but auth.mode is basic"]),
        ("auth: {htpasswd: htpasswd, realm: 'a\"b'}", ["auth.realm must not contain quotes"]),
        ("auth: {htpasswd: htpasswd, cache_seconds: -1}", ["auth.cache_seconds must be an integer from 0 to 3600"]),
        ("auth: {htpasswd: htpasswd, cache_seconds: true}", ["auth.cache_seconds"]),
        ("auth: {htpasswd: htpasswd, login_failures: -1}", ["auth.login_failures must be an integer from 0"]),
        ("auth: {htpasswd: htpasswd, login_failure_window: 0}", ["auth.login_failure_window must be an integer from 1"]),
        ("auth: {htpasswd: htpasswd, client_address_header: 'X Forwarded'}",
         ["auth.client_address_header must be an HTTP header name"]),
        ("auth: {htpasswd: htpasswd, client_address_header: ''}", ["auth.client_address_header must be a non-empty"]),
        ("auth: {htpasswd: htpasswd, token: {expiration: 10}}", ["auth.token.expiration", "60 to 86400"]),
        ("auth: {htpasswd: htpasswd, token: {expiration: '300'}}", ["auth.token.expiration"]),
        ("auth: {htpasswd: htpasswd, token: {issue: yes please}}", ["auth.token.issue must be true or false"]),
        ("auth: {htpasswd: htpasswd, token: {service: 'a\"b'}}", ["auth.token.service must not contain quotes"]),
        ("auth: {htpasswd: htpasswd, token: {issuer: []}}", ["auth.token.issuer"]),
        ("auth: {htpasswd: htpasswd, token: {realm: 'ftp://x/token'}}", ["auth.token.realm must be a path"]),
        ("auth: {htpasswd: htpasswd, token: {realm: 'auth/token'}}", ["auth.token.realm must be a path"]),
        ("auth: {htpasswd: htpasswd, token: {issue: false}}", ["auth.token needs rootcertbundle or jwks"]),
        ("auth: {htpasswd: htpasswd, token: {issue: false, key: k.pem}}", ["auth.token.key is set but"]),
        ("auth: {htpasswd: htpasswd, policy: {admins: root}}", ["auth.policy.admins must be a list of user names"]),
        ("auth: {htpasswd: htpasswd, policy: {users: [alice]}}", ["auth.policy.users must be a mapping"]),
        ("auth: {htpasswd: htpasswd, policy: {groups: {g: {members: [1]}}}}", ["auth.policy.groups.g.members"]),
    ],
)
def test_badStructure(tmp_path, users, text, fragments):
    fails(tmp_path, text, *fragments)


@pytest.mark.parametrize(
    "glob, reason",
    [
        ("Team-A/*", "'A'"),
        ("team a", "' '"),
        ("lib[12]/x", "'['"),
        ("a//b", "empty path component"),
        ("/a", "empty path component"),
        ("a/", "empty path component"),
        ("", "non-empty"),
    ],
)
def test_badGlob(tmp_path, users, glob, reason):
    text = "auth: {htpasswd: htpasswd, policy: {users: {alice: [{repository: '%s', actions: [pull]}]}}}" % glob
    fails(tmp_path, text, "auth.policy.users.alice[0].repository", reason)


def test_badGlobInAList(tmp_path, users):
    text = "auth: {htpasswd: htpasswd, policy: {groups: {g: {rules: [{repository: [ok/*, 'B'], actions: [pull]}]}}}}"
    fails(tmp_path, text, "auth.policy.groups.g.rules[0].repository", "'B'")


@pytest.mark.parametrize("actions", ["[write]", "[pull, admin]", "pull", "[]", "[1]"])
def test_badActions(tmp_path, users, actions):
    text = "auth: {htpasswd: htpasswd, policy: {anonymous: [{repository: x, actions: %s}]}}" % actions
    fails(tmp_path, text, "auth.policy.anonymous[0].actions")


def test_emptyPolicyDenies(tmp_path, users):
    s = settingsFrom(tmp_path, "auth: {htpasswd: htpasswd, policy: }")
    assert s.policy is not None
    assert s.policy.actionsFor("alice", "anything") == frozenset()


def test_policyUsersNotInHtpasswdAreWarnings(tmp_path, users):
    s = settingsFrom(tmp_path, """
        auth:
          htpasswd: htpasswd
          policy:
            admins: [root]
            users: {alice: [{repository: "*", actions: [pull]}]}
            groups: {g: {members: [alice, zed]}}
        """)
    assert len(s.warnings) == 1
    assert "root, zed" in s.warnings[0] and "alice" not in s.warnings[0]


# -- keys ------------------------------------------------------------------------

def test_signingKeyProblems(tmp_path, users):
    fails(tmp_path, "auth: {htpasswd: htpasswd, token: {key: nokey.pem}}", "auth.token.key", "cannot read")
    (tmp_path / "junk.pem").write_text("hello")
    fails(tmp_path, "auth: {htpasswd: htpasswd, token: {key: junk.pem}}", "auth.token.key", "not a PEM private key")
    (tmp_path / "enc.pem").write_bytes(privatePEM(ecKey(), password=b"pw"))
    fails(tmp_path, "auth: {htpasswd: htpasswd, token: {key: enc.pem}}", "auth.token.key", "encrypted")
    (tmp_path / "small.pem").write_bytes(privatePEM(rsaKey(1024)))
    fails(tmp_path, "auth: {htpasswd: htpasswd, token: {key: small.pem}}", "auth.token.key", "1024 bits is too short")
    (tmp_path / "k1.pem").write_bytes(privatePEM(ecKey(ec.SECP256K1())))
    fails(tmp_path, "auth: {htpasswd: htpasswd, token: {key: k1.pem}}", "auth.token.key", "secp256k1")


def test_signingKeyTypes(tmp_path, users):
    for name, key in (("ec.pem", ecKey()), ("p384.pem", ecKey(ec.SECP384R1())), ("rsa.pem", rsaKey())):
        (tmp_path / name).write_bytes(privatePEM(key))
        s = settingsFrom(tmp_path, "auth: {htpasswd: htpasswd, token: {key: %s}}" % name)
        assert s.token.keyFile == str(tmp_path / name)


def test_externalOnly(tmp_path):
    (tmp_path / "bundle.pem").write_bytes(
        certPEM(certificate(ecKey(), "a")) + publicPEM(rsaKey()) + certPEM(certificate(rsaKey(), "b"))
    )
    (tmp_path / "jwks.json").write_text('{"keys": [%s]}' % __import__("json").dumps(jwk(ecKey(), "k1")))
    s = settingsFrom(tmp_path, """
        auth:
          token:
            realm: https://auth.example/token
            rootcertbundle: bundle.pem
            jwks: jwks.json
        """)
    assert s.mode == "bearer" and s.users == {} and s.htpasswd is None
    assert not s.token.issue and s.tokenEndpointPath is None
    assert len(s.token.trustedKeys) == 4 and len(s.token.rootCerts) == 2
    assert s.token.trustedKeys[3].kid == "k1"
    fails(tmp_path, "auth: {token: {rootcertbundle: bundle.pem}}", "auth.token.realm must be given")
    fails(tmp_path, "auth: {token: {rootcertbundle: bundle.pem, realm: /auth/token}}",
          "auth.token.realm must be an absolute http(s) URL")


@pytest.mark.parametrize(
    "content, fragment",
    [
        (b"", "no PEM certificate or public key"),
        (b"-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n", "not a valid certificate"),
        (b"-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n", "RSA PRIVATE KEY blocks are not"),
    ],
)
def test_badBundle(tmp_path, content, fragment):
    (tmp_path / "b.pem").write_bytes(content)
    fails(tmp_path, "auth: {token: {realm: 'https://a/t', rootcertbundle: b.pem}}", "auth.token.rootcertbundle",
          fragment)


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("nope", "not JSON"),
        ("[]", 'expected a JSON object {"keys"'),
        ('{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', "key type 'oct' is not supported"),
        ('{"keys": [{"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"}]}', "keys[0]: not a valid key"),
        ('{"keys": [{"kty": "EC", "use": "enc"}]}', "no signature key"),
    ],
)
def test_badJWKS(tmp_path, content, fragment):
    (tmp_path / "j.json").write_text(content)
    fails(tmp_path, "auth: {token: {realm: 'https://a/t', jwks: j.json}}", "auth.token.jwks", fragment)


def test_noReactorImport():
    code = "import sys, txregistry.auth; assert 'twisted.internet.reactor' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=os.path.dirname(os.path.dirname(
        os.path.dirname(os.path.abspath(__file__)))))
