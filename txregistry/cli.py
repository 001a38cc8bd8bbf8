"""The ``txregistry`` command: maintenance tasks beside the daemon.

    txregistry reindex [--config FILE] [--flavor NAME] [--storage-path DIR]

rebuilds the search index from storage (safe while the registry serves).

    txregistry gc [--dry-run] [--delete-untagged] [--retention] [--min-age SECONDS] [--config FILE] [--flavor NAME] [--storage-path DIR]

deletes the blobs no manifest refers to (see L{txregistry.registry.gc}),
safe while the registry serves; the search index hears of the tags and
manifests it deleted (notifications do not: only the daemon sends them,
see L{txregistry.maintenance.commands}).

    txregistry check [--config FILE] [--flavor NAME] [--storage-path DIR]

verifies every blob's digest (see L{txregistry.registry.check}).

    txregistry delete [--config FILE] [--flavor NAME] [--storage-path DIR] REPOSITORY

deletes a repository (see L{txregistry.registry.repositories}).

    txregistry import-v1 [--dry-run] [--oci] ... (DIR | --source-env FILE)

imports a classic docker-registry store (see L{txregistry.importv1}).

    txregistry mirror prefetch [--config FILE] [--flavor NAME] [--storage-path DIR] IMAGE...

pulls images through the configured mirror into storage (see
L{txregistry.mirror.prefetch})."""

import sys

from twisted.python import usage

from txregistry import config
from txregistry.importv1.command import ImportV1Options


class ReindexOptions(usage.Options):
    synopsis = "[--config FILE] [--flavor NAME] [--storage-path DIR]"
    longdesc = "Rebuild the search index from storage, with a progress bar; the registry may keep serving."
    optFlags = [["quiet", "q", "No progress bar."]]
    optParameters = [
        ["config", "c", None, "YAML configuration file (default: $DOCKER_REGISTRY_CONFIG)."],
        ["flavor", "f", None, "Flavor of the configuration file (default: $SETTINGS_FLAVOR, else dev)."],
        ["storage-path", "s", None, "Storage directory (default: $STORAGE_PATH, else the config file's)."],
    ]


def _seconds(options, key, default):
    value = options[key]
    if value is None:
        options[key] = default
    elif not (value.isascii() and value.isdigit()):
        raise usage.UsageError("--%s must be a whole number of seconds, not %r" % (key, value))
    else:
        options[key] = int(value)


class GCOptions(usage.Options):
    synopsis = ("[--dry-run] [--delete-untagged] [--retention] [--min-age SECONDS] [--config FILE] [--flavor NAME] "
                "[--storage-path DIR]")
    longdesc = (
        "Delete the blobs that no manifest of any repository refers to (untagged manifests count), "
        "if older than --min-age and not pushed in the last --grace seconds; safe while the registry serves."
    )
    optFlags = [
        ["dry-run", "n", "Only say what would be deleted."],
        ["delete-untagged", "m", "Delete first the manifests no tag, kept index or kept subject refers to."],
        ["retention", "r", "Apply the configuration's retention: policies first (the tags they delete)."],
        ["quiet", "q", "No progress."],
    ]
    optParameters = ReindexOptions.optParameters + [
        ["min-age", None, None, "Keep unreferenced blobs younger than this many seconds (default 3600)."],
        ["grace", None, None, "Keep blobs a push relied on in the last SECONDS (default 15; lower it only "
                              "with no push running: read-only mode, or no daemon)."],
    ]

    def postOptions(self):
        from txregistry.registry.gc import DEFAULT_MIN_AGE
        from txregistry.registry.touch import GRACE

        _seconds(self, "min-age", DEFAULT_MIN_AGE)
        _seconds(self, "grace", GRACE)


class CheckOptions(usage.Options):
    synopsis = "[--quiet] [--config FILE] [--flavor NAME] [--storage-path DIR]"
    longdesc = ("Verify every blob's digest, and that every blob a repository links or a manifest names is there; "
                "exit status 1 if any is corrupt or missing.  Changes nothing.")
    optFlags = [["quiet", "q", "No progress."]]
    optParameters = ReindexOptions.optParameters


