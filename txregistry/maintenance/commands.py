"""The bodies of ``txregistry gc`` and ``txregistry check`` (the options
are L{txregistry.cli}'s): the report on stdout, progress on stderr, a
summary at the end."""

import sys

from txregistry.maintenance.progress import Progress, humanBytes


def _progress(options):
    return None if options["quiet"] else Progress(sys.stderr)


async def gc(settings, options, driver):
    """Collect; print each deletion (or what would go), then the summary."""
    from txregistry.registry.gc import CollectionError, collect

    dryRun = options["dry-run"]
    progress = _progress(options)
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
        )
    except CollectionError as e:
        raise SystemExit("txregistry gc: %s" % (e,))
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
    return r


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

