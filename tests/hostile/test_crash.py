"""Crash safety: kill -9 the daemon while 50 clients push in parallel, start
it again on the same storage, and check that

- every blob and manifest whose PUT had answered 201 is there, and its
  content hashes to its digest (pulled and verified);
- nothing half-written is visible: a blob whose PUT got no 201 is absent or
  complete and correct, never truncated under its digest; in the storage
  itself every ``blobs/<alg>/<xx>/<hex>/data`` hashes to ``<alg>:<hex>``,
  and every link (layer, revision, tag) names content that is there;
- interrupted uploads can be taken up again (resumed from the offset the
  registry reports, and pushed anew);
- the daemon logged no traceback, and nothing outside the storage changed.

The kill is triggered by progress (once a given share of the expected blob
PUTs answered 201: early in the first round, and in the second round when
most clients have a manifest committed), not by a timer."""

import hashlib
import os
import random
import re
import subprocess
import sys
import threading
import time

import pytest

from tests.hostile.checks import Env, LogCursor, pushAndPull
from tests.perf.registryclient import (
    OCI_MANIFEST,
    BlobData,
    RegistryClient,
    RegistryResponseError,
    _pathOf,
    _withQuery,
    configBlob,
    imageManifest,
)
from tests.support import procs
from txregistry.registry import layout

CLIENTS = 50
ROUNDS = 2  # each: 3 layers and a config, then a manifest by tag
LAYERS = 3
MiB = 1024 * 1024
EXPECTED_BLOB_PUTS = CLIENTS * ROUNDS * (LAYERS + 1)
CHUNK = 256 * 1024


class Ledger:
    """What the clients did and what the registry answered."""

    def __init__(self, killAfter=None):
        self.killAfter = killAfter
        self.lock = threading.Lock()
        self.blobs = {}  # (repo, digest) -> BlobData: PUT answered 201
        self.attempted = {}  # (repo, digest) -> BlobData: PUT sent, no 201 seen
        self.interrupted = []  # (repo, location, BlobData): upload begun, not completed
        self.manifests = {}  # (repo, tag) -> (digest, body): PUT answered 201
        self.manifestsAttempted = {}  # (repo, tag) -> (digest, body)
        self.errors = []  # unexpected answers before the kill
        self.created = 0
        self.killing = threading.Event()  # set just before the kill
        self.trigger = threading.Event()  # enough progress: kill now

    def blobCreated(self, repo, digest, data):
        with self.lock:
            self.blobs[(repo, digest)] = data
            self.attempted.pop((repo, digest), None)
            self.created += 1
            if self.killAfter is not None and self.created >= self.killAfter:
                self.trigger.set()


def blobFor(client, round_, layer):
    """1-4 MiB of deterministic content; every tenth client shares its
    layers with the client next to it (the same blob pushed twice at once)."""
    owner = client - client % 2 if client % 10 < 2 else client
    rng = random.Random("%d-%d-%d" % (owner, round_, layer))
    size = rng.randint(1 * MiB, 4 * MiB)
    return BlobData(size, seed=rng.randrange(2**32), chunkSize=CHUNK)


