"""Tags that name nothing (what a crash of an older version left: a tag's
directory without its current link, or a link to a manifest that is not
there) are not listed, and DELETE removes them; a push by tag cut short
after any of its writes leaves no such tag."""

from tests.api.harness import RegistryTestCase, async_test
from txregistry import digest as digests
from txregistry.registry import layout
from txregistry.storage import PathNotFound


class _Crashed(Exception):
    """The process died here."""


class CrashingDriver:
    """The real driver, dying (every call failing) at its C{crashAt}-th
    write: what storage holds then is what a kill -9 there would leave."""

    def __init__(self, driver, crashAt):
        self._driver = driver
        self._writes = 0
        self._crashAt = crashAt

    def __getattr__(self, name):
        return getattr(self._driver, name)

    def putContent(self, path, data):
        self._writes += 1
        if self._writes >= self._crashAt:
            raise _Crashed(path)
        return self._driver.putContent(path, data)


class TagTests(RegistryTestCase):
    async def tagList(self, name):
        r = await self.request("GET", "/v2/%s/tags/list" % (name,))
        self.assertEqual(r.code, 200, r.body)
        return r.json()["tags"]

    @async_test
    async def test_tagsNamingNothing(self):
        digest, _ = await self.pushImage("team/app", "ok")
        other = digests.of(b"no such manifest")
        debris = {
            "halfway": (layout.tagIndexLink("team/app", "halfway", digest), digest.encode()),
            "dangling": (layout.tagCurrentLink("team/app", "dangling"), other.encode()),
            "garbage": (layout.tagCurrentLink("team/app", "garbage"), b"not a digest"),
        }
        for path, content in debris.values():
            await self.driver.putContent(path, content)
        self.assertEqual(await self.tagList("team/app"), ["ok"])
        r = await self.request("GET", "/v2/team/app/tags/list?n=1")
        self.assertEqual((r.json()["tags"], r.header("link")), (["ok"], None))
        for tag in sorted(debris):
            r = await self.request("GET", "/v2/team/app/manifests/" + tag)
            self.assertEqual(r.code, 404, tag)
            r = await self.request("DELETE", "/v2/team/app/manifests/" + tag)
            self.assertEqual(r.code, 202, (tag, r.body))
            with self.assertRaises(PathNotFound):
                await self.driver.stat(layout.tagDir("team/app", tag))
            r = await self.request("DELETE", "/v2/team/app/manifests/" + tag)
            self.assertEqual(r.code, 404, tag)
        self.assertEqual(await self.tagList("team/app"), ["ok"])
        r = await self.request("GET", "/v2/team/app/manifests/ok")
        self.assertEqual(r.code, 200)

    @async_test
    async def test_pushCutShortLeavesNoTagNamingNothing(self):
        digest, body = await self.pushImage("team/app", "first")
        real = self.driver
        for crashAt in range(1, 6):
            tag = "cut%d" % (crashAt,)
            self.registry.manifests.driver = CrashingDriver(real, crashAt)
            try:
                r = await self.request("PUT", "/v2/team/app/manifests/" + tag, body,
                                       {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
            finally:
                self.registry.manifests.driver = real
            try:
                entries = await real.list(layout.tagsDir("team/app"))
            except PathNotFound:
                entries = []
            for entry in entries:
                t = entry.rsplit("/", 1)[1]
                got = await self.request("GET", "/v2/team/app/manifests/" + t)
                self.assertEqual(got.code, 200, "a crash at write %d left tag %s naming nothing" % (crashAt, t))
            if r.code == 201:
                self.assertIn(tag, await self.tagList("team/app"))
        self.flushLoggedErrors(_Crashed)


class MemoryTagTests(TagTests):
    driverName = "memory"
