"""Helpers shared by the tests/unit/test_auth*.py modules (no tests here):
htpasswd files made with the bcrypt library, keys and certificates made
with cryptography, and a thread pool that counts bcrypt checks."""

import base64
import datetime
import os
import textwrap

import bcrypt
import jwt
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from twisted.internet.defer import ensureDeferred
from twisted.python.threadpool import ThreadPool

from txregistry.auth import parseAuth
from txregistry.auth.keys import keyID


def async_test(f):
    def wrapper(self):
        return ensureDeferred(f(self))

    wrapper.__name__ = f.__name__
    return wrapper


def basic(user, password):
    if isinstance(user, str):
        user = user.encode("utf-8")
    if isinstance(password, str):
        password = password.encode("utf-8")
    return b"Basic " + base64.b64encode(user + b":" + password)


def bearer(token):
    return b"Bearer " + token.encode("ascii")


def bcryptLine(user, password, prefix=b"2b", cost=4):
    hashed = bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(cost, prefix=prefix))
    return "%s:%s" % (user, hashed.decode("ascii"))


def writeHtpasswd(path, users, prefix=b"2b"):
    with open(path, "w") as f:
        for user, password in users.items():
            f.write(bcryptLine(user, password, prefix) + "\n")
    return str(path)


def settingsFrom(tmpdir, yamlText, source="test.yml"):
    """parseAuth of the `auth:` value in a YAML snippet, paths relative to tmpdir."""
    section = yaml.safe_load(textwrap.dedent(yamlText))["auth"]
    return parseAuth(section, source, str(tmpdir))


class CountingThreadPool(ThreadPool):
    """A real thread pool that counts the calls given to it."""

    calls = 0

    def callInThreadWithCallback(self, onResult, func, *args, **kw):
        self.calls += 1
        return ThreadPool.callInThreadWithCallback(self, onResult, func, *args, **kw)


def startPool(testCase):
    pool = CountingThreadPool(1, 4, name="auth-test")
    pool.start()
    testCase.addCleanup(pool.stop)
    return pool


# -- keys and certificates ----------------------------------------------

def ecKey(curve=None):
    return ec.generate_private_key(curve or ec.SECP256R1())


def rsaKey(bits=2048):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def privatePEM(key, password=None):
    encryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def publicPEM(key):
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def certificate(key, name, issuerKey=None, issuerName=None, ca=False, now=None, days=30, notBefore=None):
    """An X.509 certificate for key, self-signed unless issuerKey is given."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuerName)]) if issuerName else subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(notBefore or (now - datetime.timedelta(days=1)))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    return builder.sign(issuerKey or key, hashes.SHA256())


def certPEM(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def certDERb64(cert):
    return base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode("ascii")


def jwk(key, kid=None):
    public = key.public_key()
    if isinstance(public, ec.EllipticCurvePublicKey):
        d = jwt.algorithms.ECAlgorithm.to_jwk(public, as_dict=True)
    else:
        d = jwt.algorithms.RSAAlgorithm.to_jwk(public, as_dict=True)
    if kid is not None:
        d["kid"] = kid
    return d


def signToken(key, claims, alg=None, headers=None, kid=True):
    """A JWT as an external token server would make it."""
    if alg is None:
        alg = "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS256"
    h = dict(headers or {})
    if kid is True:
        h["kid"] = keyID(key.public_key())
    elif kid:
        h["kid"] = kid
    return jwt.encode(claims, key, algorithm=alg, headers=h)


def claimsFor(now, sub="alice", access=(), iss="txregistry", aud="txregistry", lifetime=300, **extra):
    claims = {
        "iss": iss,
        "sub": sub,
        "aud": aud,
        "exp": int(now) + lifetime,
        "nbf": int(now),
        "iat": int(now),
        "jti": base64.urlsafe_b64encode(os.urandom(9)).decode("ascii"),
        "access": [{"type": t, "name": n, "actions": list(a)} for t, n, a in access],
    }
    claims.update(extra)
    return {k: v for k, v in claims.items() if v is not None}
