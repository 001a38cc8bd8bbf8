"""Notifications: the config section, the event records and the durable
queue of an endpoint (real files)."""

import json
import os

import pytest

from txregistry import config, events
from txregistry.notify.journal import Journal, JournalError
from txregistry.notify.settings import parseDuration


def load(tmp_path, section, storage="local"):
    path = tmp_path / "config.yml"
    path.write_text(json.dumps({"prod": dict(section, storage=storage, s3_bucket="b")}))
    return config.load(configFile=str(path), flavor="prod", storagePath=str(tmp_path / "data"), environ={})


def test_durations():
    assert parseDuration("500ms") == 0.5
    assert parseDuration("1m30s") == 90
    assert parseDuration("1.5h") == 5400
    assert parseDuration("0") == 0
    for bad in ("500", 500, "1x", "ms", "", "1s 2s", True):
        assert parseDuration(bad) is None, bad


def test_endpoints(tmp_path):
    s = load(tmp_path, {"notifications": {
        "events": {"includereferences": True},
        "endpoints": [
            {"name": "a", "url": "http://127.0.0.1:1/x", "headers": {"Authorization": ["Bearer t"]},
             "timeout": "250ms", "threshold": 3, "backoff": "2s", "ignoredmediatypes": ["application/octet-stream"],
             "ignore": {"actions": ["pull"], "mediatypes": ["text/plain"]}},
            {"name": "off", "url": "http://127.0.0.1:1/y", "disabled": True},
        ]}}).notifications
    assert s.includeReferences
    assert s.stateDir == os.path.join(str(tmp_path / "data"), "txregistry", "notify")
    (a,) = s.endpoints
    assert (a.name, a.timeout, a.threshold, a.backoff, a.maxBackoff) == ("a", 0.25, 3, 2.0, 60.0)
    assert a.headers == (("Authorization", "Bearer t"),)
    assert a.ignoredMediaTypes == {"application/octet-stream", "text/plain"} and a.ignoredActions == {"pull"}
    assert not a.wants(events.Event(action="pull", repository="r"))
    assert a.wants(events.Event(action="push", repository="r", mediaType="x"))


@pytest.mark.parametrize("endpoint, message", [
    ({"url": "http://h/"}, "notifications.endpoints[0].name must be"),
    ({"name": "a", "url": "ftp://h/"}, "notifications.endpoints[a].url must be an http:// or https:// URL"),
    ({"name": "a", "url": "http://h/", "timeout": 500}, "notifications.endpoints[a].timeout must be a duration"),
    ({"name": "a", "url": "http://h/", "backoff": "soon"}, "notifications.endpoints[a].backoff must be a duration"),
    ({"name": "a", "url": "http://h/", "threshold": -1}, "threshold must be a whole number"),
    ({"name": "a", "url": "http://h/", "headers": {"A": [1]}}, "headers.A must be a list of strings"),
    ({"name": "a", "url": "http://h/", "ignore": {"actions": ["tag"]}}, "ignore.actions: tag is not one of"),
    ({"name": "a", "url": "http://h/", "retries": 3}, "unknown keys: retries"),
    ({"name": "../x", "url": "http://h/"}, "name must be letters"),
])
def test_bad_endpoints(tmp_path, endpoint, message):
    with pytest.raises(config.ConfigError) as e:
        load(tmp_path, {"notifications": {"endpoints": [endpoint]}})
    assert message in str(e.value) and "\n" not in str(e.value)


def test_s3_needs_state_dir(tmp_path):
    section = {"notifications": {"endpoints": [{"name": "a", "url": "http://h/"}]}}
    with pytest.raises(config.ConfigError, match="state_dir must be set with storage s3"):
        load(tmp_path, section, storage="s3")
    section["notifications"]["state_dir"] = str(tmp_path / "q")
    assert load(tmp_path, section, storage="s3").notifications.stateDir == str(tmp_path / "q")


