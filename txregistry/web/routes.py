"""The routes below C{/v2/}: one table, used both to route a request's body
when its headers arrive (L{txregistry.web.bodies}) and to find the handler
once the body is in (L{txregistry.web.app})."""

import re

from txregistry import names
from txregistry.errors import RegistryError

# Matched against the raw (undecoded) path after "/v2/".
_NAME = r"(?P<name>[^?#]+?)"
ROUTES = [
    (re.compile(r"^$"), "base", ("GET", "HEAD")),
    (re.compile(r"^_catalog$"), "catalog", ("GET", "HEAD")),
    (re.compile(r"^%s/tags/list$" % _NAME), "tags", ("GET", "HEAD")),
    (re.compile(r"^%s/manifests/(?P<reference>[^/]+)$" % _NAME), "manifest", ("GET", "HEAD", "PUT", "DELETE")),
    (re.compile(r"^%s/blobs/uploads/?$" % _NAME), "uploadStart", ("POST",)),
    (re.compile(r"^%s/blobs/uploads/(?P<upload>[^/]+)$" % _NAME), "upload", ("GET", "HEAD", "PATCH", "PUT", "DELETE")),
    (re.compile(r"^%s/blobs/(?P<digest>[^/]+)$" % _NAME), "blob", ("GET", "HEAD", "DELETE")),
    (re.compile(r"^%s/referrers/(?P<digest>[^/]+)$" % _NAME), "referrers", ("GET", "HEAD")),
]

# Methods that change what is stored (refused in read-only mode).
WRITES = ("POST", "PUT", "PATCH", "DELETE")


def isV2(path):
    """Whether a request path (bytes, without the query) is below C{/v2}."""
    return path == b"/v2" or path.startswith(b"/v2/")


def checkName(name):
    if not names.isValidName(name):
        raise RegistryError("NAME_INVALID", "invalid repository name", {"name": name[:300]})
    return name


def match(path, method):
    """C{(route, args)} for a request to C{path} (bytes, below C{/v2}, no
    query) with C{method} (bytes); raises the L{RegistryError} the request
    deserves when no route takes it (404), the route does not take the
    method (405, with C{Allow}), or the repository name is invalid."""
    rest = path[len(b"/v2/"):] if path.startswith(b"/v2/") else b""
    try:
        rest = rest.decode("ascii")
    except UnicodeDecodeError:
        raise RegistryError("NAME_INVALID", "path is not ASCII")
    for pattern, route, methods in ROUTES:
        m = pattern.fullmatch(rest)
        if m is not None:
            break
    else:
        raise RegistryError("UNSUPPORTED", "no such endpoint", status=404)
    method = method.decode("ascii", "replace").upper()
    if method not in methods:
        raise RegistryError(
            "UNSUPPORTED", "method %s not allowed here" % (method[:10],),
            headers={b"Allow": ", ".join(methods).encode("ascii")},
        )
    args = m.groupdict()
    if args.get("name") is not None:
        checkName(args["name"])
    return route, method, args


def label(request):
    """The route of a request, as a metric label: the route table's name,
    C{unknown} for no route below C{/v2}, the C{txrRoute} a handler set
    outside it, else C{other}.  Never a path or a repository."""
    route = getattr(request, "txrRoute", None)
    if route is not None:
        return route
    return labelOf(request.path)


def labelOf(path):
    """L{label} of a request to C{path} (bytes, no query) no handler saw."""
    if isV2(path):
        rest = path[len(b"/v2/"):] if path.startswith(b"/v2/") else b""
        try:
            rest = rest.decode("ascii")
        except UnicodeDecodeError:
            return "unknown"
        for pattern, route, _ in ROUTES:
            if pattern.fullmatch(rest) is not None:
                return route
        return "unknown"
    return _OTHER.get(path, "other")


_OTHER = {b"/v1/_ping": "v1_ping", b"/v1/search": "v1_search"}
