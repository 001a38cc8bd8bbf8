"""Content digests: parsing, validation and incremental hashing.

A digest is ``algorithm ":" encoded``; we accept the two algorithms the OCI
image spec registers: sha256 (64 lowercase hex) and sha512 (128 lowercase hex).
"""

import hashlib
import re

ALGORITHMS = {"sha256": 64, "sha512": 128}
_DIGEST = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")
# The spec's general grammar, used to tell "malformed" from "unsupported".
_GENERAL = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")


class InvalidDigest(ValueError):
    """The string is not a digest we can verify."""


class Digest(str):
    """A validated digest string with ``algorithm`` and ``hex`` attributes."""

    __slots__ = ()

    @property
    def algorithm(self):
        return self.split(":", 1)[0]

    @property
    def hex(self):
        return self.split(":", 1)[1]


def parse(value):
    """Return a L{Digest} for C{value} (str or bytes) or raise L{InvalidDigest}."""
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidDigest("digest is not ASCII")
    if not isinstance(value, str) or len(value) > 200:
        raise InvalidDigest("digest is malformed")
    if _DIGEST.fullmatch(value):
        return Digest(value)
    if _GENERAL.fullmatch(value):
        algorithm = value.split(":", 1)[0]
        if algorithm not in ALGORITHMS:
            raise InvalidDigest("unsupported digest algorithm %r" % (algorithm,))
    raise InvalidDigest("digest %r is malformed" % (value[:80],))


def hasher(algorithm):
    if algorithm not in ALGORITHMS:
        raise InvalidDigest("unsupported digest algorithm %r" % (algorithm,))
    return hashlib.new(algorithm)


def of(data, algorithm="sha256"):
    """The digest of C{data} (bytes)."""
    h = hasher(algorithm)
    h.update(data)
    return Digest("%s:%s" % (algorithm, h.hexdigest()))


def fromHasher(algorithm, h):
    return Digest("%s:%s" % (algorithm, h.hexdigest()))
