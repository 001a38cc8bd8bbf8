"""Bearer tokens: what the registry accepts, and from whom."""

import base64
import datetime
import json
import os
import time

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.trial import unittest

from tests.unit.test_auth_helpers import (
    async_test,
    basic,
    bearer,
    certDERb64,
    certificate,
    certPEM,
    claimsFor,
    ecKey,
    jwk,
    privatePEM,
    publicPEM,
    rsaKey,
    settingsFrom,
    signToken,
    startPool,
    writeHtpasswd,
)
from txregistry.auth import Authorizer, Unauthorized
from txregistry.auth.keys import keyID

PULL = [("repository", "team-a/app", ["pull"])]


class TokenTestCase(unittest.TestCase):
    policy = ""

    def setUp(self):
        self.tmp = self.mktemp()
        os.makedirs(self.tmp)
        writeHtpasswd(os.path.join(self.tmp, "htpasswd"), {"alice": "pw"})
        self.now = time.time()
        self.clock = Clock()
        self.clock.advance(self.now)
        # External token servers: one whose certificate is in the bundle, one
        # with a bare public key there, an RSA one, one known by JWKS only,
        # and a CA in the bundle that issues x5c chains.
        self.bundleKey = ecKey()
        self.bareKey = ecKey()
        self.rsaKey = rsaKey()
        self.jwksKey = ecKey()
        self.jwksRSA = rsaKey()
        self.caKey = ecKey()
        self.ca = certificate(self.caKey, "Token CA", ca=True)
        with open(os.path.join(self.tmp, "bundle.pem"), "wb") as f:
            f.write(certPEM(certificate(self.bundleKey, "auth.example")))
            f.write(publicPEM(self.bareKey))
            f.write(certPEM(certificate(self.rsaKey, "rsa.example")))
            f.write(certPEM(self.ca))
        with open(os.path.join(self.tmp, "jwks.json"), "w") as f:
            json.dump({"keys": [jwk(self.jwksKey, "jwks-ec"), jwk(self.jwksRSA)]}, f)
        self.authorizer = self.make("""
            auth:
              htpasswd: htpasswd
              token:
                service: registry.example
                issuer: [txregistry, auth.example]
                rootcertbundle: bundle.pem
                jwks: jwks.json
            """ + self.policy)

    def make(self, text):
        settings = settingsFrom(self.tmp, text)
        return Authorizer(settings, reactor, startPool(self), clock=self.clock)

    def claims(self, **kw):
        kw.setdefault("aud", "registry.example")
        kw.setdefault("iss", "auth.example")
        kw.setdefault("access", PULL)
        return claimsFor(self.now, **kw)

    async def accepted(self, token, authorizer=None):
        identity = await (authorizer or self.authorizer).authenticate(bearer(token), PULL)
        self.assertEqual(identity.scheme, "bearer")
        return identity

    async def rejected(self, token, why=None, authorizer=None):
        with self.assertRaises(Unauthorized) as info:
            await (authorizer or self.authorizer).authenticate(bearer(token), PULL)
        self.assertIn('error="invalid_token"', info.exception.challenge)
        self.assertIn('scope="repository:team-a/app:pull"', info.exception.challenge)
        if why:
            self.assertIn(why, info.exception.message)
        return info.exception


