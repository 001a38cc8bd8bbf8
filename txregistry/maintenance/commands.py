"""The bodies of ``txregistry gc`` and ``txregistry check`` (the options
are L{txregistry.cli}'s): the report on stdout, progress on stderr, a
summary at the end.

What ``gc`` deletes (tags, untagged manifests) is announced on the events
of a registry model of its own, as the daemon's collection announces it
on the daemon's; once the collection is over, the search index hears
them (the same L{txregistry.search.updater.IndexUpdater} the daemon runs,
writing the touched repositories' rows from storage into the configured
database; a collection that deleted none leaves the database alone).
Notifications do not: their queue belongs to the daemon (it holds its
lock while it runs), so the command says how many delete events no
endpoint will hear of."""

import sys

from txregistry.maintenance.progress import Progress, humanBytes


def _progress(options):
    return None if options["quiet"] else Progress(sys.stderr)


class _Heard:
    """The delete events a command's collection announced, and their
    repositories."""

    def __init__(self, events):
        from txregistry.events import DELETE

        self.events = []
        self.repositories = set()
        events.add(self, (DELETE,))

    def __call__(self, event):
        self.events.append(event)
        self.repositories.add(event.repository)


async def _indexUpdater(settings, registry, reactor, db):
    """An L{IndexUpdater} of the configured search index listening to
    C{registry}'s events, or C{None} (with a line on stderr saying why the
    index is left alone)."""
    if settings.searchBackend != "sqlalchemy" or db is None:
        return None
    from txregistry.search.index import IndexUnavailable, SearchIndex
    from txregistry.search.updater import IndexUpdater
    from txregistry.service import checkSearchDatabase

    problem = checkSearchDatabase(settings)
    if problem:
        print("txregistry gc: the search index will not be updated: %s" % (problem,), file=sys.stderr)
        return None
    index = SearchIndex(settings.searchDatabase, reactor, db)
    try:
        if not await index.count():
            # Never built: the daemon builds it whole from storage at its
            # start, which a few rows written here would make it skip.
            return None
    except IndexUnavailable as e:
        print("txregistry gc: the search index will not be updated (%s): run txregistry reindex after" % (e,),
              file=sys.stderr)
        return None
    return IndexUpdater(index, registry, reactor)


async def _updateIndex(settings, registry, reactor, db, heard):
    """Tell the configured search index of what was C{heard} (L{_Heard})
    and wait for it to be written; say so."""
    updater = await _indexUpdater(settings, registry, reactor, db)
    if updater is None:
        return
    for event in heard.events:
        updater.heard(event)  # (as it would have heard them, had it listened: the same rows)
    try:
        await updater.settled()
    finally:
        updater.stop()
        updater.detach()
    if updater.dirty or not updater.healthy:
        print("txregistry gc: the search index %s could not be updated for %d repositories: run txregistry reindex"
              % (updater.index.url, len(updater.dirty) or len(heard.repositories)), file=sys.stderr)
    elif heard.repositories:
        print("updated %d repositories in the search index" % (len(heard.repositories),))


async def gc(settings, options, driver, reactor=None, io=None, db=None):
    """Collect; print each deletion (or what would go), then the summary.
    With C{reactor} and C{db} (the search database's thread pool), the
    search index hears of the tags and manifests deleted."""
    from txregistry.registry import Registry
    from txregistry.registry.gc import CollectionError, collect

    dryRun = options["dry-run"]
    progress = _progress(options)
    registry = Registry(driver, reactor, io, settings.limits.registry)
    heard = _Heard(registry.events)
    policies = settings.gc.retention if options["retention"] and settings.gc is not None else ()
    if options["retention"] and not policies:
        raise SystemExit("txregistry gc: --retention, but the configuration has no retention: policies")
    verb = "would delete" if dryRun else "deleted"

    def out(line):
        if progress is not None and progress.tty:
            sys.stderr.write("\r\x1b[K")  # the bar's line, cleared
        print(line, flush=True)

    try:
        r = await collect(
            driver, options["min-age"], dryRun, maxManifestSize=settings.limits.registry.maxManifestSize,
            deleteUntagged=options["delete-untagged"], retention=policies, progress=progress,
            grace=options["grace"],
            log=lambda digest, size: out("deleted %s (%d bytes)" % (digest, size)),
            logManifest=lambda name, digest: out("deleted manifest %s@%s" % (name, digest)),
            logTag=lambda name, tag: out("%s tag %s:%s" % (verb, name, tag)),
            events=registry.events,
        )
    except CollectionError as e:
        raise SystemExit("txregistry gc: %s" % (e,))  # (nothing deleted)
    except BaseException:
        await _told(settings, registry, reactor, db, heard)  # what it deleted before failing
        raise
    finally:
        if progress is not None:
            progress.finish()
    if dryRun:
        for name, digest in r.untagged:
            print("would delete manifest %s@%s" % (name, digest))
        for d in r.deleted:
            print("would delete %s" % (d,))
    if policies:
        print("%s %d tag(s) by the retention policies" % (verb, len(r.tags)))
    if options["delete-untagged"]:
        print("%s %d untagged manifest(s)" % (verb, len(r.untagged)))
    print(
        "%d manifest(s) in %d repositories; %d blob(s) in use, %s %d (%d bytes) and %d repository link(s) "
        "to them; %d unused blob(s) younger than %d s (or pushed lately) kept"
        % (r.manifests, r.repositories, r.kept, verb, len(r.deleted), r.freed, r.links, r.young, options["min-age"])
    )
    await _told(settings, registry, reactor, db, heard)
    return r


async def _told(settings, registry, reactor, db, heard):
    """After a collection: the search index is told of what it deleted;
    the notification endpoints are not (said on stderr)."""
    if not heard.events:
        return
    await _updateIndex(settings, registry, reactor, db, heard)
    if settings.notifications is not None:
        print("txregistry gc: %d delete event(s) (tags, manifests) not sent to the notification endpoints: "
              "only the daemon sends notifications (its scheduled collection, gc.interval, does)"
              % (len(heard.events),), file=sys.stderr)


async def check(settings, options, driver, reactor, threadpool):
    """Verify every blob; print what is wrong and a summary; exit 1 when
    anything is."""
    from txregistry.registry.check import check as verify

    progress = _progress(options)
    try:
        r = await verify(driver, reactor, threadpool, progress, settings.limits.registry.maxManifestSize)
    finally:
        if progress is not None:
            progress.finish()
    for digest, actual in r.corrupt:
        print("corrupt %s: its data hashes to %s" % (digest, actual))
    for digest, where in r.missing:
        print("missing %s: named by %s" % (digest, where))
    for what, why in r.unreadable:
        print("unreadable %s: %s" % (what, why))
    print("checked %d blob(s), %s: %d corrupt, %d missing, %d unreadable"
          % (r.blobs, humanBytes(r.bytes), len(r.corrupt), len(r.missing), len(r.unreadable)))
    if not r.ok:
        raise SystemExit(1)
    return r

