"""Sessions of the web pages: a signed cookie, and the CSRF token of its
forms.

The cookie holds a random session id, the user (or none: a visitor who did
not log in), and when it expires, signed with HMAC-SHA256; nothing secret
is in it and nothing is kept on the server, so worker processes that share
the secret share the sessions.  It is C{HttpOnly}, C{SameSite=Strict},
C{Secure} over TLS, and scoped to the pages' path.  A form's CSRF token is
an HMAC of the session id: a page of another site can neither read it nor,
SameSite aside, guess it."""

import base64
import hashlib
import hmac
import os
import time
from dataclasses import dataclass
from typing import Optional

COOKIE = b"txr_session"


@dataclass(frozen=True)
class Session:
    sid: str
    user: Optional[str]
    expires: int


def _b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sessions:
    """Makes and checks session cookies with C{secret} (bytes); a session
    lasts C{hours}.  C{clock} is C{time.time} unless given."""

    def __init__(self, secret, hours=12.0, clock=time.time):
        self._key = hashlib.sha256(b"txregistry-ui-session\0" + secret).digest()
        self._csrfKey = hashlib.sha256(b"txregistry-ui-csrf\0" + secret).digest()
        self.seconds = int(hours * 3600)
        self._clock = clock

    def _mac(self, payload):
        return _b64(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def new(self, user=None):
        return Session(_b64(os.urandom(18)), user, int(self._clock()) + self.seconds)

    def encode(self, session):
        user = "" if session.user is None else _b64(session.user.encode("utf-8"))
        payload = "%s.%d.%s" % (session.sid, session.expires, user)
        return payload + "." + self._mac(payload)

    def decode(self, value):
        """The L{Session} of a cookie value (bytes or str), or None when it is
        malformed, forged or expired."""
        try:
            if isinstance(value, bytes):
                value = value.decode("ascii")
            payload, _, mac = value.rpartition(".")
            if not hmac.compare_digest(mac, self._mac(payload)):
                return None
            sid, expires, user = payload.split(".")
            expires = int(expires)
            user = _unb64(user).decode("utf-8") if user else None
        except (ValueError, UnicodeError):
            return None
        if expires <= self._clock():
            return None
        return Session(sid, user, expires)

    def csrf(self, session):
        return _b64(hmac.new(self._csrfKey, session.sid.encode("ascii"), hashlib.sha256).digest())

    def checkCSRF(self, session, token):
        return session is not None and isinstance(token, str) and hmac.compare_digest(
            token.encode("ascii", "replace"), self.csrf(session).encode("ascii"))

    def cookie(self, session, path, secure):
        """The Set-Cookie value for C{session} (None: remove the cookie)."""
        if session is None:
            value, age = "", 0
        else:
            value, age = self.encode(session), max(0, session.expires - int(self._clock()))
        parts = ["%s=%s" % (COOKIE.decode(), value), "Path=%s" % (path,), "Max-Age=%d" % (age,), "HttpOnly",
                 "SameSite=Strict"]
        if secure:
            parts.append("Secure")
        return "; ".join(parts).encode("ascii")
