"""Docker's V1 endpoints that clients still call: C{/v1/_ping} and
C{/v1/search} (C{docker search}, answered from the SQL index)."""

from txregistry.errors import RegistryError
from txregistry.search.index import IndexUnavailable
from txregistry.web.common import jsonAnswer, one, query, setCommon
from txregistry.web.errors import ANSWERED, HTTPError, writeError

# Searching for a caller who may not see every repository: how many ranked
# matches are read and filtered at most.
MAX_FILTERED_SEARCH = 5000
SEARCH_RETRY_AFTER = 5  # seconds, with a 503 of /v1/search


def ping(app, request):
    setCommon(request)
    request.setHeader(b"X-Docker-Registry-Version", b"0.9.1")
    request.setHeader(b"X-Docker-Registry-Standalone", b"true")
    return jsonAnswer(request, 200, {})


async def search(app, request):
    """docker search: the V1 search API, from the SQL index."""
    setCommon(request)
    try:
        term, size, page = _searchQuery(request)
        if app.search is None:
            raise HTTPError("UNSUPPORTED", "search is turned off (search_backend: none)", status=404)
        access = app.access
        identity = await access.searcher(request)
        try:
            if access.seesEverything(identity):
                total, rows, complete = await app.search.search(term, size, (page - 1) * size)
            else:
                # Ranked matches, filtered: what the caller may pull.
                _, rows, complete = await app.search.search(term, MAX_FILTERED_SEARCH, 0)
                rows = [row for row in rows if access.visible(identity, row[0])]
                total, rows = len(rows), rows[(page - 1) * size : page * size]
        except IndexUnavailable:
            raise RegistryError("UNAVAILABLE", "the search index is unavailable; retry later",
                                retryAfter=SEARCH_RETRY_AFTER)
    except ANSWERED as e:
        return writeError(request, e)
    results = [
        {"name": name, "description": description, "star_count": 0, "is_official": False, "is_automated": False}
        for name, description in rows
    ]
    doc = {
        "query": term,
        "num_results": total,
        "num_pages": (total + size - 1) // size,
        "page": page,
        "page_size": size,
        "results": results,
    }
    if not complete:  # a rebuild from storage is filling the index
        request.setHeader(b"Txregistry-Search-Index", b"rebuilding")
    return jsonAnswer(request, 200, doc)


def _searchQuery(request):
    """C{(term, page size, page)} of a search; raises the error bad ones
    deserve."""
    fields = query(request)
    term = (one(fields, "q") or "").strip()
    if len(term) > 255:
        raise HTTPError("UNSUPPORTED", "q is longer than 255 characters", status=400)
    size, page = one(fields, "n") or "25", one(fields, "page") or "1"
    if not (size.isascii() and size.isdigit()) or len(size) > 6:
        raise RegistryError("PAGINATION_NUMBER_INVALID", "n must be a whole number from 1 to 100")
    if not (page.isascii() and page.isdigit()) or len(page) > 9 or int(page) < 1:
        raise RegistryError("PAGINATION_NUMBER_INVALID", "page must be a whole number from 1")
    return term, min(max(int(size), 1), 100), int(page)
