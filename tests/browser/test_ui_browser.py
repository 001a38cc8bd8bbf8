"""The web pages in a real browser (headless Chromium, Selenium) against a
twistd daemon that skopeo pushed into: a multi-arch index, single images,
an artifact referring to one of them (pushed over HTTP), repositories only
a login shows.  Home -> repository -> image, search (as you type, and the
form), log in, delete a tag with its confirmation, a phone's screen, the
keyboard; a screenshot of each page.

One browser and one daemon for the module (they are slow to start); each
test starts logged out, and no test needs another's changes."""

import base64
import json
import os
import shutil
import urllib.request

import pytest

from tests.browser import chrome
from tests.e2e import clients, oci
from tests.support import procs
from tests.unit.test_auth_helpers import writeHtpasswd

PASSWORDS = {"root": "root-secret-pw", "alice": "alice-secret-pw"}
CONFIG = """\
browser:
    storage: local
    loglevel: info
    search_backend: sqlalchemy
    auth:
        htpasswd: users.htpasswd
        mode: basic
        policy:
            admins: [root]
            anonymous:
                - {repository: "demo/*", actions: [pull]}
            users:
                alice:
                    - {repository: "team/*", actions: [pull]}
"""
ROOT = ("root", PASSWORDS["root"])
SBOM = "application/spdx+json"


def basic(user, password):
    return "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()


def put(daemon, path, data, contentType=None, method="PUT"):
    headers = {"Authorization": basic(*ROOT)}
    if contentType:
        headers["Content-Type"] = contentType
    status, h, body = clients.request(daemon, path, method=method, headers=headers, data=data)
    assert status in (201, 202), (path, status, body)
    return h


def pushReferrer(daemon, name, subject, size):
    """An SBOM for C{subject}: an artifact manifest with a subject, over HTTP."""
    empty, sbom = b"{}", json.dumps({"spdxVersion": "SPDX-2.3", "name": "demo"}).encode()
    for blob in (empty, sbom):
        put(daemon, "/v2/%s/blobs/uploads/?digest=%s" % (name, oci.sha256(blob)), blob, method="POST")
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": oci.MANIFEST, "artifactType": SBOM,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": oci.sha256(empty), "size": 2},
        "layers": [{"mediaType": SBOM, "digest": oci.sha256(sbom), "size": len(sbom)}],
        "subject": {"mediaType": oci.MANIFEST, "digest": subject, "size": size},
    }).encode()
    put(daemon, "/v2/%s/manifests/%s" % (name, oci.sha256(manifest)), manifest, oci.MANIFEST)
    return oci.sha256(manifest)


