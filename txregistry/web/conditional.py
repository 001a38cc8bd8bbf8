"""Conditional requests and content negotiation (RFC 9110 sections 12 and
13): the request headers parsed and judged against a representation.  Pure
functions on header values (each a list of the raw lines of one header, as
bytes or str); no I/O."""

import re

# entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE   (RFC 9110 8.8.3)
_ENTITY_TAG = re.compile(r'\s*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"\s*')
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")


def _text(lines):
    """The lines of one header joined as one list (RFC 9110 5.3), as str."""
    out = []
    for line in lines or ():
        out.append(line.decode("latin-1") if isinstance(line, bytes) else line)
    return ",".join(out)


def parseEntityTags(lines):
    """The entity tags of an If-Match / If-None-Match header: C{"*"}, a list
    of C{(weak, opaque)}, or C{None} when the header is absent or malformed
    (a malformed one is ignored: the request is then unconditional)."""
    text = _text(lines)
    if not text.strip():
        return None
    if text.strip() == "*":
        return "*"
    tags, pos = [], 0
    while pos < len(text):
        m = _ENTITY_TAG.match(text, pos)
        if m is None:
            # Empty list elements are allowed ("a, , b").
            if text[pos:].lstrip(" \t").startswith(","):
                pos = text.index(",", pos) + 1
                continue
            if not text[pos:].strip():
                break
            return None
        tags.append((m.group(1) is not None, m.group(2)))
        pos = m.end()
        if pos < len(text):
            if text[pos] != ",":
                return None
            pos += 1
    return tags or None


def _opaque(etag):
    """The opaque part of our own strong C{etag} (C{"..."}, bytes or str)."""
    if isinstance(etag, bytes):
        etag = etag.decode("latin-1")
    return etag.strip()[1:-1]


def noneMatch(lines, etag):
    """Whether If-None-Match (its C{lines}) matches the current
    representation, whose strong entity tag is C{etag}: then a GET or HEAD
    is answered 304.  Weak comparison (RFC 9110 13.1.2): C{*}, or any tag
    with the same opaque part, weak or not."""
    tags = parseEntityTags(lines)
    if tags is None:
        return False
    if tags == "*":
        return True
    opaque = _opaque(etag)
    return any(tag == opaque for _, tag in tags)


def rangeApplies(lines, etag):
    """Whether a Range request may be answered with part of the
    representation (RFC 9110 13.1.5): no If-Range, or an If-Range holding
    a strong entity tag equal to C{etag}.  A weak tag never matches, nor
    does a date (we send no Last-Modified, so no date can be an exact
    match), nor anything malformed: the whole representation is sent."""
    text = _text(lines)
    if not lines:
        return True
    m = _ENTITY_TAG.fullmatch(text)
    if m is None or m.group(1):
        return False
    return m.group(2) == _opaque(etag)


def parseAccept(lines):
    """The media ranges of an Accept header: C{[(range, q)]}, the range in
    lower case without its parameters, C{q} a float.  An entry whose q is
    not a valid qvalue counts as q=1 (clients send odd Accept lines; we do
    not turn them away for it)."""
    out = []
    for item in _text(lines).split(","):
        parts = item.split(";")
        mediaRange = parts[0].strip().lower()
        if not mediaRange:
            continue
        q = 1.0
        for param in parts[1:]:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                value = value.strip()
                if _QVALUE.fullmatch(value):
                    q = float(value)
                break  # what follows q are accept-ext, not media type parameters
        out.append((mediaRange, q))
    return out


def _specificity(mediaRange, mediaType):
    """How specifically C{mediaRange} matches C{mediaType}: 3 exact, 2
    C{type/*}, 1 C{*/*}, 0 no match."""
    if mediaRange == mediaType:
        return 3
    if mediaRange == "*/*":
        return 1
    kind, _, sub = mediaRange.partition("/")
    if sub == "*" and mediaType.split("/", 1)[0] == kind:
        return 2
    return 0


def acceptsManifest(lines, mediaType, manifestTypes):
    """Whether a manifest of C{mediaType} may be sent to a client whose
    Accept header has C{lines}, C{manifestTypes} being every manifest media
    type the registry serves.

    Clients name the manifest types they understand; one that names some
    (with q above 0) but not C{mediaType} does not get it.  One that names
    none (no Accept, C{*/*}, C{application/json}...) gets any manifest.
    Either way, the most specific range matching C{mediaType} decides when
    there is one, and q=0 means "not acceptable" (RFC 9110 12.4.2)."""
    ranges = parseAccept(lines)
    best, bestQ = 0, None
    for mediaRange, q in ranges:
        s = _specificity(mediaRange, mediaType)
        if s > best or (s == best and s and q > bestQ):
            best, bestQ = s, q
    if best == 3:
        return bestQ > 0
    if any(q > 0 and r in manifestTypes for r, q in ranges):
        return False  # the client listed the manifest types it takes: not this one
    return bestQ is None or bestQ > 0
