"""``txregistry import-v1``: its options, progress output and summary.

    txregistry import-v1 [--dry-run] [--oci] [--keep-library] [--v1-search-db URL]
                         [--config FILE] [--flavor NAME] [--storage-path DIR]
                         (DIR | --source-env FILE)

The source is the classic registry's ``storage_path`` directory, or (for
its S3 storage, or to reuse its settings) a file of the environment it
ran with (``SETTINGS_FLAVOR=s3``, ``AWS_BUCKET``, ``STORAGE_PATH``,
``AWS_KEY``, ``AWS_SECRET``, ``AWS_ENDPOINT`` or ``AWS_HOST``/``AWS_PORT``,
``SQLALCHEMY_INDEX_DATABASE``, ``DOCKER_REGISTRY_CONFIG``...), read as the
classic registry read them.  The destination is the configured storage,
as for the daemon.

Exit status: 0 when everything was imported (or was already), 2 when
something was skipped (each reported by name), 1 on an error that stopped
the import."""

import os
import sys
import time

from twisted.python import usage

from txregistry import config

SKIPPED_STATUS = 2
CLASSIC_DATABASE = "/tmp/docker-registry.db"  # sqlalchemy_index_database's default, sqlite:////tmp/...


class ImportV1Options(usage.Options):
    synopsis = ("[--dry-run] [--oci] [--keep-library] [--v1-search-db URL] [--config FILE] [--flavor NAME] "
                "[--storage-path DIR] (DIR | --source-env FILE)")
    longdesc = (
        "Import the images of a classic docker-registry (V1) store into the configured storage: every tag "
        "becomes an image (Docker schema 2, or OCI with --oci); descriptions of its search database go into "
        "the search index.  Safe while the registry serves, and to run again: what is imported is skipped."
    )
    optFlags = [
        ["dry-run", "n", "Only list what would be imported."],
        ["oci", None, "Make OCI images (default: Docker schema 2)."],
        ["keep-library", None, "Keep the 'library/' namespace of unqualified V1 names (default: library/app -> app)."],
        ["quiet", "q", "No progress, only what was skipped and the summary."],
    ]
    optParameters = [
        ["config", "c", None, "YAML configuration file (default: $DOCKER_REGISTRY_CONFIG)."],
        ["flavor", "f", None, "Flavor of the configuration file (default: $SETTINGS_FLAVOR, else dev)."],
        ["storage-path", "s", None, "Storage directory (default: $STORAGE_PATH, else the config file's)."],
        ["source-env", None, None, "File of KEY=VALUE lines: the classic registry's environment (its S3 settings)."],
        ["v1-search-db", None, None, "The classic search database (sqlalchemy_index_database URL, "
                                     "e.g. sqlite:////tmp/docker-registry.db)."],
    ]

    def parseArgs(self, source=None, *extra):
        if extra:
            raise usage.UsageError("one V1 store, and the options before it (not %r)" % (" ".join(extra),))
        self["source"] = source

    def postOptions(self):
        if (self["source"] is None) == (self["source-env"] is None):
            raise usage.UsageError("give the V1 store: a directory, or --source-env FILE")


def readEnvFile(path):
    """C{{KEY: value}} of a file of C{KEY=VALUE} lines (docker's --env-file,
    a shell's: ``export`` and quotes allowed, ``#`` comments)."""
    env = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("export "):
                line = line[7:].lstrip()
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise ValueError("%s:%d: not KEY=VALUE" % (path, number))
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                value = value[1:-1]
            env[key.strip()] = value
    return env


