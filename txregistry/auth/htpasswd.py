"""Apache htpasswd files, bcrypt only.

One ``user:hash`` a line, as written by ``htpasswd -B``.  Blank lines and
lines starting with ``#`` are skipped; anything after a second colon is
ignored, as Apache does.  Every hash must be bcrypt (``$2y$``, ``$2b$`` or
``$2a$``): the older kinds (MD5 ``$apr1$``, SHA-1 ``{SHA}``, DES crypt, plain
text) are weak, so a file holding one is refused when it is loaded rather
than failing a login later.  Pure functions, no I/O except reading the file.
"""

import re

BCRYPT = re.compile(rb"^\$2[aby]\$(0[4-9]|[12][0-9]|3[01])\$[./A-Za-z0-9]{53}$")
# bcrypt looks at the first 72 bytes of a password only.
BCRYPT_MAX_PASSWORD = 72


class HtpasswdError(ValueError):
    """A line that is not a bcrypt entry; C{lineno} counts from 1."""

    def __init__(self, lineno, message):
        ValueError.__init__(self, "line %d: %s" % (lineno, message))
        self.lineno = lineno


def describeHash(value):
    """Name the kind of a (non-bcrypt) password hash, for an error line."""
    if value.startswith(b"$apr1$"):
        return "an MD5 hash ($apr1$, htpasswd -m)"
    if value.startswith(b"{SHA}"):
        return "a SHA-1 hash ({SHA}, htpasswd -s)"
    if value.startswith(b"$1$"):
        return "an MD5-crypt hash ($1$)"
    if value.startswith(b"$5$"):
        return "a SHA-256-crypt hash ($5$, htpasswd -2)"
    if value.startswith(b"$6$"):
        return "a SHA-512-crypt hash ($6$, htpasswd -5)"
    if value.startswith(b"$2"):
        return "a malformed bcrypt hash"
    if value == b"":
        return "an empty hash"
    if re.match(rb"^[./0-9A-Za-z]{13}$", value):
        return "a DES crypt hash (htpasswd -d) or a plain-text password"
    return "a plain-text password or an unknown hash type"


def parseHtpasswd(data):
    """Parse the bytes of an htpasswd file into C{{user: bcrypt hash bytes}}.

    Raises L{HtpasswdError} naming the first bad line: a line without a
    colon, an empty user name, a user listed twice, or a hash that is not
    bcrypt.  The message never contains the hash itself.
    """
    users = {}
    seen = {}
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        line = raw.rstrip(b"\r").strip()
        if not line or line.startswith(b"#"):
            continue
        user, sep, rest = line.partition(b":")
        if not sep:
            raise HtpasswdError(lineno, "expected user:hash")
        try:
            name = user.decode("utf-8")
        except UnicodeDecodeError:
            raise HtpasswdError(lineno, "the user name is not UTF-8")
        if not name:
            raise HtpasswdError(lineno, "empty user name")
        if name in seen:
            raise HtpasswdError(lineno, "user %r is already on line %d" % (name, seen[name]))
        hashed = rest.partition(b":")[0]
        if not BCRYPT.match(hashed):
            raise HtpasswdError(
                lineno,
                "user %r has %s; only bcrypt ($2y$, $2b$, $2a$: htpasswd -B) is accepted"
                % (name, describeHash(hashed)),
            )
        seen[name] = lineno
        users[name] = hashed
    return users


def bcryptCost(hashed):
    """The cost factor of a bcrypt hash that L{parseHtpasswd} accepted."""
    return int(hashed[4:6])