@pytest.fixture(scope="module")
def browser():
    driver = chrome.startBrowser()
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The daemon, filled by skopeo: demo/multi (an index of linux/amd64 and
    linux/arm64), demo/app:v1 and v2 (v1 with an SBOM), team/service:v1,
    doomed and spare (logins only)."""
    if not shutil.which("skopeo"):
        from tests.support.required import missing

        missing("skopeo is not installed")
    top = tmp_path_factory.mktemp("browser")
    conf = top / "conf"
    conf.mkdir()
    writeHtpasswd(str(conf / "users.htpasswd"), PASSWORDS)
    (conf / "config.yml").write_text(CONFIG)
    daemon = procs.startTxregistry(str(top / "data"), str(top), args=(
        "--config", str(conf / "config.yml"), "--flavor", "browser"))
    try:
        creds = "--dest-creds=%s:%s" % ROOT
        multi = oci.buildMultiArch(str(top / "multi"), seed=1, layerSize=64 * 1024)
        clients.push("oci:%s:multi" % (top / "multi",), daemon, "demo/multi:latest", "--all", creds)
        images = {}
        for repo, tag, seed in (("demo/app", "v1", 2), ("demo/app", "v2", 3), ("team/service", "v1", 4),
                                ("team/service", "doomed", 5), ("team/service", "spare", 6)):
            path = top / ("%s-%s" % (repo.replace("/", "-"), tag))
            images[repo, tag] = oci.buildImage(str(path), tag=tag, layers=2, seed=seed, layerSize=48 * 1024)
            clients.push("oci:%s:%s" % (path, tag), daemon, "%s:%s" % (repo, tag), creds)
        v1 = images["demo/app", "v1"]
        sbom = pushReferrer(daemon, "demo/app", v1.manifestDigest, len(v1.manifest))
        # The index has caught up when search finds what was pushed last.
        clients.getJSON(daemon, "/v1/search?q=demo")
        yield {"daemon": daemon, "multi": multi, "images": images, "sbom": sbom,
               "shots": chrome.screenshotDir(tmp_path_factory)}
    finally:
        daemon.stop()


@pytest.fixture
def page(browser, world):
    """The browser, logged out, at the home page."""
    browser.delete_all_cookies()
    browser.set_window_size(1280, 900)
    browser.get(world["daemon"].url + "/")
    return browser


def by(css):
    from selenium.webdriver.common.by import By

    return By.CSS_SELECTOR, css


def texts(driver, css):
    return [e.text for e in driver.find_elements(*by(css))]


def wait(driver, condition, timeout=10):
    from selenium.common.exceptions import (NoSuchElementException, StaleElementReferenceException,
                                            WebDriverException)
    from selenium.webdriver.support.ui import WebDriverWait

    def polled(d):
        try:
            return condition(d)
        except WebDriverException as e:
            # (ChromeDriver's other word for a stale element, seen in CI
            # while a page was replaced: "Node with given id does not
            # belong to the document")
            if "does not belong to the document" in str(e):
                return False
            raise

    # (polled while the next page loads: its elements come and go)
    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(driver, timeout, poll_frequency=0.05, ignored_exceptions=ignored).until(polled)


def shot(driver, world, name):
    return chrome.fullPage(driver, os.path.join(world["shots"], name + ".png"))


def logIn(driver, user):
    driver.find_element(*by("#user")).send_keys(user)
    driver.find_element(*by("#password")).send_keys(PASSWORDS[user])
    driver.find_element(*by("form.login button[type=submit]")).click()


def test_homeRepositoryImage(page, world):
    """Anonymous: home lists what anonymous may pull; click through to the
    index, then to one platform's image."""
    assert texts(page, "li.repo h2") == ["demo/app", "demo/multi"]
    assert "Log in" in page.find_element(*by("nav[aria-label=Account]")).text
    facts = page.find_element(*by("li.repo:nth-child(2) .facts")).text
    assert "1 tag" in facts and "kB" in facts and "just now" in facts
    shot(page, world, "home")
    page.find_element(*by("li.repo h2 a[href='/r/demo/multi']")).click()
    assert page.find_element(*by("h1")).text == "demo/multi"
    host = world["daemon"].host
    assert "docker pull %s/demo/multi" % (host,) in page.find_element(*by(".copyable code")).text
    assert "docker pull %s/demo/multi:latest" % (host,) in page.page_source
    platforms = texts(page, "ul.platforms li a")
    assert platforms == ["linux/amd64", "linux/arm64"]
    # JavaScript shows the copy buttons (hidden without it).
    assert page.find_element(*by("button.copy")).is_displayed()
    if chrome.os.environ.get("TXREGISTRY_UPDATE_SCREENSHOT") == "1":
        os.makedirs(os.path.dirname(chrome.README_SCREENSHOT), exist_ok=True)
        page.save_screenshot(chrome.README_SCREENSHOT)
    shot(page, world, "repository")
    page.find_element(*by("table.tags th a")).click()  # the tag: the index's page
    assert world["multi"].indexDigest in page.find_element(*by("h1")).text
    assert texts(page, "section ul.platforms li a") == ["linux/amd64", "linux/arm64"]
    shot(page, world, "index")
    page.find_element(*by("section ul.platforms li a")).click()
    image = world["multi"].images[0]
    assert image.manifestDigest in page.find_element(*by("h1")).text
    body = page.find_element(*by("main")).text
    assert "linux/amd64" in body and "/bin/sh" in body and "PATH=/usr/bin:/bin" in body
    assert len(page.find_elements(*by("table.layers tbody tr"))) == len(image.layerDigests)
    assert "txregistry e2e" in body  # the layers' history
    page.find_element(*by("details summary")).click()
    assert image.configDigest in page.find_element(*by("pre.raw")).text
    shot(page, world, "image")


def test_referrers(page, world):
    v1 = world["images"]["demo/app", "v1"]
    page.get(world["daemon"].url + "/r/demo/app/-/manifest/" + v1.manifestDigest)
    section = page.find_element(*by("ul.referrers")).text
    assert SBOM in section
    page.find_element(*by("ul.referrers a")).click()
    assert world["sbom"] in page.find_element(*by("h1")).text
    assert SBOM in page.find_element(*by("dl")).text
    page.find_element(*by("dl a")).click()  # back to its subject
    assert v1.manifestDigest in page.find_element(*by("h1")).text


