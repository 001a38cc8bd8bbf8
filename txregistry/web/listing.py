"""Handlers that list: the base route, the catalog (from the index when it
is current, else from storage), a repository's tags, and referrers."""

from urllib.parse import quote

from txregistry.registry.manifests import OCI_INDEX
from txregistry.search.index import IndexUnavailable
from txregistry.web.common import checkName, jsonAnswer, one, pageSize, parseDigest, query

DEFAULT_CATALOG_PAGE = 1000


def paginate(items, n, last):
    """Items after C{last}, at most C{n} (C{None}: all); and whether more
    remain."""
    if last:
        items = [i for i in items if i > last]
    if n is None or n >= len(items):
        return items, False
    if n == 0:
        return [], False
    return items[:n], True


async def base(app, request):
    return jsonAnswer(request, 200, {})


async def catalog(app, request):
    fields = query(request)
    n = pageSize(fields, DEFAULT_CATALOG_PAGE)
    last = one(fields, "last")
    access = app.access
    page = None
    # From the index when it lists every repository (and answers within
    # its bounded wait), else from storage.
    if app.search is not None and app.search.listingCurrent:
        try:
            page = await app.search.catalog(last or None, None if n is None else n + 1)
        except IndexUnavailable:
            page = None
    identity = request.txrIdentity
    if page is not None and not access.seesEverything(identity):
        page = await _visibleIndexPage(app, identity, page, n)
    if page is not None:
        more = n is not None and n > 0 and len(page) > n
        page = page[:n] if n is not None else page
    else:
        names = await app.registry.catalog()
        if not access.seesEverything(identity):
            names = [name for name in names if access.visible(identity, name)]
        page, more = paginate(names, n, last)
    if more:
        request.setHeader(
            b"Link", ('</v2/_catalog?n=%d&last=%s>; rel="next"' % (n, quote(page[-1], safe=""))).encode("ascii")
        )
    return jsonAnswer(request, 200, {"repositories": page})


async def _visibleIndexPage(app, identity, page, n):
    """C{page} (the index's first C{n + 1} names after the last one
    asked for, or all of them when C{n} is None) filtered for
    C{identity}, read on until it holds C{n + 1} names or the index
    ends; C{None} if the index failed meanwhile."""
    visible = [name for name in page if app.access.visible(identity, name)]
    if n is None:
        return visible
    limit = n + 1
    batch = max(limit, 100)
    while len(visible) < n + 1 and len(page) == limit and page:
        try:
            page = await app.search.catalog(page[-1], batch)
        except IndexUnavailable:
            return None
        limit = batch
        visible.extend(name for name in page if app.access.visible(identity, name))
    return visible


async def tags(app, request, name):
    checkName(name)
    fields = query(request)
    n = pageSize(fields)
    last = one(fields, "last")
    found = await app.registry.manifests.tags(name)
    page, more = paginate(found, n, last)
    if more:
        link = '</v2/%s/tags/list?n=%d&last=%s>; rel="next"' % (name, n, quote(page[-1], safe=""))
        request.setHeader(b"Link", link.encode("ascii"))
    return jsonAnswer(request, 200, {"name": name, "tags": page})


async def referrers(app, request, name, digest):
    checkName(name)
    subject = parseDigest(digest)
    artifactType = one(query(request), "artifactType")
    found = await app.registry.manifests.referrers(name, subject, artifactType or None)
    if artifactType:
        request.setHeader(b"OCI-Filters-Applied", b"artifactType")
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": found}
    return jsonAnswer(request, 200, index, OCI_INDEX.encode("ascii"))
