"""A graceful stop: once the port no longer accepts, the connections a
site has are let finish what they began.

A connection answering a request (or streaming its response) is waited
for; one between requests (keep-alive, idle) is closed; one just accepted
that has not sent its first request yet is waited for too, since its
client already counts on an answer.  All within a bound."""

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall

CHECK_INTERVAL = 0.05


class OpenChannels:
    """The HTTP channels (connections) of a site that are open."""

    def __init__(self):
        self.channels = set()

    def opened(self, channel):
        self.channels.add(channel)

    def closed(self, channel):
        self.channels.discard(channel)

    def busy(self):
        """The connections with a request under way or yet to come."""
        return sum(1 for c in self.channels if c.requests or not getattr(c, "txrRequests", 0))

    def drain(self, clock, bound):
        """A Deferred firing with 0 once every connection closed, or after
        C{bound} seconds with how many were still busy."""
        d = Deferred()
        deadline = clock.seconds() + bound

        def check():
            for channel in list(self.channels):
                if not channel.requests and getattr(channel, "txrRequests", 0):
                    channel.transport.loseConnection()  # idle between requests
            if not self.channels or clock.seconds() >= deadline:
                loop.stop()
                d.callback(self.busy())

        loop = LoopingCall(check)
        loop.clock = clock
        loop.start(CHECK_INTERVAL)
        return d