def test_search(page, world):
    box = page.find_element(*by("#q"))
    box.send_keys("mul")
    wait(page, lambda d: d.find_element(*by("#suggestions")).is_displayed())
    assert texts(page, "#suggestions a") == ["demo/multi"]
    shot(page, world, "search-as-you-type")
    box.send_keys("ti\n")  # the form itself
    wait(page, lambda d: "Search results" in d.find_element(*by("h1")).text)
    assert texts(page, "li.repo h2") == ["demo/multi"]
    # Anonymous search finds nothing of team/*; the page says how to see more.
    page.get(world["daemon"].url + "/?q=service")
    assert texts(page, "li.repo h2") == []
    assert "Log in to see" in page.find_element(*by("main")).text
    shot(page, world, "search")


def test_logInThenDeleteATag(page, world):
    daemon = world["daemon"]
    page.get(daemon.url + "/r/team/service")
    assert page.current_url.startswith(daemon.url + "/-/login?next=")  # anonymous: log in first
    shot(page, world, "login")
    logIn(page, "root")
    wait(page, lambda d: d.current_url == daemon.url + "/r/team/service")
    assert "Signed in as root" in page.find_element(*by("header")).text
    assert {"doomed", "v1"} <= set(texts(page, "table.tags th a"))
    page.find_element(*by("a[aria-label='Delete tag doomed']")).click()
    assert page.find_element(*by("h1")).text == "Delete the tag team/service:doomed?"
    shot(page, world, "delete-confirmation")
    page.find_element(*by("main form button.danger")).click()
    wait(page, lambda d: "Deleted tag doomed." in d.find_element(*by("main")).text)
    assert "doomed" not in texts(page, "table.tags th a")
    shot(page, world, "deleted")
    assert "doomed" not in apiTags(daemon, "team/service")
    # Log out: the repository is behind the login again.
    page.find_element(*by("nav form button")).click()
    wait(page, lambda d: "Log in" in d.find_element(*by("nav[aria-label=Account]")).text)
    page.get(daemon.url + "/r/team/service")
    assert "/-/login" in page.current_url


def apiTags(daemon, name):
    request = urllib.request.Request(daemon.url + "/v2/%s/tags/list" % (name,), headers={"Authorization": basic(*ROOT)})
    with urllib.request.urlopen(request) as r:
        return json.load(r)["tags"]


def test_withoutJavaScript(page, world):
    """With scripts off: no copy buttons, and search, logging in and
    deleting work all the same (plain forms and links)."""
    daemon = world["daemon"]
    page.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    try:
        page.get(daemon.url + "/r/demo/app")
        # (is_displayed is a script itself: the button's box says it instead)
        assert page.find_element(*by("button.copy")).size == {"height": 0, "width": 0}
        box = page.find_element(*by("#q"))
        box.send_keys("app\n")
        wait(page, lambda d: "Search results" in d.find_element(*by("h1")).text)
        assert texts(page, "li.repo h2") == ["demo/app"]
        page.get(daemon.url + "/-/login")
        logIn(page, "root")
        wait(page, lambda d: "Signed in as root" in d.find_element(*by("header")).text)
        page.get(daemon.url + "/r/team/service?sort=name")
        page.find_element(*by("a[aria-label='Delete tag spare']")).click()
        page.find_element(*by("main form button.danger")).click()
        wait(page, lambda d: "Deleted tag spare." in d.find_element(*by("main")).text)
        assert "spare" not in apiTags(daemon, "team/service")
    finally:
        page.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})


def test_userWhoMayOnlyPull(page, world):
    daemon = world["daemon"]
    page.get(daemon.url + "/-/login")
    logIn(page, "alice")
    wait(page, lambda d: "Signed in as alice" in d.find_element(*by("header")).text)
    assert texts(page, "li.repo h2") == ["demo/app", "demo/multi", "team/service"]
    page.get(daemon.url + "/r/team/service")
    assert page.find_elements(*by("a.danger")) == []  # alice may not delete
    page.get(daemon.url + "/r/team/service/-/delete?ref=v1")
    assert "You may not delete" in page.find_element(*by("main")).text


def test_phoneAndKeyboard(page, world):
    """On a phone's screen nothing is wider than the screen; the keyboard
    reaches the skip link first, then the search box."""
    from selenium.webdriver.common.keys import Keys

    page.set_window_size(390, 844)
    page.get(world["daemon"].url + "/r/demo/app")
    overflow = page.execute_script("return document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    shot(page, world, "phone-repository")
    page.get(world["daemon"].url + "/")
    body = page.find_element(*by("body"))
    body.send_keys(Keys.TAB)
    assert page.switch_to.active_element.text == "Skip to content"
    page.switch_to.active_element.send_keys(Keys.TAB)
    page.switch_to.active_element.send_keys(Keys.TAB)
    assert page.switch_to.active_element.get_attribute("id") == "q"
    labels = page.find_elements(*by("label[for=q]"))
    assert labels, "the search box has a label"
