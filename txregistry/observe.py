"""One outcome, awaited by any number of callers.

A L{OneShot} is fired once, with a value or a L{Failure}; every L{wait}
returns a new Deferred of that outcome, at once if it is known already.  It
replaces the "list of waiters, fire them all" pattern: nobody shares one
Deferred (whose callbacks would change the result for the next caller), and
a Failure kept here is never an unhandled error of its own.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import AlreadyCalledError, Deferred
from twisted.python.failure import Failure

_PENDING = object()


class OneShot:
    """An outcome that is known once L{fire}d; L{wait} for it."""

    def __init__(self) -> None:
        self._result = _PENDING
        self._waiters = []

    @property
    def fired(self) -> bool:
        return self._result is not _PENDING

    @property
    def result(self) -> Any:
        """Once L{fired}: the value, or the L{Failure}."""
        if self._result is _PENDING:
            raise AttributeError("not fired yet")
        return self._result

    @property
    def waiting(self) -> int:
        """How many L{wait}s are not answered yet."""
        return len(self._waiters)

    def wait(self) -> Deferred[Any]:
        """A new Deferred of the outcome.  Cancelling it stops the wait of
        that caller only (it fails with C{CancelledError})."""
        if self._result is not _PENDING:
            return self._deliver(Deferred())
        d = Deferred(self._forsake)
        self._waiters.append(d)
        return d

    def fire(self, result: Any = None) -> None:
        """Give the outcome (a L{Failure} or an exception: a failure) to all
        who wait and all who will.  Only once."""
        if self._result is not _PENDING:
            raise AlreadyCalledError("fired already")
        if isinstance(result, BaseException):
            result = Failure(result)
        self._result = result
        waiters, self._waiters = self._waiters, []
        for d in waiters:
            self._deliver(d)

    def _deliver(self, d):
        if isinstance(self._result, Failure):
            d.errback(self._result)
        else:
            d.callback(self._result)
        return d

    def _forsake(self, d):
        if d in self._waiters:
            self._waiters.remove(d)
