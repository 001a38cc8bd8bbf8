"""The ``mirrors:`` section (txregistry's) and the classic ``mirroring:``
section, parsed into L{MirrorSettings}.

    mirrors:
      mixed: false                  # true: pushes to mirrored names are stored locally too
      upstreams:
        - name: hub
          url: https://registry-1.docker.io
          default: true             # every name no other upstream claims (docker's registry-mirrors)
          library: true             # a one-part name NAME is library/NAME upstream (default: true for the default)
          username: _env:HUB_USER   # optional: Basic or token-service credentials
          password: _env:HUB_PASSWORD
          token: ""                 # optional: a static bearer token instead
          ca_bundle: /etc/ssl/upstream-ca.pem
          tags_ttl: 300             # seconds a tag is served before it is checked upstream again
        - name: quay
          url: https://quay.io
          prefix: quay              # quay/coreos/etcd here is coreos/etcd there
        - name: team
          url: https://registry.example.com
          repositories: ["team/*"]  # globs: the same name there

    mirroring:                      # the classic keys: the default upstream
      source: https://registry-1.docker.io
      source_index: https://index.docker.io   # accepted; V1 is not spoken
      tags_cache_ttl: 172800
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass
from typing import Optional
from urllib.parse import urlsplit

DEFAULT_TAGS_TTL = 300.0
UPSTREAM_KEYS = ("name", "url", "default", "library", "prefix", "repositories", "username", "password",
                 "token", "ca_bundle", "tags_ttl", "timeout")
KEYS = ("mixed", "upstreams")
CLASSIC_KEYS = ("source", "source_index", "tags_cache_ttl")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_PREFIX = re.compile(r"^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$")


class MirrorConfigError(Exception):
    pass


@dataclass(frozen=True)
class UpstreamSettings:
    name: str
    url: str  # scheme://host[:port], no trailing slash
    default: bool = False
    library: bool = False
    prefix: str = ""
    repositories: tuple = ()
    username: str = ""
    password: str = ""
    token: str = ""
    caBundle: bytes = b""  # PEM, read at start
    tagsTTL: float = DEFAULT_TAGS_TTL
    timeout: float = 30.0  # seconds without an answer (connect, headers)

    def remoteName(self, name: str) -> Optional[str]:
        """The name upstream of the local repository C{name}, or C{None} when
        this upstream does not claim it."""
        if self.prefix:
            if not name.startswith(self.prefix + "/"):
                return None
            name = name[len(self.prefix) + 1:]
        elif self.repositories:
            if not any(fnmatch.fnmatchcase(name, g) for g in self.repositories):
                return None
        elif not self.default:
            return None
        if self.library and "/" not in name:
            name = "library/" + name
        return name


@dataclass(frozen=True)
class MirrorSettings:
    upstreams: tuple  # UpstreamSettings; prefixed and globbed first, the default last
    mixed: bool = False

    def route(self, name: str):
        """C{(UpstreamSettings, remoteName)} for a local repository name, or
        C{None}: a local repository."""
        for u in self.upstreams:
            remote = u.remoteName(name)
            if remote is not None:
                return u, remote
        return None


def _err(source, key, message):
    return MirrorConfigError("%s: %s %s" % (source, key, message))


def _url(value, source, key):
    if not isinstance(value, str) or not value:
        raise _err(source, key, "must be an http(s) URL, not %r" % (value,))
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise _err(source, key, "must be an http(s) URL, not %r" % (value,))
    if parts.path.strip("/"):
        raise _err(source, key, "must name a registry (scheme://host[:port]), not %r" % (value,))
    return "%s://%s" % (parts.scheme, parts.netloc)


def _seconds(value, source, key):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise _err(source, key, "must be a number of seconds (>= 0), not %r" % (value,))
    return float(value)


def _text(value, source, key):
    if value is None:
        return ""
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise _err(source, key, "must be a string, not %r" % (value,))
    return str(value)


def _bool(value, source, key, default):
    if value is None:
        return default
    if not isinstance(value, bool):
        raise _err(source, key, "must be true or false, not %r" % (value,))
    return value


def _caBundle(value, source, key, baseDir):
    if not value:
        return b""
    if not isinstance(value, str):
        raise _err(source, key, "must be a file path, not %r" % (value,))
    path = os.path.join(baseDir, value)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise _err(source, key, "cannot read %s: %s" % (path, e.strerror or e))
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise _err(source, key, "%s holds no PEM certificate" % (path,))
    return data


def _upstream(entry, index, source, baseDir):
    where = "mirrors.upstreams[%d]" % (index,)
    if not isinstance(entry, dict):
        raise _err(source, where, "must be a mapping, not %r" % (entry,))
    for k in entry:
        if k not in UPSTREAM_KEYS:
            raise _err(source, "%s.%s" % (where, k), "is not a key of an upstream (%s)" % (", ".join(UPSTREAM_KEYS),))
    name = _text(entry.get("name"), source, where + ".name") or "upstream%d" % (index,)
    if not _NAME.match(name):
        raise _err(source, where + ".name", "must be letters, digits, '.', '_' or '-', not %r" % (name,))
    url = _url(entry.get("url"), source, where + ".url")
    default = _bool(entry.get("default"), source, where + ".default", False)
    prefix = _text(entry.get("prefix"), source, where + ".prefix").strip("/")
    if prefix and not _PREFIX.match(prefix):
        raise _err(source, where + ".prefix", "must be a repository name prefix, not %r" % (prefix,))
    repos = entry.get("repositories") or ()
    if isinstance(repos, str):
        repos = (repos,)
    if not isinstance(repos, (list, tuple)) or not all(isinstance(g, str) and g for g in repos):
        raise _err(source, where + ".repositories", "must be a list of globs, not %r" % (repos,))
    chosen = [x for x in (default, bool(prefix), bool(repos)) if x]
    if len(chosen) != 1:
        raise _err(source, where, "needs exactly one of default: true, prefix or repositories")
    library = _bool(entry.get("library"), source, where + ".library", default)
    username = _text(entry.get("username"), source, where + ".username")
    password = _text(entry.get("password"), source, where + ".password")
    if bool(username) != bool(password):
        raise _err(source, where, "needs both username and password, or neither")
    ttl = entry.get("tags_ttl")
    return UpstreamSettings(
        name=name, url=url, default=default, library=library, prefix=prefix, repositories=tuple(repos),
        username=username, password=password, token=_text(entry.get("token"), source, where + ".token"),
        caBundle=_caBundle(entry.get("ca_bundle"), source, where + ".ca_bundle", baseDir),
        tagsTTL=DEFAULT_TAGS_TTL if ttl is None else _seconds(ttl, source, where + ".tags_ttl"),
        timeout=_seconds(entry.get("timeout", 30.0), source, where + ".timeout") or 30.0,
    )


def parseMirror(section, classic, source, baseDir) -> Optional[MirrorSettings]:
    """L{MirrorSettings} from the C{mirrors:} section and the classic
    C{mirroring:} one (either may be C{None}); C{None} when neither names an
    upstream."""
    upstreams = []
    mixed = False
    if section is not None:
        if not isinstance(section, dict):
            raise _err(source, "mirrors", "must be a mapping, not %r" % (section,))
        for k in section:
            if k not in KEYS:
                raise _err(source, "mirrors.%s" % (k,), "is not a key of mirrors (%s)" % (", ".join(KEYS),))
        mixed = _bool(section.get("mixed"), source, "mirrors.mixed", False)
        entries = section.get("upstreams") or []
        if not isinstance(entries, list):
            raise _err(source, "mirrors.upstreams", "must be a list, not %r" % (entries,))
        upstreams = [_upstream(e, i, source, baseDir) for i, e in enumerate(entries)]
    if classic is not None:
        if not isinstance(classic, dict):
            raise _err(source, "mirroring", "must be a mapping, not %r" % (classic,))
        for k in classic:
            if k not in CLASSIC_KEYS:
                raise _err(source, "mirroring.%s" % (k,), "is not a key of mirroring (%s)" % (", ".join(CLASSIC_KEYS),))
        if classic.get("source"):
            if any(u.default for u in upstreams):
                raise _err(source, "mirroring.source", "and a default upstream in mirrors: name one only")
            ttl = classic.get("tags_cache_ttl")
            upstreams.append(UpstreamSettings(
                name="default", url=_url(classic["source"], source, "mirroring.source"), default=True, library=True,
                tagsTTL=DEFAULT_TAGS_TTL if ttl is None else _seconds(ttl, source, "mirroring.tags_cache_ttl"),
            ))
    if not upstreams:
        return None
    if sum(u.default for u in upstreams) > 1:
        raise _err(source, "mirrors.upstreams", "has more than one default upstream")
    names = [u.name for u in upstreams]
    if len(set(names)) != len(names):
        raise _err(source, "mirrors.upstreams", "names two upstreams alike")
    ordered = tuple(sorted(upstreams, key=lambda u: (u.default, -len(u.prefix))))
    return MirrorSettings(upstreams=ordered, mixed=mixed)
