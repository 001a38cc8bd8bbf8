"""Liveness and readiness: named checks, each with a deadline.

- liveness (``/health``): the daemon's reactor runs and answers;
- readiness (``/ready``): the storage answers a probe, the search database
  answers (when search is on), and the daemon is not shutting down.

A check is a callable returning a Deferred; it passes when that fires
(with anything) before its deadline, and fails when it errs or times out.
"""

import time

from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.internet.error import TimeoutError
from twisted.python.failure import Failure

DEFAULT_TIMEOUT = 2.0  # seconds a check may take


class Check:
    def __init__(self, name, probe, timeout=DEFAULT_TIMEOUT):
        self.name = name
        self.probe = probe
        self.timeout = timeout


class HealthChecks:
    """The readiness checks of one daemon, run all at once on C{clock}."""

    def __init__(self, clock):
        self._clock = clock
        self.checks = []
        self.stopping = False

    def add(self, name, probe, timeout=DEFAULT_TIMEOUT):
        self.checks.append(Check(name, probe, timeout))

    def _run(self, check):
        started = time.monotonic()
        probe = maybeDeferred(check.probe)
        # The answer comes by the deadline whatever the probe does (a
        # cancelled probe may go on retrying before it gives up).
        d = Deferred()

        def settle(result):
            if timer.active():
                timer.cancel()
            if not d.called:
                d.callback(result)
            return None

        def late():
            if not d.called:
                d.errback(TimeoutError())
            probe.cancel()

        timer = self._clock.callLater(check.timeout, late)
        probe.addBoth(settle)

        def passed(result):
            if isinstance(result, Failure):
                return failed(result)
            return {"name": check.name, "status": "ok", "latency_seconds": round(time.monotonic() - started, 6)}

        def failed(failure):
            if failure.check(TimeoutError):
                error = "no answer within %g s" % (check.timeout,)
            else:
                error = "%s: %s" % (type(failure.value).__name__, str(failure.value)[:300])
            return {"name": check.name, "status": "failed", "latency_seconds": round(time.monotonic() - started, 6),
                    "error": error}

        return d.addCallbacks(passed, failed)

    def liveness(self):
        """Deferred of C{(healthy, document)}: the reactor answers."""
        return Deferred.fromCoroutine(self._report([]))

    def readiness(self):
        """Deferred of C{(ready, document)}: every check passes and the
        daemon is not shutting down."""
        return Deferred.fromCoroutine(self._report(self.checks))

    async def _report(self, checks):
        results = await DeferredList([self._run(c) for c in checks], consumeErrors=True)
        found = [value for _, value in results]
        if checks is self.checks:
            found.append({"name": "shutdown", "status": "failed" if self.stopping else "ok",
                          "latency_seconds": 0.0, **({"error": "the daemon is shutting down"} if self.stopping else {})})
        healthy = all(c["status"] == "ok" for c in found)
        return healthy, {"status": "ok" if healthy else "unavailable", "checks": found}