class ExternalKeyTests(TokenTestCase):
    @async_test
    async def test_certificateInBundle(self):
        identity = await self.accepted(signToken(self.bundleKey, self.claims()))
        self.assertEqual(identity.name, "alice")
        self.assertEqual(identity.tokenAccess, {("repository", "team-a/app"): {"pull"}})
        self.assertTrue(self.authorizer.allowed(identity, "team-a/app", "pull"))  # no policy: the token decides
        self.assertFalse(self.authorizer.allowed(identity, "team-a/app", "push"))

    @async_test
    async def test_anonymousExternalTokenWithoutPolicy(self):
        # No policy: the external server vouches for its (anonymous) subject.
        access = [("repository", "team-a/app", ["pull"]), ("registry", "catalog", ["*"])]
        identity = await self.accepted(signToken(self.jwksKey, self.claims(sub="", access=access), kid="jwks-ec"))
        self.assertEqual((identity.name, identity.external), (None, True))
        self.assertTrue(self.authorizer.allowed(identity, "team-a/app", "pull"))
        self.assertTrue(self.authorizer.visible(identity, "anything"))
        self.assertFalse(self.authorizer.allowed(identity, "anything", "pull"))

    @async_test
    async def test_withoutKidOrWithAForeignKid(self):
        await self.accepted(signToken(self.bundleKey, self.claims(), kid=None))
        await self.accepted(signToken(self.bundleKey, self.claims(), kid="some-other-id"))

    @async_test
    async def test_barePublicKeyInBundle(self):
        await self.accepted(signToken(self.bareKey, self.claims()))

    @async_test
    async def test_rsaCertificateInBundle(self):
        for alg in ("RS256", "RS384", "RS512"):
            await self.accepted(signToken(self.rsaKey, self.claims(), alg=alg))

    @async_test
    async def test_jwks(self):
        await self.accepted(signToken(self.jwksKey, self.claims(), kid="jwks-ec"))
        await self.accepted(signToken(self.jwksKey, self.claims(), kid=None))
        await self.accepted(signToken(self.jwksRSA, self.claims()))

    @async_test
    async def test_x5cChainToBundleCA(self):
        leafKey = ecKey()
        leaf = certificate(leafKey, "signer", issuerKey=self.caKey, issuerName="Token CA")
        await self.accepted(signToken(leafKey, self.claims(), kid=None, headers={"x5c": [certDERb64(leaf)]}))
        # with an intermediate
        midKey = ecKey()
        mid = certificate(midKey, "Intermediate", issuerKey=self.caKey, issuerName="Token CA", ca=True)
        leaf2Key = ecKey()
        leaf2 = certificate(leaf2Key, "signer2", issuerKey=midKey, issuerName="Intermediate")
        await self.accepted(signToken(leaf2Key, self.claims(), kid=None,
                                      headers={"x5c": [certDERb64(leaf2), certDERb64(mid)]}))

    @async_test
    async def test_x5cUntrusted(self):
        rogueCAKey = ecKey()
        leafKey = ecKey()
        leaf = certificate(leafKey, "signer", issuerKey=rogueCAKey, issuerName="Token CA")  # same name, other key
        await self.rejected(signToken(leafKey, self.claims(), kid=None, headers={"x5c": [certDERb64(leaf)]}),
                            "trusted key")
        selfSigned = certificate(leafKey, "me")
        await self.rejected(signToken(leafKey, self.claims(), headers={"x5c": [certDERb64(selfSigned)]}))
        # An intermediate that is not a CA cannot issue.
        notCAKey = ecKey()
        notCA = certificate(notCAKey, "NotCA", issuerKey=self.caKey, issuerName="Token CA", ca=False)
        leaf3 = certificate(leafKey, "signer3", issuerKey=notCAKey, issuerName="NotCA")
        await self.rejected(signToken(leafKey, self.claims(), kid=None,
                                      headers={"x5c": [certDERb64(leaf3), certDERb64(notCA)]}))
        # Garbage
        await self.rejected(signToken(leafKey, self.claims(), headers={"x5c": ["!!"]}))
        await self.rejected(signToken(leafKey, self.claims(), headers={"x5c": "not-a-list"}))

    @async_test
    async def test_x5cExpiredLeaf(self):
        leafKey = ecKey()
        old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=60)
        leaf = certificate(leafKey, "signer", issuerKey=self.caKey, issuerName="Token CA", now=old, days=30)
        await self.rejected(signToken(leafKey, self.claims(), kid=None, headers={"x5c": [certDERb64(leaf)]}))


