"""Scopes of Docker's token authentication: ``type:name:action[,action...]``.

A scope names a resource and the actions wanted on it, for example
``repository:team/app:pull,push`` or ``registry:catalog:*``.  The resource
type may carry a class in parentheses (``repository(plugin):x:pull``), and
the name may itself contain colons (a ``host:port/`` prefix), so the type ends
at the first colon and the actions start after the last one.  Several scopes
in one string are separated by spaces.  Pure functions, no I/O.
"""

import re

# resourcetype := component [ "(" component ")" ]
_TYPE = re.compile(r"^[a-z0-9]+(?:\([a-z0-9]+\))?$")
_ACTION = re.compile(r"^(?:\*|[a-z][a-z0-9_-]*)$")
# What may appear inside a quoted WWW-Authenticate parameter without escaping.
_NAME_CHARS = re.compile(r"^[A-Za-z0-9._/:\-\[\]]+$")


def parseScope(text):
    """Parse one or several space-separated scopes.

    Returns a list of C{(type, name, [actions])}, in the order given (an
    action listed twice in one scope appears once).  Raises C{ValueError}
    naming the bad scope for anything that is not of that form.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError("scope is not ASCII")
    if not isinstance(text, str):
        raise ValueError("scope must be a string, not %r" % (text,))
    result = []
    for item in text.split():
        first = item.find(":")
        last = item.rfind(":")
        if first <= 0 or last == first:
            raise ValueError("malformed scope %r: expected type:name:actions" % (item,))
        rtype, name, actions = item[:first], item[first + 1 : last], item[last + 1 :]
        if not _TYPE.match(rtype):
            raise ValueError("malformed scope %r: bad resource type %r" % (item, rtype))
        if not name or not _NAME_CHARS.match(name):
            raise ValueError("malformed scope %r: bad resource name %r" % (item, name))
        wanted = []
        for action in actions.split(","):
            if not _ACTION.match(action):
                raise ValueError("malformed scope %r: bad action %r" % (item, action))
            if action not in wanted:
                wanted.append(action)
        result.append((rtype, name, wanted))
    return result


def formatScope(scope):
    """C{(type, name, actions)} -> ``type:name:a,b``."""
    rtype, name, actions = scope
    return "%s:%s:%s" % (rtype, name, ",".join(actions))


def normalizeScopes(scopes):
    """Accept what callers have at hand: C{None}, a scope string, or an
    iterable of scope strings and C{(type, name, actions)} tuples (actions as
    a list or a comma-separated string).  Returns a list of
    C{(type, name, [actions])}; raises C{ValueError} for a malformed one."""
    if not scopes:
        return []
    if isinstance(scopes, (str, bytes)):
        return parseScope(scopes)
    result = []
    for scope in scopes:
        if isinstance(scope, (str, bytes)):
            result.extend(parseScope(scope))
            continue
        rtype, name, actions = scope
        if isinstance(actions, str):
            actions = actions.split(",")
        # Round-trip through the parser so that every scope we later put in a
        # header or a token has passed the same validation.
        result.extend(parseScope(formatScope((rtype, name, list(actions)))))
    return result
