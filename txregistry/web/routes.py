"""The routes below C{/v2/}: one table, naming each route's handlers, used
both to route a request's body when its headers arrive
(L{txregistry.web.bodyrouter}) and to call the handler once the body is in
(L{txregistry.web.app})."""

from __future__ import annotations

import re
from collections import namedtuple
from typing import TYPE_CHECKING

from txregistry.errors import RegistryError
from txregistry.web import blobs, listing, manifests, uploads
from txregistry.web.common import checkName
from txregistry.web.errors import HTTPError

if TYPE_CHECKING:
    from twisted.web.server import Request

Route = namedtuple("Route", "name pattern handlers")
Route.__doc__ = """A route below C{/v2/}: its C{name} (in access scopes, metrics and
the body router), the C{pattern} its path matches (raw, after "/v2/"), and
C{handlers}, {method: handler}; a handler is called as
C{handler(app, request, **groups)} and returns the response body."""

_NAME = r"(?P<name>[^?#]+?)"
ROUTES = [
    Route("base", re.compile(r"^$"), {"GET": listing.base, "HEAD": listing.base}),
    Route("catalog", re.compile(r"^_catalog$"), {"GET": listing.catalog, "HEAD": listing.catalog}),
    Route("tags", re.compile(r"^%s/tags/list$" % _NAME), {"GET": listing.tags, "HEAD": listing.tags}),
    Route("manifest", re.compile(r"^%s/manifests/(?P<reference>[^/]+)$" % _NAME), {
        "GET": manifests.get, "HEAD": manifests.get, "PUT": manifests.put, "DELETE": manifests.delete,
    }),
    Route("uploadStart", re.compile(r"^%s/blobs/uploads/?$" % _NAME), {"POST": uploads.start}),
    Route("upload", re.compile(r"^%s/blobs/uploads/(?P<upload>[^/]+)$" % _NAME), {
        "GET": uploads.status, "HEAD": uploads.status, "PATCH": uploads.patch, "PUT": uploads.put,
        "DELETE": uploads.cancel,
    }),
    Route("blob", re.compile(r"^%s/blobs/(?P<digest>[^/]+)$" % _NAME), {
        "GET": blobs.get, "HEAD": blobs.get, "DELETE": blobs.delete,
    }),
    Route("referrers", re.compile(r"^%s/referrers/(?P<digest>[^/]+)$" % _NAME), {
        "GET": listing.referrers, "HEAD": listing.referrers,
    }),
]

# Methods that change what is stored (refused in read-only mode).
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def isV2(path: bytes) -> bool:
    """Whether a request path (bytes, without the query) is below C{/v2}."""
    return path == b"/v2" or path.startswith(b"/v2/")


def match(path: bytes, method: bytes) -> tuple[Route, str, dict[str, str]]:
    """C{(route, method, args)} for a request to C{path} (bytes, below
    C{/v2}, no query) with C{method} (bytes): the L{Route}, the method as
    a str and the path's groups; raises the L{RegistryError} the request
    deserves when no route takes it (404), the route does not take the
    method (405, with C{Allow}), or the repository name is invalid."""
    rest = path[len(b"/v2/"):] if path.startswith(b"/v2/") else b""
    try:
        rest = rest.decode("ascii")
    except UnicodeDecodeError:
        raise RegistryError("NAME_INVALID", "path is not ASCII")
    for route in ROUTES:
        m = route.pattern.fullmatch(rest)
        if m is not None:
            break
    else:
        raise HTTPError("UNSUPPORTED", "no such endpoint", status=404)
    method = method.decode("ascii", "replace").upper()
    if method not in route.handlers:
        raise HTTPError(
            "UNSUPPORTED", "method %s not allowed here" % (method[:10],),
            headers={b"Allow": ", ".join(route.handlers).encode("ascii")},
        )
    args = m.groupdict()
    if args.get("name") is not None:
        checkName(args["name"])
    return route, method, args


def label(request: Request) -> str:
    """The route of a request, as a metric label: the route table's name,
    C{unknown} for no route below C{/v2}, the C{txrRoute} a handler set
    outside it, else C{other}.  Never a path or a repository."""
    route = getattr(request, "txrRoute", None)
    if route is not None:
        return route
    return labelOf(request.path)


def labelOf(path: bytes) -> str:
    """L{label} of a request to C{path} (bytes, no query) no handler saw."""
    if isV2(path):
        rest = path[len(b"/v2/"):] if path.startswith(b"/v2/") else b""
        try:
            rest = rest.decode("ascii")
        except UnicodeDecodeError:
            return "unknown"
        for route in ROUTES:
            if route.pattern.fullmatch(rest) is not None:
                return route.name
        return "unknown"
    return _OTHER.get(path, "other")


_OTHER = {b"/v1/_ping": "v1_ping", b"/v1/search": "v1_search"}
