"""The web pages over HTTP, without logins: what each page shows, paging,
sorting, search, escaping, the headers that guard them, static assets,
deletes with confirmation and CSRF, read-only mode, turning the pages off
or moving them."""

import json

from tests.api.harness import async_test
from tests.ui.harness import UITestCase
from txregistry import digest as digests
from txregistry.ui.settings import UISettings

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class ImagesMixin:
    async def pushConfigured(self, name, tag, config, layers=(b"layer-one",), annotations=None, created=None):
        config = dict(config)
        if created:
            config["created"] = created
        raw = json.dumps(config).encode()
        cd = await self.pushBlob(name, raw)
        descs = []
        for layer in layers:
            ld = await self.pushBlob(name, layer)
            descs.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": ld, "size": len(layer)})
        doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
               "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": len(raw)},
               "layers": descs}
        if annotations:
            doc["annotations"] = annotations
        r, body = await self.pushManifest(name, tag, doc)
        self.assertEqual(r.code, 201, r.body)
        return digests.of(body), body

    async def pushIndex(self, name, tag):
        children = []
        for arch in ("amd64", "arm64"):
            d, body = await self.pushConfigured(name, digests.of(b"x") if False else "tmp-" + arch,
                                                {"architecture": arch, "os": "linux"}, [arch.encode() * 100])
            children.append({"mediaType": OCI_MANIFEST, "digest": d, "size": len(body),
                             "platform": {"architecture": arch, "os": "linux"}})
            await self.request("DELETE", "/v2/%s/manifests/tmp-%s" % (name, arch))
        r, body = await self.pushManifest(name, tag, {"schemaVersion": 2, "mediaType": OCI_INDEX,
                                                      "manifests": children}, OCI_INDEX)
        self.assertEqual(r.code, 201, r.body)
        return digests.of(body), [c["digest"] for c in children]

    async def pushReferrer(self, name, subject, artifactType="application/vnd.example.sbom"):
        empty = b"{}"
        ed = await self.pushBlob(name, empty)
        blob = await self.pushBlob(name, b"an sbom")
        doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifactType,
               "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": ed, "size": 2},
               "layers": [{"mediaType": "text/plain", "digest": blob, "size": 7}],
               "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1}}
        body = json.dumps(doc).encode()
        r, _ = await self.pushManifest(name, digests.of(body), body)
        self.assertEqual(r.code, 201, r.body)
        return digests.of(body)


