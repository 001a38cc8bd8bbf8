"""What garbage collection and retention delete is announced on the
registry's events as the API's deletes are (a tag delete naming the tag,
a manifest delete naming the digest; no blob events), on the memory
driver: by the collection itself, by the daemon's scheduled run, and by
``txregistry gc``'s body, whose search index (a real SQLite database)
follows what it deleted."""

import contextlib
import io
import json
import os
import time

from twisted.internet import reactor
from twisted.python.threadpool import ThreadPool
from twisted.trial import unittest

from tests.api.harness import async_test
from tests.support.model import CONFIG_TYPE as CONFIG, descriptor, indexManifest, memoryRegistry, pushBlob, pushImage
from txregistry import config
from txregistry.events import DELETE
from txregistry.maintenance import commands
from txregistry.maintenance.schedule import ScheduledCollection
from txregistry.maintenance.settings import GCSettings
from txregistry.registry import gc
from txregistry.registry.manifests import OCI_INDEX, OCI_MANIFEST
from txregistry.registry.retention import parsePolicies
from txregistry.search.index import SearchIndex
from txregistry.search.updater import DESCRIPTION_KEY, IndexUpdater

NAME = "team/app"
LATER = 2 * gc.DEFAULT_MIN_AGE
SOURCE = {"addr": "host:5000", "instanceID": "i"}


def targets(events):
    return [e.record(SOURCE)["target"] for e in events]


class Heard:
    def __init__(self, registry):
        self.events = []
        registry.events.add(self.events.append)


class CollectionEventsTests(unittest.TestCase):
    def setUp(self):
        self.registry = memoryRegistry()
        self.driver = self.registry.driver
        self.heard = Heard(self.registry)

    async def fill(self):
        images = {}
        for tag in ("old1", "old2", "new1"):
            images[tag] = (await pushImage(self.registry, NAME, tag=tag, seed=tag.encode()))[0]
        del self.heard.events[:]  # (the pushes)
        return images

    def collect(self, **kwargs):
        return gc.collect(self.driver, now=time.time() + LATER, deleteUntagged=True, events=self.registry.events,
                          retention=parsePolicies([{"repositories": "team/*", "keep_last": 1}]), **kwargs)

    @async_test
    async def test_tagsThenManifestsAnnouncedNoBlobs(self):
        images = await self.fill()
        report = await self.collect()
        self.assertEqual(len(report.deleted), 6)  # two manifests, their configs and layers: not announced
        self.assertTrue(all(e.action == DELETE and e.kind == "manifest" for e in self.heard.events))
        got = targets(self.heard.events)
        self.assertEqual(sorted(t["tag"] for t in got[:2]), ["old1", "old2"])
        self.assertEqual(got[:2], [{"repository": NAME, "tag": t["tag"]} for t in got[:2]])
        self.assertEqual(sorted(got[2:], key=lambda t: t["digest"]),
                         sorted([{"digest": images[t], "repository": NAME} for t in ("old1", "old2")],
                                key=lambda t: t["digest"]))
        # No request: nobody asked over HTTP.
        record = self.heard.events[0].record(SOURCE)
        self.assertEqual((record["actor"], record["request"]["method"], record["source"]), ({}, "", SOURCE))

    @async_test
    async def test_theAPIDeletesShape(self):
        await self.fill()
        await self.collect()
        ours = targets(self.heard.events)
        other = "other/app"
        digest = (await pushImage(self.registry, other, tag="t", seed=b"x"))[0]
        await pushImage(self.registry, other, tag="u", seed=b"y")
        del self.heard.events[:]
        await self.registry.manifests.delete(other, "u")
        await self.registry.manifests.delete(other, digest)
        api = targets(self.heard.events)
        self.assertEqual([sorted(t) for t in api], [sorted(ours[0]), sorted(ours[-1])])

    @async_test
    async def test_aDryRunAnnouncesNothing(self):
        await self.fill()
        report = await self.collect(dryRun=True)
        self.assertEqual(len(report.tags), 2)
        self.assertEqual(self.heard.events, [])

    @async_test
    async def test_childrenOfADeletedIndex(self):
        a, aBody, _ = await pushImage(self.registry, NAME, seed=b"a")
        b, bBody, _ = await pushImage(self.registry, NAME, seed=b"b")
        body = indexManifest([descriptor(a, aBody), descriptor(b, bBody)])
        index, _ = await self.registry.manifests.put(NAME, "multi", body, OCI_INDEX)
        await self.registry.manifests.delete(NAME, "multi")
        del self.heard.events[:]
        await gc.collect(self.driver, now=time.time() + LATER, deleteUntagged=True, events=self.registry.events)
        self.assertEqual(sorted(t["digest"] for t in targets(self.heard.events)), sorted([index, a, b]))

    @async_test
    async def test_withoutEventsNothingIsAnnounced(self):
        await self.fill()
        await gc.collect(self.driver, now=time.time() + LATER, deleteUntagged=True,
                         retention=parsePolicies([{"repositories": "team/*", "keep_last": 1}]))
        self.assertEqual(self.heard.events, [])

    @async_test
    async def test_thePagesTagCountsAreReadAgain(self):
        from txregistry.ui.data import TagTimes

        await self.fill()
        times = TagTimes(self.registry)
        self.assertEqual(len(await times.get(NAME)), 3)
        await self.collect()
        self.assertIsNone(times.cached(NAME))
        self.assertEqual([t for t, _ in await times.get(NAME)], ["new1"])

    @async_test
    async def test_aScheduledRunAnnounces(self):
        await self.fill()
        settings = GCSettings(interval=60, minAge=0, deleteUntagged=True,
                              retention=parsePolicies([{"repositories": "team/*", "keep_last": 1}]))
        run = ScheduledCollection(self.driver, settings, 4 * 1024 * 1024, events=self.registry.events)
        report = await run.run()
        # Pushed just now: the tags go, their manifests are young (kept).
        self.assertEqual(sorted(report.tags), [(NAME, "old1"), (NAME, "old2")])
        self.assertEqual(sorted(t["tag"] for t in targets(self.heard.events)), ["old1", "old2"])


