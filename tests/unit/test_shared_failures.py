"""The exchange of failed logins between nodes through a database
(txregistry.auth.sharedfailures), on an SQLite file: each node counts the
others' failures once, never its own, and old rows go."""

from types import SimpleNamespace

import sqlalchemy as sa
from twisted.internet.task import Clock

from txregistry.auth.sharedfailures import SharedFailures, SLACK
from txregistry.auth.throttle import LoginThrottle


def node(tmp_path, name, clock):
    engine = sa.create_engine("sqlite:///%s" % (tmp_path / "shared.db",))
    throttle = LoginThrottle(3, 30)

    def createTables(metadata):
        metadata.create_all(engine)

    index = SimpleNamespace(engine=engine, createTables=createTables)
    return SharedFailures(index, throttle, name, clock), throttle


def test_each_node_reads_the_others_failures_once(tmp_path):
    clock = Clock()
    clock.advance(1000)
    a, throttleA = node(tmp_path, "a", clock)
    b, throttleB = node(tmp_path, "b", clock)
    assert b._exchange([], clock.seconds()) == []
    throttleA.failed("10.0.0.1", 1000.0)
    throttleA.failed("10.0.0.1", 1000.5)
    assert a._exchange(a._pending, clock.seconds()) == []  # (its own are not read back)
    a._pending = []
    assert sorted(b._exchange([], clock.seconds())) == [("10.0.0.1", 1000.0), ("10.0.0.1", 1000.5)]
    assert b._exchange([], clock.seconds()) == []  # once
    assert a._exchange([], clock.seconds()) == []


def test_a_row_that_commits_late_is_read(tmp_path):
    clock = Clock()
    clock.advance(1000)
    a, _ = node(tmp_path, "a", clock)
    b, _ = node(tmp_path, "b", clock)
    b._exchange([], 1000.0)
    a._exchange([("10.0.0.2", 1001.0)], 1001.0)
    assert b._exchange([], 1001.0) == [("10.0.0.2", 1001.0)]
    a._exchange([("10.0.0.3", 1000.8)], 1002.0)  # (counted before, written after)
    assert b._exchange([], 1002.0) == [("10.0.0.3", 1000.8)]


def test_old_rows_are_deleted(tmp_path):
    clock = Clock()
    a, _ = node(tmp_path, "a", clock)
    a._exchange([("10.0.0.4", 100.0)], 100.0)
    a._pruned = None
    a._exchange([], 100.0 + 30 + SLACK + 1)
    with a._index.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(a.table)).scalar() == 0


def test_a_failing_database_keeps_the_failures_for_the_next_turn(tmp_path):
    from twisted.internet.defer import fail

    clock = Clock()
    a, throttle = node(tmp_path, "a", clock)
    a._index.run = lambda f, *args: fail(RuntimeError("down"))
    throttle.failed("10.0.0.5", 5.0)
    a.exchange()
    assert a._pending == [("10.0.0.5", 5.0)] and a._failing