class PagesTests(ImagesMixin, UITestCase):
    @async_test
    async def test_emptyHome(self):
        await self.started()
        r = await self.page("/")
        self.assertEqual(r.code, 200)
        self.assertIn(b"text/html", r.header("content-type"))
        self.assertIn("No repositories yet.", r.parsed.text)
        self.assertIn("docker push 127.0.0.1:%d/NAME:TAG" % (self.port.getHost().port,), r.parsed.text)

    @async_test
    async def test_guardHeaders(self):
        await self.started()
        r = await self.page("/")
        csp = r.header("content-security-policy").decode()
        self.assertIn("default-src 'none'", csp)
        self.assertIn("script-src 'self'", csp)
        self.assertNotIn("unsafe-inline", csp)
        self.assertEqual(r.header("x-frame-options"), b"DENY")
        self.assertEqual(r.header("x-content-type-options"), b"nosniff")
        self.assertEqual(r.header("cache-control"), b"no-store")
        cookie = r.headers.getRawHeaders(b"set-cookie")[0].decode()
        self.assertIn("HttpOnly", cookie)
        self.assertIn("SameSite=Strict", cookie)
        self.assertIn("Path=/", cookie)

    @async_test
    async def test_apiUnchanged(self):
        """The pages are not in the way of the API: /v2/, /v1/ and unknown
        paths answer as before."""
        await self.started()
        r = await self.request("GET", "/v2/")
        self.assertEqual(r.code, 200)
        self.assertEqual(r.json(), {})
        r = await self.request("GET", "/v1/_ping")
        self.assertEqual(r.code, 200)
        r = await self.request("GET", "/nothing-here")
        self.assertEqual(r.code, 404)
        self.assertEqual(r.error(), "UNSUPPORTED")

    @async_test
    async def test_homeListsRepositories(self):
        await self.started()
        await self.pushConfigured("library/alpine", "3.18", {"architecture": "amd64", "os": "linux"}, [b"y" * 100])
        await self.pushConfigured("library/alpine", "3.19", {"architecture": "amd64", "os": "linux"},
                                  [b"x" * 2500], annotations={"org.opencontainers.image.description": "Tiny Linux"})
        await self.pushImage("other/app", "v1")
        await self.settled()
        r = await self.page("/")
        text = r.parsed.text
        self.assertIn("library/alpine", text)
        self.assertIn("Tiny Linux", text)
        self.assertIn("2 tags", text)
        self.assertIn("other/app", text)
        self.assertIn("1 tag", text)
        self.assertIn("/r/library/alpine", r.parsed.links)
        self.assertIn("pushed just now", text)

    @async_test
    async def test_homePaging(self):
        await self.started()
        self.app.ui.settings = UISettings(pageSize=2)
        for name in ("a/one", "b/two", "c/three", "d/four", "e/five"):
            await self.pushImage(name, "v1")
        await self.settled()
        seen = []
        path = "/"
        for _ in range(5):
            r = await self.page(path)
            seen.extend(l[3:] for l in r.parsed.links if l.startswith("/r/"))
            following = [l for l in r.parsed.links if "last=" in l]
            if not following:
                break
            path = following[0]
        self.assertEqual(seen, ["a/one", "b/two", "c/three", "d/four", "e/five"])

    @async_test
    async def test_search(self):
        await self.started()
        await self.pushImage("tools/curl", "v1")
        await self.pushImage("curl", "v1")
        await self.pushImage("library/bash", "v1")
        await self.pushConfigured("x/y", "v1", {}, annotations={"org.opencontainers.image.description": "has curl in it"})
        await self.settled()
        r = await self.page("/?q=curl")
        repos = [l[3:] for l in r.parsed.links if l.startswith("/r/")]
        # /v1/search's ranking: exact, then a path component, then the description.
        v1 = (await self.request("GET", "/v1/search?q=curl")).json()
        self.assertEqual(repos, [x["name"] for x in v1["results"]])
        self.assertEqual(repos, ["curl", "tools/curl", "x/y"])
        self.assertIn("3 repositories found", r.parsed.text)
        r = await self.page("/-/suggest?q=cur")
        self.assertEqual([x["name"] for x in json.loads(r.body)][:2], ["curl", "tools/curl"])

    @async_test
    async def test_repositoryPage(self):
        await self.started()
        d1, _ = await self.pushConfigured("team/app", "b-older", {"architecture": "amd64", "os": "linux"}, [b"1" * 1500],
                                          created="2024-01-02T03:04:05Z")
        d2, _ = await self.pushConfigured("team/app", "a-newer", {"architecture": "amd64", "os": "linux"}, [b"2" * 10])
        idx, children = await self.pushIndex("team/app", "multi")
        r = await self.page("/r/team/app")
        self.assertEqual(r.code, 200)
        text = r.parsed.text
        host = "127.0.0.1:%d" % (self.port.getHost().port,)
        self.assertIn("docker pull %s/team/app:multi" % (host,), text)
        # Newest push first by default; by name on request.
        order = [l.rsplit("/", 1)[1] for l in r.parsed.links if "/-/manifest/" in l and l.endswith((d1, d2, idx))]
        self.assertEqual(order, [idx, d2, d1])
        self.assertIn("linux/amd64", text)
        self.assertIn("linux/arm64", text)
        for child in children:
            self.assertIn("/r/team/app/-/manifest/" + child, r.parsed.links)
        self.assertIn("1.6 kB", text)  # 1500 bytes of layer, and the config
        self.assertIn("2024-01-02", r.html)  # the created time
        r = await self.page("/r/team/app?sort=name")
        names = [t for t in ("a-newer", "b-older", "multi") if t in r.parsed.text]
        order = [l.rsplit("/", 1)[1] for l in r.parsed.links if "/-/manifest/" in l and l.endswith((d1, d2, idx))]
        self.assertEqual(order, [d2, d1, idx])
        self.assertEqual(names, ["a-newer", "b-older", "multi"])
        r = await self.page("/r/team/app?sort=size")
        self.assertEqual(r.code, 400)
        r = await self.page("/r/no/such")
        self.assertEqual(r.code, 404)

    @async_test
    async def test_tagPaging(self):
        await self.started()
        self.app.ui.settings = UISettings(pageSize=3)
        for i in range(7):
            await self.pushImage("many/tags", "t%d" % (i,))
        tags = []
        path = "/r/many/tags?sort=name"
        while path:
            r = await self.page(path)
            tags.extend(row for row in ("t%d" % i for i in range(7)) if ">%s</a>" % (row,) in r.html)
            nxt = [l for l in r.parsed.links if "page=" in l and l not in path and "Next" in r.html]
            following = [l for l in nxt if int(l.rsplit("page=", 1)[1]) > int(path.rsplit("page=", 1)[1]
                                                                               if "page=" in path else 1)]
            path = following[0].replace("&amp;", "&") if following else None
        self.assertEqual(tags, ["t%d" % i for i in range(7)])

    @async_test
    async def test_imagePage(self):
        await self.started()
        config = {"architecture": "arm64", "os": "linux", "config": {
            "Entrypoint": ["/bin/server"], "Cmd": ["--port", "8080"], "Env": ["PATH=/usr/bin", "MODE=prod"],
            "Labels": {"org.example.team": "payments"}, "ExposedPorts": {"8080/tcp": {}}, "WorkingDir": "/srv"},
            "history": [{"created_by": "ADD rootfs.tar /", "created": "2024-05-01T00:00:00Z"},
                        {"created_by": "ENV MODE=prod", "empty_layer": True},
                        {"created_by": "COPY server /bin/server"}]}
        d, body = await self.pushConfigured("svc/api", "v2", config, [b"a" * 3000, b"b" * 20])
        ref = await self.pushReferrer("svc/api", d)
        sig = await self.pushReferrer("svc/api", d, "application/vnd.dev.cosign.artifact.sig.v1+json")
        r = await self.page("/r/svc/api/-/manifest/" + d)
        self.assertEqual(r.code, 200)
        text = r.parsed.text
        for expected in ("/bin/server", "--port 8080", "PATH=/usr/bin", "org.example.team", "payments", "8080/tcp",
                         "/srv", "linux/arm64", "ADD rootfs.tar /", "ENV MODE=prod", "COPY server /bin/server",
                         "3.0 kB", "20 B", "application/vnd.example.sbom",
                         "application/vnd.dev.cosign.artifact.sig.v1+json", "Raw manifest", "v2"):
            self.assertIn(expected, text)
        self.assertIn("/r/svc/api/-/manifest/" + ref, r.parsed.links)
        self.assertIn("/r/svc/api/-/manifest/" + sig, r.parsed.links)
        self.assertIn(json.loads(body)["config"]["digest"], r.html)  # the raw manifest
        r = await self.page("/r/svc/api/-/manifest/" + ref)
        self.assertEqual(r.code, 200)
        self.assertIn("/r/svc/api/-/manifest/" + d, r.parsed.links)  # its subject
        r = await self.page("/r/svc/api/-/manifest/sha256:" + "0" * 64)
        self.assertEqual(r.code, 404)
        r = await self.page("/r/svc/api/-/manifest/nonsense")
        self.assertEqual(r.code, 404)
        r = await self.page("/r/other/repo/-/manifest/" + d)  # not that repository's
        self.assertEqual(r.code, 404)

    @async_test
    async def test_hostileTextEscaped(self):
        await self.started()
        evil = '<script>alert(1)</script>"\'><img src=x onerror=alert(2)>'
        config = {"config": {"Labels": {evil: evil}, "Env": [evil], "Cmd": [evil]}}
        d, _ = await self.pushConfigured("evil/repo", "v1", config,
                                         annotations={"org.opencontainers.image.description": evil,
                                                      evil: evil})
        await self.settled()
        for path in ("/", "/?q=evil", "/r/evil/repo", "/r/evil/repo/-/manifest/" + d, "/?q=" + evil.replace(
                "&", "%26").replace("#", "%23").replace(" ", "+")):
            r = await self.page(path)
            self.assertNotIn("<script>alert", r.html, path)
            self.assertNotIn("<img src=x", r.html, path)
            if path != "/r/evil/repo":  # (which shows none of it)
                self.assertIn("&lt;script&gt;alert(1)&lt;/script&gt;", r.html, path)
        r = await self.page("/r/%3Cscript%3E/x")
        self.assertEqual(r.code, 404)
        self.assertNotIn("<script>", r.html)

    @async_test
    async def test_deleteTagWithConfirmation(self):
        await self.started()
        d, _ = await self.pushImage("team/app", "v1")
        await self.pushImage("team/app", "v2", layers=(b"other",))
        r = await self.page("/r/team/app")
        self.assertIn("/r/team/app/-/delete?ref=v1", r.parsed.links)
        r = await self.page("/r/team/app/-/delete?ref=v1")  # the confirmation: nothing deleted yet
        self.assertEqual(r.code, 200)
        self.assertIn("Delete the tag team/app:v1?", r.parsed.text)
        self.assertEqual((await self.request("GET", "/v2/team/app/tags/list")).json()["tags"], ["v1", "v2"])
        form = r.parsed.form("/r/team/app/-/delete")
        # Without the CSRF token, or with another's, or from another site: refused.
        r2 = await self.page("/r/team/app/-/delete", "POST", {"ref": "v1"})
        self.assertEqual(r2.code, 403)
        r2 = await self.page("/r/team/app/-/delete", "POST", {"ref": "v1", "csrf": "forged"})
        self.assertEqual(r2.code, 403)
        r2 = await self.page("/r/team/app/-/delete", "POST", form["fields"], headers={"Origin": "http://evil.example"})
        self.assertEqual(r2.code, 403)
        r2 = await self.page("/r/team/app/-/delete", "POST", form["fields"], cookies=False)
        self.assertEqual(r2.code, 403)
        self.assertEqual((await self.request("GET", "/v2/team/app/tags/list")).json()["tags"], ["v1", "v2"])
        r = await self.page("/r/team/app/-/delete", "POST", form["fields"])
        self.assertEqual(r.code, 303)
        self.assertEqual((await self.request("GET", "/v2/team/app/tags/list")).json()["tags"], ["v2"])
        r = await self.page(r.header("location").decode())
        self.assertIn("Deleted tag v1.", r.parsed.text)
        self.assertNotIn(">v1<", r.html)
        # The manifest stays, by digest.
        self.assertEqual((await self.request("GET", "/v2/team/app/manifests/" + d)).code, 200)

    @async_test
    async def test_deleteManifest(self):
        await self.started()
        d, _ = await self.pushImage("team/app", "v1")
        r = await self.page("/r/team/app/-/manifest/" + d)
        self.assertIn("/r/team/app/-/delete?ref=" + d.replace(":", "%3A"), r.parsed.links)
        r = await self.page("/r/team/app/-/delete?ref=" + d)
        self.assertIn("Every tag naming it goes too: v1.", r.parsed.text)
        r = await self.page("/r/team/app/-/delete", "POST", r.parsed.form("/-/delete")["fields"])
        self.assertEqual(r.code, 303)
        self.assertEqual((await self.request("GET", "/v2/team/app/manifests/" + d)).code, 404)
        r = await self.page("/r/team/app/-/delete?ref=nope")
        self.assertEqual(r.code, 404)

    @async_test
    async def test_readonly(self):
        await self.started()
        d, _ = await self.pushImage("team/app", "v1")
        r = await self.page("/r/team/app/-/delete?ref=v1")
        form = r.parsed.form("/-/delete")["fields"]
        self.app.readonly = True
        r = await self.page("/r/team/app")
        self.assertIn("This registry is read-only", r.parsed.text)
        self.assertFalse([l for l in r.parsed.links if "/-/delete" in l])
        r = await self.page("/r/team/app/-/manifest/" + d)
        self.assertFalse([l for l in r.parsed.links if "/-/delete" in l])
        r = await self.page("/r/team/app/-/delete", "POST", form)
        self.assertEqual(r.code, 403)
        self.assertEqual((await self.request("GET", "/v2/team/app/tags/list")).json()["tags"], ["v1"])

    @async_test
    async def test_static(self):
        r = await self.page("/")
        css = [l for l in r.html.split('"') if "/-/static/ui.css?v=" in l][0]
        r = await self.page(css)
        self.assertEqual(r.code, 200)
        self.assertEqual(r.header("content-type"), b"text/css; charset=utf-8")
        self.assertIn(b"immutable", r.header("cache-control"))
        etag = r.header("etag")
        r = await self.page(css, headers={"If-None-Match": etag.decode()})
        self.assertEqual(r.code, 304)
        r = await self.page("/-/static/ui.js")
        self.assertEqual(r.header("content-type"), b"text/javascript; charset=utf-8")
        r = await self.page("/-/static/../../etc/passwd")
        self.assertEqual(r.code, 404)

    @async_test
    async def test_loginWithoutAuth(self):
        r = await self.page("/-/login")
        self.assertEqual(r.code, 303)


