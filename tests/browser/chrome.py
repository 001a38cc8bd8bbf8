"""Headless Chromium from Debian's packages (chromium, chromium-driver),
driven by Selenium: one browser for a test module, and screenshots of the
pages it saw.

Screenshots go to C{$TXREGISTRY_SCREENSHOTS} when set (CI keeps that
directory as an artifact), else to the test session's temporary directory.
With C{TXREGISTRY_UPDATE_SCREENSHOT=1} the README's picture
(docs/screenshot.png) is written again too."""

import os
import shutil

from tests.support.required import missing

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
README_SCREENSHOT = os.path.join(REPO, "docs", "screenshot.png")


def startBrowser(width=1280, height=900):
    """A headless Chromium under Selenium, or the test is skipped (failed
    in CI) when either is missing."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        missing("selenium is not installed (pip install '.[test]')")
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        missing("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=%d,%d" % (width, height), "--lang=en-US", "--no-first-run",
                "--disable-extensions", "--disable-background-networking", "--disable-sync"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def screenshotDir(tmpFactory):
    path = os.environ.get("TXREGISTRY_SCREENSHOTS")
    if path:
        os.makedirs(path, exist_ok=True)
        return path
    return str(tmpFactory.mktemp("screenshots"))


def fullPage(driver, path):
    """A screenshot of the whole page (the window made as tall as it)."""
    size = driver.get_window_size()
    width = size["width"]
    chromeHeight = size["height"] - driver.execute_script("return window.innerHeight")
    height = driver.execute_script("return Math.max(document.documentElement.scrollHeight, 400)")
    driver.set_window_size(width, min(height + chromeHeight, 4000))
    try:
        driver.save_screenshot(path)
    finally:
        driver.set_window_size(width, size["height"])
    assert os.path.getsize(path) > 1000, path
    return path
