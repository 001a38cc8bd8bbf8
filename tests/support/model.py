"""A registry model on the memory driver, and the content tests push to it
(no HTTP): for tests/unit/test_model_*.py."""

import json

from twisted.internet import reactor

from txregistry import digest as digests
from txregistry.registry import Registry
from txregistry.registry.manifests import OCI_INDEX, OCI_MANIFEST
from txregistry.storage.memory import MemoryDriver

CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"


def memoryRegistry():
    """A L{Registry} on a fresh L{MemoryDriver}, without a thread pool."""
    return Registry(MemoryDriver(), reactor, None)


async def pushBlob(registry, name, data):
    """Store C{data} as a blob linked into C{name}; returns its descriptor."""
    d = digests.of(data)
    await registry.blobs.putContent(d, data)
    await registry.blobs.link(name, d)
    return {"mediaType": LAYER_TYPE, "digest": d, "size": len(data)}


def imageManifest(config, layers, subject=None, artifactType=None):
    """The bytes of an OCI image manifest."""
    doc = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": dict(config, mediaType=CONFIG_TYPE),
           "layers": layers}
    if subject is not None:
        doc["subject"] = subject
    if artifactType is not None:
        doc["artifactType"] = artifactType
    return json.dumps(doc).encode("utf-8")


def indexManifest(children):
    """The bytes of an OCI index of the manifests C{children} (descriptors)."""
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": children}).encode("utf-8")


async def pushImage(registry, name, tag=None, seed=b"", subject=None, artifactType=None):
    """Push a config, a layer and a manifest naming them (tagged C{tag}, or
    by digest); returns C{(digest, body, [config and layer digests])}."""
    config = await pushBlob(registry, name, b'{"seed": "%s"}' % (seed,))
    layer = await pushBlob(registry, name, b"layer of " + seed)
    body = imageManifest(config, [layer], subject=subject, artifactType=artifactType)
    reference = tag if tag is not None else digests.of(body)
    digest, _ = await registry.manifests.put(name, reference, body, OCI_MANIFEST)
    return digest, body, [config["digest"], layer["digest"]]


def descriptor(digest, body, mediaType=OCI_MANIFEST):
    return {"mediaType": mediaType, "digest": digest, "size": len(body)}
