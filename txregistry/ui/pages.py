"""The pages: each a function of a L{Context} and what
L{txregistry.ui.data} read, returning a tag tree (see L{layout})."""

import json
from urllib.parse import urlencode

from twisted.web.template import tags

from txregistry.ui import format as fmt
from txregistry.ui.layout import copyable, notice, page, pager, shortDigest, when


def home(ctx, rows, summaries, nxt=None, prev=None, total=None, term="", searchOff=False, hiddenHint=False,
         incomplete=False):
    """The repositories (or the search results for C{term}): C{rows} of
    C{(name, description)}, C{summaries} {name: Summary}."""
    if term and total is not None:
        heading = tags.h1("Search results for ", tags.q(term))
        count = tags.p("%d repositor%s found" % (total, "y" if total == 1 else "ies"), class_="count")
    elif term:
        heading, count = tags.h1("Search"), ""
    else:
        heading = tags.h1("Repositories")
        count = ""
    items = []
    for name, description in rows:
        s = summaries.get(name)
        facts = []
        if s is not None:
            facts = [tags.span("%d tag%s" % (s.tags, "" if s.tags == 1 else "s")),
                     tags.span(fmt.size(s.size)) if s.size is not None else "",
                     tags.span("pushed ", when(s.pushed, ctx.now)) if s.pushed else ""]
        items.append(tags.li(
            tags.h2(tags.a(name, href=ctx.repo(name))),
            tags.p(description, class_="description") if description else "",
            tags.p(*facts, class_="facts"),
            class_="repo"))
    content = [heading, count]
    if incomplete:
        content.append(notice("The search index is being rebuilt from storage: some repositories may be missing."))
    if searchOff:
        content.append(notice("Search is turned off on this registry (search_backend: none).", "error"))
    if items:
        content.append(tags.ul(*items, class_="repos"))
    elif not searchOff:
        empty = "No repository matches." if term else "No repositories yet."
        if hiddenHint:
            empty += " Log in to see the repositories you may pull."
        content.append(tags.p(empty, class_="empty"))
        if not term and not hiddenHint:
            content.append(tags.p("Push one: ", tags.code("docker push %s/NAME:TAG" % (ctx.host,))))
    content.append(pager(prev, nxt, "Repository pages"))
    return page(ctx, "Search" if term else "Repositories", *content)


def platforms(ctx, name, described):
    if not described.children:
        return ""
    return tags.ul(*[
        tags.li(tags.a(child.platform or "(no platform)", href=ctx.image(name, child.digest)), " ",
                tags.span(fmt.size(child.size), class_="muted"))
        for child in described.children], class_="platforms")


def repository(ctx, name, rows, total, sort, pageNo, size, mayDelete, deleted=None):
    pull = "docker pull %s/%s" % (ctx.host, name)
    sorts = []
    for key, label in (("pushed", "push time"), ("name", "name")):
        if key == sort:
            sorts.append(tags.strong(label, **{"aria-current": "true"}))
        else:
            sorts.append(tags.a(label, href=ctx.repo(name, sort=key)))
        sorts.append(" ")
    body = []
    for row in rows:
        d = row.manifest
        if d is None:
            body.append(tags.tr(tags.th(row.tag, scope="row"), tags.td("(names no readable manifest)", colspan="5")))
            continue
        kind = "index" if d.isIndex else (d.artifactType or "image")
        actions = [copyable("%s:%s" % (pull, row.tag), "pull command for " + row.tag)]
        if mayDelete:
            actions.append(tags.a("Delete", href=ctx.delete(name, row.tag), class_="danger",
                                  **{"aria-label": "Delete tag " + row.tag}))
        body.append(tags.tr(
            tags.th(tags.a(row.tag, href=ctx.image(name, d.digest)), scope="row"),
            tags.td(shortDigest(d.digest), " ", tags.span(kind, class_="muted"), **{"data-label": "Digest"}),
            tags.td(fmt.size(d.size), **{"data-label": "Size"}),
            tags.td(when(d.created, ctx.now), **{"data-label": "Created"}),
            tags.td(when(row.pushed, ctx.now), **{"data-label": "Pushed"}),
            tags.td(platforms(ctx, name, d) if d.children else tags.span("–", class_="muted"),
                    **{"data-label": "Platforms"}),
            tags.td(*actions, class_="actions"),
        ))
    pages = (total + size - 1) // size
    prev = ctx.repo(name, sort=sort, page=pageNo - 1) if pageNo > 1 else None
    nxt = ctx.repo(name, sort=sort, page=pageNo + 1) if pageNo < pages else None
    content = [
        tags.nav(tags.a("Repositories", href=ctx.base), " / ", class_="crumbs", **{"aria-label": "Breadcrumb"}),
        tags.h1(name),
        notice("Deleted %s." % (deleted,)) if deleted else "",
        copyable(pull, "pull command"),
        tags.p("%d tag%s" % (total, "" if total == 1 else "s"),
               (" · page %d of %d" % (pageNo, pages)) if pages > 1 else "", " · sorted by ", *sorts,
               class_="count"),
    ]
    if body:
        content.append(tags.div(tags.table(
            tags.caption("Tags of " + name, class_="visually-hidden"),
            tags.thead(tags.tr(*[tags.th(h, scope="col") for h in
                                 ("Tag", "Digest", "Size", "Created", "Pushed", "Platforms", "Pull")])),
            tags.tbody(*body), class_="tags"), class_="scroll"))
    else:
        content.append(tags.p("No tags.", class_="empty"))
    content.append(pager(prev, nxt, "Tag pages"))
    return page(ctx, name, *content)


