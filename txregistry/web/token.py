"""The built-in token endpoint of Docker's token authentication (at
C{auth.token_endpoint_path})."""

import base64
from urllib.parse import parse_qs

from txregistry.auth import TokenRequestError
from txregistry.web.common import body, jsonAnswer, one, query
from txregistry.web.errors import ANSWERED, HTTPError, writeError


async def token(app, request):
    """``GET ?service=&scope=`` with Basic credentials (or none: an
    anonymous token), and the OAuth2 form ``POST`` with
    ``grant_type=password``."""
    request.setHeader(b"Cache-Control", b"no-store")
    try:
        method = request.method
        fields = query(request)
        authorization = request.getHeader(b"authorization")
        if method == b"POST":
            form = _form(request)
            grant = one(form, "grant_type")
            if grant != "password":
                raise TokenRequestError("unsupported grant_type %r (this endpoint takes password)" % (grant,))
            user, password = one(form, "username") or "", one(form, "password") or ""
            authorization = b"Basic " + base64.b64encode(user.encode("utf-8") + b":" + password.encode("utf-8"))
            service, scopes = one(form, "service"), form.get("scope", [])
        elif method in (b"GET", b"HEAD"):
            service, scopes = one(fields, "service"), fields.get("scope", [])
        else:
            raise HTTPError("UNSUPPORTED", "the token endpoint takes GET or POST", headers={b"Allow": b"GET, POST"})
        answer = await app.access.auth.issueToken(authorization, service, scopes, client=app.access.client(request))
    except ANSWERED as e:
        return writeError(request, e)
    if method == b"POST":
        answer = {k: answer[k] for k in ("access_token", "expires_in", "issued_at")}
    return jsonAnswer(request, 200, answer)


def _form(request):
    content = body(request)
    if getattr(content, "overflow", False):
        raise HTTPError("UNSUPPORTED", "request body too large", status=413)
    content.seek(0)
    try:
        return parse_qs(content.read().decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise HTTPError("UNSUPPORTED", "form is not UTF-8", status=400)
