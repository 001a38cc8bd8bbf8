"""Retention policies: parsing, which tags a policy deletes, and applying
them to a registry on the memory driver (dry run lists, a real run
deletes; then the collection frees what only those tags kept)."""

import time

from twisted.trial import unittest

from tests.api.harness import async_test
from tests.support.model import memoryRegistry, pushImage
from txregistry import config
from txregistry.maintenance.settings import GCConfigError, parseGC
from txregistry.registry import gc, retention
from txregistry.registry.retention import Policy, RetentionConfigError, parseAge, parsePolicies

DAY = 86400.0


class ParseTests(unittest.TestCase):
    def test_ages(self):
        self.assertEqual(parseAge("30d"), 30 * DAY)
        self.assertEqual(parseAge("1h30m"), 5400)
        self.assertEqual(parseAge("2w"), 14 * DAY)
        self.assertEqual(parseAge(90), 90)
        for bad in ("soon", "30 days", "", "-1h", True, None, -5):
            self.assertIsNone(parseAge(bad), bad)

    def test_policies(self):
        (p,) = parsePolicies([{"repositories": "team/*", "keep_last": 10, "keep_tags": ["v*", "latest"],
                               "older_than": "30d"}])
        self.assertEqual(p, Policy("team/*", 10, ("v*", "latest"), 30 * DAY))
        self.assertTrue(p.matches("team/app") and p.matches("team/a/b") and not p.matches("other/app"))

    def test_badPolicies(self):
        cases = [
            ({"repositories": "team/*"}, "needs keep_last or older_than"),
            ({"repositories": "team/*", "keep_last": -1}, "keep_last must be a whole number"),
            ({"repositories": "team/*", "keep_last": "ten"}, "keep_last must be a whole number"),
            ({"repositories": "team/*", "older_than": "a month"}, "older_than must be a duration"),
            ({"repositories": "team/*", "keep_last": 1, "keep_tags": [3]}, "keep_tags must be a list"),
            ({"keep_last": 1}, "repositories must be a glob"),
            ({"repositories": "x", "keep_last": 1, "keep": 2}, "unknown keys: keep"),
        ]
        for entry, message in cases:
            with self.assertRaises(RetentionConfigError) as e:
                parsePolicies([entry], "f.yml")
            self.assertIn(message, str(e.exception))
            self.assertIn("f.yml: retention[0]", str(e.exception))
        with self.assertRaises(RetentionConfigError):
            parsePolicies({"repositories": "x"})

    def test_gcSettings(self):
        s = parseGC({"interval": "10m", "min_age": "0", "delete_untagged": True, "dry_run": "yes"}, None, "f")
        self.assertEqual((s.interval, s.minAge, s.deleteUntagged, s.dryRun, s.scheduled), (600, 0, True, True, True))
        self.assertFalse(parseGC(None, None, "f").scheduled)
        for section, message in [({"interval": "0s"}, "gc.interval"), ({"interval": "often"}, "gc.interval"),
                                 ({"min_age": "old"}, "gc.min_age"), ({"dry_run": "maybe"}, "gc.dry_run"),
                                 ({"every": "1h"}, "unknown gc keys: every"), ("1h", "gc must be a mapping")]:
            with self.assertRaises(GCConfigError) as e:
                parseGC(section, None, "f")
            self.assertIn(message, str(e.exception))

    def test_configFile(self):
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("dev:\n  gc: {interval: 1h, min_age: 10m}\n"
                    "  retention: [{repositories: 'team/*', keep_last: 2}]\n")
        s = config.load(configFile=path, environ={})
        self.assertEqual((s.gc.interval, s.gc.minAge, s.gc.retention[0].keepLast), (3600, 600, 2))
        self.assertNotIn("gc", s.ignoredKeys)
        with open(path, "w") as f:
            f.write("dev:\n  retention: [{repositories: 'team/*', older_than: forever}]\n")
        with self.assertRaises(config.ConfigError) as e:
            config.load(configFile=path, environ={})
        self.assertIn("retention[0].older_than must be a duration", str(e.exception))


