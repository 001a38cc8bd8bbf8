"""What a manifest says: the media types we take, and the parsing of a
manifest's bytes into what the registry checks and keeps (its blobs,
children, subject and declared sizes), with the spec's errors for bad
ones.  Pure functions: no storage (that is L{txregistry.registry.manifests})."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

from txregistry import digest as digests
from txregistry import names
from txregistry.errors import RegistryError
from txregistry.limits import RegistryLimits

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
IMAGE_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEX_TYPES = (DOCKER_LIST, OCI_INDEX)
MEDIA_TYPES = IMAGE_TYPES + INDEX_TYPES
# Content types that say nothing about the manifest: fall back to its body.
_GENERIC_TYPES = ("", "application/json", "application/octet-stream", "text/plain")
# Layers a registry need not hold (their "urls" say where they live).
_FOREIGN_LAYERS = (
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
)
_DOCKER_TYPE_PREFIX = "application/vnd.docker."


@dataclass
class Manifest:
    mediaType: str
    blobs: list = field(default_factory=list)  # digests that must be layers
    foreign: list = field(default_factory=list)  # non-distributable layers: may be absent, kept if there
    children: list = field(default_factory=list)  # digests that must be manifests
    subject: object = None
    config: object = None  # the config blob's digest (image manifests)
    artifactType: str = None
    annotations: dict = None
    # (digest, size) of the descriptors whose size is checked against the
    # stored content at push: the config, an index's manifests.
    declared: list = field(default_factory=list)


def _invalid(message, detail=None):
    return RegistryError("MANIFEST_INVALID", message, detail)


def _descriptor(value, where):
    if not isinstance(value, dict):
        raise _invalid("%s is not a descriptor" % (where,))
    try:
        d = digests.parse(value.get("digest"))
    except digests.InvalidDigest as e:
        raise _invalid("%s: %s" % (where, e))
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise _invalid("%s has no valid size" % (where,))
    mediaType = value.get("mediaType")
    if mediaType is not None and not isinstance(mediaType, str):
        raise _invalid("%s has an invalid mediaType" % (where,))
    return d


def mediaTypeOf(body: bytes) -> str:
    """The media type of stored manifest bytes (for GET)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return OCI_MANIFEST
    if not isinstance(doc, dict):
        return OCI_MANIFEST
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared:
        return declared
    return OCI_INDEX if "manifests" in doc else OCI_MANIFEST


def _checkUndeclared(doc, mediaType, guessed):
    """A manifest without C{mediaType} is served as what its body looks
    like, an OCI manifest or index (OCI lets them omit it); a Docker one
    must carry it (as Distribution requires), else it would be served as
    OCI afterwards and not to a client asking for Docker types.  So refuse
    one sent as Docker (C{mediaType}, from the Content-Type), or one whose
    type was C{guessed} from the body but whose descriptors are Docker's."""
    if mediaType in (DOCKER_MANIFEST, DOCKER_LIST):
        raise _invalid("a %s must say so in its mediaType" % (mediaType,), {"mediaType": mediaType})
    if not guessed:
        return
    parts = [doc.get("config")] + list(doc.get("layers") or []) + list(doc.get("manifests") or [])
    for part in parts:
        if isinstance(part, dict) and isinstance(part.get("mediaType"), str) and (
                part["mediaType"].startswith(_DOCKER_TYPE_PREFIX)):
            docker = DOCKER_LIST if "manifests" in doc else DOCKER_MANIFEST
            raise _invalid(
                "the manifest has Docker descriptors (%s) but no mediaType: a %s must say so in its mediaType"
                % (part["mediaType"], docker), {"mediaType": docker},
            )


def parseManifest(body: bytes, contentType: Optional[str], maxSize: int = RegistryLimits.maxManifestSize) -> Manifest:
    """Validate manifest bytes received with C{contentType}; return a
    L{Manifest} or raise MANIFEST_INVALID."""
    if len(body) > maxSize:
        raise RegistryError("MANIFEST_INVALID", "manifest exceeds %d bytes" % (maxSize,), limit=maxSize)
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise _invalid("manifest is not valid JSON: %s" % (str(e)[:200],))
    if not isinstance(doc, dict):
        raise _invalid("manifest is not a JSON object")
    contentType = (contentType or "").split(";", 1)[0].strip().lower()
    declared = doc.get("mediaType")
    if declared is not None and not isinstance(declared, str):
        raise _invalid("mediaType is not a string")
    if contentType in _GENERIC_TYPES:
        mediaType = declared or (OCI_INDEX if "manifests" in doc else OCI_MANIFEST)
    else:
        mediaType = contentType
    if mediaType not in MEDIA_TYPES:
        raise _invalid("unsupported manifest media type %r" % (mediaType,))
    if declared is not None and declared != mediaType:
        raise _invalid(
            "mediaType %r in the manifest does not match Content-Type %r" % (declared, mediaType)
        )
    if doc.get("schemaVersion") != 2:
        raise _invalid("schemaVersion must be 2")
    if declared is None:
        _checkUndeclared(doc, mediaType, contentType in _GENERIC_TYPES)
    m = Manifest(mediaType)
    if mediaType in IMAGE_TYPES:
        if "manifests" in doc:
            raise _invalid("an image manifest has no 'manifests'")
        m.config = _descriptor(doc.get("config"), "config")
        m.declared.append((m.config, doc["config"]["size"]))
        m.blobs.append(m.config)
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise _invalid("layers must be a list")
        for i, layer in enumerate(layers):
            d = _descriptor(layer, "layers[%d]" % (i,))
            if layer.get("mediaType") in _FOREIGN_LAYERS and layer.get("urls"):
                m.foreign.append(d)
            else:
                m.blobs.append(d)
        config = doc.get("config") or {}
        configType = config.get("mediaType")
    else:
        if "layers" in doc or "config" in doc:
            raise _invalid("an index has no 'layers' or 'config'")
        children = doc.get("manifests")
        if not isinstance(children, list):
            raise _invalid("manifests must be a list")
        for i, child in enumerate(children):
            m.children.append(_descriptor(child, "manifests[%d]" % (i,)))
            m.declared.append((m.children[-1], child["size"]))
        configType = None
    if "subject" in doc:
        m.subject = _descriptor(doc["subject"], "subject")
    artifactType = doc.get("artifactType")
    if artifactType is not None and not isinstance(artifactType, str):
        raise _invalid("artifactType is not a string")
    # OCI 1.1: with no artifactType, a manifest's config media type stands in
    # (except the empty config, which says nothing).
    if artifactType is None and configType and configType != "application/vnd.oci.empty.v1+json":
        artifactType = configType
    m.artifactType = artifactType
    annotations = doc.get("annotations")
    if annotations is not None and not isinstance(annotations, dict):
        raise _invalid("annotations is not an object")
    m.annotations = annotations
    return m


def parseReference(reference: str) -> tuple[Optional[digests.Digest], Optional[str]]:
    """A reference is a digest or a tag: return C{(digest, None)} or
    C{(None, tag)}, or raise the matching 400 error."""
    if ":" in reference:
        try:
            return digests.parse(reference), None
        except digests.InvalidDigest as e:
            raise RegistryError("DIGEST_INVALID", str(e), {"reference": reference[:200]})
    if not names.isValidTag(reference):
        raise RegistryError("TAG_INVALID", "invalid tag %r" % (reference[:200],))
    return None, reference
