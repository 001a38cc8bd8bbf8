"""The admin API's repository delete over a real socket: the repository
leaves storage, the catalog and the search index; its blobs stay for gc;
only admins may, and not in read-only mode."""

import os

from tests.api.harness import RegistryTestCase, async_test
from tests.api.test_auth_http import AuthTestCase
from tests.api.test_search import SearchTestsMixin
from txregistry import digest as digests
from txregistry.registry import gc, layout


class AdminDeleteTests(RegistryTestCase):
    # (The search index of the search tests, not their tests.)
    databaseURL = SearchTestsMixin.databaseURL
    makeSearch = SearchTestsMixin.makeSearch
    startIndex = SearchTestsMixin.startIndex
    search = SearchTestsMixin.search

    async def fill(self):
        await self.startIndex()
        self.app_, _ = await self.pushImage("team/app", "v1", layers=[b"app only", b"shared"])
        await self.pushImage("team/app/tools", "v1", layers=[b"tools", b"shared"])
        await self.pushImage("other", "v1", layers=[b"other"])
        await self.request("POST", "/v2/team/app/blobs/uploads/")  # an upload in progress
        await self.updater.settled()

    @async_test
    async def test_deleteRepository(self):
        await self.fill()
        r = await self.request("DELETE", "/admin/v1/repositories/team/app")
        self.assertEqual((r.code, r.body), (202, b""), r.body)
        await self.updater.settled()
        r = await self.request("GET", "/v2/_catalog")
        self.assertEqual(r.json()["repositories"], ["other", "team/app/tools"])
        r = await self.search("app")
        self.assertEqual([x["name"] for x in r.json()["results"]], ["team/app/tools"])
        r = await self.request("GET", "/v2/team/app/tags/list")
        self.assertEqual((r.code, r.error()), (404, "NAME_UNKNOWN"))
        self.assertFalse(os.path.exists(os.path.join(self.root, layout.uploadsDir("team/app").lstrip("/"))))
        # The nested repository is whole; the blobs stay until gc.
        r = await self.request("GET", "/v2/team/app/tools/manifests/v1",
                               headers={"Accept": "application/vnd.oci.image.manifest.v1+json"})
        self.assertEqual(r.code, 200)
        self.assertTrue(await self.registry.blobs.hasData(digests.of(b"app only")))
        report = await gc.collect(self.driver, minAge=0, grace=0)
        self.assertIn(digests.of(b"app only"), report.deleted)
        self.assertIn(self.app_, report.deleted)
        self.assertNotIn(digests.of(b"shared"), report.deleted)
        # Again: there is none.
        r = await self.request("DELETE", "/admin/v1/repositories/team/app")
        self.assertEqual((r.code, r.error()), (404, "NAME_UNKNOWN"))

    @async_test
    async def test_badNameAndReadOnly(self):
        await self.fill()
        r = await self.request("DELETE", "/admin/v1/repositories/Team/App")
        self.assertEqual((r.code, r.error()), (400, "NAME_INVALID"))
        self.app.readonly = True
        r = await self.request("DELETE", "/admin/v1/repositories/team/app")
        self.assertEqual(r.code // 100, 4)
        self.assertEqual(r.error(), "UNSUPPORTED")
        self.app.readonly = False
        r = await self.request("GET", "/v2/team/app/tags/list")
        self.assertEqual(r.json()["tags"], ["v1"])


class AdminAuthTests(AuthTestCase):
    __test__ = True

    @async_test
    async def test_onlyAdmins(self):
        await self.seed()
        for who, status in ((None, 401), ("mallory", 401), ("alice", 403), ("bob", 403)):
            r = await self.request("DELETE", "/admin/v1/repositories/team-b/app", headers=await self.headersFor(who))
            self.assertEqual(r.code, status, (who, r.body))
        r = await self.request("GET", "/v2/team-b/app/tags/list", headers=await self.headersFor("root"))
        self.assertEqual(r.json()["tags"], ["v1"])
        r = await self.request("DELETE", "/admin/v1/repositories/team-b/app", headers=await self.headersFor("root"))
        self.assertEqual(r.code, 202, r.body)
        r = await self.request("GET", "/v2/team-b/app/tags/list", headers=await self.headersFor("root"))
        self.assertEqual(r.code, 404)
