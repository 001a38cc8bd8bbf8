"""The frame every page shares, and small pieces of markup (pure: tags in,
tags out).  Every text goes into the tree as a string, so
C{twisted.web.template} escapes it; nothing from a user is ever markup."""

from urllib.parse import quote, urlencode

from twisted.web.template import Tag, tags

from txregistry.ui import format as fmt

DOCTYPE = b"<!DOCTYPE html>\n"


class Context:
    """What a page needs of its request: C{base} (the pages' path, ending
    in /), C{static} (URL of an asset by name), C{user} (None: not logged
    in), C{logins} (whether logging in is possible), C{csrf} (the token of
    this session's forms), C{readonly}, C{host} (as the user browsed to)."""

    def __init__(self, base, static, user=None, logins=False, csrf="", readonly=False, host="", query="", now=None):
        self.base = base
        self.static = static
        self.user = user
        self.logins = logins
        self.csrf = csrf
        self.readonly = readonly
        self.host = host
        self.query = query
        self.now = now

    def repo(self, name, **params):
        return self.base + "r/" + quote(name) + (("?" + urlencode(params)) if params else "")

    def image(self, name, digest):
        return self.base + "r/" + quote(name) + "/-/manifest/" + quote(digest, safe=":")

    def delete(self, name, reference):
        return self.base + "r/" + quote(name) + "/-/delete?" + urlencode({"ref": reference})

    def login(self, next=None):
        return self.base + "-/login" + (("?" + urlencode({"next": next})) if next else "")


def page(ctx, title, *content, status=None):
    head = tags.head(
        tags.meta(charset="utf-8"),
        tags.meta(name="viewport", content="width=device-width, initial-scale=1"),
        tags.meta(name="referrer", content="same-origin"),
        tags.title(title + " · txregistry"),
        tags.link(rel="stylesheet", href=ctx.static("ui.css")),
        tags.script(src=ctx.static("ui.js"), defer="defer"),
    )
    nav = []
    if ctx.user is not None:
        nav.append(tags.span("Signed in as ", tags.strong(ctx.user), class_="who"))
        nav.append(tags.form(
            tags.input(type="hidden", name="csrf", value=ctx.csrf),
            tags.button("Log out", type="submit", class_="link"),
            method="post", action=ctx.base + "-/logout", class_="inline"))
    elif ctx.logins:
        nav.append(tags.a("Log in", href=ctx.login(), class_="button"))
    search = tags.form(
        tags.label("Search repositories", for_="q", class_="visually-hidden"),
        tags.input(type="search", name="q", id="q", value=ctx.query, placeholder="Search repositories",
                   autocomplete="off", maxlength="255", **{"data-suggest": ctx.base + "-/suggest"}),
        tags.button("Search", type="submit"),
        tags.ul(id="suggestions", class_="suggestions", hidden="hidden", **{"aria-live": "polite"}),
        role="search", action=ctx.base, method="get", class_="search")
    header = tags.header(
        tags.a("txregistry", href=ctx.base, class_="brand"), search, tags.nav(*nav, **{"aria-label": "Account"}),
        class_="top")
    banner = []
    if ctx.readonly:
        banner.append(tags.p("This registry is read-only: pulls only, no pushes or deletes.", class_="banner",
                             role="status"))
    body = tags.body(
        tags.a("Skip to content", href="#main", class_="skip"), header, *banner,
        Tag("main")(*content, id="main"),  # (not in Twisted's list of tags)
        tags.footer(tags.p("txregistry · ", tags.a("registry API", href="/v2/"))),
    )
    return tags.html(head, body, lang="en")


def when(seconds, now=None):
    """A time as "3 hours ago", the exact UTC time in its title."""
    if not seconds:
        return tags.span("–")
    iso = fmt.isoTime(seconds)
    return tags.time(fmt.ago(seconds, now), datetime=iso, title=iso.replace("T", " ").replace("Z", " UTC"))


def shortDigest(digest):
    algorithm, _, hexpart = digest.partition(":")
    return tags.code(hexpart[:12] if hexpart else digest, title=digest, class_="digest")


def copyable(text, label):
    """A command to copy: a read-only field (selectable without JavaScript)
    and a copy button (JavaScript only)."""
    return tags.div(
        tags.code(text, class_="cmd"),
        tags.button("Copy", type="button", class_="copy", hidden="hidden", **{"data-copy": text,
                                                                              "aria-label": "Copy " + label}),
        class_="copyable")


def pager(prev, nxt, label):
    links = []
    if prev:
        links.append(tags.a("← Previous", href=prev, rel="prev"))
    if nxt:
        links.append(tags.a("Next →", href=nxt, rel="next"))
    return tags.nav(*links, class_="pager", **{"aria-label": label}) if links else ""


def notice(text, kind="info"):
    return tags.p(text, class_="notice " + kind, role="alert" if kind == "error" else "status")
