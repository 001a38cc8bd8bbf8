"""Classic docker-registry (V1) stores for tests, written in its layout
directly (no V1 client exists any more): on disk, or in an S3 bucket.

    store = V1Store(DiskTarget(path))        # or S3Target(client, bucket, "registry")
    store.image("a" * 64, files={"etc/hello": b"hi"})
    store.image("b" * 64, parent="a" * 64, files={...}, compression="tar")
    store.tag("library", "app", "latest", "b" * 64)
    store.layerFiles("b" * 64)   # [{path: bytes}] of each layer, root first

and L{classicSearchDatabase} writes the classic registry's SQLite search
database (its ``version`` and ``repository`` tables)."""

import bz2
import gzip
import io
import json
import os
import sqlite3
import tarfile

EPOCH = 1400000000


def imageID(seed):
    """A V1 image id (64 hex digits) from a short seed."""
    import hashlib

    return hashlib.sha256(seed.encode()).hexdigest()


def tarBytes(files):
    """A tar of C{files} ({path: bytes}, directories made as needed), with
    fixed times so the same files give the same bytes."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        dirs = set()
        for path in sorted(files):
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                d = "/".join(parts[:i])
                if d not in dirs:
                    dirs.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, EPOCH
                    tar.addfile(info)
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(files[path]), 0o644, EPOCH
            tar.addfile(info, io.BytesIO(files[path]))
    return out.getvalue()


def compress(data, compression):
    if compression == "gzip":
        return gzip.compress(data, mtime=0)
    if compression == "bzip2":
        return bz2.compress(data)
    if compression == "tar":
        return data
    raise ValueError(compression)


class DiskTarget:
    def __init__(self, root):
        self.root = str(root)

    def put(self, path, data):
        full = os.path.join(self.root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(data)


class S3Target:
    """Keys as the classic registry's boto driver wrote them: the
    storage_path without its leading slash, then the path."""

    def __init__(self, client, bucket, prefix):
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def put(self, path, data):
        self.client.put_object(Bucket=self.bucket, Key="%s/%s" % (self.prefix, path), Body=data)


class V1Store:
    def __init__(self, target):
        self.target = target
        self.layers = {}  # id -> {path: bytes}
        self.parents = {}

    def image(self, id, parent=None, files=None, compression="gzip", cmd=None, created=None, inProgress=False,
              layer=True, jsonText=None, ancestry=None, architecture="amd64", config=None, layerBytes=None):
        """Write an image: its JSON, layer (a tar of C{files} compressed so,
        or C{layerBytes} as they are) and ancestry (from the parents
        written before, or C{ancestry})."""
        files = files or {}
        doc = {
            "id": id,
            "created": created or "2014-05-%02dT12:00:00.000000000Z" % (len(self.layers) % 28 + 1,),
            "container_config": {"Cmd": cmd or ["/bin/sh", "-c", "#(nop) step %d" % (len(self.layers),)]},
            "config": config or {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
            "docker_version": "1.3.2",
            "architecture": architecture,
            "os": "linux",
            "Size": sum(len(v) for v in files.values()),
        }
        if parent:
            doc["parent"] = parent
        self.target.put("images/%s/json" % (id,), jsonText.encode() if jsonText is not None else json.dumps(doc).encode())
        if layer:
            data = layerBytes if layerBytes is not None else compress(tarBytes(files), compression)
            self.target.put("images/%s/layer" % (id,), data)
            self.target.put("images/%s/_checksum" % (id,), b"sha256:0")
        if inProgress:
            self.target.put("images/%s/_inprogress" % (id,), b"true")
        if ancestry is None:
            ancestry = [id]
            p = parent
            while p is not None and p not in ancestry:
                ancestry.append(p)
                p = self.parents.get(p)
        self.target.put("images/%s/ancestry" % (id,), json.dumps(ancestry).encode())
        self.layers[id] = files
        self.parents[id] = parent
        return id

    def tag(self, namespace, repository, tag, id):
        base = "repositories/%s/%s" % (namespace, repository)
        self.target.put("%s/tag_%s" % (base, tag), id.encode())
        self.target.put("%s/tag%s_json" % (base, tag), json.dumps({"arch": "amd64", "os": "linux",
                                                                    "docker_version": "1.3.2"}).encode())
        self.target.put("%s/json" % (base,), b"[]")
        self.target.put("%s/_index_images" % (base,), json.dumps([{"id": id}]).encode())

    def chain(self, id):
        out = []
        while id is not None:
            out.append(id)
            id = self.parents.get(id)
        return list(reversed(out))

    def layerFiles(self, id):
        """The files of each layer of image C{id}, root first."""
        return [self.layers[i] for i in self.chain(id)]


def classicSearchDatabase(path, descriptions):
    """The classic registry's search database (SQLite) at C{path}, its
    C{repository} table holding C{descriptions} ({"ns/repo": text})."""
    conn = sqlite3.connect(str(path))
    with conn:
        conn.execute("CREATE TABLE version (id INTEGER NOT NULL, PRIMARY KEY (id))")
        conn.execute("INSERT INTO version (id) VALUES (1)")
        conn.execute("CREATE TABLE repository (id INTEGER NOT NULL, name VARCHAR(95) NOT NULL, "
                     "description VARCHAR(100), PRIMARY KEY (id), UNIQUE (name))")
        for name, description in descriptions.items():
            conn.execute("INSERT INTO repository (name, description) VALUES (?, ?)", (name, description))
    conn.close()
    return "sqlite:///" + str(path)


def buildStore(store):
    """A V1 store with everything the importer must get right or skip."""
    base = store.image(imageID("base"), files={"etc/os-release": b"ID=test\n", "bin/sh": b"#!sh\n" * 50})
    env = store.image(imageID("env"), parent=base, files={}, cmd=["/bin/sh", "-c", "#(nop) ENV A=1"])
    app = store.image(imageID("app"), parent=env, files={"app/main.py": b"print(1)\n"}, compression="tar")
    tool = store.image(imageID("tool"), parent=base, files={"usr/bin/tool": b"tool"}, compression="bzip2")
    store.tag("library", "app", "latest", app)
    store.tag("library", "app", "1.0", app)
    store.tag("team", "tool", "2", tool)
    store.tag("team", "base", "latest", base)
    unfinished = store.image(imageID("unfinished"), parent=base, files={"x": b"x"}, inProgress=True)
    store.tag("team", "wip", "latest", unfinished)
    nolayer = store.image(imageID("nolayer"), parent=base, layer=False)
    store.tag("team", "nolayer", "latest", nolayer)
    broken = store.image(imageID("broken"), jsonText="{broken")
    store.tag("team", "broken", "latest", broken)
    # a cycle: c1's parent is c2, c2's is c1
    c1, c2 = imageID("c1"), imageID("c2")
    store.image(c2, parent=c1, ancestry=[c2, c1])
    store.image(c1, parent=c2, ancestry=[c1, c2])
    store.tag("team", "cycle", "latest", c1)
    return {"app": app, "tool": tool, "base": base, "unfinished": unfinished, "nolayer": nolayer,
            "broken": broken, "cycle": c1}


# The tags of L{buildStore} that import, as named after the import: the
# image each names.
GOOD_TAGS = {"app:latest": "app", "app:1.0": "app", "team/tool:2": "tool", "team/base:latest": "base"}
BAD_TAGS = {"team/wip:latest": "_inprogress", "team/nolayer:latest": "no layer",
            "team/broken:latest": "broken JSON", "team/cycle:latest": "ancestry cycle"}
