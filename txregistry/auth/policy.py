"""Access policy: who may pull, push and delete which repositories.

A rule maps a repository glob to actions.  Globs are matched against the
whole repository name, case-sensitively:

- ``*`` matches any run of characters, ``/`` included: ``team-a/*`` covers
  ``team-a/app`` and ``team-a/x/y`` (but not ``team-a`` itself), and ``*``
  alone covers every repository;
- ``?`` matches exactly one character other than ``/``;
- every other character matches itself.  Only the characters of repository
  names (``a-z 0-9 . _ - /``) may appear, so a glob that could never match
  (upper case, ``[``, a space, ``//``) is refused when the config is read.

Actions are ``pull``, ``push`` and ``delete``; ``*`` stands for all three.
Rules only grant, never deny: what a caller may do is the union of the
anonymous rules, its own rules and those of its groups; admins may do
everything.  Pure code, no I/O.
"""

import re
from dataclasses import dataclass, field

ACTIONS = ("pull", "push", "delete")

_GLOB_CHARS = re.compile(r"^[a-z0-9._/*?-]+$")


def compileGlob(glob):
    """Compile a repository glob; C{ValueError} says what is wrong with it."""
    if not isinstance(glob, str) or not glob:
        raise ValueError("must be a non-empty string")
    if not _GLOB_CHARS.match(glob):
        bad = sorted(set(c for c in glob if not _GLOB_CHARS.match(c)))
        raise ValueError(
            "may contain only a-z 0-9 . _ - / and the wildcards * ?, not %s" % ", ".join(repr(c) for c in bad)
        )
    if glob.startswith("/") or glob.endswith("/") or "//" in glob:
        raise ValueError("has an empty path component")
    parts = []
    for c in glob:
        if c == "*":
            if not parts or parts[-1] != ".*":
                parts.append(".*")
        elif c == "?":
            parts.append("[^/]")
        else:
            parts.append(re.escape(c))
    return re.compile("".join(parts))


def expandActions(actions):
    """A list of action names, ``*`` meaning all, into a frozenset of
    L{ACTIONS}; C{ValueError} for an unknown one."""
    result = set()
    for action in actions:
        if action == "*":
            result.update(ACTIONS)
        elif action in ACTIONS:
            result.add(action)
        else:
            raise ValueError("unknown action %r (known: %s, or *)" % (action, ", ".join(ACTIONS)))
    return frozenset(result)


@dataclass(frozen=True)
class Rule:
    repository: str  # the glob as configured
    actions: frozenset  # subset of ACTIONS
    regex: object = field(repr=False, compare=False, default=None)

    @classmethod
    def make(cls, repository, actions):
        return cls(repository, expandActions(actions), compileGlob(repository))

    def matches(self, name):
        return self.regex.fullmatch(name) is not None


@dataclass(frozen=True)
class Group:
    name: str
    members: frozenset
    rules: tuple


@dataclass(frozen=True)
class Policy:
    admins: frozenset = frozenset()
    anonymous: tuple = ()  # Rules for everybody, logged in or not
    users: dict = field(default_factory=dict)  # user -> tuple of Rules
    groups: dict = field(default_factory=dict)  # group name -> Group

    def __post_init__(self):
        memberOf = {}
        for group in self.groups.values():
            for member in group.members:
                memberOf.setdefault(member, set()).add(group.name)
        object.__setattr__(self, "_memberOf", {k: frozenset(v) for k, v in memberOf.items()})

    def groupsOf(self, user):
        if user is None:
            return frozenset()
        return self._memberOf.get(user, frozenset())

    def isAdmin(self, user):
        return user is not None and user in self.admins

    def rulesFor(self, user):
        """Every rule that applies to C{user} (C{None}: anonymous)."""
        rules = list(self.anonymous)
        if user is not None:
            rules.extend(self.users.get(user, ()))
            for name in sorted(self.groupsOf(user)):
                rules.extend(self.groups[name].rules)
        return rules

    def actionsFor(self, user, repository):
        """The frozenset of L{ACTIONS} C{user} may do on C{repository}."""
        if self.isAdmin(user):
            return frozenset(ACTIONS)
        granted = set()
        for rule in self.rulesFor(user):
            if rule.matches(repository):
                granted |= rule.actions
        return frozenset(granted)

    def allows(self, user, repository, action):
        return action in ACTIONS and action in self.actionsFor(user, repository)

    def mentionedUsers(self):
        """User names the policy refers to (admins, users, group members)."""
        names = set(self.admins) | set(self.users)
        for group in self.groups.values():
            names |= group.members
        return names