class MovedPagesTests(UITestCase):
    uiSettings = UISettings(path="/ui/", sessionSecret="test-secret-0123456789")
    withSearch = False

    @async_test
    async def test_underPrefix(self):
        await self.pushImage("team/app", "v1")
        r = await self.page("/ui")
        self.assertEqual(r.code, 308)
        r = await self.page("/ui/")
        self.assertEqual(r.code, 200)
        self.assertIn("/ui/r/team/app", r.parsed.links)
        r = await self.page("/ui/r/team/app")
        self.assertEqual(r.code, 200)
        self.assertIn("v1", r.parsed.text)
        r = await self.page("/")
        self.assertEqual(r.code, 404)  # the API's answer
        r = await self.page("/ui/?q=team")
        self.assertIn("Search is turned off", r.parsed.text)


class PagesOffTests(UITestCase):
    withSearch = False

    def serve(self):
        UITestCase.serve(self)
        self.app.ui = None  # as the service leaves it with ui: false

    @async_test
    async def test_off(self):
        r = await self.request("GET", "/")
        self.assertEqual(r.code, 404)
        self.assertEqual(r.error(), "UNSUPPORTED")


class NoticeTests(UITestCase):
    withSearch = False

    @async_test
    async def test_madeUpNoticeNotShown(self):
        await self.pushImage("team/app", "v1")
        r = await self.page("/r/team/app?deleted=your+account%2C+call+us")
        self.assertEqual(r.code, 200)
        self.assertNotIn("Deleted", r.parsed.text)


