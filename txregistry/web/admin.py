"""The admin API, beside the registry API (it is not in the OCI spec):

    DELETE /admin/v1/repositories/<name>

deletes a repository (L{txregistry.registry.repositories}): 202 with an
empty body, 404 NAME_UNKNOWN when there is none.  With logins on, only an
admin of the policy may (without a policy: any logged-in user, who may do
everything anyway); with a token, the token must grant
``repository:<name>:delete`` too.  Refused in read-only mode."""

from twisted.internet.defer import Deferred

from txregistry.auth import Forbidden, Unauthorized
from txregistry.registry.repositories import deleteRepository
from txregistry.web import eventinfo
from txregistry.web.common import checkName, emptyAnswer, setCommon
from txregistry.web.errors import ANSWERED, writeError


async def deleteRepositoryRoute(app, request, name):
    setCommon(request)
    request.txrRoute = "admin_repository"
    try:
        checkName(name)
        await requireAdmin(app, request, name)
        if app.readonly:
            from txregistry.web.app import readonlyError

            raise readonlyError()
        if app.registry.events:  # someone listens: the event says who asked
            eventinfo.bindRequest(request, app.access.baseURL(request))
        await deleteRepository(app.registry, name)
    except ANSWERED as e:
        return writeError(request, e)
    return emptyAnswer(request, 202, {})


async def requireAdmin(app, request, name):
    """Raise L{Unauthorized} or L{Forbidden} unless the caller may use the
    admin API on repository C{name} (see the module's docstring)."""
    auth = app.auth
    if auth is None:
        return
    access = app.access
    baseURL = access.baseURL(request)
    scopes = [("repository", name, ["delete"])]
    identity = await Deferred.fromCoroutine(
        auth.authenticate(request.getHeader(b"authorization"), scopes, baseURL=baseURL, passwords=True,
                          client=access.client(request))
    )
    request.txrUser = identity.name
    if identity.anonymous:
        raise Unauthorized(auth.challenge(scopes, baseURL=baseURL), "authentication required")
    if not identity.admin and auth.settings.policy is not None:
        raise Forbidden("the admin API is for admins of the policy, not %s" % (identity.name,))
    auth.require(identity, scopes, baseURL=baseURL)