class DeleteOptions(usage.Options):
    synopsis = "[--config FILE] [--flavor NAME] [--storage-path DIR] REPOSITORY"
    longdesc = (
        "Delete a repository: its tags, manifests, blob links and uploads, and its row of the search index "
        "(its blobs stay until txregistry gc).  Safe while the registry serves."
    )
    optParameters = ReindexOptions.optParameters

    def parseArgs(self, repository):
        from txregistry import names

        if not names.isValidName(repository):
            raise usage.UsageError("not a repository name: %r" % (repository,))
        self["repository"] = repository


class PrefetchOptions(usage.Options):
    synopsis = "[--config FILE] [--flavor NAME] [--storage-path DIR] IMAGE..."
    longdesc = ("Fetch images from the configured upstreams into storage (manifests, an index's images, "
                "blobs), with progress; IMAGE as clients pull it (alpine:3.19, quay/coreos/etcd@sha256:...).")
    optFlags = [["quiet", "q", "No progress."]]
    optParameters = ReindexOptions.optParameters

    def parseArgs(self, *images):
        if not images:
            raise usage.UsageError("name at least one IMAGE")
        from txregistry.mirror.prefetch import PrefetchError, parseImage

        try:
            for image in images:
                parseImage(image)
        except PrefetchError as e:
            raise usage.UsageError(str(e))
        self["images"] = images


class MirrorOptions(usage.Options):
    synopsis = "prefetch [options] IMAGE..."
    subCommands = [["prefetch", None, PrefetchOptions, "Fetch images into the mirror's storage."]]

    def postOptions(self):
        if self.subCommand is None:
            raise usage.UsageError("a mirror command is needed (prefetch)")


class Options(usage.Options):
    synopsis = "COMMAND [options]"

    def opt_version(self):
        """Print txregistry's version and exit."""
        from txregistry import versionLine

        print(versionLine())
        sys.exit(0)
    subCommands = [
        ["reindex", None, ReindexOptions, "Rebuild the search index from storage."],
        ["gc", None, GCOptions, "Delete the blobs no manifest refers to."],
        ["delete", None, DeleteOptions, "Delete a repository."],
        ["import-v1", None, ImportV1Options, "Import a classic docker-registry (V1) store."],
        ["mirror", None, MirrorOptions, "Pull-through mirror tasks (prefetch)."],
        ["check", None, CheckOptions, "Verify every blob's digest."],
    ]

    def postOptions(self):
        if self.subCommand is None:
            raise usage.UsageError("a command is needed (reindex, gc, check, delete, import-v1 or mirror)")


async def driverOffReactor(settings, reactor, threadpool):
    """The storage driver of C{settings}, its S3 credentials resolved in
    C{threadpool} (commands run under the reactor, and resolving may call
    the network); missing credentials stop the command with one line."""
    from twisted.internet.threads import deferToThreadPool

    from txregistry.service import makeDriver, storageCredentials
    from txregistry.storage import StorageError

    try:
        credentials = await deferToThreadPool(reactor, threadpool, storageCredentials, settings)
    except StorageError as e:
        raise SystemExit("txregistry: %s" % (e,))
    return makeDriver(settings, reactor, threadpool, credentials=credentials)


def _loadSettings(options):
    """The settings of a command that reads the search database too (it
    must be usable: one line if not)."""
    from txregistry.service import checkSearchDatabase

    settings = config.load(
        configFile=options["config"], flavor=options["flavor"], storagePath=options["storage-path"]
    )
    problem = checkSearchDatabase(settings)
    if problem:
        raise SystemExit("txregistry: configuration error: %s" % (problem,))
    return settings


def _runWithPools(command, work):
    """Run C{work(io, db)} (a coroutine function) with a storage thread pool
    and a one-thread database pool named after C{command}, stopped after."""
    from twisted.internet.defer import Deferred
    from twisted.python.threadpool import ThreadPool

    io = ThreadPool(1, 8, name="%s-io" % (command,))
    db = ThreadPool(1, 1, name="%s-db" % (command,))
    io.start()
    db.start()

    def done(result):
        io.stop()
        db.stop()
        return result

    return Deferred.fromCoroutine(work(io, db)).addBoth(done)