def pushBlob(client, ledger, repo, data, mode):
    """Push one blob: one chunked PATCH (docker's way), several PATCHes with
    Content-Range, or a monolithic PUT; note it in the ledger."""
    digest = data.digest()
    location = client.startUpload(repo)
    entry = (repo, location, data)
    with ledger.lock:
        ledger.interrupted.append(entry)
    if mode == "chunked":
        r = client.expect("PATCH", client.patchChunked(location, data.chunks()), 202)
        location = _pathOf(r.header("location") or location)
        body, headers = None, {"Content-Length": "0"}
    elif mode == "ranges":
        cuts = sorted({0, data.size // 3, 2 * data.size // 3, data.size})
        for start, end in zip(cuts, cuts[1:]):
            r = client.expect("PATCH", client.patchChunked(location, data.chunks(start, end),
                                                           contentRange=(start, end - 1)), 202)
            location = _pathOf(r.header("location") or location)
        body, headers = None, {"Content-Length": "0"}
    else:
        body, headers = data.bytes(), {"Content-Type": "application/octet-stream"}
    with ledger.lock:
        ledger.attempted.setdefault((repo, digest), data)
    r = client.request("PUT", _withQuery(location, "digest=" + digest), body=body, headers=headers)
    client.expect("PUT blob", r, 201)
    assert r.header("docker-content-digest") == digest, r.headers
    ledger.blobCreated(repo, digest, data)
    with ledger.lock:
        ledger.interrupted.remove(entry)
    return digest


def worker(port, index, ledger):
    client = RegistryClient("127.0.0.1", port, timeout=60)
    repo = "crash/repo%02d" % (index // 2)  # two clients per repository
    try:
        for round_ in range(ROUNDS):
            layers = []
            for layer in range(LAYERS):
                data = blobFor(index, round_, layer)
                mode = ("chunked", "ranges", "monolithic")[(index + round_ + layer) % 3]
                layers.append((pushBlob(client, ledger, repo, data, mode), data.size))
            config = configBlob() + b" " * (index * ROUNDS + round_)  # distinct configs
            configData = _Bytes(config)
            configDigest = pushBlob(client, ledger, repo, configData, "monolithic")
            manifest = imageManifest(configDigest, len(config), layers)
            digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
            tag = "c%02d-r%d" % (index, round_)
            with ledger.lock:
                ledger.manifestsAttempted[(repo, tag)] = (digest, manifest)
            r = client.request("PUT", "/v2/%s/manifests/%s" % (repo, tag), body=manifest,
                               headers={"Content-Type": OCI_MANIFEST})
            client.expect("PUT manifest", r, 201)
            with ledger.lock:
                ledger.manifests[(repo, tag)] = (digest, manifest)
    except RegistryResponseError as e:
        if not ledger.killing.is_set():
            with ledger.lock:
                ledger.errors.append("client %d: %s" % (index, e))
    except Exception as e:  # the connection dropped by the kill, mostly
        if not ledger.killing.is_set():
            with ledger.lock:
                ledger.errors.append("client %d: %r" % (index, e))
    finally:
        client.close()


class _Bytes(BlobData):
    """Small fixed content with L{BlobData}'s interface."""

    def __init__(self, content):
        self.size = len(content)
        self._content = content

    def chunks(self, offset=0, end=None):
        yield [self._content[offset:end]]

    def bytes(self, offset=0, end=None):
        return self._content[offset:end]

    def digest(self, algorithm="sha256"):
        return "%s:%s" % (algorithm, hashlib.new(algorithm, self._content).hexdigest())


def pull(client, repo, digest):
    """(status, size, digest of what came)."""
    try:
        size, got = client.pullBlob(repo, digest)
        return 200, size, got
    except RegistryResponseError as e:
        return e.status, None, None


def checkStorage(storage):
    """Problems in the storage itself: blob data that does not hash to its
    name, stray files among blobs, links naming content that is not there."""
    problems = []
    root = os.path.join(storage, "docker", "registry", "v2")
    blobs = os.path.join(root, "blobs")
    present = set()
    for directory, dirs, files in os.walk(blobs):
        rel = os.path.relpath(directory, blobs).split(os.sep)
        for name in files:
            if name.startswith(".tmp-"):
                continue  # an atomic write cut short: invisible
            if len(rel) == 3 and (name == layout.BLOB_TOUCHED or name.startswith(layout.BLOB_SWEEPING)):
                continue  # ours beside the data, for garbage collection (txregistry.registry.touch)
            if len(rel) != 3 or name != "data":
                problems.append("stray file among blobs: %s" % (os.path.join(directory, name),))
                continue
            algorithm, prefix, hexdigest = rel
            if not hexdigest.startswith(prefix):
                problems.append("blob under the wrong prefix: %s" % (directory,))
            h = hashlib.new(algorithm)
            with open(os.path.join(directory, name), "rb") as f:
                for block in iter(lambda: f.read(MiB), b""):
                    h.update(block)
            if h.hexdigest() != hexdigest:
                problems.append("blob data does not hash to its name: %s (%d bytes, hashes to %s)" % (
                    directory, os.path.getsize(os.path.join(directory, name)), h.hexdigest()))
            else:
                present.add("%s:%s" % (algorithm, hexdigest))
    repos = os.path.join(root, "repositories")
    for directory, dirs, files in os.walk(repos):
        if "link" not in files:
            continue
        path = os.path.join(directory, "link")
        with open(path, "rb") as f:
            content = f.read().decode("ascii", "replace").strip()
        rel = os.path.relpath(path, repos)
        m = re.search(r"/(_layers|_manifests/revisions)/(sha256|sha512)/([0-9a-f]+)/link$", "/" + rel)
        if m:
            if content != "%s:%s" % (m.group(2), m.group(3)):
                problems.append("link %s holds %r" % (rel, content))
            elif content not in present:
                problems.append("link %s names a blob that is not there" % (rel,))
            continue
        m = re.search(r"^(.*)/_manifests/tags/[^/]+/(current|index/\w+/\w+)/link$", rel)
        if m:
            revision = os.path.join(repos, m.group(1), "_manifests", "revisions", *content.split(":"), "link")
            if not re.fullmatch(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}", content):
                problems.append("tag link %s holds %r" % (rel, content))
            elif not os.path.exists(revision) or content not in present:
                problems.append("tag link %s names a manifest that is not there (%s)" % (rel, content))
    # Distribution lists every entry under tags/ as a tag: each must be one.
    for directory, dirs, files in os.walk(repos):
        if directory.endswith(os.sep + os.path.join("_manifests", "tags")):
            for name in sorted(dirs + files):
                if not os.path.isfile(os.path.join(directory, name, "current", "link")):
                    problems.append("%s under tags/ has no current link" % (
                        os.path.relpath(os.path.join(directory, name), repos),))
            dirs[:] = []
    return problems


def checkTags(client, repos, what):
    """Problems with the tags a registry lists: each must resolve."""
    problems = []
    for repo in sorted(repos):
        r = client.request("GET", "/v2/%s/tags/list" % (repo,))
        if r.status == 404:
            continue  # nothing tagged there
        if r.status != 200:
            problems.append("%s: tags/list of %s: HTTP %d" % (what, repo, r.status))
            continue
        for tag in r.json().get("tags") or []:
            got = client.getManifest(repo, tag)
            if got.status != 200:
                problems.append("%s lists tag %s:%s, which answers %d" % (what, repo, tag, got.status))
    return problems


@pytest.mark.parametrize("killAt", [0.3, 0.65])
def test_kill_during_parallel_pushes(tmp_path, killAt):
    env = Env(tmp_path)
    before = env.snapshot()
    daemon = env.start()
    ledger = Ledger(killAfter=int(EXPECTED_BLOB_PUTS * killAt))
    threads = [threading.Thread(target=worker, args=(daemon.port, i, ledger), daemon=True) for i in range(CLIENTS)]
    started = time.monotonic()
    try:
        for t in threads:
            t.start()
        triggered = ledger.trigger.wait(timeout=60)
        ledger.killing.set()
        daemon.kill()
    finally:
        ledger.killing.set()
        daemon.stop()
    killedAfter = time.monotonic() - started
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "clients still running 60 s after the kill"
    assert not ledger.errors, "pushes failed before the kill:\n" + "\n".join(ledger.errors[:20])
    assert triggered, "only %d blob PUTs answered 201 in 60 s" % (ledger.created,)
    print("killed after %.1f s: %d blobs and %d manifests committed, %d blob PUTs unanswered, "
          "%d uploads interrupted" % (killedAfter, len(ledger.blobs), len(ledger.manifests), len(ledger.attempted),
                                      len(ledger.interrupted)))
    assert ledger.interrupted, "the kill interrupted no upload: it came too late to test anything"

    # What is on disk, before the daemon touches it again.
    storageProblems = checkStorage(env.storage)

    repos = {repo for repo, _ in ledger.manifestsAttempted}
    daemon = env.start()
    cursor = LogCursor(daemon)
    failures = list(storageProblems)
    client = RegistryClient("127.0.0.1", daemon.port, timeout=60)
    try:
        # Committed blobs: there and intact.
        for (repo, digest), data in sorted(ledger.blobs.items(), key=lambda kv: kv[0]):
            status, size, got = pull(client, repo, digest)
            if (status, size, got) != (200, data.size, digest):
                failures.append("committed blob %s in %s: HTTP %s, %s bytes hashing to %s (pushed %d bytes)"
                                % (digest, repo, status, size, got, data.size))
        # Committed manifests: by tag and by digest, byte for byte.
        for (repo, tag), (digest, body) in sorted(ledger.manifests.items()):
            for reference in (tag, digest):
                r = client.getManifest(repo, reference)
                if r.status != 200 or r.body != body or r.header("docker-content-digest") != digest:
                    failures.append("committed manifest %s:%s (%s): HTTP %d, %d bytes" % (
                        repo, reference, digest, r.status, len(r.body)))
        # Unanswered blob PUTs: absent, or complete and correct.
        for (repo, digest), data in sorted(ledger.attempted.items(), key=lambda kv: kv[0]):
            head = client.headBlob(repo, digest)
            if head.status == 404:
                continue
            status, size, got = pull(client, repo, digest)
            if (status, size, got) != (200, data.size, digest) or head.header("content-length") != str(data.size):
                failures.append("unanswered blob %s in %s: HEAD %d (Content-Length %s), GET %s: %s bytes hashing "
                                "to %s (pushed %d bytes)" % (digest, repo, head.status, head.header("content-length"),
                                                            status, size, got, data.size))
        # Unanswered manifest PUTs: absent or the very bytes.
        for (repo, tag), (digest, body) in sorted(ledger.manifestsAttempted.items()):
            if (repo, tag) in ledger.manifests:
                continue
            r = client.getManifest(repo, tag)
            if r.status not in (404, 200) or (r.status == 200 and r.body != body):
                failures.append("unanswered manifest %s:%s: HTTP %d, %d bytes" % (repo, tag, r.status, len(r.body)))

        # Interrupted uploads: resume half of them from the offset the
        # registry reports; push the others anew.
        resumed = pushedAgain = 0
        for i, (repo, location, data) in enumerate(ledger.interrupted):
            digest = data.digest()
            if i % 2 == 0:
                status = client.uploadStatus(location)
                if status.status == 204:
                    m = re.fullmatch(r"0-(\d+)", status.header("range") or "")
                    offset = int(m.group(1)) + 1 if m else -1
                    if offset == 1 and not _prefixMatches(env, location, data):
                        offset = 0  # "0-0" means nothing, or one byte
                    if not 0 <= offset <= data.size:
                        failures.append("interrupted upload %s of %d bytes reports Range %r" % (
                            location, data.size, status.header("range")))
                        continue
                    if offset < data.size:
                        r = client.patchChunked(location, data.chunks(offset), contentRange=(offset, data.size - 1))
                        if r.status != 202:
                            failures.append("resuming %s at %d: HTTP %d %r" % (location, offset, r.status, r.body))
                            continue
                        location = _pathOf(r.header("location") or location)
                    r = client.request("PUT", _withQuery(location, "digest=" + digest), headers={"Content-Length": "0"})
                    if r.status != 201:
                        failures.append("completing resumed upload %s (from %d of %d bytes): HTTP %d %r" % (
                            location, offset, data.size, r.status, r.body[:300]))
                        continue
                    resumed += 1
                elif status.status != 404:
                    failures.append("status of interrupted upload %s: HTTP %d" % (location, status.status))
                    continue
                # 404: the upload had completed (its answer was lost) or is
                # gone; a new push must work either way.
            if i % 2 == 1 or client.headBlob(repo, digest).status != 200:
                try:
                    pushBlob(client, Ledger(), repo, data, ("chunked", "ranges", "monolithic")[i % 3])
                    pushedAgain += 1
                except Exception as e:
                    failures.append("pushing interrupted blob %s to %s again: %s" % (digest, repo, e))
                    continue
            status, size, got = pull(client, repo, digest)
            if (status, size, got) != (200, data.size, digest):
                failures.append("interrupted blob %s in %s after resume/re-push: HTTP %s, %s bytes hashing to %s" % (
                    digest, repo, status, size, got))
        print("after the restart: %d uploads resumed, %d blobs pushed again" % (resumed, pushedAgain))

        # Every tag listed resolves; every committed one is listed.
        failures += checkTags(client, repos, "txregistry")
        for repo, tag in sorted(ledger.manifests):
            r = client.request("GET", "/v2/%s/tags/list" % (repo,))
            if r.status != 200 or tag not in r.json()["tags"]:
                failures.append("committed tag %s:%s not listed: HTTP %d %r" % (repo, tag, r.status, r.body[:200]))

        # The restarted daemon serves normally.
        pushAndPull(daemon, name="crash/after")
        failures += ["after the restart the daemon logged:\n" + p for p in cursor.problems()[:3]]
    finally:
        client.close()
        daemon.stop()
    failures += ["storage after the restart: " + p for p in checkStorage(env.storage) if p not in storageProblems]
    # Distribution on the same storage: every tag it lists resolves.
    distribution = procs.startDistribution(env.storage, env.logs)
    client = RegistryClient("127.0.0.1", distribution.port, timeout=60)
    try:
        failures += checkTags(client, repos, "Distribution")
    finally:
        client.close()
        distribution.stop()
    after = env.snapshot()
    if after != before:
        failures.append("outside the storage changed: %r" % (sorted(set(after.items()) ^ set(before.items())),))
    assert not failures, "%d problem(s):\n" % (len(failures),) + "\n".join(failures[:40])


def _prefixMatches(env, location, data):
    """Does the upload hold at least one byte? ("Range: 0-0" is sent both
    for an empty upload and for one of one byte.)"""
    m = re.match(r"^/v2/(.+)/blobs/uploads/([^/?]+)", location)
    path = os.path.join(env.storage, "docker", "registry", "v2", "repositories", m.group(1), "_uploads",
                        m.group(2), "data")
    try:
        return os.path.getsize(path) >= 1
    except OSError:
        return False


# A process writing tags as Manifests.put does (current link, then index
# link), and deleting every other one, through the filesystem driver.
_TAG_WRITER = r"""
import sys
from twisted.internet import reactor
from twisted.internet.defer import ensureDeferred
from twisted.python.threadpool import ThreadPool
from txregistry.storage.filesystem import FilesystemDriver

pool = ThreadPool(4, 4)
pool.start()
driver = FilesystemDriver(sys.argv[1], reactor, pool)
link = b"sha256:" + b"ab" * 32
done = [0]

async def writer(k):
    i = 0
    while True:
        tag = "%s/w%d-%d-%d" % (sys.argv[2], int(sys.argv[3]), k, i)
        await driver.putContent(tag + "/current/link", link)
        await driver.putContent(tag + "/index/sha256/" + "ab" * 32 + "/link", link)
        if i % 2:
            await driver.delete(tag)
        i += 1
        done[0] += 1
        if done[0] == 200:
            print("ready", flush=True)

for k in range(4):
    ensureDeferred(writer(k)).addErrback(lambda f: (f.printTraceback(), reactor.stop()))
reactor.run()
"""
TAGS = "/docker/registry/v2/repositories/crash/tags/_manifests/tags"


def test_kill_during_tag_writes(tmp_path):
    """kill -9 while tags are written and deleted: under C{tags/} every
    entry is a tag with its current link (Distribution lists every entry
    there as a tag), never a directory without it nor a temporary name."""
    root = str(tmp_path / "storage")
    tags = root + TAGS
    problems = []
    for round_ in range(5):
        child = subprocess.Popen([sys.executable, "-c", _TAG_WRITER, root, TAGS, str(round_)],
                                 stdout=subprocess.PIPE, env=procs.twistdEnv(), cwd=procs.REPO)
        try:
            assert child.stdout.readline() == b"ready\n", "the tag writer did not start"
            time.sleep(random.random() * 0.05)  # a moment within the writes, not a wait for readiness
        finally:
            child.kill()
            child.wait()
        for name in sorted(os.listdir(tags)):
            if not os.path.isfile(os.path.join(tags, name, "current", "link")):
                inside = sorted(os.listdir(os.path.join(tags, name))) if os.path.isdir(os.path.join(tags, name)) else []
                problems.append("round %d: %s under tags/ has no current/link (holds %s)" % (round_, name, inside))
    assert not problems, "\n".join(problems[:20])
