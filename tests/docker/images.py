"""Small random images for the docker tests, written as OCI image layouts
(no engine needed), with the description annotation or label that
``docker search`` shows.

Every image gets fresh random content: containers/image keeps a
machine-wide cache of where it has seen each blob
(``/var/lib/containers/cache/blob-info-cache-v1.boltdb`` for root), so
content shared between tests would make one test's requests depend on
another's.
"""

import gzip
import hashlib
import os
import random
from dataclasses import dataclass

from tests.e2e import oci

DESCRIPTION = "org.opencontainers.image.description"


@dataclass
class BuiltImage:
    layout: str
    tag: str
    manifestDigest: str
    configDigest: str
    layerDigests: list
    diffIDs: list


def freshRandom():
    return random.Random(os.urandom(16))


def buildImage(path, tag="latest", layers=2, layerSize=16 * 1024, architecture="amd64",
               annotation=None, label=None, layerSizes=None):
    """An OCI layout at C{path} holding one image tagged C{tag}, whose
    manifest carries C{annotation} and whose config carries C{label} as
    C{org.opencontainers.image.description} (either may be None).  Its
    C{layers} layers hold C{layerSize} random bytes each, or one layer per
    size in C{layerSizes}."""
    rng = freshRandom()
    layout = oci.Layout(str(path))
    sizes = list(layerSizes) if layerSizes is not None else [layerSize] * layers
    made = [oci.makeLayer(rng, files=2, size=size) for size in sizes]
    layerDescriptors = [layout.writeBlob(compressed, oci.LAYER) for compressed, _ in made]
    diffIDs = [diffID for _, diffID in made]
    config = {
        "created": "2024-01-01T00:00:00Z",
        "architecture": architecture,
        "os": "linux",
        "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": ["/bin/sh"]},
        "rootfs": {"type": "layers", "diff_ids": diffIDs},
        "history": [{"created": "2024-01-01T00:00:00Z", "created_by": "txregistry docker tests"} for _ in made],
    }
    if label is not None:
        config["config"]["Labels"] = {DESCRIPTION: label}
    configDescriptor = layout.writeBlob(oci.canonicalJSON(config), oci.CONFIG)
    manifest = {
        "schemaVersion": 2,
        "mediaType": oci.MANIFEST,
        "config": configDescriptor,
        "layers": layerDescriptors,
    }
    if annotation is not None:
        manifest["annotations"] = {DESCRIPTION: annotation}
    manifestBytes = oci.canonicalJSON(manifest)
    descriptor = layout.writeBlob(manifestBytes, oci.MANIFEST)
    layout.tag(descriptor, tag)
    return BuiltImage(
        layout=str(path),
        tag=tag,
        manifestDigest=descriptor["digest"],
        configDigest=configDescriptor["digest"],
        layerDigests=[d["digest"] for d in layerDescriptors],
        diffIDs=diffIDs,
    )


def buildMultiArch(path, tag="latest"):
    """An OCI layout whose C{tag} is an index of linux/amd64 and
    linux/arm64 images (see L{tests.e2e.oci.buildMultiArch})."""
    return oci.buildMultiArch(str(path), tag=tag, seed=os.urandom(16), layerSize=16 * 1024)


def diffID(compressed):
    """The digest of a gzip'ed layer's uncompressed tar."""
    return "sha256:" + hashlib.sha256(gzip.decompress(compressed)).hexdigest()
