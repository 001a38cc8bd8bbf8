"""Requests under way, and waiting for them to end (a graceful stop)."""

from twisted.internet.defer import Deferred, succeed


class InFlight:
    """How many requests a site has begun (their heads are in) and not yet
    answered or lost."""

    def __init__(self):
        self.count = 0
        self._waiting = []

    def started(self, request):
        self.count += 1
        request.notifyFinish().addBoth(self._ended)

    def _ended(self, _):
        self.count -= 1
        if not self.count:
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                d.callback(0)

    def idle(self, clock, bound):
        """A Deferred firing with 0 once no request is under way, or after
        C{bound} seconds with how many still are."""
        if not self.count:
            return succeed(0)
        d = Deferred()
        self._waiting.append(d)

        def timeUp():
            self._waiting.remove(d)
            d.callback(self.count)

        timer = clock.callLater(bound, timeUp)

        def done(left):
            if timer.active():
                timer.cancel()
            return left

        return d.addCallback(done)
