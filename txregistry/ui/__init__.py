"""The web pages: browse, search and manage images in a browser, served by
the daemon on its main port (L{txregistry.ui.app.WebUI}), on top of the
same registry, search and access objects as the API."""

from txregistry.ui.settings import UIConfigError, UISettings, parseUI

__all__ = ["UIConfigError", "UISettings", "parseUI", "WebUI"]


def __getattr__(name):
    if name == "WebUI":
        from txregistry.ui.app import WebUI

        return WebUI
    raise AttributeError(name)