def _value(value):
    if value is None:
        return tags.span("–", class_="muted")
    if isinstance(value, list):
        return tags.code(" ".join(json.dumps(v) if not isinstance(v, str) or " " in v else v for v in value))
    return tags.code(str(value))


def _definitions(pairs):
    return tags.dl(*[part for k, v in pairs for part in (tags.dt(k), tags.dd(v))], class_="facts-list")


def image(ctx, img, tagNames, mayDelete):
    title = "%s@%s" % (img.name, img.digest)
    pull = "docker pull %s/%s@%s" % (ctx.host, img.name, img.digest)
    content = [
        tags.nav(tags.a("Repositories", href=ctx.base), " / ", tags.a(img.name, href=ctx.repo(img.name)), " / ",
                 class_="crumbs", **{"aria-label": "Breadcrumb"}),
        tags.h1(img.name, tags.br(), tags.small(tags.code(img.digest, class_="digest-full"))),
        copyable(pull, "pull command"),
    ]
    facts = [("Media type", tags.code(img.mediaType))]
    if img.artifactType:
        facts.append(("Artifact type", tags.code(img.artifactType)))
    if img.platform:
        facts.append(("Platform", img.platform))
    if img.size is not None:
        facts.append(("Size", fmt.size(img.size)))
    if img.created:
        facts.append(("Created", when(img.created, ctx.now)))
    if tagNames:
        facts.append(("Tags", tags.span(*[part for t in tagNames for part in (tags.code(t), " ")])))
    if img.subject:
        facts.append(("Refers to", tags.a(tags.code(img.subject), href=ctx.image(img.name, img.subject))))
    content.append(_definitions(facts))
    if img.children:
        content.append(tags.section(tags.h2("Platforms"), tags.ul(*[
            tags.li(tags.a(c.platform or "(no platform)", href=ctx.image(img.name, c.digest)), " ",
                    shortDigest(c.digest), " ", tags.span(fmt.size(c.size), class_="muted"))
            for c in img.children], class_="platforms"), **{"aria-labelledby": "platforms"}))
    if img.configDescriptor is not None and not img.artifactType:
        config = [("Entrypoint", _value(img.entrypoint)), ("Cmd", _value(img.cmd))]
        if img.workdir:
            config.append(("Working directory", tags.code(img.workdir)))
        if img.user:
            config.append(("User", tags.code(img.user)))
        config.append(("Exposed ports", tags.span(*[part for p in img.ports for part in (tags.code(p), " ")])
                       if img.ports else tags.span("none", class_="muted")))
        content.append(tags.section(tags.h2("Configuration"), _definitions(config)))
        if img.env:
            content.append(tags.section(tags.h2("Environment"), tags.ul(*[tags.li(tags.code(e)) for e in img.env],
                                                                        class_="env")))
        if img.labels:
            content.append(tags.section(tags.h2("Labels"), tags.div(tags.table(
                tags.thead(tags.tr(tags.th("Label", scope="col"), tags.th("Value", scope="col"))),
                tags.tbody(*[tags.tr(tags.th(tags.code(k), scope="row"), tags.td(v))
                             for k, v in sorted(img.labels.items())]), class_="labels"), class_="scroll")))
    if img.annotations:
        content.append(tags.section(tags.h2("Annotations"), tags.div(tags.table(
            tags.tbody(*[tags.tr(tags.th(tags.code(k), scope="row"), tags.td(str(v)))
                         for k, v in sorted(img.annotations.items())]), class_="labels"), class_="scroll")))
    if img.layers:
        rows = []
        for i, layer in enumerate(img.layers, 1):
            made = [tags.div(tags.code(h[0] or "(no command)"), " ", tags.span(h[2], class_="muted") if h[2] else "",
                             class_="history") for h in layer.history]
            rows.append(tags.tr(tags.td(str(i)), tags.td(shortDigest(layer.digest)), tags.td(fmt.size(layer.size)),
                                tags.td(*made) if made else tags.td(tags.span("–", class_="muted"))))
        content.append(tags.section(tags.h2("Layers"), tags.div(tags.table(
            tags.thead(tags.tr(*[tags.th(h, scope="col") for h in ("#", "Digest", "Size", "Made by")])),
            tags.tbody(*rows), class_="layers"), class_="scroll")))
    if img.referrers:
        groups = []
        for artifactType, refs in img.referrersByType.items():
            groups.append(tags.li(tags.code(artifactType), tags.ul(*[
                tags.li(tags.a(shortDigest(r["digest"]), href=ctx.image(img.name, r["digest"])), " ",
                        tags.span(fmt.size(r.get("size")), class_="muted")) for r in refs])))
        content.append(tags.section(tags.h2("Referrers"), tags.p("Signatures, SBOMs and attestations of this "
                                                                 "manifest, by artifact type.", class_="muted"),
                                    tags.ul(*groups, class_="referrers")))
    try:
        raw = json.dumps(json.loads(img.raw), indent=2, ensure_ascii=False)
    except ValueError:
        raw = img.raw.decode("utf-8", "replace")
    content.append(tags.section(tags.details(tags.summary(tags.h2("Raw manifest", class_="inline")),
                                             tags.pre(tags.code(raw), tabindex="0", class_="raw"))))
    if mayDelete:
        content.append(tags.p(tags.a("Delete this manifest", href=ctx.delete(img.name, img.digest),
                                     class_="danger")))
    return page(ctx, title, *content)


