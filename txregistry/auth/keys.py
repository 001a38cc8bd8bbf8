"""Signing and verification keys for bearer tokens.

- the built-in token endpoint signs with a private key: a PEM file (EC P-256,
  P-384 or P-521, or RSA of at least 2048 bits; unencrypted), or one made at
  start;
- tokens of external token servers are verified with the public keys of a
  PEM bundle (certificates, as Distribution's ``rootcertbundle``, and also
  bare ``PUBLIC KEY`` blocks) and/or of a JWKS file (``{"keys": [...]}``).

Key ids are those of Docker's libtrust, which Distribution-compatible token
servers put in the ``kid`` header: the SHA-256 of the DER public key,
truncated to 240 bits, base32, in twelve groups of four joined by ``:``.
Functions here read files; they run at start, not per request.
"""

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

# Signature algorithms accepted on tokens (never "none" nor HMAC).
EC_ALGORITHMS = {"ES256": "secp256r1", "ES384": "secp384r1", "ES512": "secp521r1"}
RSA_ALGORITHMS = ("RS256", "RS384", "RS512")
ALGORITHMS = tuple(EC_ALGORITHMS) + RSA_ALGORITHMS
MIN_RSA_BITS = 2048

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n.*?-----END \1-----", re.S)


@dataclass(frozen=True)
class TrustedKey:
    kid: str
    key: object = field(repr=False)  # a cryptography public key
    source: str = ""  # where it came from, for messages


def keyID(publicKey):
    """The libtrust key id of a public key."""
    der = publicKey.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    encoded = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode("ascii")
    return ":".join(encoded[i : i + 4] for i in range(0, len(encoded), 4))


def algorithmFor(privateKey):
    """The JWS algorithm we sign with for a private key."""
    if isinstance(privateKey, ec.EllipticCurvePrivateKey):
        for alg, curve in EC_ALGORITHMS.items():
            if privateKey.curve.name == curve:
                return alg
    if isinstance(privateKey, rsa.RSAPrivateKey):
        return "RS256"
    raise ValueError("unsupported key type")


def compatible(alg, publicKey):
    """Whether a token signed with C{alg} may be checked with C{publicKey}."""
    if alg in EC_ALGORITHMS:
        return isinstance(publicKey, ec.EllipticCurvePublicKey) and publicKey.curve.name == EC_ALGORITHMS[alg]
    if alg in RSA_ALGORITHMS:
        return isinstance(publicKey, rsa.RSAPublicKey)
    return False


def checkKeyType(key):
    """C{ValueError} unless C{key} (public or private) is one we sign or verify with."""
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        if key.curve.name not in EC_ALGORITHMS.values():
            raise ValueError("EC curve %s is not supported (use P-256, P-384 or P-521)" % key.curve.name)
    elif isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError("RSA key of %d bits is too short (at least %d)" % (key.key_size, MIN_RSA_BITS))
    else:
        raise ValueError("%s keys are not supported (use EC or RSA)" % type(key).__name__)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def loadPrivateKey(path):
    """The private key in a PEM file; C{ValueError} if it is not usable.
    C{OSError} if the file cannot be read."""
    data = _read(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ValueError("the key is encrypted; give an unencrypted PEM key")
    except ValueError:
        raise ValueError("not a PEM private key")
    except Exception as e:  # unsupported algorithm and the like
        raise ValueError("cannot load the key: %s" % (e,))
    checkKeyType(key)
    return key


def loadPublicBundle(path):
    """The certificates and public keys of a PEM bundle.

    Returns C{(trustedKeys, certificates)}; C{ValueError} for a bad block or
    a bundle with none."""
    data = _read(path)
    keys = []
    certs = []
    for number, match in enumerate(_PEM_BLOCK.finditer(data), 1):
        label = match.group(1).decode("ascii")
        block = match.group(0)
        if label == "CERTIFICATE":
            try:
                cert = x509.load_pem_x509_certificate(block)
                publicKey = cert.public_key()
            except Exception as e:
                raise ValueError("block %d: not a valid certificate (%s)" % (number, e))
            certs.append(cert)
            where = "certificate %d (%s)" % (number, cert.subject.rfc4514_string())
        elif label == "PUBLIC KEY":
            try:
                publicKey = serialization.load_pem_public_key(block)
            except Exception as e:
                raise ValueError("block %d: not a valid public key (%s)" % (number, e))
            where = "public key %d" % (number,)
        else:
            raise ValueError("block %d: %s blocks are not accepted (only CERTIFICATE and PUBLIC KEY)" % (number, label))
        try:
            checkKeyType(publicKey)
        except ValueError as e:
            raise ValueError("%s: %s" % (where, e))
        keys.append(TrustedKey(keyID(publicKey), publicKey, "%s in %s" % (where, path)))
    if not keys:
        raise ValueError("no PEM certificate or public key found")
    return tuple(keys), tuple(certs)


def loadJWKS(path):
    """The signature keys of a JWKS file, as L{TrustedKey}s (their own
    C{kid}, else the libtrust one).  C{ValueError} for a bad file or key."""
    try:
        document = json.loads(_read(path))
    except ValueError as e:
        raise ValueError("not JSON: %s" % (e,))
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('expected a JSON object {"keys": [...]}')
    keys = []
    for index, jwk in enumerate(document["keys"]):
        if not isinstance(jwk, dict):
            raise ValueError("keys[%d] is not an object" % (index,))
        if jwk.get("use", "sig") != "sig":
            continue
        if jwk.get("kty") not in ("EC", "RSA"):
            raise ValueError("keys[%d]: key type %r is not supported (EC or RSA)" % (index, jwk.get("kty")))
        try:
            key = jwt.PyJWK(jwk).key
        except Exception as e:
            raise ValueError("keys[%d]: not a valid key (%s)" % (index, e))
        if hasattr(key, "private_bytes"):
            key = key.public_key()
        try:
            checkKeyType(key)
        except ValueError as e:
            raise ValueError("keys[%d]: %s" % (index, e))
        kid = jwk.get("kid")
        if not isinstance(kid, str) or not kid:
            kid = keyID(key)
        keys.append(TrustedKey(kid, key, "keys[%d] (kid %s) in %s" % (index, kid, path)))
    if not keys:
        raise ValueError("no signature key found")
    return tuple(keys)


def publicJWK(publicKey, kid):
    """A public key as a JWK dict (to publish the built-in signing key)."""
    if isinstance(publicKey, ec.EllipticCurvePublicKey):
        jwk = jwt.algorithms.ECAlgorithm.to_jwk(publicKey, as_dict=True)
    else:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(publicKey, as_dict=True)
    jwk["kid"] = kid
    jwk["use"] = "sig"
    return jwk
