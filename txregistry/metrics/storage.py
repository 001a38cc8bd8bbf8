"""A storage driver measured: each operation's latency, and its failures,
by driver and operation."""

import time

from twisted.internet.defer import Deferred
from zope.interface import implementer

from txregistry.storage import PathNotFound
from txregistry.storage.interface import IStorageDriver

OPERATIONS = ("getContent", "getContentChain", "putContent", "reader", "writer", "stat", "list", "move",
              "delete", "redirectURL")


def _measured(operation):
    def call(self, *args, **kwargs):
        started = time.monotonic()
        d = getattr(self._driver, operation)(*args, **kwargs)
        if not isinstance(d, Deferred):
            self._metrics.storage(self._name, operation, time.monotonic() - started, False)
            return d

        def done(result, failed):
            self._metrics.storage(self._name, operation, time.monotonic() - started, failed)
            return result

        d.addCallbacks(done, lambda f: done(f, not f.check(PathNotFound)), callbackArgs=(False,))
        return d

    call.__name__ = operation
    return call


@implementer(IStorageDriver)
class MeasuredDriver:
    """C{driver}, with every operation of L{IStorageDriver} timed into
    C{metrics} (a L{Metrics}); anything else goes to C{driver} as it is."""

    def __init__(self, driver, metrics):
        self._driver = driver
        self._metrics = metrics
        self._name = getattr(driver, "name", type(driver).__name__)

    @property
    def name(self):
        return self._name

    @property
    def measured(self):
        """The driver measured."""
        return self._driver

    def __getattr__(self, attribute):
        return getattr(self._driver, attribute)


for _operation in OPERATIONS:
    setattr(MeasuredDriver, _operation, _measured(_operation))
del _operation
