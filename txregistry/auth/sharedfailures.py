"""Failed logins counted across the nodes that share one search index
database (a PostgreSQL server; several daemons behind a load balancer).

Each process writes the failures its L{LoginThrottle} counts to a table,
and reads every L{INTERVAL} seconds those that the processes of other
nodes wrote, which its throttle then counts as heard from elsewhere (as it
counts those of the node's other workers, relayed by their master,
L{txregistry.workers}).  A node is a daemon: a master and its workers (or
one process), named by host and the master's pid.  So a client that
spreads its guesses over the nodes is throttled after about the same
number of them, give or take what the nodes counted in the last
L{INTERVAL} seconds.

Rows are read by time, not by id alone: a row's id is given when it is
inserted, and a transaction that commits late could hide a row below ids
already read; reading L{SLACK} seconds back and remembering the ids read
in that time sees every row once.  Rows older than the throttle's window
(and L{SLACK}) are deleted now and then by any node.

Every database call runs in the index's thread pool
(L{txregistry.search.index.SearchIndex.run}); a database that fails only
delays the sharing (the failures are kept, within L{MAX_PENDING}, and
written at the next turn)."""

import os
import socket

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from txregistry.search.index import storable

TABLE = "txregistry_login_failures"
INTERVAL = 1.0  # seconds between two exchanges with the database
SLACK = 10.0  # seconds read back (a transaction that committed late)
PRUNE_EVERY = 60.0  # seconds between two deletes of old rows (by this process)
MAX_PENDING = 10000  # failures kept to write while the database fails
MAX_READ = 10000  # rows read at most per exchange


def nodeName(worker):
    """This daemon's name in the table: host and the master's pid (the
    parent of a worker, else this process)."""
    return "%s:%d" % (socket.gethostname(), os.getppid() if worker is not None else os.getpid())


class SharedFailures:
    """Shares the failures of C{throttle} through C{index}'s database."""

    log = Logger()

    def __init__(self, index, throttle, node, clock):
        import sqlalchemy as sa

        self._sa = sa
        self._index = index
        self._throttle = throttle
        self.node = node
        self._clock = clock
        self._metadata = sa.MetaData()
        self.table = sa.Table(
            TABLE,
            self._metadata,
            sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
            sa.Column("node", sa.String(255), nullable=False),
            sa.Column("client", sa.String(255), nullable=False),
            sa.Column("at", sa.Float, nullable=False, index=True),
        )
        self._pending = []  # (client, at) counted here, not yet written
        self._seen = {}  # id -> at of rows read within the last SLACK seconds
        self._since = None  # read rows from this time on (None: not started)
        self._pruned = None
        self._loop = None
        self._failing = False
        throttle.listeners.append(self._counted)

    def _counted(self, client, at):
        if len(self._pending) < MAX_PENDING:
            self._pending.append((storable(client)[:255], at))

    def start(self):
        self._loop = LoopingCall(self.exchange)
        self._loop.clock = self._clock
        self._loop.start(INTERVAL, now=True)

    def stop(self):
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def exchange(self):
        """Write the failures counted here, count those of other nodes."""
        pending, self._pending = self._pending, []
        d = self._index.run(self._exchange, pending, self._clock.seconds())

        def heard(rows):
            if self._failing:
                self._failing = False
                self.log.info("failed logins shared with the other nodes again")
            for client, at in rows:
                self._throttle.failed(client, at, elsewhere=True)

        def failed(failure):
            self._pending[:0] = pending[:MAX_PENDING - len(self._pending)]
            if not self._failing:
                self._failing = True
                self.log.warn("failed logins not shared with the other nodes: {error}", error=failure.value)

        return d.addCallbacks(heard, failed)

    def _exchange(self, pending, now):
        """(In the index's pool.)  The C{(client, at)} of other nodes'
        failures not read before."""
        sa, t = self._sa, self.table
        engine = self._index.engine
        if self._since is None:
            self._index.createTables(self._metadata)
            self._since = now - self._throttle.window  # those still counting
        with engine.begin() as conn:
            if pending:
                conn.execute(t.insert(), [{"node": self.node, "client": c, "at": a} for c, a in pending])
            rows = conn.execute(
                sa.select(t.c.id, t.c.client, t.c.at)
                .where(t.c.at >= self._since - SLACK, t.c.node != self.node)
                .order_by(t.c.at, t.c.id)
                .limit(MAX_READ)
            ).all()
            if self._pruned is None or now - self._pruned >= PRUNE_EVERY:
                self._pruned = now
                conn.execute(t.delete().where(t.c.at < now - self._throttle.window - SLACK))
        fresh = [(r[1], r[2]) for r in rows if r[0] not in self._seen]
        for r in rows:
            self._seen[r[0]] = r[2]
        if rows:
            self._since = max(self._since, rows[-1][2])
        old = self._since - SLACK
        self._seen = {i: at for i, at in self._seen.items() if at >= old}
        return fresh
