"""docker search (/v1/search) and the catalog, from the SQL index: SQLite
embedded, and a real PostgreSQL server including an outage."""

import json
import os
import shutil
import tempfile

from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock, deferLater
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from tests.api.harness import RegistryTestCase, async_test
from tests.support import postgres
from tests.support.required import missing
from txregistry.search.index import IndexUnavailable, SearchIndex
from txregistry.search.updater import STARTUP_WAIT, IndexUpdater

DESCRIPTION = "org.opencontainers.image.description"


class GatedThreadPool:
    """A thread pool whose work can be held back: while held, the calls
    queue up, and run in the real pool only when released (one chosen call,
    or all in order), or fail as the test says.  Called on the reactor
    thread only."""

    def __init__(self, pool):
        self._pool = pool
        self.held = False
        self.queued = []

    def callInThreadWithCallback(self, onResult, func, *args, **kwargs):
        if self.held:
            self.queued.append((onResult, func, args, kwargs))
        else:
            self._pool.callInThreadWithCallback(onResult, func, *args, **kwargs)

    def hold(self):
        self.held = True

    def release(self, which=0):
        onResult, func, args, kwargs = self.queued.pop(which)
        self._pool.callInThreadWithCallback(onResult, func, *args, **kwargs)

    def fail(self, which, exception):
        onResult, _, _, _ = self.queued.pop(which)
        onResult(False, Failure(exception))

    def open(self):
        self.held = False
        while self.queued:
            self.release()


async def until(predicate, timeout=30.0):
    """Poll C{predicate} on the reactor until it is true."""
    deadline = reactor.seconds() + timeout
    while not predicate():
        if reactor.seconds() > deadline:
            raise AssertionError("still not true after %s s: %r" % (timeout, predicate))
        await deferLater(reactor, 0.005, lambda: None)  # polling interval


