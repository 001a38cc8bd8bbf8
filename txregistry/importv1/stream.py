"""One V1 layer file streamed into an upload of the registry: read a chunk
at a time (the next read under way while a chunk is hashed), digested in
the thread pool (L{LayerDigester}), appended by the upload's L{Appender},
whose backpressure pauses the reads."""

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from txregistry.importv1.layers import LayerDigester

CHUNK = 1024 * 1024


@implementer(IPushProducer)
class _Flow:
    """The producer the appender pauses when its queue is full: the reads
    wait for it (L{ready})."""

    def __init__(self):
        self._waiting = None

    def pauseProducing(self):
        if self._waiting is None:
            self._waiting = Deferred()

    def resumeProducing(self):
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.callback(None)

    stopProducing = resumeProducing

    def ready(self):
        return self._waiting if self._waiting is not None else succeed(None)


async def streamLayer(store, imageID, appender, inPool, progress=None):
    """Append the layer file of C{imageID} (of the L{V1Store} C{store}) to
    C{appender}'s upload; returns the L{LayerDigester} that saw it, once
    everything is written (or raises what went wrong: L{LayerError}, the
    appender's error, a read's).  C{inPool(f, *args)}: C{f} in a thread,
    a Deferred; C{progress(bytesRead)}: called as it goes."""
    digester = LayerDigester()
    flow = _Flow()
    appender.registerProducer(flow, True)
    reader = pending = None
    try:
        reader = await store.openLayer(imageID)
        done = 0
        pending = reader.read(CHUNK)
        while True:
            chunk = await pending
            pending = None
            if not chunk:
                break
            pending = reader.read(CHUNK)
            done += len(chunk)
            stored = await inPool(digester.feed, chunk)
            if stored:
                appender.write(stored)
            if appender.error is not None:
                break  # (finish raises it)
            await flow.ready()
            if progress is not None:
                progress(done)
        if appender.error is None:
            stored = await inPool(digester.finish)
            if stored:
                appender.write(stored)
    except BaseException:
        appender.unregisterProducer()
        await appender.finish().addErrback(lambda _: None)
        raise
    finally:
        if pending is not None:
            pending.addErrback(lambda _: None)  # (a read given up on)
        if reader is not None:
            reader.close()
    appender.unregisterProducer()
    await appender.finish()
    return digester
