"""A storage driver measured: each operation's latency, and its failures,
by driver and operation."""

import time

from twisted.internet.defer import Deferred
from zope.interface import alsoProvides, implementer

from txregistry.storage import PathNotFound
from txregistry.storage.interface import IStatChildren, IStorageDriver, ITouch

OPERATIONS = ("getContent", "getContentChain", "putContent", "reader", "writer", "stat", "list", "move",
              "delete", "redirectURL")
# The optional extensions, offered (and measured) when the driver has them.
OPTIONAL = {"touch": ITouch, "statChildren": IStatChildren}


def _timed(self, operation, method, args, kwargs):
    started = time.monotonic()
    d = method(*args, **kwargs)
    if not isinstance(d, Deferred):
        self._metrics.storage(self._name, operation, time.monotonic() - started, False)
        return d

    def done(result, failed):
        self._metrics.storage(self._name, operation, time.monotonic() - started, failed)
        return result

    d.addCallbacks(done, lambda f: done(f, not f.check(PathNotFound)), callbackArgs=(False,))
    return d


def _measured(operation):
    def call(self, *args, **kwargs):
        return _timed(self, operation, getattr(self._driver, operation), args, kwargs)

    call.__name__ = operation
    return call


@implementer(IStorageDriver)
class MeasuredDriver:
    """C{driver}, with every operation of L{IStorageDriver} timed into
    C{metrics} (a L{Metrics}), and those of the L{OPTIONAL} extensions that
    C{driver} has (it then provides their interfaces too); anything else
    goes to C{driver} as it is."""

    def __init__(self, driver, metrics):
        self._driver = driver
        self._metrics = metrics
        self._name = getattr(driver, "name", type(driver).__name__)
        for operation, interface in OPTIONAL.items():
            if interface.providedBy(driver) or hasattr(driver, operation):
                alsoProvides(self, interface)

    @property
    def name(self):
        return self._name

    @property
    def measured(self):
        """The driver measured."""
        return self._driver

    def __getattr__(self, attribute):
        found = getattr(self._driver, attribute)  # (AttributeError: the driver has none)
        if attribute in OPTIONAL and callable(found):
            return lambda *args, **kwargs: _timed(self, attribute, found, args, kwargs)
        return found


for _operation in OPERATIONS:
    setattr(MeasuredDriver, _operation, _measured(_operation))
del _operation
