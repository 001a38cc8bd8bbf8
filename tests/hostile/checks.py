"""What every hostile test checks: a running daemon on empty storage with a
canary next to it, the log scanned for tracebacks, the directory around the
storage compared before and after, and the storage holding nothing but
Distribution's layout."""

import hashlib
import json
import os
import re

from tests.perf.registryclient import BlobData, RegistryClient, configBlob, imageManifest
from tests.support import procs

CANARY_TEXT = b"hostile-canary-6b1f0c2e: this file must never be served, changed or joined by others\n"

# Lines that mean the daemon hit something it did not expect.
_LOG_PROBLEMS = re.compile(
    r"Traceback \(most recent call last\)|Unhandled Error|Unhandled error in Deferred|"
    r"internal error|#critical\]|#error\]"
)


class Env:
    """A directory C{root} holding C{storage/} (the registry's), C{logs/},
    and C{canary/} (files the registry must never touch nor serve)."""

    def __init__(self, root):
        self.root = str(root)
        self.storage = os.path.join(self.root, "storage")
        self.logs = os.path.join(self.root, "logs")
        self.canary = os.path.join(self.root, "canary")
        for d in (self.storage, self.logs, self.canary):
            os.makedirs(d, exist_ok=True)
        # Something that looks like storage content, for escapes to find.
        fake = os.path.join(self.canary, "docker", "registry", "v2", "repositories", "victim", "_manifests", "tags",
                            "latest", "current")
        os.makedirs(fake, exist_ok=True)
        for path in (os.path.join(self.canary, "secret"), os.path.join(fake, "link")):
            with open(path, "wb") as f:
                f.write(CANARY_TEXT)

    def start(self, args=(), env=None):
        return procs.startTxregistry(self.storage, self.logs, args=args, env=env)

    def snapshot(self):
        """Every path under C{root} except the storage and the logs, with
        its kind, size and content hash: to compare before and after."""
        out = {}
        skip = {self.storage, self.logs}
        for directory, dirs, files in os.walk(self.root):
            dirs[:] = sorted(d for d in dirs if os.path.join(directory, d) not in skip)
            for name in dirs + files:
                path = os.path.join(directory, name)
                rel = os.path.relpath(path, self.root)
                if os.path.islink(path):
                    out[rel] = ("link", os.readlink(path))
                elif os.path.isdir(path):
                    out[rel] = ("dir",)
                else:
                    with open(path, "rb") as f:
                        out[rel] = ("file", hashlib.sha256(f.read()).hexdigest())
        return out


def storageFiles(storage):
    for directory, dirs, files in os.walk(storage):
        for name in files:
            yield os.path.relpath(os.path.join(directory, name), storage)


_NAME_PART = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_ALLOWED = re.compile(
    r"^(?:"
    r"txregistry/search\.db(?:-journal|-wal|-shm|\.lagging|\.schema-lock)?"
    r"|docker/registry/v2/blobs/sha(?:256/[0-9a-f]{2}/[0-9a-f]{64}|512/[0-9a-f]{2}/[0-9a-f]{128})/(?:data|_touched|_sweeping-[A-Za-z0-9_.-]+)"
    r"|docker/registry/v2/repositories/(?P<name>%s(?:/%s)*)/(?:"
    r"_layers/sha(?:256/[0-9a-f]{64}|512/[0-9a-f]{128})/link"
    r"|_manifests/revisions/sha(?:256/[0-9a-f]{64}|512/[0-9a-f]{128})/link"
    r"|_manifests/tags/[A-Za-z0-9_][A-Za-z0-9._-]{0,127}/(?:current|index/sha(?:256/[0-9a-f]{64}|512/[0-9a-f]{128}))/link"
    r"|_manifests/referrers/sha(?:256/[0-9a-f]{64}|512/[0-9a-f]{128})/sha(?:256/[0-9a-f]{64}|512/[0-9a-f]{128})/link"
    r"|_uploads/[A-Za-z0-9][A-Za-z0-9_.=-]{0,127}/(?:data|startedat)"
    r"))$" % (_NAME_PART, _NAME_PART)
)


def strayFiles(storage):
    """Files in the storage that are not where Distribution's layout puts
    things (a name or reference that slipped through into a path)."""
    stray = []
    for rel in storageFiles(storage):
        if "/.tmp-" in "/" + rel:
            continue  # an atomic write in progress
        m = _ALLOWED.fullmatch(rel)
        if m is None or (m.group("name") and len(m.group("name")) > 255):
            stray.append(rel)
    return sorted(stray)


class LogCursor:
    """Reads what a daemon logged since the last look."""

    def __init__(self, daemon):
        self.daemon = daemon
        self.offset = os.path.getsize(daemon.logPath)

    def new(self):
        with open(self.daemon.logPath, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        return data.decode("utf-8", "replace")

    def problems(self):
        """Lines of trouble (with what follows each) logged since the last
        look."""
        text = self.new()
        lines = text.splitlines()
        found = []
        for i, line in enumerate(lines):
            if _LOG_PROBLEMS.search(line):
                found.append("\n".join(lines[max(0, i - 2) : i + 25]))
        return found


def isErrorEnvelope(body):
    """The spec's error body: {"errors": [{"code", "message", "detail"}]}."""
    try:
        doc = json.loads(body)
    except ValueError:
        return False
    if not isinstance(doc, dict) or not isinstance(doc.get("errors"), list) or not doc["errors"]:
        return False
    for e in doc["errors"]:
        if not isinstance(e, dict) or not {"code", "message", "detail"} <= set(e):
            return False
        if not isinstance(e["code"], str) or not isinstance(e["message"], str):
            return False
    return True


def pushAndPull(daemon, name="hostile/after", tag="ok", size=300 * 1024):
    """A normal push (chunked and monolithic blobs, a manifest by tag) and
    pull, checked byte for byte.  Returns nothing; raises on any problem."""
    client = RegistryClient("127.0.0.1", daemon.port, timeout=30)
    try:
        r = client.request("GET", "/v2/")
        assert r.status == 200, r.status
        data = BlobData(size, seed=size)
        layer = client.pushBlobChunked(name, data)
        config = configBlob()
        configDigest = client.pushBlobMonolithic(name, config)
        manifest = imageManifest(configDigest, len(config), [(layer, size)])
        put = client.putManifest(name, tag, manifest)
        digest = put.header("docker-content-digest")
        assert digest == "sha256:" + hashlib.sha256(manifest).hexdigest()
        got = client.getManifest(name, tag)
        assert got.status == 200 and got.body == manifest, (got.status, got.body[:200])
        assert client.pullBlob(name, layer) == (size, layer)
        assert client.pullBlob(name, configDigest) == (len(config), configDigest)
    finally:
        client.close()
