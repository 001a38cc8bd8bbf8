"""The web pages on an in-process registry over a real socket, and a small
browser-less client: cookies, forms and links read from the HTML."""

import os
import shutil
import tempfile
from html.parser import HTMLParser
from urllib.parse import urlencode

from twisted.internet import reactor
from twisted.python.threadpool import ThreadPool

from tests.api.harness import RegistryTestCase
from txregistry.search.index import SearchIndex
from txregistry.search.updater import IndexUpdater
from txregistry.ui.app import WebUI
from txregistry.ui.settings import UISettings


class Page(HTMLParser):
    """What a test reads of a page: the links, the forms (action, method,
    fields), the text."""

    def __init__(self, html):
        HTMLParser.__init__(self)
        self.links, self.forms, self.texts, self._form = [], [], [], None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "a" and "href" in attrs:
            self.links.append(attrs["href"])
        elif tag == "form":
            self._form = {"action": attrs.get("action"), "method": attrs.get("method", "get"), "fields": {}}
            self.forms.append(self._form)
        elif tag in ("input", "button") and self._form is not None and attrs.get("name"):
            self._form["fields"][attrs["name"]] = attrs.get("value", "")

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None

    def handle_data(self, data):
        self.texts.append(data)

    @property
    def text(self):
        return " ".join(" ".join(self.texts).split())

    def form(self, action):
        found = [f for f in self.forms if f["action"] and f["action"].endswith(action)]
        assert found, "no form to %s in %r" % (action, self.forms)
        return found[0]


class UITestCase(RegistryTestCase):
    uiSettings = UISettings(sessionSecret="test-secret-0123456789")
    withSearch = True

    def serve(self):
        RegistryTestCase.serve(self)
        self.app.ui = WebUI(self.app, self.uiSettings)
        self.cookies = {}

    def makeSearch(self):
        if not self.withSearch:
            return None
        pool = ThreadPool(1, 1, name="test-index")
        pool.start()
        self.addCleanup(pool.stop)
        d = tempfile.mkdtemp(prefix="txregistry-ui-index-")
        self.addCleanup(shutil.rmtree, d, True)
        self.index = SearchIndex("sqlite:///" + os.path.join(d, "search.db"), reactor, pool, readTimeout=10)
        self.addCleanup(self.index.engine.dispose)
        updater = IndexUpdater(self.index, self.registry, reactor)
        self.addCleanup(updater.stop)
        self.addCleanup(updater.settled)
        return updater

    async def started(self):
        if self.updater is not None:
            await self.updater.start()

    async def settled(self):
        if self.updater is not None:
            await self.updater.settled()

    async def page(self, path, method="GET", form=None, headers=None, cookies=True):
        headers = dict(headers or {})
        if cookies and self.cookies:
            headers["Cookie"] = "; ".join("%s=%s" % kv for kv in self.cookies.items())
        body = None
        if form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        r = await self.request(method, path, body, headers)
        if cookies:
            for value in r.headers.getRawHeaders(b"set-cookie") or []:
                pair = value.decode().split(";", 1)[0]
                name, _, v = pair.partition("=")
                if v:
                    self.cookies[name] = v
                else:
                    self.cookies.pop(name, None)
        r.html = r.body.decode("utf-8", "replace")
        r.parsed = Page(r.html) if r.header("content-type", ) and b"html" in r.header("content-type") else None
        return r

    async def login(self, user, password):
        r = await self.page("/-/login")
        form = r.parsed.form("/-/login")["fields"]
        r = await self.page("/-/login", "POST", dict(form, user=user, password=password))
        return r