class CommandIndexTests(unittest.TestCase):
    """``txregistry gc``'s body: the configured index hears what it deleted."""

    def setUp(self):
        self.registry = memoryRegistry()
        self.driver = self.registry.driver
        self.dir = self.mktemp()
        os.makedirs(self.dir)
        self.url = "sqlite:///" + os.path.join(self.dir, "search.db")
        self.db = ThreadPool(1, 1, name="test-index")
        self.db.start()
        self.addCleanup(self.db.stop)
        self.index = SearchIndex(self.url, reactor, self.db)
        self.addCleanup(self.index.engine.dispose)

    def settings(self, notifications=False):
        path = os.path.join(self.dir, "config.yml")
        with open(path, "w") as f:
            f.write("dev:\n  retention: [{repositories: 'team/*', keep_last: 1}, {repositories: 'gone', "
                    "keep_last: 0}]\n")
            if notifications:
                f.write("  notifications: {endpoints: [{name: x, url: 'http://127.0.0.1:9/'}], state_dir: '%s'}\n"
                        % (os.path.join(self.dir, "notify"),))
        return config.load(configFile=path, storagePath=self.dir, environ={"SQLALCHEMY_INDEX_DATABASE": self.url})

    async def gc(self, settings, **options):
        opts = {"dry-run": False, "retention": True, "delete-untagged": True, "min-age": 0, "grace": 0,
                "quiet": True}
        opts.update(options)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            await commands.gc(settings, opts, self.driver, reactor, None, self.db)
        return out.getvalue(), err.getvalue()

    async def push(self):
        """team/app:old and :new, described; gone:only."""
        for tag, text in (("old", "ancient widget"), ("new", "fresh gadget")):
            cfg = await pushBlob(self.registry, NAME, b'{"c": "%s"}' % (tag.encode(),))
            body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": dict(cfg, mediaType=CONFIG),
                               "layers": [], "annotations": {DESCRIPTION_KEY: text}}).encode()
            await self.registry.manifests.put(NAME, tag, body, OCI_MANIFEST)
        await pushImage(self.registry, "gone", tag="only", seed=b"g")

    async def found(self, term):
        return [name for name, _ in (await self.index.search(term, 10, 0))[1]]

    @async_test
    async def test_theIndexFollows(self):
        await self.push()
        await IndexUpdater(self.index, self.registry, reactor).rebuild()  # what the daemon wrote
        self.assertEqual(await self.found("ancient"), [])  # the newest tag describes the repository
        self.assertEqual(await self.found("fresh"), [NAME])
        rows = await self.index.rows(["gone", NAME])
        self.assertGreater(rows["gone"][1], 0)
        out, err = await self.gc(self.settings())
        self.assertIn("deleted 2 tag(s) by the retention policies", out)
        self.assertIn("updated 2 repositories in the search index", out)
        self.assertEqual(err, "")
        # Emptied of everything (its tag, then its manifest and blobs): no
        # longer in storage (the memory driver keeps no empty directories),
        # so no longer in the index, as an API delete of all of it leaves it.
        self.assertEqual(await self.registry.catalog(), [NAME])
        self.assertEqual(await self.index.catalog(), [NAME])
        self.assertEqual(await self.found("fresh"), [NAME])

    @async_test
    async def test_anIndexNeverBuiltIsLeftToTheDaemon(self):
        await self.push()
        out, err = await self.gc(self.settings())
        self.assertNotIn("search index", out + err)
        self.assertEqual(await self.index.count(), 0)  # the daemon rebuilds it whole at its start

    @async_test
    async def test_aDryRunWritesNothing(self):
        await self.push()
        await IndexUpdater(self.index, self.registry, reactor).rebuild()
        before = await self.index.rows(["gone", NAME])
        out, err = await self.gc(self.settings(), **{"dry-run": True})
        self.assertIn("would delete 2 tag(s)", out)
        self.assertEqual(await self.index.rows(["gone", NAME]), before)

    @async_test
    async def test_notificationsAreNotSentAndItSaysSo(self):
        await self.push()
        out, err = await self.gc(self.settings(notifications=True))
        self.assertIn("txregistry gc: 4 delete event(s) (tags, manifests) not sent to the notification endpoints",
                      err)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "notify")))

    @async_test
    async def test_anUnusableIndexIsSaidSo(self):
        await self.push()
        await IndexUpdater(self.index, self.registry, reactor).rebuild()
        settings = self.settings()
        broken = os.path.join(self.dir, "not-a-file")
        os.makedirs(broken)
        from dataclasses import replace

        out, err = await self.gc(replace(settings, searchDatabase="sqlite:///" + broken))
        self.assertIn("deleted 2 tag(s)", out)  # the collection is done all the same
        self.assertIn("txregistry gc: the search index will not be updated (", err)
        self.assertIn("run txregistry reindex after", err)

    @async_test
    async def test_nothingDeletedLeavesTheDatabaseAlone(self):
        await pushImage(self.registry, NAME, tag="only", seed=b"o")
        out, err = await self.gc(self.settings(notifications=True))
        self.assertIn("deleted 0 tag(s)", out)
        self.assertEqual(err, "")
        self.assertFalse(os.path.exists(os.path.join(self.dir, "search.db")))

    @async_test
    async def test_aCollectionFailingHalfWayTellsWhatItDeleted(self):
        from twisted.internet.defer import fail

        from txregistry.storage import StorageError

        await self.push()
        await IndexUpdater(self.index, self.registry, reactor).rebuild()
        inner = self.driver

        class Failing:
            """Storage that fails once the sweep deletes a blob's data
            (the tags and untagged manifests are gone by then)."""

            def delete(self, path):
                if path.endswith("/data"):
                    return fail(StorageError("disk on fire"))
                return inner.delete(path)

            def __getattr__(self, name):
                return getattr(inner, name)

        self.driver = Failing()
        with self.assertRaises(StorageError):
            await self.gc(self.settings())
        # Its tag and manifest went, its blobs did not: undescribed, never pushed.
        self.assertEqual((await self.index.rows(["gone"]))["gone"], ("", 0.0))