class OddContentTests(ImagesMixin, UITestCase):
    withSearch = False

    @async_test
    async def test_oddConfigs(self):
        """Configs that are not what an image's config should be still give
        a page (what can be read of them)."""
        for i, raw in enumerate([b"not json", b"[1, 2]", json.dumps({"config": "string", "history": "x",
                                                                       "created": 42}).encode(),
                                 json.dumps({"config": {"Labels": ["a"], "Env": "PATH", "ExposedPorts": [80],
                                                        "Cmd": "sh"}, "history": [1, None, {}]}).encode()]):
            name = "odd/c%d" % (i,)
            cd = await self.pushBlob(name, raw)
            doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                   "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd,
                              "size": len(raw)}, "layers": []}
            r, body = await self.pushManifest(name, "v1", doc)
            self.assertEqual(r.code, 201, r.body)
            for path in ("/r/" + name, "/r/%s/-/manifest/%s" % (name, digests.of(body)), "/"):
                page = await self.page(path)
                self.assertEqual(page.code, 200, (path, page.html[-500:]))

    @async_test
    async def test_pushesAndDeletesThroughTheAPIShowAtOnce(self):
        await self.pushImage("team/app", "v1")
        r = await self.page("/r/team/app")
        self.assertIn(">v1</a>", r.html)
        await self.pushImage("team/app", "v2", layers=(b"new",))
        r = await self.page("/r/team/app")
        self.assertIn(">v2</a>", r.html)
        self.assertIn("2 tags", r.parsed.text)
        r = await self.request("DELETE", "/v2/team/app/manifests/v1")
        self.assertEqual(r.code, 202)
        r = await self.page("/r/team/app")
        self.assertNotIn(">v1</a>", r.html)
        self.assertIn("1 tag", r.parsed.text)


