"""What garbage collection and retention delete, told as API deletes are:
the daemon's scheduled run sends Distribution's delete events to a real
HTTP receiver (a tag delete naming the tag, then the untagged manifest's
naming its digest; none for the blobs swept) and /v1/search follows;
``txregistry gc`` beside the daemon updates the search index the daemon
serves, and says that it sent no notifications."""

import json
import time
import urllib.parse

import pytest

from tests.daemon.test_gc_online import Client, descriptor
from tests.daemon.test_gc_retention_check import command, tags
from tests.daemon.test_notifications import Receiver
from tests.support import procs
from txregistry import digest as digests

CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DESCRIPTION = "org.opencontainers.image.description"


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def writeConfig(tmp_path, receiverURL, gc=None, retention=()):
    doc = {"loglevel": "info", "retention": list(retention),
           "notifications": {"endpoints": [{"name": "listener", "url": receiverURL, "timeout": "1s",
                                            "threshold": 2, "backoff": "50ms", "maxbackoff": "200ms"}]}}
    if gc is not None:
        doc["gc"] = gc
    path = tmp_path / "config.yml"
    path.write_text(json.dumps({"prod": doc}))
    return str(path)


def pushImage(client, repo, tag, description):
    """A config and a layer of their own and a manifest described so; its
    digest and the blobs'."""
    config = json.dumps({"image": "%s:%s" % (repo, tag)}).encode()
    layer = ("layer of %s:%s " % (repo, tag)).encode() * 100
    for data in (config, layer):
        client.upload(repo, data)
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": descriptor(CONFIG_TYPE, config),
                       "layers": [descriptor(LAYER_TYPE, layer)], "annotations": {DESCRIPTION: description}}).encode()
    client.putManifest(repo, tag, body)
    return digests.of(body), [digests.of(config), digests.of(layer)]


def search(client, term):
    _, _, body = client.call("GET", "/v1/search?q=%s" % (urllib.parse.quote(term),))
    return [(r["name"], r["description"]) for r in json.loads(body)["results"]]


def deletes(events):
    return [e["target"] for e in events if e["action"] == "delete"]


def test_a_scheduled_run_notifies_and_search_follows(tmp_path, receiver):
    cfg = writeConfig(tmp_path, receiver.url, gc={"interval": "1s", "min_age": 0, "delete_untagged": True},
                      retention=[{"repositories": "team/*", "keep_last": 1},
                                 {"repositories": "gone", "older_than": "4s"}])
    d = procs.startTxregistry(str(tmp_path / "data"), str(tmp_path), args=("--config", cfg, "--flavor", "prod"))
    try:
        client = Client(d.url)
        gone, goneBlobs = pushImage(client, "gone", "only", "doomed sprocket")
        assert search(client, "sprocket") == [("gone", "doomed sprocket")]  # (within the 4 s it is kept)
        old, oldBlobs = pushImage(client, "team/app", "old", "ancient widget")
        pushImage(client, "team/app", "new", "fresh gadget")

        # The tags go first (as the API's tag delete says it), then, once
        # the grace for what a push relied on is over, their manifests.
        got = receiver.waitFor(lambda got: len(deletes(got)) >= 4, timeout=90)
        targets = deletes(got)
        assert sorted(targets[:2], key=lambda t: t["repository"]) == [
            {"repository": "gone", "tag": "only"}, {"repository": "team/app", "tag": "old"}]
        assert sorted(targets[2:], key=lambda t: t["repository"]) == [
            {"digest": gone, "repository": "gone"}, {"digest": old, "repository": "team/app"}]
        (event,) = [e for e in got if e["action"] == "delete" and e["target"].get("tag") == "old"]
        assert event["actor"] == {} and event["request"]["method"] == ""  # nobody asked over HTTP
        assert event["source"]["instanceID"] and event["id"] and event["timestamp"].endswith("Z")

        # Search follows: the repository emptied of tags is described no more
        # (it is still a repository, as after an API delete of its last tag).
        assert search(client, "sprocket") == []
        assert search(client, "gone") == [("gone", "")]
        assert search(client, "gadget") == [("team/app", "fresh gadget")]
        assert tags(client, "team/app") == ["new"]

        # The blobs swept are not told of (Distribution's collection tells of none).
        for digest in goneBlobs + oldBlobs:
            waitUntil(lambda: not client.hasBlob("team/app" if digest in oldBlobs else "gone", digest))
        assert not [e for e in receiver.events() if e["action"] == "delete"
                    and e["target"].get("mediaType") == "application/octet-stream"]
        assert len(deletes(receiver.events())) == 4
        assert "Traceback" not in d.log()
    finally:
        d.stop()


def waitUntil(predicate, timeout=60):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, predicate
        time.sleep(0.05)  # polling interval


def test_the_command_updates_the_daemons_index(tmp_path, receiver):
    data = str(tmp_path / "data")
    cfg = writeConfig(tmp_path, receiver.url, retention=[{"repositories": "gone", "keep_last": 0}])
    d = procs.startTxregistry(data, str(tmp_path), args=("--config", cfg, "--flavor", "prod"))
    try:
        client = Client(d.url)
        pushImage(client, "gone", "only", "doomed sprocket")
        pushImage(client, "kept", "v1", "lasting bolt")
        assert search(client, "sprocket") == [("gone", "doomed sprocket")]
        pushes = len(receiver.waitFor(lambda got: len([e for e in got if e["action"] == "push"]) >= 6))

        r = command("gc", "--config", cfg, "--flavor", "prod", "--storage-path", data, "--retention",
                    "--delete-untagged", "--min-age", "0")
        assert r.returncode == 0, r.stderr
        assert "deleted 1 tag(s) by the retention policies" in r.stdout
        assert "updated 1 repositories in the search index" in r.stdout, r.stdout
        assert "delete event(s) (tags, manifests) not sent to the notification endpoints" in r.stderr, r.stderr

        # The daemon serves what the command wrote.
        assert search(client, "sprocket") == []
        assert search(client, "gone") == [("gone", "")]
        assert search(client, "bolt") == [("kept", "lasting bolt")]
        assert tags(client, "gone") == []
        assert deletes(receiver.events()) == [] and len(receiver.events()) == pushes
    finally:
        d.stop()