class DoomedTests(unittest.TestCase):
    tags = [("a", 100.0), ("b", 200.0), ("v1", 300.0), ("latest", 50.0), ("c", 400.0)]

    def test_keepLast(self):
        self.assertEqual(Policy("*", keepLast=2).doomed(self.tags, 1000), ["b", "a", "latest"])

    def test_keepTags(self):
        self.assertEqual(Policy("*", keepLast=1, keepTags=("v*", "latest")).doomed(self.tags, 1000), ["b", "a"])

    def test_olderThan(self):
        self.assertEqual(Policy("*", olderThan=750).doomed(self.tags, 1000), ["b", "a", "latest"])

    def test_both(self):
        # Neither among the newest 3 (c, v1, b) nor younger than 850 s.
        self.assertEqual(Policy("*", keepLast=3, olderThan=850).doomed(self.tags, 1000), ["a", "latest"])
        self.assertEqual(Policy("*", keepLast=3, olderThan=920).doomed(self.tags, 1000), ["latest"])

    def test_keepNothingButPatterns(self):
        self.assertEqual(Policy("*", keepLast=0, keepTags=("v*",)).doomed(self.tags, 1000),
                         ["c", "b", "a", "latest"])


class ApplyTests(unittest.TestCase):
    def setUp(self):
        self.registry = memoryRegistry()
        self.driver = self.registry.driver

    async def fill(self):
        self.images = {}
        for i, tag in enumerate(["old1", "old2", "v1.0", "new1", "new2"]):
            self.images[tag] = (await pushImage(self.registry, "team/app", tag=tag, seed=tag.encode()))[0]
        await pushImage(self.registry, "other/app", tag="old", seed=b"other")

    @async_test
    async def test_dryRunListsRealRunDeletes(self):
        await self.fill()
        policies = parsePolicies([{"repositories": "team/*", "keep_last": 2, "keep_tags": ["v*"]}])
        dry = await retention.apply(self.driver, policies, time.time(), dryRun=True)
        self.assertEqual(dry, [("team/app", "old2"), ("team/app", "old1")])
        self.assertEqual(len(await self.registry.manifests.tags("team/app")), 5)
        logged = []
        done = await retention.apply(self.driver, policies, time.time(), log=lambda n, t: logged.append((n, t)))
        self.assertEqual(done, dry)
        self.assertEqual(logged, dry)
        self.assertEqual(await self.registry.manifests.tags("team/app"), ["new1", "new2", "v1.0"])
        self.assertEqual(await self.registry.manifests.tags("other/app"), ["old"])

    @async_test
    async def test_olderThan(self):
        await self.fill()
        policies = parsePolicies([{"repositories": "*", "older_than": "1h", "keep_tags": ["new*"]}])
        self.assertEqual(await retention.apply(self.driver, policies, time.time()), [])
        done = await retention.apply(self.driver, policies, time.time() + 2 * 3600)
        self.assertEqual(sorted(done), [("other/app", "old"), ("team/app", "old1"), ("team/app", "old2"),
                                        ("team/app", "v1.0")])

    @async_test
    async def test_firstMatchingPolicyApplies(self):
        await self.fill()
        policies = parsePolicies([{"repositories": "team/app", "keep_last": 4},
                                  {"repositories": "*", "keep_last": 0}])
        done = await retention.apply(self.driver, policies, time.time())
        self.assertEqual(sorted(done), [("other/app", "old"), ("team/app", "old1")])

    @async_test
    async def test_collectionAppliesThemAndFreesTheirBlobs(self):
        await self.fill()
        policies = parsePolicies([{"repositories": "team/*", "keep_last": 3}])
        later = time.time() + 2 * gc.DEFAULT_MIN_AGE
        dry = await gc.collect(self.driver, now=later, deleteUntagged=True, retention=policies, dryRun=True)
        self.assertEqual(sorted(dry.tags), [("team/app", "old1"), ("team/app", "old2")])
        # The dry run counts what going of those tags would free.
        self.assertEqual(sorted(d for _, d in dry.untagged), sorted([self.images["old1"], self.images["old2"]]))
        self.assertEqual(len(await self.registry.manifests.tags("team/app")), 5)
        report = await gc.collect(self.driver, now=later, deleteUntagged=True, retention=policies)
        self.assertEqual((sorted(report.tags), sorted(report.untagged)), (sorted(dry.tags), sorted(dry.untagged)))
        self.assertEqual(sorted(report.deleted), sorted(dry.deleted))
        self.assertEqual(len(report.deleted), 6)  # two manifests, their configs and layers
        self.assertEqual(await self.registry.manifests.tags("team/app"), ["new1", "new2", "v1.0"])
        for tag in ("new1", "new2", "v1.0"):
            await self.registry.manifests.get("team/app", tag)
