"""Bearer tokens: JWTs as Docker's token authentication specifies them.

Claims: ``iss``, ``sub`` (the user, ``""`` for anonymous), ``aud`` (the
registry's service name), ``exp``, ``nbf``, ``iat``, ``jti`` and ``access``,
a list of ``{"type", "name", "actions"}``.  Signed with ES256/ES384/ES512 or
RS256/RS384/RS512; ``none`` and HMAC are never accepted.  The clock is the
caller's (``now`` in seconds since the epoch), so expiry can be tested.
"""

import base64
import datetime
import json
import os

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import ExtensionOID

from txregistry.auth import keys as _keys

MAX_TOKEN_LENGTH = 32 * 1024
MAX_CHAIN = 5


class TokenError(Exception):
    """A token we do not accept; the message says why (no secrets in it)."""


def sign(privateKey, kid, claims):
    """A compact JWS of C{claims} signed with C{privateKey}."""
    return jwt.encode(
        claims, privateKey, algorithm=_keys.algorithmFor(privateKey), headers={"typ": "JWT", "kid": kid}
    )


def makeClaims(issuer, subject, audience, now, lifetime, access):
    now = int(now)
    return {
        "iss": issuer,
        "sub": subject,
        "aud": audience,
        "exp": now + lifetime,
        "nbf": now,
        "iat": now,
        "jti": base64.urlsafe_b64encode(os.urandom(18)).decode("ascii"),
        "access": [{"type": t, "name": n, "actions": list(a)} for (t, n, a) in access],
    }


def rfc3339(now):
    return datetime.datetime.fromtimestamp(int(now), datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _chainKey(x5c, roots, now):
    """The leaf's public key if the C{x5c} chain leads to one of C{roots}
    and every certificate in it is valid at C{now}; else C{None}."""
    if not roots or not isinstance(x5c, list) or not 1 <= len(x5c) <= MAX_CHAIN:
        return None
    try:
        chain = [x509.load_der_x509_certificate(base64.b64decode(c, validate=True)) for c in x5c]
    except Exception:
        return None
    moment = datetime.datetime.fromtimestamp(now, datetime.timezone.utc)

    def current(cert):
        return cert.not_valid_before_utc <= moment <= cert.not_valid_after_utc

    def isCA(cert):
        try:
            return cert.extensions.get_extension_for_oid(ExtensionOID.BASIC_CONSTRAINTS).value.ca
        except x509.ExtensionNotFound:
            return False

    def issuedBy(cert, issuer):
        if not isCA(issuer) or not current(issuer):
            return False
        try:
            cert.verify_directly_issued_by(issuer)
        except Exception:
            return False
        return True

    trusted = {root.fingerprint(hashes.SHA256()) for root in roots}
    for index, cert in enumerate(chain):
        if not current(cert):
            return None
        if cert.fingerprint(hashes.SHA256()) in trusted:
            return chain[0].public_key()
        if index + 1 < len(chain):
            if not issuedBy(cert, chain[index + 1]):
                return None
            continue
        for root in roots:
            if root.subject == cert.issuer and issuedBy(cert, root):
                return chain[0].public_key()
    return None


def _access(claims):
    """The C{access} claim as C{{(type, name): frozenset(actions)}}."""
    entries = claims.get("access", [])
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise TokenError("the access claim is not a list")
    access = {}
    for entry in entries:
        if not isinstance(entry, dict):
            raise TokenError("an access entry is not an object")
        rtype, name, actions = entry.get("type"), entry.get("name"), entry.get("actions", [])
        if actions is None:
            actions = []
        if not (isinstance(rtype, str) and isinstance(name, str) and isinstance(actions, list)):
            raise TokenError("an access entry is malformed")
        if not all(isinstance(a, str) for a in actions):
            raise TokenError("an access entry has a non-string action")
        key = (rtype, name)
        access[key] = access.get(key, frozenset()) | frozenset(actions)
    return access


def verify(token, trustedKeys, rootCerts, issuers, service, now, leeway):
    """Check a token; return C{(claims, access, key)}, C{key} being the
    public key that verified the signature.

    The signature must verify with one of C{trustedKeys} (those whose id is
    the token's ``kid`` if any is, else all of them), or with the leaf of an
    ``x5c`` chain leading to one of C{rootCerts}.  Then ``iss`` must be one of
    C{issuers}, ``aud`` must name C{service}, ``exp`` must be present and not
    past, and ``nbf``, if present, not in the future (both with C{leeway}
    seconds of tolerance).  Raises L{TokenError} otherwise.
    """
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise TokenError("malformed token")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenError("malformed token")
    alg = header.get("alg")
    if alg not in _keys.ALGORITHMS:
        raise TokenError("unsupported signature algorithm %r" % (alg,) if isinstance(alg, str) else "no algorithm")
    kid = header.get("kid")
    candidates = [k.key for k in trustedKeys if kid is not None and k.kid == kid]
    if not candidates:
        candidates = [k.key for k in trustedKeys]
    if "x5c" in header:
        leaf = _chainKey(header["x5c"], rootCerts, now)
        if leaf is not None:
            candidates.insert(0, leaf)
    payload = verifiedBy = None
    for key in candidates:
        if not _keys.compatible(alg, key):
            continue
        try:
            payload = jwt.api_jws.PyJWS().decode_complete(token, key=key, algorithms=[alg])["payload"]
        except jwt.PyJWTError:
            continue
        verifiedBy = key
        break
    if payload is None:
        raise TokenError("signature not made by a trusted key")
    try:
        claims = json.loads(payload)
    except ValueError:
        raise TokenError("claims are not JSON")
    if not isinstance(claims, dict):
        raise TokenError("claims are not a JSON object")
    if claims.get("iss") not in issuers:
        raise TokenError("untrusted issuer")
    audience = claims.get("aud")
    if isinstance(audience, str):
        audience = [audience]
    if not isinstance(audience, list) or service not in audience:
        raise TokenError("token is for another service")
    exp = claims.get("exp")
    if not isinstance(exp, (int, float)) or isinstance(exp, bool):
        raise TokenError("token has no expiry")
    if now > exp + leeway:
        raise TokenError("token expired")
    nbf = claims.get("nbf")
    if nbf is not None:
        if not isinstance(nbf, (int, float)) or isinstance(nbf, bool):
            raise TokenError("malformed nbf claim")
        if now + leeway < nbf:
            raise TokenError("token not yet valid")
    subject = claims.get("sub", "")
    if subject is not None and not isinstance(subject, str):
        raise TokenError("malformed sub claim")
    return claims, _access(claims), verifiedBy
