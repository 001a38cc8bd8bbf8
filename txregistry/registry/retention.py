"""Retention policies: which tags of a repository go.

A policy names repositories by a glob (C{fnmatch}: C{*} matches across
``/`` too, so ``team/*`` is every repository under ``team``); the first
policy whose glob matches a repository applies to it, repositories no
policy matches keep every tag.  Of a repository's tags, ordered newest
first by push time (the mtime of the tag's ``current/link``, written anew
by each push of the tag), a policy keeps:

- C{keep_last: N}: the N newest;
- C{keep_tags: [patterns]}: those matching one of the globs;
- C{older_than: DURATION}: those pushed less than DURATION ago (``30d``,
  ``12h``, ``90m``, ``1w``, or seconds).

Every other tag is deleted (its directory: Distribution's tag delete).  A
policy needs C{keep_last} or C{older_than} (or both: then a tag goes only
when it is neither among the newest N nor younger than the duration), so
that no policy deletes everything by a slip.  Only tags go: the
collection's C{delete_untagged} then deletes the manifests no tag keeps,
and their blobs.

A tag pushed again while a collection decides about it stays (its link's
mtime is looked at again just before the delete)."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Callable, Optional

from txregistry.registry import layout, tagtimes
from txregistry.registry.blobs import deleteQuietly
from txregistry.registry.catalog import catalog

KEYS = ("repositories", "keep_last", "keep_tags", "older_than")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


class RetentionConfigError(Exception):
    """A bad policy: the message is one line naming the key."""


@dataclass(frozen=True)
class Policy:
    repositories: str  # a glob of repository names
    keepLast: Optional[int] = None
    keepTags: tuple = ()  # globs of tags
    olderThan: Optional[float] = None  # seconds

    def matches(self, name: str) -> bool:
        return fnmatch.fnmatchcase(name, self.repositories)

    def doomed(self, tags: list[tuple[str, float]], now: float) -> list[str]:
        """The tags of C{tags} (C{(tag, pushed at)}) this policy deletes,
        at time C{now}, newest first."""
        ordered = sorted(tags, key=lambda t: (-t[1], t[0]))
        out = []
        for i, (tag, pushed) in enumerate(ordered):
            if self.keepLast is not None and i < self.keepLast:
                continue
            if any(fnmatch.fnmatchcase(tag, p) for p in self.keepTags):
                continue
            if self.olderThan is not None and now - pushed < self.olderThan:
                continue
            out.append(tag)
        return out

    def describe(self) -> str:
        parts = []
        if self.keepLast is not None:
            parts.append("keep the newest %d" % (self.keepLast,))
        if self.keepTags:
            parts.append("keep %s" % (", ".join(self.keepTags),))
        if self.olderThan is not None:
            parts.append("delete when older than %gs" % (self.olderThan,))
        return "%s: %s" % (self.repositories, "; ".join(parts))


def parseAge(value) -> Optional[float]:
    """Seconds of C{30d}, C{12h}, C{1h30m}, C{1w}, or a number of seconds;
    C{None} if it is none of these."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if value >= 0 else None
    if not isinstance(value, str) or not value.strip():
        return None
    text, pos, total = value.strip(), 0, 0.0
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    for m in _PART.finditer(text):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    return total if pos == len(text) else None


def parsePolicies(value, source: str = "retention") -> tuple[Policy, ...]:
    """The L{Policy}s of a C{retention:} list; L{RetentionConfigError}."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RetentionConfigError("%s: retention must be a list of policies (mappings of %s)"
                                   % (source, ", ".join(KEYS)))
    out = []
    for i, entry in enumerate(value):
        where = "%s: retention[%d]" % (source, i)
        if not isinstance(entry, dict):
            raise RetentionConfigError("%s must be a mapping of %s, not %r" % (where, ", ".join(KEYS), entry))
        unknown = sorted(str(k) for k in entry if k not in KEYS)
        if unknown:
            raise RetentionConfigError("%s: unknown keys: %s (known: %s)" % (where, ", ".join(unknown), ", ".join(KEYS)))
        glob = entry.get("repositories")
        if not isinstance(glob, str) or not glob.strip():
            raise RetentionConfigError("%s.repositories must be a glob of repository names like team/*, not %r"
                                       % (where, glob))
        keepLast = entry.get("keep_last")
        if keepLast is not None and (isinstance(keepLast, bool) or not isinstance(keepLast, int) or keepLast < 0):
            raise RetentionConfigError("%s.keep_last must be a whole number of tags, not %r" % (where, keepLast))
        keepTags = entry.get("keep_tags") or []
        if isinstance(keepTags, str):
            keepTags = [keepTags]
        if not isinstance(keepTags, list) or not all(isinstance(t, str) and t for t in keepTags):
            raise RetentionConfigError("%s.keep_tags must be a list of tag globs like v* or latest, not %r"
                                       % (where, entry.get("keep_tags")))
        olderThan = None
        if entry.get("older_than") is not None:
            olderThan = parseAge(entry["older_than"])
            if olderThan is None:
                raise RetentionConfigError("%s.older_than must be a duration like 30d, 12h or 90m, not %r"
                                           % (where, entry["older_than"]))
        if keepLast is None and olderThan is None:
            raise RetentionConfigError("%s needs keep_last or older_than (a policy with neither would delete "
                                       "every tag but keep_tags)" % (where,))
        out.append(Policy(glob.strip(), keepLast, tuple(keepTags), olderThan))
    return tuple(out)


def policyFor(policies, name: str) -> Optional[Policy]:
    for policy in policies:
        if policy.matches(name):
            return policy
    return None


_pushedAt = tagtimes.pushedAt  # (one tag's, looked at again before its delete)


async def tagTimes(driver, name: str) -> list[tuple[str, float]]:
    """C{(tag, pushed at)} of repository C{name}'s tags (those with a
    current link), by tag: L{tagtimes.pushTimes}, in one go where the
    driver can."""
    return sorted((await tagtimes.pushTimes(driver, name)).items())


async def apply(driver, policies, now: float, dryRun: bool = False,
                log: Optional[Callable[[str, str], None]] = None, events=None) -> list[tuple[str, str]]:
    """Delete (with C{dryRun}: only list) the tags the C{policies} delete
    at time C{now} (storage time); C{[(repository, tag)]}, and
    C{log(repository, tag)} for each.  Each tag deleted is announced to
    C{events} (a L{txregistry.events.Announcer}, or C{None}) as the API's
    tag delete is."""
    done = []
    if not policies:
        return done
    for name in await catalog(driver):
        policy = policyFor(policies, name)
        if policy is None:
            continue
        times = dict(await tagTimes(driver, name))
        for tag in policy.doomed(list(times.items()), now):
            if not dryRun:
                # Pushed again meanwhile: it is the newest now, it stays.
                if await _pushedAt(driver, name, tag) != times[tag]:
                    continue
                await deleteQuietly(driver, layout.tagDir(name, tag))
                if events is not None:
                    events.manifestDeleted(name, tag=tag)
            done.append((name, tag))
            if log is not None:
                log(name, tag)
    return done
