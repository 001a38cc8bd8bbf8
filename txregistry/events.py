"""What the registry model announces: blobs and manifests pushed, pulled,
mounted and deleted.

Plain records handed to listeners, synchronously and in the order they
happen; a listener only queues (it never does I/O there, and what it
raises is logged, never seen by the model).  A request's details (who,
from where, how) are in a context variable the web layer binds for the
request (L{bind}): the model never sees HTTP, and an event announced
outside a request has none.
"""

from __future__ import annotations

import contextvars
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterable, Optional

from twisted.logger import Logger

PUSH, PULL, MOUNT, DELETE = "push", "pull", "mount", "delete"
ACTIONS = (PUSH, PULL, MOUNT, DELETE)
BLOB_MEDIA_TYPE = "application/octet-stream"  # what Distribution says of a layer's blob

log = Logger()


@dataclass(frozen=True)
class RequestInfo:
    """The request an event happened in (Distribution's request and actor
    records), and the base URL that request reached the registry at."""

    id: str = ""
    addr: str = ""
    host: str = ""
    method: str = ""
    useragent: str = ""
    user: str = ""  # "" for an anonymous caller
    baseURL: str = ""  # "scheme://host[:port]"


_request = contextvars.ContextVar("txregistry.events.request", default=None)


def bind(info: Optional[RequestInfo]) -> None:
    """Make C{info} (a L{RequestInfo}) the request of what is announced from
    here on in the current context (a request's coroutine)."""
    _request.set(info)


def currentRequest() -> Optional[RequestInfo]:
    return _request.get()


def newRequestID() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True)
class Event:
    action: str
    repository: str
    mediaType: str = ""
    digest: str = ""
    size: int = None
    tag: str = ""
    fromRepository: str = ""
    references: tuple = ()  # (mediaType, digest, size) of what a manifest names
    request: RequestInfo = None
    timestamp: float = field(default_factory=time.time)
    id: str = field(default_factory=newRequestID)

    kind = "manifest"  # (not a field) "blob" or "manifest"; a tag deleted is a manifest's

    def url(self) -> str:
        """The content's URL, as the request reached the registry (Distribution's
        target.url); "" outside a request or without a digest."""
        if self.request is None or not self.request.baseURL or not self.digest:
            return ""
        return "%s/v2/%s/%ss/%s" % (self.request.baseURL, self.repository, self.kind, self.digest)

    def record(self, source: dict, includeReferences: bool = False) -> dict:
        """Distribution's JSON event (a dict), C{source} its source record
        (C{{"addr", "instanceID"}})."""
        target = {}
        if self.mediaType:
            target["mediaType"] = self.mediaType
        if self.size is not None:
            target["size"] = self.size
        if self.digest:
            target["digest"] = self.digest
        if self.size is not None:
            target["length"] = self.size
        target["repository"] = self.repository
        if self.fromRepository:
            target["fromRepository"] = self.fromRepository
        url = self.url() if self.action != DELETE else ""  # (gone: Distribution names none)
        if url:
            target["url"] = url
        if self.tag:
            target["tag"] = self.tag
        if includeReferences and self.references:
            target["references"] = [{"mediaType": m, "digest": d, "size": s} for m, d, s in self.references]
        r = self.request or RequestInfo()
        return {
            "id": self.id,
            "timestamp": formatTimestamp(self.timestamp),
            "action": self.action,
            "target": target,
            "request": {"id": r.id, "addr": r.addr, "host": r.host, "method": r.method, "useragent": r.useragent},
            "actor": {"name": r.user} if r.user else {},
            "source": dict(source),
        }


class _BlobEvent(Event):
    kind = "blob"


def formatTimestamp(seconds: float) -> str:
    """RFC 3339 in UTC with nanoseconds' room, as Go writes a time.Time."""
    whole = int(seconds)
    micros = int(round((seconds - whole) * 1e6))
    if micros >= 1000000:
        whole, micros = whole + 1, micros - 1000000
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole))
    return stamp + (".%06d" % (micros,)).rstrip("0").rstrip(".") + "Z"


def references(body: bytes) -> tuple[tuple[str, str, Optional[int]], ...]:
    """(mediaType, digest, size) of the descriptors a manifest's bytes name
    (config and layers, or an index's manifests); () for what is not one."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ()
    if not isinstance(doc, dict):
        return ()
    found = []
    descriptors = [doc.get("config")] + list(doc.get("layers") or []) + list(doc.get("manifests") or [])
    for d in descriptors:
        if isinstance(d, dict) and isinstance(d.get("digest"), str):
            size = d.get("size")
            found.append((str(d.get("mediaType") or ""), d["digest"], size if isinstance(size, int) else None))
    return tuple(found)


class Announcer:
    """The listeners of one registry model (the registry's listener
    interface: C{registry.events}), and the calls the model makes.  False
    while nobody listens: then the model's calls build nothing; an action
    no listener asked for (pulls, say, with only the search index
    listening) builds nothing either."""

    def __init__(self) -> None:
        self._listeners = []  # [(listener, frozenset of actions)]
        self._wanted = frozenset()

    def add(self, listener: Callable[[Event], None], actions: Iterable[str] = ACTIONS) -> None:
        """Call C{listener(event)} for every event of C{actions} from now on."""
        self._listeners.append((listener, frozenset(actions)))
        self._wanted = self._wanted.union(actions)

    def remove(self, listener: Callable[[Event], None]) -> None:
        for i, (known, _) in enumerate(self._listeners):
            if known == listener:
                del self._listeners[i]
                break
        else:
            raise ValueError("not a listener: %r" % (listener,))
        self._wanted = frozenset().union(*(actions for _, actions in self._listeners))

    def __bool__(self) -> bool:
        return bool(self._listeners)

    def wants(self, action: str) -> bool:
        """Somebody listens to C{action}."""
        return action in self._wanted

    def announce(self, event: Event) -> None:
        for listener, actions in list(self._listeners):
            if event.action not in actions:
                continue
            try:
                listener(event)
            except Exception:
                log.failure("an event listener failed on a {action} event", action=event.action)

    # --- what the model calls (nothing happens unless someone listens) ---

    def blob(self, action: str, repository: str, digest: str, size: Optional[int] = None,
             fromRepository: str = "") -> None:
        if action in self._wanted:
            self.announce(_BlobEvent(action=action, repository=repository, mediaType=BLOB_MEDIA_TYPE,
                                     digest=digest, size=size, fromRepository=fromRepository,
                                     request=currentRequest()))

    def blobDeleted(self, repository: str, digest: str) -> None:
        if DELETE in self._wanted:
            # (Distribution's blob delete event names the digest alone.)
            self.announce(_BlobEvent(action=DELETE, repository=repository, digest=digest, request=currentRequest()))

    def manifest(self, action: str, repository: str, digest: str, mediaType: str, body: bytes,
                 tag: Optional[str] = None) -> None:
        if action in self._wanted:
            self.announce(Event(action=action, repository=repository, mediaType=mediaType, digest=digest,
                                size=len(body), tag=tag or "", references=references(body),
                                request=currentRequest()))

    def manifestDeleted(self, repository: str, digest: Optional[str] = None, tag: Optional[str] = None) -> None:
        if DELETE in self._wanted:
            self.announce(Event(action=DELETE, repository=repository, digest=digest or "", tag=tag or "",
                                request=currentRequest()))
