"""Failed logins counted per client address: after C{limit} wrong
passwords within C{window} seconds (or that many checks under way at once),
an address may not try a password until its oldest failure is out of the
window."""

from collections import OrderedDict, deque
from typing import Optional

from twisted.logger import Logger

MAX_THROTTLED_CLIENTS = 65536  # client addresses whose failed logins are remembered


class LoginThrottle:
    """The failed-login counts of one daemon; C{limit} 0: no limit."""

    log = Logger()

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self._failures = OrderedDict()  # client address -> deque of failure times, most recent last
        self._checking = {}  # client address -> password checks under way
        # Told of each failure counted here (client, time): the other
        # worker processes count it too (txregistry.workers).
        self.listeners = []

    @property
    def clients(self) -> int:
        """How many client addresses have failures counted."""
        return len(self._failures)

    def forget(self) -> None:
        self._failures.clear()

    def wait(self, client: Optional[str], now: float) -> Optional[int]:
        """Seconds C{client} must wait before it may try a password, or
        C{None} if it may now."""
        limit = self.limit
        if not limit or client is None:
            return None
        failures = self._failures.get(client)
        if failures is not None:
            while failures and failures[0] <= now - self.window:
                failures.popleft()
            if not failures:
                del self._failures[client]
            elif len(failures) >= limit:
                return max(1, int(failures[0] + self.window - now + 0.999))
        if self._checking.get(client, 0) >= limit:
            return 1
        return None

    def started(self, client: Optional[str]) -> None:
        """A password check of C{client} is under way (until L{ended})."""
        self._checking[client] = self._checking.get(client, 0) + 1

    def ended(self, client: Optional[str]) -> None:
        left = self._checking.pop(client) - 1
        if left:
            self._checking[client] = left

    def failed(self, client: Optional[str], now: float, elsewhere: bool = False) -> None:
        """Count a failed password check of C{client} (C{elsewhere}: one
        another process counted and told of)."""
        if not self.limit or client is None:
            return
        if not elsewhere:
            for listener in self.listeners:
                listener(client, now)
        failures = self._failures.pop(client, None)
        if failures is None:
            failures = deque(maxlen=self.limit)
        failures.append(now)
        self._failures[client] = failures
        while len(self._failures) > MAX_THROTTLED_CLIENTS:
            self._failures.popitem(last=False)
        if len(failures) == self.limit and not elsewhere:
            self.log.warn(
                "login throttled: {count} failed logins from {client} within {window} s",
                count=len(failures), client=client, window=self.window,
            )