class SearchTestsMixin:
    def databaseURL(self):
        d = tempfile.mkdtemp(prefix="txregistry-index-")
        self.addCleanup(shutil.rmtree, d, True)
        return "sqlite:///" + os.path.join(d, "search.db")

    def makeSearch(self):
        self.indexPool = ThreadPool(1, 1, name="test-index")
        self.indexPool.start()
        self.addCleanup(self.indexPool.stop)
        self.gate = GatedThreadPool(self.indexPool)
        self.addCleanup(self.gate.open)  # before the pool stops
        self.index = SearchIndex(self.databaseURL(), reactor, self.gate, readTimeout=10)
        self.addCleanup(self.index.engine.dispose)
        updater = IndexUpdater(self.index, self.registry, reactor)
        self.addCleanup(updater.stop)

        def drain():
            # Index updates are written after the push is answered: the
            # test ends once they are (before the updater stops and the
            # database goes).
            self.gate.open()
            return updater.settled()

        self.addCleanup(drain)
        return updater

    async def startIndex(self):
        await self.updater.start()

    async def search(self, q, **params):
        qs = "&".join(["q=" + q] + ["%s=%s" % kv for kv in params.items()])
        return await self.request("GET", "/v1/search?" + qs)

    @async_test
    async def test_ping(self):
        r = await self.request("GET", "/v1/_ping")
        self.assertEqual(r.code, 200)
        self.assertEqual(r.header("X-Docker-Registry-Standalone"), b"true")
        self.assertTrue(r.header("X-Docker-Registry-Version"))

    @async_test
    async def test_rankingAndShape(self):
        await self.startIndex()
        names = ["other/thing", "team/ubuntu-tools", "ubuntu", "library/ubuntu", "ubuntu-minimal", "x/myubuntu"]
        for name in names:
            await self.pushImage(name, "latest")
        await self.pushImage("other/thing", "latest", extra={"annotations": {
            "org.opencontainers.image.description": "Runs on Ubuntu"}})
        r = await self.search("UBUNTU")
        self.assertEqual(r.code, 200)
        doc = r.json()
        self.assertEqual(set(doc), {"query", "num_results", "num_pages", "page", "page_size", "results"})
        self.assertEqual((doc["query"], doc["num_results"], doc["page"], doc["page_size"]), ("UBUNTU", 6, 1, 25))
        got = [x["name"] for x in doc["results"]]
        # exact, prefix, component, substring (newest first), description
        self.assertEqual(got, ["ubuntu", "ubuntu-minimal", "library/ubuntu", "x/myubuntu", "team/ubuntu-tools",
                               "other/thing"])
        first = doc["results"][0]
        self.assertEqual(set(first), {"name", "description", "star_count", "is_official", "is_automated"})
        self.assertEqual(doc["results"][-1]["description"], "Runs on Ubuntu")

    @async_test
    async def test_descriptionFromConfigLabel(self):
        await self.startIndex()
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {
            "Labels": {"org.opencontainers.image.description": "from the label"}}}).encode()
        cd = await self.pushBlob("labelled", config)
        doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
               "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(config)},
               "layers": []}
        r, _ = await self.pushManifest("labelled", "v1", doc)
        self.assertEqual(r.code, 201)
        r = await self.search("labelled")
        self.assertEqual(r.json()["results"][0]["description"], "from the label")

    @async_test
    async def test_paging(self):
        await self.startIndex()
        for i in range(5):
            await self.pushImage("page/repo%d" % i, "t")
        r = await self.search("repo", n="2", page="3")
        doc = r.json()
        self.assertEqual((doc["num_results"], doc["num_pages"], doc["page"], doc["page_size"]), (5, 3, 3, 2))
        self.assertEqual(len(doc["results"]), 1)
        r = await self.search("repo", n="1000")
        self.assertEqual(r.json()["page_size"], 100)
        r = await self.search("repo", n="0")
        self.assertEqual(r.json()["page_size"], 1)
        for bad in ({"n": "x"}, {"page": "0"}, {"page": "-1"}, {"n": "-5"}):
            r = await self.search("repo", **bad)
            self.assertEqual(r.code, 400, bad)
            self.assertIn("must be", r.json()["errors"][0]["message"])

    @async_test
    async def test_deleteUpdatesIndex(self):
        await self.startIndex()
        d, _ = await self.pushImage("gone/soon", "v1")
        self.assertEqual((await self.search("gone")).json()["num_results"], 1)
        await self.request("DELETE", "/v2/gone/soon/manifests/v1")
        self.assertEqual(await self.index.catalog(), ["gone/soon"])  # the repository is still there
        r = await self.request("GET", "/v2/_catalog")
        self.assertEqual(r.json()["repositories"], ["gone/soon"])

    @async_test
    async def test_catalogFromIndex(self):
        await self.startIndex()
        for name in ("b", "a/x", "c"):
            await self.pushImage(name, "t")
        r = await self.request("GET", "/v2/_catalog?n=2")
        self.assertEqual(r.json()["repositories"], ["a/x", "b"])
        self.assertIn(b"last=b", r.header("Link"))
        r = await self.request("GET", "/v2/_catalog?n=2&last=b")
        self.assertEqual(r.json()["repositories"], ["c"])
        self.assertIsNone(r.header("Link"))

    @async_test
    async def test_blobOnlyRepositoryListed(self):
        await self.startIndex()
        await self.pushBlob("only/blobs", b"data")
        r = await self.request("GET", "/v2/_catalog")
        self.assertEqual(r.json()["repositories"], ["only/blobs"])

    @async_test
    async def test_mountedIntoRepositoryListed(self):
        await self.startIndex()
        d = await self.pushBlob("mount/from", b"data")
        r = await self.request("POST", "/v2/mount/to/blobs/uploads/?mount=%s&from=mount/from" % (d,))
        self.assertEqual(r.code, 201, r.body)
        await self.updater.settled()
        self.assertEqual(await self.index.catalog(), ["mount/from", "mount/to"])
        r = await self.request("GET", "/v2/_catalog")
        self.assertEqual(r.json()["repositories"], ["mount/from", "mount/to"])

    @async_test
    async def test_rebuildAtStart(self):
        # pushed while the index knew nothing (as after deleting the database)
        for name in ("pre/one", "pre/two"):
            await self.pushImage(name, "t", extra={"annotations": {"org.opencontainers.image.description": name}})
        await self.updater.settled()
        await self.index.clear()
        self.updater.ready = False
        await self.startIndex()
        r = await self.search("pre")
        self.assertEqual(sorted(x["description"] for x in r.json()["results"]), ["pre/one", "pre/two"])


    @async_test
    async def test_unreadableManifestDoesNotStopRebuildOrRepair(self):
        # A repository whose manifests cannot be read (storage fails for it)
        # is logged and passed over; the others are indexed, and the repair
        # loop goes on.
        await self.pushImage("bad/repo", "t")
        await self.pushImage("good/one", "t", extra={"annotations": {DESCRIPTION: "good one"}})
        rowFor = self.updater.rowFor

        async def failing(name):
            if name == "bad/repo":
                raise OSError(5, "Input/output error")
            return await rowFor(name)

        self.patch(self.updater, "rowFor", failing)
        await self.updater.settled()
        await self.index.clear()
        self.updater.ready = False
        await self.startIndex()
        self.assertTrue(self.updater.ready)
        self.assertEqual([x["description"] for x in (await self.search("good")).json()["results"]], ["good one"])
        self.assertEqual(len(self.flushLoggedErrors()), 1)  # "indexing bad/repo failed"
        await self.index.remove("good/one")
        self.updater.dirty = {"bad/repo", "good/one"}
        await self.updater.repair()
        self.assertEqual(self.updater.dirty, set())
        self.assertEqual([x["name"] for x in (await self.search("good")).json()["results"]], ["good/one"])
        self.assertEqual(len(self.flushLoggedErrors()), 1)

    @async_test
    async def test_unstorableTextDoesNotPoisonTheIndex(self):
        """Lone surrogates and NUL (valid JSON escapes, but neither SQLite nor
        PostgreSQL stores them) in an annotation or a config label are stored
        as U+FFFD; every other repository stays searchable, after a rebuild
        from storage too, and no request gets a 5xx."""
        await self.startIndex()
        await self.pushImage("poison/annotation", "v1", extra={"annotations": {
            DESCRIPTION: "\ud800 lone\x00nul \ud83d\ude00", "k\udfff": "v\ud800"}})
        config = json.dumps({"architecture": "amd64", "os": "linux", "config": {
            "Labels": {DESCRIPTION: "label \udfff\x00"}}}).encode()
        cd = await self.pushBlob("poison/label", config)
        r, _ = await self.pushManifest("poison/label", "v1", {
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(config)},
            "layers": []})
        self.assertEqual(r.code, 201, r.body)
        await self.pushImage("clean/repo", "v1", extra={"annotations": {DESCRIPTION: "clean"}})
        expected = {"poison/annotation": "\ufffd lone\ufffdnul \U0001f600", "poison/label": "label \ufffd\ufffd",
                    "clean/repo": "clean"}

        async def check():
            for q, names in [("repo", ["clean/repo"]), ("poison", ["poison/annotation", "poison/label"]),
                             ("lone", ["poison/annotation"]), ("%00", ["poison/annotation", "poison/label"]),
                             ("%EF%BF%BD", ["poison/annotation", "poison/label"]),
                             ("nul%00", []), ("%ED%A0%80", [])]:
                r = await self.search(q)
                if names is None:  # not UTF-8 (an encoded surrogate): refused
                    self.assertEqual(r.code, 400, (q, r.body))
                    continue
                self.assertEqual(r.code, 200, (q, r.body))
                got = {x["name"]: x["description"] for x in r.json()["results"]}
                self.assertEqual(got, {n: expected[n] for n in names}, q)
            r = await self.request("GET", "/v2/_catalog")
            self.assertEqual(r.json()["repositories"], ["clean/repo", "poison/annotation", "poison/label"])
            # a NUL in last: the names after it are those after what precedes it
            r = await self.request("GET", "/v2/_catalog?last=clean/repo%00x")
            self.assertEqual((r.code, r.json()["repositories"]), (200, ["poison/annotation", "poison/label"]))
            r = await self.request("GET", "/v2/_catalog?n=1&last=poison%00")
            self.assertEqual((r.code, r.json()["repositories"]), (200, ["poison/annotation"]))

        await check()
        # lost index, rebuilt from storage
        await self.updater.settled()
        await self.index.clear()
        self.updater.ready = False
        await self.startIndex()
        self.assertTrue(self.updater.ready)
        await check()

    @async_test
    async def test_strayDirectoriesDoNotStopARebuild(self):
        """Directories in storage whose names are not repository names are
        left out of the index; the rebuild indexes the rest.  (A name that is
        not UTF-8 is not tried here: the storage walk itself refuses it.)"""
        await self.pushImage("good/repo", "v1")
        for stray in (b"UPPER", b"bad..name", b"/".join([b"x" * 100] * 3)):  # the last: over 255
            os.makedirs(os.path.join(os.fsencode(self.root), b"docker/registry/v2/repositories", stray, b"_layers"))
        await self.updater.settled()
        await self.index.clear()
        self.updater.ready = False
        await self.startIndex()
        self.assertTrue(self.updater.ready)
        self.assertEqual(await self.index.catalog(), ["good/repo"])
        self.assertEqual([x["name"] for x in (await self.search("repo")).json()["results"]], ["good/repo"])


    # --- start-up: the index thread pool held, so nothing depends on timing ---

    def described(self, text):
        return {"annotations": {DESCRIPTION: text}}

    @async_test
    async def test_searchWaitsForTheStartupCheck(self):
        """A daemon restarted with its index: a search that arrives before
        the start-up check (a count in the index's thread pool) is done waits
        for it and is answered from the index, not with a 503."""
        await self.pushImage("acme/web", "1.0", extra=self.described("the web front end"))
        await self.updater.settled()  # the pushes indexed: the gate holds only what follows
        self.gate.hold()
        started = Deferred.fromCoroutine(self.updater.start())
        await until(lambda: len(self.gate.queued) == 1)  # the count
        response = ensureDeferred(self.search("front"))
        await until(lambda: response.called or self.updater.waiting == 1)
        self.assertFalse(response.called)
        self.assertEqual(len(self.gate.queued), 1)  # waiting, not queued behind the check
        # the catalog does not wait: it walks storage meanwhile
        r = await self.request("GET", "/v2/_catalog")
        self.assertEqual((r.code, r.json()["repositories"]), (200, ["acme/web"]))
        self.gate.open()
        r = await response
        self.assertEqual(r.code, 200, r.body)
        self.assertEqual([(x["name"], x["description"]) for x in r.json()["results"]],
                         [("acme/web", "the web front end")])
        self.assertIsNone(r.header("Txregistry-Search-Index"))
        await started
        self.assertTrue(self.updater.ready)
        self.assertEqual(self.updater.waiting, 0)

    @async_test
    async def test_searchDuringARebuildAnswersFromWhatIsIndexed(self):
        """An empty index at start is rebuilt from storage: meanwhile search
        answers 200 from the rows written so far, with a header saying the
        index is being rebuilt, and the catalog walks storage."""
        for name in ("pre/one", "pre/two"):
            await self.pushImage(name, "t", extra=self.described("described " + name))
        await self.updater.settled()
        await self.index.clear()  # as after losing the database
        self.gate.hold()
        started = Deferred.fromCoroutine(self.updater.start())
        await until(lambda: len(self.gate.queued) == 1)
        self.gate.release()  # the count: 0, so the rebuild starts
        await until(lambda: len(self.gate.queued) == 1)  # its first batch of rows
        self.assertTrue(self.updater.rebuilding)
        self.assertFalse(self.updater.ready)
        # a search that runs before the batch is written: nothing yet
        response = ensureDeferred(self.search("pre"))
        await until(lambda: len(self.gate.queued) == 2)
        self.gate.release(1)
        r = await response
        self.assertEqual((r.code, r.json()["num_results"]), (200, 0), r.body)
        self.assertEqual(r.header("Txregistry-Search-Index"), b"rebuilding")
        r = await self.request("GET", "/v2/_catalog")
        self.assertEqual(r.json()["repositories"], ["pre/one", "pre/two"])
        # the batch written, the rebuild not finished (its clean-up is queued)
        self.gate.release()
        await until(lambda: len(self.gate.queued) == 1)
        self.assertTrue(self.updater.rebuilding)
        response = ensureDeferred(self.search("pre"))
        await until(lambda: len(self.gate.queued) == 2)
        self.gate.release(1)
        r = await response
        self.assertEqual(sorted(x["name"] for x in r.json()["results"]), ["pre/one", "pre/two"])
        self.assertEqual(r.header("Txregistry-Search-Index"), b"rebuilding")
        self.gate.open()
        await started
        self.assertTrue(self.updater.ready)
        self.assertFalse(self.updater.rebuilding)
        r = await self.search("pre")
        self.assertEqual((r.code, r.json()["num_results"]), (200, 2))
        self.assertIsNone(r.header("Txregistry-Search-Index"))

    @async_test
    async def test_searchWaitingForAFailedStartupCheckGets503(self):
        await self.pushImage("acme/web", "1.0")
        await self.updater.settled()  # the pushes indexed: the gate holds only what follows
        self.gate.hold()
        started = Deferred.fromCoroutine(self.updater.start())
        await until(lambda: len(self.gate.queued) == 1)
        response = ensureDeferred(self.search("acme"))
        await until(lambda: response.called or self.updater.waiting == 1)
        self.gate.fail(0, IndexUnavailable("the database is down"))
        r = await response
        self.assertEqual((r.code, r.error()), (503, "UNAVAILABLE"))
        await started
        self.assertFalse(self.updater.ready)
        self.gate.open()
        r = await self.request("GET", "/v2/_catalog")  # from storage
        self.assertEqual((r.code, r.json()["repositories"]), (200, ["acme/web"]))

    @async_test
    async def test_searchWaitsForTheStartupCheckForALimitedTime(self):
        """A start-up check that hangs (a database that does not answer)
        holds a search for STARTUP_WAIT seconds, then it is unavailable."""
        clock = Clock()
        updater = IndexUpdater(self.index, self.registry, clock)
        self.addCleanup(updater.detach)
        self.gate.hold()
        started = Deferred.fromCoroutine(updater.start())
        pending = Deferred.fromCoroutine(updater.search("x", 25, 0))
        self.assertEqual(updater.waiting, 1)
        clock.advance(STARTUP_WAIT - 0.5)
        self.assertNoResult(pending)
        clock.advance(0.5)
        self.failureResultOf(pending, IndexUnavailable)
        self.assertEqual(updater.waiting, 0)
        self.gate.open()
        await started
        self.assertTrue(updater.ready)
        self.assertEqual(await updater.search("x", 25, 0), (0, [], True))


