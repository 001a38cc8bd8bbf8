"""Build OCI image layouts on disk without any container engine, and check
layouts that clients wrote.

An OCI image layout (image-spec ``image-layout.md``) is a directory holding
``oci-layout``, ``index.json`` and ``blobs/<alg>/<hex>``.  skopeo reads and
writes it as ``oci:DIR:TAG``: the tag is the ``org.opencontainers.image.ref.name``
annotation of a descriptor in ``index.json``.
"""

import gzip
import hashlib
import io
import json
import os
import random
import tarfile
from dataclasses import dataclass, field

MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX = "application/vnd.oci.image.index.v1+json"
CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonicalJSON(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode("utf-8")


@dataclass
class Image:
    """One single-platform image: what a test needs to verify a copy."""

    manifestDigest: str
    manifest: bytes
    configDigest: str
    layerDigests: list
    diffIDs: list
    platform: dict

    @property
    def blobDigests(self):
        return [self.configDigest] + list(self.layerDigests)


@dataclass
class MultiArch:
    """An OCI index over single-platform images."""

    indexDigest: str
    index: bytes
    images: list
    sharedLayerDigest: str

    @property
    def blobDigests(self):
        out = []
        for image in self.images:
            for d in image.blobDigests:
                if d not in out:
                    out.append(d)
        return out

    @property
    def manifestDigests(self):
        return [image.manifestDigest for image in self.images]


@dataclass
class Layout:
    """An OCI image layout directory being written."""

    path: str
    refs: list = field(default_factory=list)

    def __post_init__(self):
        os.makedirs(os.path.join(self.path, "blobs", "sha256"), exist_ok=True)
        with open(os.path.join(self.path, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)
        self._writeIndex()

    def blobPath(self, digest):
        alg, hexdigest = digest.split(":", 1)
        return os.path.join(self.path, "blobs", alg, hexdigest)

    def writeBlob(self, data, mediaType, **extra):
        """Store C{data}; return its descriptor."""
        digest = sha256(data)
        path = self.blobPath(digest)
        if not os.path.exists(path):
            with open(path + ".tmp", "wb") as f:
                f.write(data)
            os.rename(path + ".tmp", path)
        descriptor = {"mediaType": mediaType, "digest": digest, "size": len(data)}
        descriptor.update(extra)
        return descriptor

    def tag(self, descriptor, name):
        """Name C{descriptor} C{name} in index.json (replacing that name)."""
        ref = dict(descriptor)
        ref["annotations"] = dict(ref.get("annotations", {}), **{REF_NAME: name})
        self.refs = [r for r in self.refs if r.get("annotations", {}).get(REF_NAME) != name]
        self.refs.append(ref)
        self._writeIndex()

    def _writeIndex(self):
        index = {"schemaVersion": 2, "mediaType": INDEX, "manifests": self.refs}
        with open(os.path.join(self.path, "index.json"), "w") as f:
            json.dump(index, f)


def makeLayer(rng, files=3, size=200 * 1024, prefix="layer"):
    """A gzip'ed tar of C{files} files of random bytes, C{size} bytes in
    total.  Returns C{(compressed, diffID)}: the diff ID is the digest of
    the uncompressed tar, as the image config's rootfs wants."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        directory = tarfile.TarInfo("%s-%08x" % (prefix, rng.getrandbits(32)))
        directory.type = tarfile.DIRTYPE
        directory.mode = 0o755
        directory.mtime = 1700000000
        tar.addfile(directory)
        for i in range(files):
            content = rng.randbytes(size // files)
            info = tarfile.TarInfo("%s/file-%d.bin" % (directory.name, i))
            info.size = len(content)
            info.mode = 0o644
            info.mtime = 1700000000
            tar.addfile(info, io.BytesIO(content))
    uncompressed = raw.getvalue()
    compressed = gzip.compress(uncompressed, compresslevel=1, mtime=0)
    return compressed, sha256(uncompressed)


def writeImage(layout, rng, layers=3, architecture="amd64", os_="linux", extraLayers=(), layerSize=200 * 1024):
    """Write C{layers} fresh random layers (after C{extraLayers}, a list of
    C{(compressed, diffID)} already made), their config and their manifest
    into C{layout}.  Returns an L{Image}; does not tag it."""
    made = list(extraLayers) + [makeLayer(rng, size=layerSize) for _ in range(layers)]
    layerDescriptors = [layout.writeBlob(compressed, LAYER) for compressed, _ in made]
    diffIDs = [diffID for _, diffID in made]
    config = {
        "created": "2024-01-01T00:00:00Z",
        "architecture": architecture,
        "os": os_,
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diffIDs},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "txregistry e2e"} for _ in made],
    }
    configDescriptor = layout.writeBlob(canonicalJSON(config), CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": configDescriptor,
        "layers": layerDescriptors,
    }
    manifestBytes = canonicalJSON(manifest)
    descriptor = layout.writeBlob(manifestBytes, MANIFEST)
    return Image(
        manifestDigest=descriptor["digest"],
        manifest=manifestBytes,
        configDigest=configDescriptor["digest"],
        layerDigests=[d["digest"] for d in layerDescriptors],
        diffIDs=diffIDs,
        platform={"architecture": architecture, "os": os_},
    )


def buildImage(path, tag="v1", layers=3, seed=None, layerSize=200 * 1024):
    """An OCI layout at C{path} with one C{linux/amd64} image of C{layers}
    random layers, tagged C{tag}.  Returns the L{Image}."""
    rng = random.Random(seed)
    layout = Layout(path)
    image = writeImage(layout, rng, layers=layers, layerSize=layerSize)
    layout.tag({"mediaType": MANIFEST, "digest": image.manifestDigest, "size": len(image.manifest)}, tag)
    return image


PLATFORMS = (("amd64", "linux"), ("arm64", "linux"))


def buildMultiArch(path, tag="multi", seed=None, layerSize=200 * 1024):
    """An OCI layout at C{path} whose C{tag} is an OCI index of two
    platform images (linux/amd64, linux/arm64).  Both share their first
    layer and have one layer of their own.  Returns a L{MultiArch}."""
    rng = random.Random(seed)
    layout = Layout(path)
    shared = makeLayer(rng, size=layerSize, prefix="shared")
    images = [
        writeImage(layout, rng, layers=1, architecture=arch, os_=os_, extraLayers=[shared], layerSize=layerSize)
        for arch, os_ in PLATFORMS
    ]
    index = {
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [
            {
                "mediaType": MANIFEST,
                "digest": image.manifestDigest,
                "size": len(image.manifest),
                "platform": image.platform,
            }
            for image in images
        ],
    }
    indexBytes = canonicalJSON(index)
    descriptor = layout.writeBlob(indexBytes, INDEX)
    layout.tag(descriptor, tag)
    return MultiArch(
        indexDigest=descriptor["digest"],
        index=indexBytes,
        images=images,
        sharedLayerDigest=images[0].layerDigests[0],
    )


# Reading layouts back -------------------------------------------------------


def readIndex(path):
    with open(os.path.join(path, "index.json"), "rb") as f:
        return json.load(f)


def resolve(path, tag):
    """The descriptor that C{tag} names in the layout at C{path}."""
    for ref in readIndex(path)["manifests"]:
        if ref.get("annotations", {}).get(REF_NAME) == tag:
            return ref
    raise KeyError("no %r in %s/index.json" % (tag, path))


def readBlob(path, digest):
    alg, hexdigest = digest.split(":", 1)
    with open(os.path.join(path, "blobs", alg, hexdigest), "rb") as f:
        return f.read()


def verifyBlobs(path):
    """Every blob file's content hashes to its name.  Returns the set of
    digests present."""
    present = set()
    root = os.path.join(path, "blobs")
    for alg in os.listdir(root):
        for name in os.listdir(os.path.join(root, alg)):
            with open(os.path.join(root, alg, name), "rb") as f:
                actual = hashlib.new(alg, f.read()).hexdigest()
            assert actual == name, "blob %s/%s hashes to %s" % (alg, name, actual)
            present.add("%s:%s" % (alg, name))
    return present
