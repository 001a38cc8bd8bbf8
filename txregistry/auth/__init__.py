"""Authentication and access policy.

- L{parseAuth} checks the ``auth:`` config section once at start (see
  L{txregistry.auth.settings} for the format) and gives L{AuthSettings};
- an L{Authorizer} built from them tells who a request comes from
  (L{Authorizer.authenticate}: anonymous, htpasswd Basic, or a bearer JWT),
  what it may do (L{Authorizer.allowed}, L{Authorizer.require},
  L{Authorizer.visible}), the ``WWW-Authenticate`` challenge to send
  (L{Authorizer.challenge}), and answers the built-in token endpoint
  (L{Authorizer.issueToken});
- L{redact} keeps credentials out of logs.

Nothing here imports the reactor; bcrypt runs in the thread pool given to
the L{Authorizer}.
"""

from txregistry.auth.authorizer import (
    ANONYMOUS,
    Authorizer,
    Forbidden,
    Identity,
    LoginThrottled,
    TokenRequestError,
    Unauthorized,
)
from txregistry.auth.policy import ACTIONS
from txregistry.auth.redact import redact, redactHeaders
from txregistry.auth.scopes import formatScope, parseScope
from txregistry.auth.settings import AuthConfigError, AuthSettings, parseAuth

__all__ = [
    "ACTIONS",
    "ANONYMOUS",
    "AuthConfigError",
    "AuthSettings",
    "Authorizer",
    "Forbidden",
    "Identity",
    "LoginThrottled",
    "TokenRequestError",
    "Unauthorized",
    "formatScope",
    "parseAuth",
    "parseScope",
    "redact",
    "redactHeaders",
]
