"""From V1 image JSON to an image config and a manifest: pure functions.

The config follows what docker itself did when it migrated its V1 graph
to content-addressed images (docker 1.10): the tagged image's V1 JSON,
without the V1 bookkeeping (C{id}, C{parent}, C{Size}, ...), plus
C{rootfs.diff_ids} and one C{history} entry per V1 layer, root first.
Every V1 image had a layer, even one that changed nothing (an C{ENV} or
C{CMD} step made an empty tar): those stay layers, so their history
entries are not C{empty_layer} (an C{empty_layer} entry has no layer,
and clients pair the other entries with the layers in order).

Output is deterministic (sorted keys, no spaces): importing the same V1
image again gives the same config and manifest digests."""

import json
import re

from txregistry import names

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_TAR = "application/vnd.docker.image.rootfs.diff.tar"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
DESCRIPTION_KEY = "org.opencontainers.image.description"

# V1 bookkeeping that is no part of an image config.
_V1_ONLY = ("id", "parent", "Size", "parent_id", "layer_id", "throwaway", "checksum")
# What a V1 image id may be (64 hex digits in practice): a safe path part.
_IMAGE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
LIBRARY = "library"


class BadImage(Exception):
    """A V1 image that cannot be converted; the message says why."""


def isImageID(value):
    return isinstance(value, str) and _IMAGE_ID.fullmatch(value) is not None


def parseTagFile(data):
    """The image id a ``tag_<tag>`` file names (the classic registry wrote
    it bare; some tools quoted it as JSON), or C{None}."""
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None
    if text.startswith('"'):
        try:
            text = json.loads(text)
        except ValueError:
            return None
    return text if isImageID(text) else None


def parseImageJSON(imageID, data):
    """The V1 JSON of an image as a dict; L{BadImage} when it is not JSON
    of an object, or names another id."""
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadImage("broken JSON (%s)" % (str(e).splitlines()[0][:100],))
    if not isinstance(doc, dict):
        raise BadImage("broken JSON (not an object)")
    if "id" in doc and doc["id"] != imageID:
        raise BadImage("its JSON names another id (%r)" % (str(doc["id"])[:80],))
    parent = doc.get("parent")
    if parent not in (None, "") and not isImageID(parent):
        raise BadImage("its JSON names a parent that is not an image id")
    return doc


def parseAncestry(imageID, data):
    """The ancestry file: a JSON list of ids, the image first; L{BadImage}
    if it is not, or names an image twice (a cycle)."""
    try:
        ids = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise BadImage("broken ancestry file")
    if not isinstance(ids, list) or not ids or not all(isImageID(i) for i in ids):
        raise BadImage("broken ancestry file")
    if ids[0] != imageID:
        raise BadImage("its ancestry starts with another image (%s)" % (ids[0],))
    checkNoCycle(ids)
    return ids


def checkNoCycle(ids):
    seen = set()
    for i, image in enumerate(ids):
        if image in seen:
            loop = ids[ids.index(image) : i + 1]
            raise BadImage("ancestry cycle (%s)" % (" -> ".join(loop),))
        seen.add(image)


def parentOf(doc):
    parent = doc.get("parent")
    return parent or None


def repositoryName(namespace, repository, keepLibrary=False):
    """The name a V1 repository gets here: C{namespace/repository}, except
    the C{library} namespace of unqualified names, which is dropped (what
    was pulled as C{host/app} is pulled as C{host/app} again) unless
    C{keepLibrary}.  C{None} when the result is not a valid name."""
    name = repository if namespace == LIBRARY and not keepLibrary else "%s/%s" % (namespace, repository)
    return name if names.isValidName(name) else None


def searchName(v1Name, keepLibrary=False):
    """A name of the classic search database (C{namespace/repository}, or
    a bare one) as L{repositoryName} maps it."""
    namespace, _, repository = v1Name.partition("/")
    if not repository:
        namespace, repository = LIBRARY, namespace
    return repositoryName(namespace, repository, keepLibrary)


def _cmd(doc):
    cc = doc.get("container_config")
    cmd = cc.get("Cmd") if isinstance(cc, dict) else None
    if isinstance(cmd, list):
        return " ".join(str(c) for c in cmd)
    if isinstance(cmd, str):
        return cmd
    return ""


def historyEntry(doc):
    """The history entry of one V1 image (it has a layer: not empty_layer)."""
    entry = {}
    for key in ("created", "author", "comment"):
        value = doc.get(key)
        if isinstance(value, str) and value:
            entry[key] = value
    createdBy = _cmd(doc)
    if createdBy:
        entry["created_by"] = createdBy
    return entry


def _text(value, default):
    return value if isinstance(value, str) and value else default


def imageConfig(chain, diffIDs, tagJSON=None):
    """The image config (bytes) of the last image of C{chain} (V1 JSON
    dicts, root first) with layers C{diffIDs} (one per image, same order).
    C{tagJSON}: the tag's ``tag<tag>_json`` as a dict, for the architecture
    and os when the image's JSON lacks them."""
    if len(chain) != len(diffIDs):
        raise ValueError("one diff id per V1 image")
    tagJSON = tagJSON if isinstance(tagJSON, dict) else {}
    tagged = chain[-1]
    config = {k: v for k, v in tagged.items() if k not in _V1_ONLY}
    config["architecture"] = _text(tagged.get("architecture"), _text(tagJSON.get("arch"), "amd64"))
    config["os"] = _text(tagged.get("os"), _text(tagJSON.get("os"), "linux"))
    if not isinstance(config.get("config"), dict):
        config["config"] = {}
    config["rootfs"] = {"type": "layers", "diff_ids": list(diffIDs)}
    config["history"] = [historyEntry(doc) for doc in chain]
    return canonical(config)


def manifest(config, layers, oci=False, description=None):
    """C{(bytes, mediaType)} of the manifest of an image: C{config} the
    config's bytes' C{(digest, size)}, C{layers} C{(digest, size,
    compressed)} root first."""
    if oci:
        mediaType, configType, gz, tar = OCI_MANIFEST, OCI_CONFIG, OCI_LAYER_GZIP, OCI_LAYER_TAR
    else:
        mediaType, configType, gz, tar = DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER_GZIP, DOCKER_LAYER_TAR
    doc = {
        "schemaVersion": 2,
        "mediaType": mediaType,
        "config": {"mediaType": configType, "digest": config[0], "size": config[1]},
        "layers": [
            {"mediaType": gz if compressed else tar, "digest": digest, "size": size}
            for digest, size, compressed in layers
        ],
    }
    if description:
        # Where the search index reads a repository's description from
        # (txregistry.search.updater): it survives a reindex.
        doc["annotations"] = {DESCRIPTION_KEY: description}
    return canonical(doc), mediaType


def canonical(doc):
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
