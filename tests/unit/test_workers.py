"""The pieces of worker mode that need no process: how many workers, the
merged metrics, the graceful stop's wait, failed logins heard from other
workers."""

from types import SimpleNamespace

import pytest
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock

from txregistry.auth.throttle import LoginThrottle
from txregistry.metrics.collectors import Metrics
from txregistry.metrics.merge import merge
from txregistry.web.drain import OpenChannels
from txregistry.workers import MAX_AUTO_WORKERS, WorkersConfigError, choose, parseWorkers


def settings(notifications=None):
    return SimpleNamespace(notifications=notifications)


@pytest.mark.parametrize("value,expected", [(None, None), ("", None), ("auto", None), (" AUTO ", None),
                                            (1, 1), ("4", 4), (64, 64)])
def test_parse_workers(value, expected):
    assert parseWorkers(value, "here") == expected


@pytest.mark.parametrize("value", [0, -1, 65, "many", True, 2.5])
def test_parse_workers_refuses(value):
    with pytest.raises(WorkersConfigError, match="^here: workers must be"):
        parseWorkers(value, "here")


def test_choose():
    assert choose(None, 2, settings()) == (2, "auto: 2 core(s)")
    assert choose(None, 1, settings()) == (1, "auto: 1 core(s)")
    assert choose(None, None, settings()) == (1, "auto: 1 core(s)")
    assert choose(None, 32, settings()) == (MAX_AUTO_WORKERS, "auto: 32 core(s), capped")
    assert choose(3, 2, settings()) == (3, "asked for")
    assert choose(None, 8, settings(notifications=object()))[0] == 1
    assert choose(1, 8, settings(notifications=object())) == (1, "asked for")
    with pytest.raises(WorkersConfigError, match="notifications keep one durable journal"):
        choose(2, 8, settings(notifications=object()))


def _sample(text, name, **labels):
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    raise KeyError(name)


def test_merge_adds_counters_and_histograms_and_keeps_the_earliest_start():
    one, two = Metrics(), Metrics()
    one.request("base", "GET", 200, 0.01, 0, 2)
    two.request("base", "GET", 200, 0.02, 0, 2)
    two.request("base", "GET", 200, 0.03, 0, 2)
    texts = [one.render().decode(), two.render().decode()]
    merged = merge(texts).decode()
    assert _sample(merged, "txregistry_http_requests_total", route="base", code="200") == 3
    assert _sample(merged, "txregistry_http_request_duration_seconds_count", route="base") == 3
    created = [_sample(t, "txregistry_http_requests_created", route="base") for t in texts]
    assert _sample(merged, "txregistry_http_requests_created", route="base") == min(created)
    assert merge([]) == b""


class _Channel:
    def __init__(self, requests=(), begun=0):
        self.requests = list(requests)
        self.txrRequests = begun
        self.closed = False
        self.transport = SimpleNamespace(loseConnection=self.close)

    def close(self):
        self.closed = True


def test_drain_closes_idle_connections_and_waits_for_busy_ones():
    clock, channels = Clock(), OpenChannels()
    idle, busy, fresh = _Channel(begun=1), _Channel(requests=["r"], begun=1), _Channel()
    for c in (idle, busy, fresh):
        channels.opened(c)
    assert channels.busy() == 2  # a request under way, and one yet to come
    done = []
    channels.drain(clock, 5).addCallback(done.append)
    clock.advance(0.1)
    assert idle.closed and not busy.closed and not fresh.closed and not done
    channels.closed(idle)
    busy.requests = []  # answered: idle now, closed at the next check
    fresh.requests, fresh.txrRequests = ["r"], 1
    clock.advance(0.1)
    assert busy.closed and not done
    channels.closed(busy)
    fresh.requests = []
    clock.advance(0.1)
    channels.closed(fresh)
    clock.advance(0.1)
    assert done == [0]


def test_drain_gives_up_after_its_bound():
    clock, channels = Clock(), OpenChannels()
    channels.opened(_Channel(requests=["slow"], begun=1))
    done = []
    channels.drain(clock, 1.0).addCallback(done.append)
    clock.pump([0.1] * 12)
    assert done == [1]


def test_failures_heard_from_elsewhere_count_but_are_not_told_again():
    told = []
    throttle = LoginThrottle(limit=2, window=10)
    throttle.listeners.append(lambda client, at: told.append((client, at)))
    throttle.failed("10.0.0.1", 100.0)
    throttle.failed("10.0.0.1", 101.0, elsewhere=True)
    assert told == [("10.0.0.1", 100.0)]
    assert throttle.wait("10.0.0.1", 102.0) == 8


class _Sent:
    def __init__(self):
        self.messages = []

    def send(self, message):
        self.messages.append(message)


def _control():
    from txregistry.workers.channel import Control

    sent = _Sent()
    control = Control(SimpleNamespace(authorizer=None), sent)
    control._reactor = Clock()
    return control, sent


def test_a_worker_asks_its_master_for_every_workers_metrics():
    from txregistry.workers.channel import AllWorkersMetrics

    control, sent = _control()
    got = []
    AllWorkersMetrics(control).render().addCallback(got.append)
    assert sent.messages == [{"ask": "scrape", "n": 1}]
    control.heard({"answer": 1, "text": "m 1.0\n"})
    assert got == [b"m 1.0\n"]
    control.heard({"answer": 1, "text": "again"})  # (answered already: ignored)
    assert got == [b"m 1.0\n"]


def test_a_question_the_master_fails_or_leaves_unanswered_fails():
    from txregistry.workers.channel import ASK_TIMEOUT

    control, sent = _control()
    failures = []
    control.askMaster("scrape").addErrback(failures.append)
    control.heard({"answer": 1, "error": "worker 1 ended"})
    assert "worker 1 ended" in str(failures[0].value)
    control.askMaster("scrape").addErrback(failures.append)
    control._reactor.advance(ASK_TIMEOUT)
    assert len(failures) == 2 and control._asked == {}