class SQLiteSearchTests(SearchTestsMixin, RegistryTestCase):
    pass


class SearchOffTests(RegistryTestCase):
    @async_test
    async def test_searchOff(self):
        r = await self.request("GET", "/v1/search?q=x")
        self.assertEqual(r.code, 404)
        await self.pushImage("still/works", "t")
        r = await self.request("GET", "/v2/_catalog")
        self.assertEqual(r.json()["repositories"], ["still/works"])


class PostgresSearchTests(SearchTestsMixin, RegistryTestCase):
    def databaseURL(self):
        if not postgres.available():
            missing("PostgreSQL is not installed")
        self.pg = postgres.PostgresServer().start()
        self.addCleanup(self.pg.destroy)
        return self.pg.url

    @async_test
    async def test_outageAndRepair(self):
        await self.startIndex()
        await self.pushImage("before/outage", "t")
        self.pg.stop()
        # push and pull keep working while the database is down
        d, body = await self.pushImage("during/outage", "t")
        r = await self.request("GET", "/v2/during/outage/manifests/t")
        self.assertEqual(r.code, 200)
        r = await self.search("outage")
        self.assertEqual(r.code, 503)
        self.assertEqual(r.error(), "UNAVAILABLE")
        self.assertIn("during/outage", self.updater.dirty)
        # the catalog falls back to storage
        r = await self.request("GET", "/v2/_catalog")
        self.assertEqual(r.json()["repositories"], ["before/outage", "during/outage"])
        self.pg.start()
        await self.updater.repair()
        r = await self.search("outage")
        self.assertEqual(r.code, 200)
        self.assertEqual(sorted(x["name"] for x in r.json()["results"]), ["before/outage", "during/outage"])