def reindex(reactor, options):
    from txregistry.registry import Registry
    from txregistry.search.index import SearchIndex
    from txregistry.search.updater import IndexUpdater

    settings = _loadSettings(options)
    if settings.searchBackend != "sqlalchemy":
        raise SystemExit("txregistry: search is turned off (search_backend: %s)" % (settings.searchBackend,))

    async def run(io, db):
        driver = await driverOffReactor(settings, reactor, io)
        registry = Registry(driver, reactor, io, settings.limits.registry)
        updater = IndexUpdater(SearchIndex(settings.searchDatabase, reactor, db), registry, reactor)
        from txregistry.maintenance.progress import Progress

        return await updater.rebuild(None if options["quiet"] else Progress(sys.stderr))

    d = _runWithPools("reindex", run)
    d.addCallback(lambda count: print("indexed %d repositories into %s" % (count, settings.searchDatabase)))
    return d


def _storageCommand(command, work):
    """Run C{work(settings, driver, io)} with the storage of the command's
    settings, in a storage thread pool."""

    def run(reactor, options):
        settings = config.load(
            configFile=options["config"], flavor=options["flavor"], storagePath=options["storage-path"]
        )

        async def go(io, db):
            return await work(settings, options, await driverOffReactor(settings, reactor, io), reactor, io)

        return _runWithPools(command, go)

    return run


def gc(reactor, options):
    from txregistry.maintenance import commands

    settings = config.load(configFile=options["config"], flavor=options["flavor"], storagePath=options["storage-path"])

    async def go(io, db):
        driver = await driverOffReactor(settings, reactor, io)
        await commands.gc(settings, options, driver, reactor, io, db)

    return _runWithPools("gc", go)


async def _check(settings, options, driver, reactor, io):
    from txregistry.maintenance import commands

    await commands.check(settings, options, driver, reactor, io)


check = _storageCommand("check", _check)


def delete(reactor, options):
    from txregistry.errors import RegistryError
    from txregistry.registry import Registry
    from txregistry.registry.repositories import deleteRepository

    settings = _loadSettings(options)
    name = options["repository"]

    async def run(io, db):
        driver = await driverOffReactor(settings, reactor, io)
        try:
            await deleteRepository(Registry(driver, reactor, io, settings.limits.registry), name)
        except RegistryError as e:
            raise SystemExit("txregistry delete: %s: %s" % (name, "no such repository" if e.code == "NAME_UNKNOWN"
                                                            else e))
        print("deleted repository %s" % (name,))
        if settings.searchBackend == "sqlalchemy":
            from txregistry.search.index import IndexUnavailable, SearchIndex

            try:
                await SearchIndex(settings.searchDatabase, reactor, db).remove(name)
            except IndexUnavailable as e:
                raise SystemExit("txregistry delete: %s was deleted, but the search index was not updated (%s): "
                                 "run txregistry reindex" % (name, e))
            print("removed %s from the search index %s" % (name, settings.searchDatabase))

    return _runWithPools("delete", run)


def mirror(reactor, options):
    from txregistry.mirror.prefetch import run

    options = options.subOptions
    settings = config.load(configFile=options["config"], flavor=options["flavor"],
                           storagePath=options["storage-path"])
    if settings.mirror is None:
        raise SystemExit("txregistry mirror: the configuration names no upstream (mirrors: or mirroring:)")

    async def work(io, db):
        driver = await driverOffReactor(settings, reactor, io)
        return await run(settings, driver, reactor, io, db, options["images"], None if options["quiet"] else sys.stderr)

    return _runWithPools("prefetch", work)


def importV1(reactor, options):
    from txregistry.importv1.command import run

    return _runWithPools("import-v1", lambda io, db: run(reactor, options, io, db))


COMMANDS = {"reindex": reindex, "gc": gc, "check": check, "delete": delete, "import-v1": importV1, "mirror": mirror}


def main(argv=None):
    options = Options()
    try:
        options.parseOptions(sys.argv[1:] if argv is None else argv)
    except usage.UsageError as e:
        raise SystemExit("%s\n%s" % (options, e))
    sub = options.subOptions.subOptions if options.subCommand == "mirror" else options.subOptions
    try:
        config.load(
            configFile=sub["config"],
            flavor=sub["flavor"],
            storagePath=sub["storage-path"],
        )
    except config.ConfigError as e:
        raise SystemExit("txregistry: configuration error: %s" % (e,))
    from twisted.internet.task import react

    react(COMMANDS[options.subCommand], [options.subOptions])
