"""The web pages with logins on: each page and action for an anonymous
visitor, a user who may pull only some repositories, a user who may
delete, and an admin; the login form, sessions, logout and forged cookies.
The grants are the policy of L{tests.api.test_auth_http} (written out by
hand there)."""

import dataclasses
import os

from twisted.internet import reactor
from twisted.python.threadpool import ThreadPool

from tests.api.harness import async_test
from tests.api.test_auth_http import PASSWORDS, POLICY, basicHeader
from tests.ui.harness import UITestCase
from tests.unit.test_auth_helpers import settingsFrom, writeHtpasswd
from txregistry.auth import Authorizer

ROOT = {"Authorization": basicHeader("root", "root-pw")}
REPOSITORIES = ["public/app", "team-a/app", "team-b/app", "secret/app"]
# What each one's pages list, and where they are offered a delete (by hand).
SEES = {
    None: ["public/app"],
    "alice": ["public/app", "team-a/app"],
    "bob": ["public/app", "team-b/app"],
    "carol": ["public/app", "team-a/app"],
    "root": ["public/app", "secret/app", "team-a/app", "team-b/app"],
}
DELETES = {None: [], "alice": [], "bob": ["team-b/app"], "carol": [], "root": REPOSITORIES}


class AccessTests(UITestCase):
    authConfig = "auth:\n  htpasswd: htpasswd\n  mode: basic\n" + POLICY

    def makeAuthorizer(self):
        self.authDir = self.mktemp()
        os.makedirs(self.authDir)
        writeHtpasswd(os.path.join(self.authDir, "htpasswd"), PASSWORDS)
        pool = ThreadPool(0, 2, name="test-auth")
        pool.start()
        self.addCleanup(pool.stop)
        settings = dataclasses.replace(settingsFrom(self.authDir, self.authConfig), loginFailures=0)
        return Authorizer(settings, reactor, pool)

    async def fill(self):
        await self.started()
        digests = {}
        for name in REPOSITORIES:
            digests[name], _ = await self.pushImage(name, "v1", headers=ROOT)
            await self.pushImage(name, "v2", layers=(b"two",), headers=ROOT)
        await self.settled()
        return digests

    async def as_(self, who):
        self.cookies = {}
        if who is not None:
            r = await self.login(who, PASSWORDS[who])
            self.assertEqual(r.code, 303, r.html)

    def listed(self, r):
        return sorted({l[3:] for l in r.parsed.links if l.startswith("/r/") and "/-/" not in l})

    @async_test
    async def test_eachCaller(self):
        found = await self.fill()
        for who in (None, "alice", "bob", "carol", "root"):
            await self.as_(who)
            home = await self.page("/")
            self.assertEqual(home.code, 200)
            self.assertEqual(self.listed(home), SEES[who], who)
            if who is None:
                self.assertIn("/-/login", home.parsed.links)
            else:
                self.assertIn("Signed in as %s" % (who,), home.parsed.text)
            search = await self.page("/?q=app")
            self.assertEqual(self.listed(search), SEES[who], who)
            self.assertIn("%d repositor" % (len(SEES[who]),), search.parsed.text)
            for name in REPOSITORIES:
                pages = ["/r/" + name, "/r/%s/-/manifest/%s" % (name, found[name]), "/r/%s/-/delete?ref=v2" % (name,)]
                for path in pages[:2]:
                    r = await self.page(path)
                    if name in SEES[who]:
                        self.assertEqual(r.code, 200, (who, path))
                        deletes = [l for l in r.parsed.links if "/-/delete" in l]
                        self.assertEqual(bool(deletes), name in DELETES[who], (who, path))
                    elif who is None:
                        self.assertEqual(r.code, 303, (who, path))  # to the login page
                        self.assertTrue(r.header("location").startswith(b"/-/login?next="))
                    else:
                        self.assertEqual(r.code, 404, (who, path))
                        self.assertNotIn("v1", r.parsed.text)
                r = await self.page(pages[2])
                if name in DELETES[who]:
                    self.assertEqual(r.code, 200, (who, name))
                else:
                    self.assertIn(r.code, (303, 403, 404), (who, name))

    @async_test
    async def test_deleteRefusedWithoutGrant(self):
        await self.fill()
        await self.as_("bob")
        r = await self.page("/r/team-b/app/-/delete?ref=v2")
        form = r.parsed.form("/-/delete")["fields"]
        # bob's own form, sent for a repository he may pull but not delete.
        await self.as_("alice")
        r = await self.page("/r/team-a/app/-/delete?ref=v2")
        self.assertEqual(r.code, 403)
        home = await self.page("/")
        r = await self.page("/r/team-a/app/-/delete", "POST", {"ref": "v2", "csrf": home.parsed.form("/-/logout")[
            "fields"]["csrf"]})
        self.assertEqual(r.code, 403)
        tags = await self.request("GET", "/v2/team-a/app/tags/list", headers=ROOT)
        self.assertEqual(tags.json()["tags"], ["v1", "v2"])
        # bob deletes in team-b; the event (notifications, the index) says he did.
        heard = []
        self.registry.events.add(heard.append, ("delete",))
        await self.as_("bob")
        r = await self.page("/r/team-b/app/-/delete?ref=v2")
        r = await self.page("/r/team-b/app/-/delete", "POST", r.parsed.form("/-/delete")["fields"])
        self.assertEqual(r.code, 303)
        self.assertEqual([(e.repository, e.tag, e.request.user, e.request.method) for e in heard],
                         [("team-b/app", "v2", "bob", "POST")])
        tags = await self.request("GET", "/v2/team-b/app/tags/list", headers=ROOT)
        self.assertEqual(tags.json()["tags"], ["v1"])
        self.assertTrue(form)

    @async_test
    async def test_loginLogout(self):
        await self.fill()
        r = await self.page("/r/team-a/app?sort=name")
        self.assertEqual(r.code, 303)
        r = await self.page(r.header("location").decode())
        self.assertEqual(r.code, 200)
        form = r.parsed.form("/-/login")["fields"]
        self.assertEqual(form["next"], "/r/team-a/app?sort=name")
        # Wrong password: the form again, no session.
        r = await self.page("/-/login", "POST", dict(form, user="alice", password="wrong"))
        self.assertEqual(r.code, 401)
        self.assertIn("Wrong user name or password.", r.parsed.text)
        self.assertNotIn("Signed in", r.parsed.text)
        # No CSRF token: refused before the password is looked at.
        r = await self.page("/-/login", "POST", {"user": "alice", "password": "alice-pw"})
        self.assertEqual(r.code, 403)
        before = dict(self.cookies)
        r = await self.page("/-/login", "POST", dict(form, user="alice", password="alice-pw"))
        self.assertEqual(r.code, 303)
        self.assertEqual(r.header("location"), b"/r/team-a/app?sort=name")
        self.assertNotEqual(before, self.cookies)  # a new session
        self.assertNotIn("alice-pw", str(self.cookies))
        r = await self.page("/r/team-a/app?sort=name")
        self.assertEqual(r.code, 200)
        # Log out: anonymous again.
        r = await self.page("/-/logout", "POST", r.parsed.form("/-/logout")["fields"])
        self.assertEqual(r.code, 303)
        r = await self.page("/r/team-a/app")
        self.assertEqual(r.code, 303)

    @async_test
    async def test_nextStaysHere(self):
        await self.started()
        for nxt in ("//evil.example/", "http://evil.example/", "/\\evil.example", "javascript:alert(1)"):
            self.cookies = {}
            form = (await self.page("/-/login")).parsed.form("/-/login")["fields"]
            r = await self.page("/-/login", "POST", dict(form, user="bob", password="bob-pw", next=nxt))
            self.assertEqual(r.code, 303)
            self.assertEqual(r.header("location"), b"/", nxt)

    @async_test
    async def test_forgedCookie(self):
        await self.fill()
        await self.as_("alice")
        value = self.cookies["txr_session"]
        sid, expires, user, mac = value.split(".")
        import base64

        root = base64.urlsafe_b64encode(b"root").rstrip(b"=").decode()
        for forged in (".".join([sid, expires, root, mac]), ".".join([sid, str(int(expires) + 10 ** 6), user, mac]),
                       "garbage", value[:-2]):
            self.cookies = {"txr_session": forged}
            r = await self.page("/")
            self.assertEqual(self.listed(r), SEES[None], forged)

    @async_test
    async def test_removedUserLosesSession(self):
        await self.fill()
        await self.as_("alice")
        del self.authorizer.settings.users["alice"]
        r = await self.page("/")
        self.assertEqual(self.listed(r), SEES[None])


class BearerModeTests(AccessTests):
    """In bearer mode the pages log in with the same htpasswd users (the
    API's clients get tokens; the pages keep a session)."""

    authConfig = "auth:\n  htpasswd: htpasswd\n  mode: bearer\n" + POLICY

    async def fill(self):
        await self.started()
        return {}

    @async_test
    async def test_eachCaller(self):
        await self.started()
        for who in (None, "alice", "root"):
            await self.as_(who)
            r = await self.page("/")
            self.assertEqual(r.code, 200)

    test_deleteRefusedWithoutGrant = None
    test_removedUserLosesSession = None
    test_forgedCookie = None
    test_loginLogout = None