class IndexDownTests(UITestCase):
    @async_test
    async def test_indexUnavailable(self):
        """The index cannot answer: search is a 503 page, the home page
        lists from storage."""
        await self.started()
        await self.pushImage("team/app", "v1")
        await self.settled()
        self.updater.healthy = False  # (as after a failed write: the repair loop would retry)
        r = await self.page("/?q=team")
        self.assertEqual(r.code, 503)
        self.assertIn("The search index is unavailable; retry later.", r.parsed.text)
        r = await self.page("/")
        self.assertEqual(r.code, 200)
        self.assertIn("/r/team/app", r.parsed.links)
        self.updater.healthy = True


class BadInputTests(UITestCase):
    @async_test
    async def test_badQueries(self):
        await self.started()
        await self.pushImage("team/app", "v1")
        for path, status in [("/?q=x&page=0", 400), ("/?q=x&page=abc", 400), ("/?last=" + "a" * 300, 400),
                             ("/?q=%ff", 200), ("/r/team/app?page=-1", 400), ("/r/" + "a" * 300, 404),
                             ("/r/team/app/-/manifest/" + "x" * 5000, 404), ("/-/nothing", 404),
                             ("/?last=%00%ed%a0%80", 200), ("/?q=" + "%25" * 300, 200)]:
            r = await self.page(path)
            self.assertEqual(r.code, status, path)
            self.assertTrue(r.header("content-security-policy"), path)
        r = await self.page("/-/logout")  # GET: the route takes POST only
        self.assertEqual(r.code, 405)
        r = await self.page("/-/logout", "POST", {"csrf": "x" * 100000})  # beyond what a form may be
        self.assertEqual(r.code, 413)


