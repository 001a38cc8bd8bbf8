"""Touch records and sweeping marks: how a push and a garbage collection
running at the same time (in other processes, on other nodes) agree on a
blob, through storage alone.  L{txregistry.registry.gc} has the argument
why no blob a manifest refers to is lost; this module is both sides of it.

Beside a blob's data (``blobs/<alg>/<xx>/<hex>/``), two kinds of files of
ours (Distribution reads only ``data`` there):

- ``_touched``, the touch record: written (anew) by every push that relies
  on the blob (an upload finishing, a mount, a manifest naming it, the
  manifest's own bytes), before it checks the blob is there.  Its storage
  mtime says "in use from then on".
- ``_sweeping-<run>``, a collector's mark: written by a collection before
  it reads the touch record and decides to delete the blob; it goes with
  the blob's directory, or is removed when the blob is kept.

The push side (L{claim}): touch, then look (list the blob's directory:
its data, any sweeping mark); a live mark means a collector may be
deleting the blob: wait until it goes, then touch and look again; commit
(write what names the blob) within L{TOUCH_DEADLINE} of touching, else
start again.

The collector side (L{holdForSweep}): mark, then read the touch record; a
touch younger than the grace keeps the blob (the mark is removed);
otherwise delete within L{COLLECTOR_DEADLINE} of marking, else give up.

Each side writes before it reads what the other writes, so of a push and
a collector racing on one blob at least one sees the other (storage is
strongly consistent: a local filesystem, S3 since 2020).
"""

from __future__ import annotations

import time
from typing import Iterable, Optional

from twisted.internet.defer import Deferred, FirstError, gatherResults
from twisted.internet.task import deferLater

from txregistry.errors import RegistryError
from txregistry.registry import layout
from txregistry.registry.blobs import deleteQuietly, listQuietly
from txregistry.storage import PathNotFound

# A push commits (writes the first link naming a blob it claimed) within
# this many seconds of touching, else touches again.
TOUCH_DEADLINE = 4.0
# A collection keeps every blob touched less than this many seconds before
# its mark began (storage time): a push that touched earlier committed
# before the mark began, so the mark saw what it wrote.  The margin over
# TOUCH_DEADLINE is for a write that takes long to land, and for storage
# mtimes of a second's resolution (S3).
GRACE = 15.0
# A collector deletes within this many seconds of writing its mark, else
# gives the blob up for this run.
COLLECTOR_DEADLINE = 10.0
# A mark older than this (against the touch record just written) is a
# dead collector's: a push ignores it.
SWEEP_HOLD = 3 * COLLECTOR_DEADLINE
# How often a push held by a mark looks again, and for how long at most.
POLL_INTERVAL = 0.05
MAX_WAIT = SWEEP_HOLD + 5.0
ATTEMPTS = 3  # touch cycles a push tries before it answers 503


class Claim:
    """What a push learnt by touching: C{present} the digests whose data is
    stored; L{inTime} whether it may still commit."""

    def __init__(self, started: float, present: set) -> None:
        self.started = started
        self.present = present

    def inTime(self) -> bool:
        return time.monotonic() - self.started <= TOUCH_DEADLINE


async def _gather(coroutines):
    """The results of C{coroutines}, run at once; the first failure as it
    is (a storage error must reach the web layer as itself)."""
    try:
        return await gatherResults([Deferred.fromCoroutine(c) for c in coroutines], consumeErrors=True)
    except FirstError as e:
        e.subFailure.raiseException()


async def _mtime(driver, path) -> Optional[float]:
    try:
        return (await driver.stat(path)).modTime
    except PathNotFound:
        return None


async def _held(driver, digest, marks) -> bool:
    """Whether one of the collectors' C{marks} on C{digest} is live: not
    older than L{SWEEP_HOLD} against the touch record just written."""
    touched = await _mtime(driver, layout.blobTouched(digest))
    for path in marks:
        marked = await _mtime(driver, path)
        if marked is not None and (touched is None or marked > touched - SWEEP_HOLD):
            return True
    return False


async def _look(driver, digest):
    """C{(has data, held by a collector)} of C{digest}."""
    paths = await listQuietly(driver, layout.blobDir(digest))
    present = any(layout.baseName(p) == "data" for p in paths)
    marks = [p for p in paths if layout.isSweepingMark(p)]
    return present, bool(marks) and await _held(driver, digest, marks)


async def _touch(driver, digest):
    path = layout.blobTouched(digest)
    touch = getattr(driver, "touch", None)  # txregistry.storage.interface.ITouch
    if touch is not None:
        await touch(path)
    else:
        await driver.putContent(path, b"")


async def claim(driver, digests: Iterable, clock) -> Claim:
    """Touch the blobs C{digests}, then wait until no collector holds any
    of them; a L{Claim} (which of them have data).  UNAVAILABLE (503) if a
    collector holds one longer than L{MAX_WAIT} seconds."""
    digests = sorted(set(digests))
    waitedSince = time.monotonic()
    while True:
        started = time.monotonic()
        await _gather(_touch(driver, d) for d in digests)
        looks = await _gather(_look(driver, d) for d in digests)
        if not any(held for _, held in looks):
            return Claim(started, {d for d, (present, _) in zip(digests, looks) if present})
        if time.monotonic() - waitedSince > MAX_WAIT or clock is None:
            raise RegistryError("UNAVAILABLE", "a garbage collection holds a blob this push needs", retryAfter=5)
        await deferLater(clock, POLL_INTERVAL, lambda: None)


async def holdForSweep(driver, digest, runID: str, since: float) -> Optional[float]:
    """The collector's side: mark C{digest}, then read its touch record.
    C{None} when a push touched it after C{since} (storage time; the mark
    is removed again: the blob stays), else the monotonic time of the mark,
    for L{inHold}.  (After, not at: with mtimes of a second (S3) a blob
    touched in the second a collection without grace began is
    collectable, as its other ages say; the grace's margin is for such
    rounding.)"""
    started = time.monotonic()
    await driver.putContent(layout.blobSweeping(digest, runID), b"")
    touched = await _mtime(driver, layout.blobTouched(digest))
    if touched is not None and touched > since:
        await release(driver, digest, runID)
        return None
    return started


def inHold(started: float) -> bool:
    """Whether a collector that marked at C{started} may still delete."""
    return time.monotonic() - started <= COLLECTOR_DEADLINE


async def release(driver, digest, runID: str) -> None:
    await deleteQuietly(driver, layout.blobSweeping(digest, runID))


async def touchedSince(driver, digest, since: float) -> bool:
    touched = await _mtime(driver, layout.blobTouched(digest))
    return touched is not None and touched > since