class RejectedTokenTests(TokenTestCase):
    @async_test
    async def test_expired(self):
        token = signToken(self.bundleKey, self.claims(lifetime=60))
        self.clock.advance(60 + 29)  # within the leeway
        await self.accepted(token)
        self.clock.advance(2)
        await self.rejected(token, "expired")

    @async_test
    async def test_notYetValid(self):
        await self.accepted(signToken(self.bundleKey, self.claims(nbf=int(self.now) + 20)))
        await self.rejected(signToken(self.bundleKey, self.claims(nbf=int(self.now) + 40)), "not yet valid")

    @async_test
    async def test_wrongAudience(self):
        await self.rejected(signToken(self.bundleKey, self.claims(aud="other.example")), "another service")
        await self.rejected(signToken(self.bundleKey, self.claims(aud=None)), "another service")
        await self.accepted(signToken(self.bundleKey, self.claims(aud=["other.example", "registry.example"])))

    @async_test
    async def test_wrongIssuer(self):
        await self.rejected(signToken(self.bundleKey, self.claims(iss="evil.example")), "issuer")
        await self.rejected(signToken(self.bundleKey, self.claims(iss=None)), "issuer")

    @async_test
    async def test_noExpiry(self):
        await self.rejected(signToken(self.bundleKey, self.claims(exp=None)), "expiry")
        await self.rejected(signToken(self.bundleKey, self.claims(exp="tomorrow")), "expiry")

    @async_test
    async def test_tampered(self):
        token = signToken(self.bundleKey, self.claims())
        header, payload, signature = token.split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        claims["access"][0]["actions"] = ["pull", "push", "delete"]
        forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        await self.rejected("%s.%s.%s" % (header, forged, signature), "trusted key")
        flipped = signature[:-2] + ("A" if signature[-2] != "A" else "B") + signature[-1]
        await self.rejected("%s.%s.%s" % (header, payload, flipped))
        await self.rejected("%s.%s." % (header, payload))
        await self.rejected("%s.%s" % (header, payload))

    @async_test
    async def test_unknownKey(self):
        stranger = ecKey()
        await self.rejected(signToken(stranger, self.claims()), "trusted key")
        # claiming the id of a trusted key does not help
        await self.rejected(signToken(stranger, self.claims(), kid=keyID(self.bundleKey.public_key())))
        await self.rejected(signToken(stranger, self.claims(), kid="jwks-ec"))
        await self.rejected(signToken(rsaKey(), self.claims()))

    @async_test
    async def test_algorithmConfusion(self):
        unsigned = jwt.encode(self.claims(), None, algorithm="none")
        await self.rejected(unsigned, "algorithm")
        # HMAC keyed with a trusted public key (the classic confusion attack)
        header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
        payload = base64.urlsafe_b64encode(json.dumps(self.claims()).encode()).rstrip(b"=")
        import hashlib
        import hmac

        mac = hmac.new(publicPEM(self.bundleKey), header + b"." + payload, hashlib.sha256).digest()
        forged = b".".join([header, payload, base64.urlsafe_b64encode(mac).rstrip(b"=")]).decode()
        await self.rejected(forged, "algorithm")
        # ES256 header on an RSA signature
        token = signToken(self.rsaKey, self.claims())
        _, p, s = token.split(".")
        h = base64.urlsafe_b64encode(b'{"alg":"ES256"}').rstrip(b"=").decode()
        await self.rejected("%s.%s.%s" % (h, p, s))

    @async_test
    async def test_malformed(self):
        for garbage in ("", "x", "a.b.c", "....", "é.é.é", "x" * 40000):
            with self.assertRaises(Unauthorized):
                await self.authorizer.authenticate(b"Bearer " + garbage.encode(), PULL)
        await self.rejected(signToken(self.bundleKey, self.claims() | {"access": "all"}), "access")
        await self.rejected(signToken(self.bundleKey, self.claims() | {"access": [{"type": "repository"}]}))
        await self.rejected(signToken(self.bundleKey, self.claims() | {"access": [1]}))
        await self.rejected(signToken(self.bundleKey, self.claims() | {"sub": 5}))
        await self.rejected(signToken(self.bundleKey, self.claims() | {"nbf": "soon"}))

    @async_test
    async def test_tokenOfAnotherInstance(self):
        # Another registry (or this one before a restart, with a generated key)
        other = self.make("auth: {htpasswd: htpasswd, token: {service: registry.example, issuer: auth.example}}")
        token = (await other.issueToken(basic("alice", "pw"), None, ["repository:team-a/app:pull"]))["token"]
        await self.accepted(token, other)
        await self.rejected(token, "trusted key")