def confirmDelete(ctx, name, reference, isTag, tagsToo=None):
    what = ("the tag %s:%s" % (name, reference)) if isTag else ("the manifest %s@%s" % (name, reference))
    consequence = ("The manifest it names stays, by digest and under other tags." if isTag else
                   "Every tag naming it goes too%s." % (": " + ", ".join(tagsToo) if tagsToo else ""))
    return page(ctx, "Delete", tags.h1("Delete ", what, "?"), tags.p(consequence), tags.form(
        tags.input(type="hidden", name="csrf", value=ctx.csrf),
        tags.input(type="hidden", name="ref", value=reference),
        tags.button("Delete", type="submit", class_="danger"), " ",
        tags.a("Cancel", href=ctx.repo(name)),
        method="post", action=ctx.base + "r/" + name + "/-/delete"))


def login(ctx, next="", error=None, user="", available=True):
    content = [tags.h1("Log in")]
    if error:
        content.append(notice(error, "error"))
    if not available:
        content.append(tags.p("This registry's users log in through an external token server; these pages show "
                              "what anonymous users may pull."))
        return page(ctx, "Log in", *content)
    content.append(tags.form(
        tags.input(type="hidden", name="csrf", value=ctx.csrf),
        tags.input(type="hidden", name="next", value=next),
        tags.p(tags.label("User name", for_="user"),
               tags.input(type="text", name="user", id="user", value=user, autocomplete="username",
                          required="required", autofocus="autofocus")),
        tags.p(tags.label("Password", for_="password"),
               tags.input(type="password", name="password", id="password", autocomplete="current-password",
                          required="required")),
        tags.p(tags.button("Log in", type="submit")),
        method="post", action=ctx.base + "-/login", class_="login"))
    return page(ctx, "Log in", *content)


def error(ctx, status, message):
    return page(ctx, "Error %d" % (status,), tags.h1({404: "Not found", 403: "Forbidden", 400: "Bad request",
                                                       503: "Unavailable"}.get(status, "Error")),
                tags.p(message), tags.p(tags.a("Back to the repositories", href=ctx.base)))


def searchLink(ctx, term, pageNo):
    return ctx.base + "?" + urlencode({"q": term, "page": pageNo})