def test_record():
    info = events.RequestInfo(id="r1", addr="10.0.0.1:5555", host="reg:5000", method="PUT", useragent="ua",
                              user="alice", baseURL="http://reg:5000")
    body = json.dumps({"config": {"mediaType": "c", "digest": "sha256:" + "a" * 64, "size": 3},
                       "layers": [{"mediaType": "l", "digest": "sha256:" + "b" * 64, "size": 9}]}).encode()
    seen = []
    a = events.Announcer()
    a.manifest("push", "team/app", "sha256:" + "c" * 64, "application/vnd.oci.image.manifest.v1+json", body, "v1")
    a.add(seen.append)
    events.bind(info)
    try:
        a.manifest("push", "team/app", "sha256:" + "c" * 64, "application/vnd.oci.image.manifest.v1+json", body, "v1")
        a.blob("mount", "team/app", "sha256:" + "b" * 64, 9, fromRepository="other")
    finally:
        events.bind(None)
    assert len(seen) == 2  # nothing built before someone listened
    r = seen[0].record({"addr": "host:5000", "instanceID": "i"}, includeReferences=True)
    assert r["action"] == "push" and r["timestamp"].endswith("Z") and r["id"]
    assert r["target"] == {
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "size": len(body), "digest": "sha256:" + "c" * 64,
        "length": len(body), "repository": "team/app",
        "url": "http://reg:5000/v2/team/app/manifests/sha256:" + "c" * 64, "tag": "v1",
        "references": [{"mediaType": "c", "digest": "sha256:" + "a" * 64, "size": 3},
                       {"mediaType": "l", "digest": "sha256:" + "b" * 64, "size": 9}]}
    assert r["request"] == {"id": "r1", "addr": "10.0.0.1:5555", "host": "reg:5000", "method": "PUT",
                            "useragent": "ua"}
    assert r["actor"] == {"name": "alice"} and r["source"] == {"addr": "host:5000", "instanceID": "i"}
    assert "references" not in seen[0].record({}, includeReferences=False)["target"]
    m = seen[1].record({})
    assert m["target"]["fromRepository"] == "other" and m["target"]["url"].endswith("/blobs/sha256:" + "b" * 64)


def test_listener_errors_stay_out():
    a = events.Announcer()
    seen = []
    a.add(lambda e: 1 / 0)
    a.add(seen.append)
    a.blobDeleted("r", "sha256:" + "a" * 64)
    assert len(seen) == 1


def test_listeners_hear_the_actions_they_ask_for():
    """An action nobody asked for is not announced (nor its event built):
    with only the search index listening, pulls cost nothing."""
    a = events.Announcer()
    pushes, everything = [], []
    a.add(pushes.append, (events.PUSH, events.DELETE))
    assert not a.wants(events.PULL)
    a.manifest(events.PULL, "r", "sha256:" + "a" * 64, "x", b"{}", "t")
    a.manifest(events.PUSH, "r", "sha256:" + "a" * 64, "x", b"{}", "t")
    assert [e.action for e in pushes] == [events.PUSH]
    a.add(everything.append)
    a.blob(events.PULL, "r", "sha256:" + "b" * 64, 3)
    a.blobDeleted("r", "sha256:" + "b" * 64)
    assert [e.action for e in pushes] == [events.PUSH, events.DELETE]
    assert [e.action for e in everything] == [events.PULL, events.DELETE]
    a.remove(everything.append)
    assert not a.wants(events.PULL)


def lines(*names):
    return [json.dumps({"n": n}).encode() + b"\n" for n in names]


def test_journal_survives_reopen(tmp_path):
    j = Journal(str(tmp_path / "q"))
    j.open()
    j.append(lines(1, 2, 3))
    got, pos = j.read(2)
    assert got == lines(1, 2)
    j.ack(pos, 2)
    j.close()
    j = Journal(str(tmp_path / "q"))
    j.open()
    assert j.pending == 1
    got, pos = j.read(10)
    assert got == lines(3)
    j.ack(pos, 1)
    assert j.pending == 0
    # All delivered: the delivered segment is gone.
    assert sorted(os.listdir(tmp_path / "q")) == ["%016d.jsonl" % 1, "acked", "lock"]
    assert os.path.getsize(tmp_path / "q" / ("%016d.jsonl" % 1)) == 0
    j.append(lines(4))
    assert j.read(10)[0] == lines(4)


def test_journal_drops_a_torn_line(tmp_path):
    j = Journal(str(tmp_path / "q"))
    j.open()
    j.append(lines(1))
    j.close()
    with open(tmp_path / "q" / ("%016d.jsonl" % 0), "ab") as f:
        f.write(b'{"n": 2')  # a crash in the middle of an append
    j = Journal(str(tmp_path / "q"))
    j.open()
    assert j.pending == 1
    j.append(lines(3))
    assert j.read(10)[0] == lines(1, 3)


def test_journal_moves_through_segments(tmp_path, monkeypatch):
    from txregistry.notify import journal

    monkeypatch.setattr(journal, "SEGMENT_SIZE", 20)
    j = Journal(str(tmp_path / "q"))
    j.open()
    for n in range(6):
        j.append(lines(n))
    seen = []
    while j.pending:
        got, pos = j.read(1)
        seen += got
        j.ack(pos, len(got))
    assert seen == lines(*range(6))
    assert len([n for n in os.listdir(tmp_path / "q") if n.endswith(".jsonl")]) == 1


def test_journal_is_locked(tmp_path):
    a = Journal(str(tmp_path / "q"))
    a.open()
    with pytest.raises(JournalError, match="in use by another process"):
        Journal(str(tmp_path / "q")).open()
    a.close()
