"""A valid manifest carrying strings that are valid JSON but not encodable
text (a lone surrogate, written as the JSON escape ``\\ud800``) must not
break the search index: not when it is pushed, and not when another node
(or a node that lost its index) rebuilds the index from storage.  Nor may
a manifest that lies about the size of its config make the registry read
the config whole."""

import hashlib
import json
import os
import subprocess
import sys
import time

from tests.hostile import rawhttp
from tests.hostile.checks import Env, LogCursor
from tests.perf.registryclient import OCI_MANIFEST, BlobData, RegistryClient, configBlob, imageManifest
from tests.support import procs
from tests.support.procs import processStats

OCI_INDEX = "application/vnd.oci.image.index.v1+json"

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


# --- sizes a manifest claims for what storage holds ---

MiB = 1024 * 1024
BIG = 128 * MiB  # a config blob no parser should read whole
RSS_ALLOWANCE = 48 * MiB  # well under BIG: reading it would show
CLAIMED = "claims/small"


def _peak(pid):
    return processStats(pid)["VmHWM"]


def _storeAsDistributionWould(storage, name, body):
    """Write a manifest into storage as Distribution writes an accepted
    push (Distribution does not compare descriptor sizes with the blobs)."""
    hexDigest = hashlib.sha256(body).hexdigest()
    root = os.path.join(storage, "docker", "registry", "v2")
    files = {
        os.path.join(root, "blobs", "sha256", hexDigest[:2], hexDigest, "data"): body,
    }
    repo = os.path.join(root, "repositories", name, "_manifests")
    link = ("sha256:" + hexDigest).encode("ascii")
    for path in (("revisions", "sha256", hexDigest, "link"), ("tags", "v1", "current", "link"),
                 ("tags", "v1", "index", "sha256", hexDigest, "link")):
        files[os.path.join(repo, *path)] = link
    for path, data in files.items():
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)


def _reindexPeak(env, database):
    """Run ``txregistry reindex`` on C{env}'s storage into C{database};
    return its peak RSS."""
    code = (
        "import sys\n"
        "try:\n"
        "    from txregistry import cli\n"
        "    cli.main(sys.argv[1:])\n"
        "finally:\n"
        "    sys.stderr.write([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0])\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, "reindex", "--quiet", "--storage-path", env.storage],
        capture_output=True, text=True, timeout=300,
        env=procs.twistdEnv({"SQLALCHEMY_INDEX_DATABASE": "sqlite:///" + database}), cwd=procs.REPO,
    )
    assert r.returncode == 0, r.stderr
    line = [x for x in r.stderr.splitlines() if x.startswith("VmHWM")][-1]
    return int(line.split()[1]) * 1024


def test_claimed_size_is_never_trusted(tmp_path):
    """A 128 MiB config blob that a manifest says is 2 bytes: the PUT is
    MANIFEST_INVALID (so is an index whose child's size is wrong), and
    neither the push, nor the start-up rebuild, nor ``txregistry reindex``
    of such a manifest already in storage (Distribution accepts it) reads
    the blob: the peak RSS stays well under its size."""
    env = Env(tmp_path)
    daemon = env.start()
    try:
        client = RegistryClient("127.0.0.1", daemon.port, timeout=60)
        big = client.pushBlobChunked(CLAIMED, BlobData(BIG, seed=3))
        config = configBlob()
        small = client.pushBlobMonolithic(CLAIMED, config)
        before = _peak(daemon.pid)
        r = client.request("PUT", "/v2/%s/manifests/v1" % (CLAIMED,), body=imageManifest(big, 2),
                           headers={"Content-Type": OCI_MANIFEST})
        assert (r.status, json.loads(r.body)["errors"][0]["code"]) == (400, "MANIFEST_INVALID"), r.body
        assert _peak(daemon.pid) - before <= RSS_ALLOWANCE, "the PUT read the blob whose size it was told"
        # The true sizes are accepted; a wrong one for the small config
        # is refused as well.
        r = client.request("PUT", "/v2/%s/manifests/v0" % (CLAIMED,), body=imageManifest(small, len(config) + 1),
                           headers={"Content-Type": OCI_MANIFEST})
        assert (r.status, json.loads(r.body)["errors"][0]["code"]) == (400, "MANIFEST_INVALID"), r.body
        image = imageManifest(small, len(config))
        child = client.putManifest(CLAIMED, "sha256:" + hashlib.sha256(image).hexdigest(), image)
        assert child.status == 201
        for size, status in ((len(image) + 5, 400), (len(image), 201)):
            index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
                {"mediaType": OCI_MANIFEST, "digest": "sha256:" + hashlib.sha256(image).hexdigest(), "size": size}
            ]}).encode()
            r = client.request("PUT", "/v2/%s/manifests/multi" % (CLAIMED,), body=index,
                               headers={"Content-Type": OCI_INDEX})
            assert r.status == status, r.body
        client.close()
    finally:
        daemon.stop()

    # The start-up rebuild and reindex of the same storage, first without
    # the lying manifest (for their usual peak), then with it.
    peaks = {}
    for case in ("clean", "lying"):
        if case == "lying":
            _storeAsDistributionWould(env.storage, CLAIMED, imageManifest(big, 2))
        daemon = env.start(env={"SQLALCHEMY_INDEX_DATABASE": "sqlite:///%s/%s.db" % (env.logs, case)})
        try:
            found = _searchWhenReady(daemon, "claims", timeout=60)
            assert found.status == 200 and found.header("txregistry-search-index") is None, found
            assert [x["name"] for x in json.loads(found.body)["results"]] == [CLAIMED]
            peaks[case] = _peak(daemon.pid)
        finally:
            daemon.stop()
        peaks[case + " reindex"] = _reindexPeak(env, "%s/%s-reindex.db" % (env.logs, case))
    figures = ", ".join("%s %.1f MiB" % (k, v / MiB) for k, v in peaks.items())
    print(figures)
    assert peaks["lying"] - peaks["clean"] <= RSS_ALLOWANCE, "the start-up rebuild read the blob: " + figures
    assert peaks["lying reindex"] - peaks["clean reindex"] <= RSS_ALLOWANCE, "reindex read the blob: " + figures