class BuiltInTokenTests(TokenTestCase):
    @async_test
    async def test_claimsAndHeader(self):
        answer = await self.authorizer.issueToken(basic("alice", "pw"), "registry.example",
                                                  ["repository:team-a/app:pull,push"])
        token = answer["token"]
        header = jwt.get_unverified_header(token)
        self.assertEqual(header["alg"], "ES256")
        self.assertEqual(header["typ"], "JWT")
        self.assertEqual(header["kid"], self.authorizer.publicJWKS()["keys"][0]["kid"])
        claims = jwt.decode(token, options={"verify_signature": False})
        now = int(self.now)
        self.assertEqual(
            {k: v for k, v in claims.items() if k != "jti"},
            {"iss": "txregistry", "sub": "alice", "aud": "registry.example", "exp": now + 300, "nbf": now,
             "iat": now, "access": [{"type": "repository", "name": "team-a/app", "actions": ["pull", "push"]}]},
        )
        again = await self.authorizer.issueToken(basic("alice", "pw"), None, [])
        self.assertNotEqual(jwt.decode(again["token"], options={"verify_signature": False})["jti"], claims["jti"])
        identity = await self.accepted(token)
        self.assertEqual(identity.name, "alice")

    @async_test
    async def test_anonymousToken(self):
        token = (await self.authorizer.issueToken(None, None, ["repository:team-a/app:pull"]))["token"]
        identity = await self.accepted(token)
        self.assertIsNone(identity.name)
        self.assertEqual(identity.tokenAccess, {("repository", "team-a/app"): frozenset()})  # no policy: nothing

    @async_test
    async def test_rsaSigningKeyFromFile(self):
        with open(os.path.join(self.tmp, "rsa.pem"), "wb") as f:
            f.write(privatePEM(rsaKey()))
        authorizer = self.make("auth: {htpasswd: htpasswd, token: {key: rsa.pem, expiration: 60}}")
        answer = await authorizer.issueToken(basic("alice", "pw"), None, ["repository:x:push"])
        self.assertEqual(jwt.get_unverified_header(answer["token"])["alg"], "RS256")
        self.assertEqual(answer["expires_in"], 60)
        identity = await self.accepted(answer["token"], authorizer)
        self.assertTrue(authorizer.allowed(identity, "x", "push"))

    @async_test
    async def test_p384SigningKey(self):
        with open(os.path.join(self.tmp, "p384.pem"), "wb") as f:
            f.write(privatePEM(ecKey(ec.SECP384R1())))
        authorizer = self.make("auth: {htpasswd: htpasswd, token: {key: p384.pem}}")
        answer = await authorizer.issueToken(None, None, [])
        self.assertEqual(jwt.get_unverified_header(answer["token"])["alg"], "ES384")
        await self.accepted(answer["token"], authorizer)

    @async_test
    async def test_publishedJWKSLetsAnotherRegistryTrustUs(self):
        with open(os.path.join(self.tmp, "ours.json"), "w") as f:
            json.dump(self.authorizer.publicJWKS(), f)
        downstream = self.make("""
            auth:
              token: {service: registry.example, realm: "https://up/auth/token", jwks: ours.json}
            """)
        token = (await self.authorizer.issueToken(basic("alice", "pw"), None, ["repository:x:pull"]))["token"]
        identity = await self.accepted(token, downstream)
        self.assertTrue(downstream.allowed(identity, "x", "pull"))

    @async_test
    async def test_libtrustKeyIDOfTheSpecExample(self):
        # The ECDSA key and its id from Distribution's token specification.
        key = jwt.PyJWK({"kty": "EC", "crv": "P-256", "x": "m7zUpx3b-zmVE5cymSs64POG9QcyEpJaYCD82-549_Q",
                         "y": "dU3biz8sZ_8GPB-odm8Wxz3lNDr1xcAQQPQaOcr1fmc"}).key
        self.assertEqual(keyID(key), "PYYO:TEWU:V7JH:26JV:AQTZ:LJC3:SXVJ:XGHA:34F2:2LAQ:ZRMK:Z7Q6")

    def test_noJWKSWithoutBuiltInEndpoint(self):
        downstream = self.make("auth: {token: {realm: 'https://up/t', rootcertbundle: bundle.pem}}")
        self.assertIsNone(downstream.publicJWKS())


class ExternalTokensUnderPolicyTests(TokenTestCase):
    """With a policy, an external token grants only what the policy allows its subject."""

    policy = """
              policy:
                admins: [root]
                users: {alice: [{repository: "team-a/*", actions: [pull]}]}
            """

    @async_test
    async def test_tokenGrantsMoreThanPolicy(self):
        access = [("repository", "team-a/app", ["pull", "push"]), ("repository", "secret", ["*"])]
        alice = await self.accepted(signToken(self.bundleKey, self.claims(access=access)))
        self.assertTrue(self.authorizer.allowed(alice, "team-a/app", "pull"))
        self.assertFalse(self.authorizer.allowed(alice, "team-a/app", "push"))
        self.assertFalse(self.authorizer.allowed(alice, "secret", "pull"))
        eve = await self.accepted(signToken(self.bundleKey, self.claims(sub="eve", access=access)))
        self.assertFalse(any(self.authorizer.allowed(eve, r, a) for r in ("team-a/app", "secret")
                             for a in ("pull", "push", "delete")))
        root = await self.accepted(signToken(self.bundleKey, self.claims(sub="root", access=access)))
        self.assertTrue(root.admin)
        self.assertTrue(self.authorizer.allowed(root, "secret", "delete"))  # "*" granted, admin by policy
        self.assertFalse(self.authorizer.allowed(root, "other", "pull"))  # not in the token