def sourceSettings(options):
    """C{(settings, search database URL or None)} of the source, or a
    directory's C{(None, URL)}; one line (SystemExit) when they are wrong."""
    url = options["v1-search-db"]
    if options["source-env"] is None:
        return None, url
    try:
        env = readEnvFile(options["source-env"])
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise SystemExit("txregistry import-v1: --source-env: %s" % (getattr(e, "strerror", None) or e,))
    configFile = env.get("DOCKER_REGISTRY_CONFIG") or None
    try:
        settings = config.load(configFile=configFile, environ=env)
        if url is None:
            url = env.get("SQLALCHEMY_INDEX_DATABASE") or None
        if url is None and configFile:
            with open(configFile, encoding="utf-8") as f:
                values = config.loadFlavor(f.read(), settings.flavor, configFile, env)
            url = values.get("sqlalchemy_index_database") or None
    except config.ConfigError as e:
        raise SystemExit("txregistry import-v1: the classic settings: %s" % (e,))
    return settings, url


def _size(n):
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return ("%d %s" % (n, unit)) if unit == "bytes" else ("%.1f %s" % (n, unit))
        n /= 1024.0


class PlainProgress:
    """One line per event (for a log or a pipe); a large layer also gets a
    line at every tenth of it."""

    def __init__(self, stream, quiet=False):
        self.stream = stream
        self.quiet = quiet
        self.total = 0
        self._marks = {}

    def _line(self, text, always=False):
        if always or not self.quiet:
            self.stream.write(text + "\n")
            self.stream.flush()

    def planned(self, tags):
        self.total = tags
        self._line("%d tag(s) to import" % (tags,))

    def tagStarted(self, index, label):
        self._line("[%d/%d] %s" % (index + 1, self.total, label))

    def layerStarted(self, imageID, size):
        self._marks[imageID] = 1
        self._line("  layer %s: %s" % (imageID, _size(size)))

    def layerProgress(self, imageID, done, size):
        mark = self._marks.get(imageID, 1)
        if size >= 8 * 1024 * 1024 and done * 10 >= mark * size and done < size:
            self._marks[imageID] = done * 10 // size + 1
            self._line("  layer %s: %d%% (%d of %d bytes)" % (imageID, done * 100 // size, done, size))

    def layerDone(self, imageID, layer, reused):
        self._marks.pop(imageID, None)
        self._line("  layer %s %s %s (%d bytes)" % (imageID, "already imported:" if reused else "->",
                                                    layer.digest, layer.size))

    def tagDone(self, label, status):
        self._line("  %s" % (status,))

    def skipped(self, what, reason):
        self._line("skipped %s: %s" % (what, reason), always=True)


class TerminalProgress(PlainProgress):
    """One status line rewritten in place; skips printed above it."""

    def __init__(self, stream):
        PlainProgress.__init__(self, stream)
        self._tag = ""
        self._index = 0
        self._last = 0.0

    def _status(self, text):
        width = 100
        self.stream.write("\r\x1b[K" + text[:width])
        self.stream.flush()

    def planned(self, tags):
        self.total = tags

    def tagStarted(self, index, label):
        self._index, self._tag = index, label
        self._status("[%d/%d] %s" % (index + 1, self.total, label))

    def layerStarted(self, imageID, size):
        self._status("[%d/%d] %s: layer %s 0/%s" % (self._index + 1, self.total, self._tag, imageID[:12], _size(size)))

    def layerProgress(self, imageID, done, size):
        now = time.monotonic()
        if now - self._last >= 0.2:
            self._last = now
            self._status("[%d/%d] %s: layer %s %s/%s" % (self._index + 1, self.total, self._tag, imageID[:12],
                                                         _size(done), _size(size)))

    def layerDone(self, imageID, layer, reused):
        pass

    def tagDone(self, label, status):
        pass

    def skipped(self, what, reason):
        self.stream.write("\r\x1b[K")
        self._line("skipped %s: %s" % (what, reason), always=True)

    def finish(self):
        self.stream.write("\r\x1b[K")
        self.stream.flush()


def summary(report, dryRun):
    lines = []
    if dryRun:
        lines.append("dry run: %d tag(s) would be imported, %d up to date, %d skipped"
                     % (len(report.planned), len(report.unchanged), len(report.skipped)))
    else:
        lines.append(
            "%d tag(s) imported, %d already up to date (%d repositories); %d layer blob(s) stored (%s), "
            "%d already imported; %d skipped"
            % (len(report.imported), len(report.unchanged), len(report.repositories), report.stored,
               _size(report.storedBytes), report.reused, len(report.skipped))
        )
    for what, reason in report.skipped:
        lines.append("  skipped %s: %s" % (what, reason))
    return "\n".join(lines)


async def run(reactor, options, io, db):
    """The command, with the thread pools C{io} (storage, hashing) and C{db}."""
    from twisted.internet.threads import deferToThreadPool

    from txregistry.cli import driverOffReactor
    from txregistry.importv1.importer import Importer
    from txregistry.importv1.source import SearchDatabaseError, V1Store, readDescriptions
    from txregistry.importv1 import convert
    from txregistry.registry import Registry
    from txregistry.storage.filesystem import FilesystemDriver

    settings = config.load(configFile=options["config"], flavor=options["flavor"],
                           storagePath=options["storage-path"])
    source, searchURL = sourceSettings(options)
    if source is None:
        directory = options["source"]
        if not os.path.isdir(directory):
            raise SystemExit("txregistry import-v1: %s is not a directory" % (directory,))
        sourceDriver = FilesystemDriver(directory, reactor, io)
        where = directory
    else:
        sourceDriver = await driverOffReactor(source, reactor, io)
        where = ("s3://%s/%s" % (source.s3.bucket, source.s3.rootDirectory.strip("/"))
                 if source.s3 is not None else source.storagePath)
    store = V1Store(sourceDriver)
    try:
        found = await store.isStore()
    except Exception as e:  # (refused credentials, no server there)
        raise SystemExit("txregistry import-v1: cannot read %s: %s" % (where, str(e).splitlines()[0] if str(e) else
                                                                      type(e).__name__))
    if not found:
        raise SystemExit("txregistry import-v1: %s holds no classic registry store (no images/ or repositories/)"
                         % (where,))
    descriptions = {}
    if not searchURL and os.path.isfile(CLASSIC_DATABASE):
        print("note: %s is there (the classic registry's default search database): give --v1-search-db "
              "sqlite:///%s to import its descriptions" % (CLASSIC_DATABASE, CLASSIC_DATABASE))
    if searchURL:
        try:
            rows = await deferToThreadPool(reactor, db, readDescriptions, searchURL)
        except SearchDatabaseError as e:
            raise SystemExit("txregistry import-v1: the classic search database: %s" % (e,))
        for v1Name, description in rows.items():
            name = convert.searchName(v1Name, options["keep-library"])
            if name is not None:
                descriptions[name] = description

    driver = await driverOffReactor(settings, reactor, io)
    registry = Registry(driver, reactor, io, settings.limits.registry)
    updater = None
    if settings.searchBackend == "sqlalchemy" and not options["dry-run"]:
        from txregistry.search.index import SearchIndex
        from txregistry.search.updater import IndexUpdater

        updater = IndexUpdater(SearchIndex(settings.searchDatabase, reactor, db), registry, reactor)
        updater.detach()  # (the rows are written once, at the end: Importer._index)
    if options["quiet"]:
        progress = PlainProgress(sys.stdout, quiet=True)
    elif sys.stdout.isatty():
        progress = TerminalProgress(sys.stdout)
    else:
        progress = PlainProgress(sys.stdout)
    print("importing %s into %s%s" % (where, _destination(settings), " (dry run)" if options["dry-run"] else ""))
    sys.stdout.flush()
    importer = Importer(store, registry, reactor, io, progress, oci=options["oci"],
                        keepLibrary=options["keep-library"], descriptions=descriptions,
                        dryRun=options["dry-run"], updater=updater)
    try:
        report = await importer.run()
    finally:
        if isinstance(progress, TerminalProgress):
            progress.finish()
    print(summary(report, options["dry-run"]))
    sys.stdout.flush()
    if report.skipped:
        raise SystemExit(SKIPPED_STATUS)


def _destination(settings):
    if settings.s3 is not None:
        return "s3://%s/%s" % (settings.s3.bucket, settings.s3.rootDirectory.strip("/"))
    return settings.storagePath