class ManyTagsTests(UITestCase):
    @async_test
    async def test_homeDoesNotWaitForManyTags(self):
        """A repository of more tags than the home page reads at once: its
        tag count and last push (the index's) now, its size once its tags
        were read in the background."""
        from twisted.internet import reactor
        from twisted.internet.task import deferLater

        from txregistry.ui import data

        self.patch(data, "QUICK_TAGS", 2)
        await self.started()
        for i in range(4):
            await self.pushImage("many/tags", "t%d" % (i,), layers=(b"x" * 2000,))
        await self.settled()
        browser = self.app.ui.browser
        browser.tagTimes.forget("many/tags")
        r = await self.page("/")
        facts = r.parsed.text
        self.assertIn("4 tags", facts)
        self.assertIn("pushed just now", facts)
        self.assertNotIn("kB", facts)
        for _ in range(500):  # the background read: polled
            if browser.tagTimes.cached("many/tags") is not None:
                break
            await deferLater(reactor, 0.01, lambda: None)
        r = await self.page("/")
        self.assertIn("2.0 kB", r.parsed.text)  # (2000 bytes of layer, and the config)
        # By name, a page of them without reading the others' push times.
        browser.tagTimes.forget("many/tags")
        self.app.ui.settings = type(self.app.ui.settings)(pageSize=2)
        r = await self.page("/r/many/tags?sort=name&page=2")
        self.assertIn(">t2</a>", r.html)
        self.assertIn(">t3</a>", r.html)
        self.assertNotIn(">t1</a>", r.html)
        self.assertIn("4 tags", r.parsed.text)
        self.assertIsNone(browser.tagTimes.cached("many/tags"))
