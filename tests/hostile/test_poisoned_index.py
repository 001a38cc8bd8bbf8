"""A valid manifest carrying strings that are valid JSON but not encodable
text (a lone surrogate, written as the JSON escape ``\\ud800``) must not
break the search index: not when it is pushed, and not when another node
(or a node that lost its index) rebuilds the index from storage."""

import json
import time

from tests.hostile import rawhttp
from tests.hostile.checks import Env, LogCursor
from tests.perf.registryclient import OCI_MANIFEST, RegistryClient, configBlob, imageManifest

DESCRIPTION_KEY = "org.opencontainers.image.description"
NAME = "poison/repo"


def _searchWhenReady(daemon, term, timeout=5.0):
    """Poll /v1/search until it answers from a complete index (neither a
    503 nor an answer marked as given while a rebuild from storage is
    filling the index) or C{timeout}; return the last response."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        r = rawhttp.exchange(daemon.port, rawhttp.request("GET", "/v1/search?q=" + term))
        rebuilding = r.status == 200 and r.header("txregistry-search-index") is not None
        if not (r.status == 503 or rebuilding) or time.monotonic() > deadline:
            return r
        time.sleep(delay)  # polling interval
        delay = min(delay * 2, 0.5)


def test_lone_surrogate_description_does_not_poison_the_index(tmp_path):
    """Both halves run whatever the first finds; all findings are reported
    together."""
    env = Env(tmp_path)
    failures = []
    daemon = env.start()
    try:
        cursor = LogCursor(daemon)
        client = RegistryClient("127.0.0.1", daemon.port, timeout=30)
        config = configBlob()
        configDigest = client.pushBlobMonolithic(NAME, config)
        doc = json.loads(imageManifest(configDigest, len(config)))
        doc["annotations"] = {DESCRIPTION_KEY: "\ud800 lone surrogate", "k\udfff": "v\ud800"}
        body = json.dumps(doc).encode("ascii")  # the surrogates as \\udXXX escapes: valid JSON
        r = client.request("PUT", "/v2/%s/manifests/v1" % (NAME,), body=body, headers={"Content-Type": OCI_MANIFEST})
        assert r.status == 201, (r.status, r.body)
        # A repository pushed after the poisoned one is indexed too.
        client.pushBlobMonolithic("clean/repo", config)
        clean = imageManifest(configDigest, len(config))
        r = client.request("PUT", "/v2/clean/repo/manifests/v1", body=clean, headers={"Content-Type": OCI_MANIFEST})
        assert r.status == 201, (r.status, r.body)
        client.close()
        found = _searchWhenReady(daemon, "poison")
        if found.status != 200 or [x["name"] for x in json.loads(found.body)["results"]] != [NAME]:
            failures.append("search after the push: %r" % (found,))
        else:
            # stored in a safe form: the surrogate replaced, the rest kept
            description = json.loads(found.body)["results"][0]["description"]
            if description != "\ufffd lone surrogate":
                failures.append("description after the push: %r" % (description,))
        found = _searchWhenReady(daemon, "repo")
        if found.status != 200 or sorted(x["name"] for x in json.loads(found.body)["results"]) != ["clean/repo", NAME]:
            failures.append("search for both repositories after the push: %r" % (found,))
        problems = cursor.problems()
        if problems:
            failures.append("indexing the push logged:\n%s" % (problems[0],))
    finally:
        daemon.stop()

    # Another node on the same storage, with its own (empty) index: it
    # rebuilds the index from storage.
    daemon = env.start(env={"SQLALCHEMY_INDEX_DATABASE": "sqlite:///%s/other-node.db" % (env.logs,)})
    try:
        cursor = LogCursor(daemon)
        found = _searchWhenReady(daemon, "repo")
        if found.status != 200:
            failures.append("search after a rebuild from storage (5 s after the start): %r" % (found,))
        elif sorted(x["name"] for x in json.loads(found.body)["results"]) != ["clean/repo", NAME]:
            failures.append("search after a rebuild from storage: %r" % (found.body,))
        problems = cursor.problems()
        if problems:
            failures.append("the rebuild logged:\n%s" % (problems[0],))
    finally:
        daemon.stop()
    assert not failures, "\n\n".join(failures)
