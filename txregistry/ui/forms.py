"""What the pages read of a request (the query, a form) and the
answers they give other than a page (an error page, a redirect): pure
helpers of L{txregistry.ui.app}."""

from urllib.parse import parse_qs, urlencode

from txregistry import digest as digests
from txregistry import names
from txregistry.web import common
from txregistry.web.errors import HTTPError

MAX_FORM = 16 * 1024


class PageError(Exception):
    """Answer with an error page of C{status} saying C{message}."""

    def __init__(self, status, message):
        Exception.__init__(self, message)
        self.status = status
        self.message = message


class Redirect(Exception):
    """Answer 303 See Other to C{location} (a path)."""

    def __init__(self, location):
        Exception.__init__(self, location)
        self.location = location


def query(request):
    """The query string as {str: [str]}; a 400 page for one not UTF-8."""
    try:
        return common.query(request)
    except HTTPError:
        raise PageError(400, "The query string is not UTF-8.")


def one(fields, key, default=""):
    values = fields.get(key)
    return values[-1] if values else default


def pageNumber(fields):
    value = one(fields, "page", "1")
    if not (value.isascii() and value.isdigit()) or len(value) > 6 or int(value) < 1:
        raise PageError(400, "page must be a whole number from 1.")
    return int(value)


def form(request):
    """The posted form (the body router keeps a page's form body in
    memory, bounded) as {str: [str]}."""
    content = getattr(request, "content", None)
    if content is None:
        return {}
    if getattr(content, "overflow", False):
        raise PageError(413, "The form is too large.")
    content.seek(0)
    data = content.read(MAX_FORM + 1)
    if len(data) > MAX_FORM:
        raise PageError(413, "The form is too large.")
    try:
        return parse_qs(data.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise PageError(400, "The form is not UTF-8.")


def encode(**params):
    return urlencode(params)


def deletedNotice(value):
    """What the repository page says was deleted ("tag v1", "manifest
    sha256:..."), only when it is that: never text a link made up."""
    kind, _, reference = value.partition(" ")
    if kind == "tag" and isTag(reference):
        return value
    if kind == "manifest":
        try:
            return "manifest " + digests.parse(reference)
        except digests.InvalidDigest:
            return None
    return None


def isTag(reference):
    return bool(reference) and ":" not in reference and names.isValidTag(reference)


def safeNext(base, value):
    """Where to go after logging in: a path of these pages, never another
    site (no scheme, no //, no backslash)."""
    if (not value or not value.startswith(base) or value.startswith("//") or "\\" in value
            or any(ord(c) < 0x20 for c in value)):
        return base
    return value
