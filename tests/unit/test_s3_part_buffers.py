"""The part buffers of S3 writers (txregistry.storage.s3.writer.PartBuffers):
a writer takes one before it holds more than SMALL_BUFFER bytes and gives
it back when it closes, commits or is cancelled; one that needs one while
none is free waits, its write unfired.  A bucket in memory stands in for
S3 (the writers' S3 side is tested on real servers in tests/s3)."""

from twisted.internet.defer import Deferred
from twisted.web.http_headers import Headers

from txregistry.storage.s3.writer import (
    openWriter, PARTIAL_SUFFIX, PART_SIZE, PartBuffers, partialState, SMALL_BUFFER, S3Writer)

MiB = 1024 * 1024


class Response:
    def __init__(self, headers, length):
        self.code = 200
        self.headers = Headers({k.encode(): [v.encode()] for k, v in headers.items()})
        self.headers.setRawHeaders(b"content-length", [b"%d" % length])


class Bucket:
    """Objects and multipart uploads in memory; every call answers at once."""

    def __init__(self):
        self.objects = {}  # key -> (headers, bytes)
        self.uploaded = {}  # uploadID -> {number: bytes}
        self.read = []  # keys whose body a GET read
        self.dropped = []  # keys whose GET was dropped before the body

    async def initiate(self, key):
        uploadID = "u%d" % (len(self.uploaded) + 1,)
        self.uploaded[uploadID] = {}
        return uploadID

    async def uploadPart(self, key, uploadID, number, data, payloadHash=None):
        self.uploaded[uploadID][number] = bytes(data)
        return "etag%d" % (number,)

    async def put(self, key, data, headers=None, payloadHash=None):
        self.objects[key] = (dict(headers or {}), bytes(data))

    async def complete(self, key, uploadID, parts):
        pieces = self.uploaded.pop(uploadID)
        self.objects[key] = ({}, b"".join(pieces[n] for n, _ in parts))

    async def delete(self, key):
        self.objects.pop(key, None)

    async def head(self, key):
        if key not in self.objects:
            return None
        headers, data = self.objects[key]
        return Response(headers, len(data))

    async def getSmall(self, key, admit=None):
        if key not in self.objects:
            return None
        headers, data = self.objects[key]
        if admit is not None and not admit(len(data)):
            self.dropped.append(key)
            return False
        self.read.append(key)
        return Response(headers, len(data)), bytearray(data)

    async def parts(self, key, uploadID):
        return [(n, "etag%d" % (n,), len(d)) for n, d in sorted(self.uploaded[uploadID].items())]

    async def abort(self, key, uploadID):
        self.uploaded.pop(uploadID, None)

    async def uploads(self, key):
        return [(key, u) for u in self.uploaded]


def result(d):
    """The result of a Deferred that has fired (raises its failure)."""
    out = []
    d.addBoth(out.append)
    assert out, "not fired"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


def opened(bucket, buffers, key="k", append=True):
    return result(Deferred.fromCoroutine(openWriter(bucket, "/" + key, key, append, buffers)))


def test_smallWritesNeedNoBuffer():
    buffers = PartBuffers(16 * MiB)
    a, b = opened(Bucket(), buffers, "a"), opened(Bucket(), buffers, "b")
    assert result(a.write(b"x" * SMALL_BUFFER)) is None
    assert result(b.write(b"y" * 1000)) is None
    assert buffers.inUse == 0


def test_aWriterWaitsForABufferAndGetsOneWhenItIsGivenBack():
    bucket = Bucket()
    buffers = PartBuffers(16 * MiB)  # one buffer
    first, second = opened(bucket, buffers, "a"), opened(bucket, buffers, "b")
    assert result(first.write(b"a" * (2 * MiB))) is None
    assert buffers.inUse == 1
    waiting = second.write(b"b" * (2 * MiB))
    fired = []
    waiting.addCallback(fired.append)
    assert not fired and buffers.waiting == 1
    result(first.close())  # its tail saved, its buffer given back
    assert fired == [None] and buffers.inUse == 1 and buffers.waiting == 0
    assert bucket.objects["a" + PARTIAL_SUFFIX][1] == b"a" * (2 * MiB)
    result(second.commit())
    assert buffers.inUse == 0
    assert bucket.objects["b"][1] == b"b" * (2 * MiB)


def test_aWriterHoldsOneBufferAcrossItsParts():
    bucket = Bucket()
    buffers = PartBuffers(16 * MiB)
    w = opened(bucket, buffers, "a", append=False)
    data = bytes(range(256)) * (PART_SIZE * 2 // 256 + 1000)
    for i in range(0, len(data), 3 * MiB):
        assert result(w.write(data[i:i + 3 * MiB])) is None
    assert buffers.inUse == 1
    result(w.commit())
    assert buffers.inUse == 0
    assert bucket.objects["a"][1] == data


def test_cancelGivesTheBufferBack():
    buffers = PartBuffers(16 * MiB)
    w = opened(Bucket(), buffers, "a")
    result(w.write(b"c" * (2 * MiB)))
    result(w.cancel())
    assert buffers.inUse == 0


def test_aWriterCancelledWhileItWaitsTakesNoBuffer():
    buffers = PartBuffers(16 * MiB)
    bucket = Bucket()
    holder, waiter = opened(bucket, buffers, "a"), opened(bucket, buffers, "b")
    result(holder.write(b"a" * (2 * MiB)))
    waiting = waiter.write(b"b" * (2 * MiB))
    result(waiter.cancel())
    result(holder.close())
    failures = []
    waiting.addErrback(failures.append)
    assert failures and "write after close" in str(failures[0].value)
    assert buffers.inUse == 0 and buffers.waiting == 0


def test_aLargeSavedTailIsReadOnlyOnceABufferIsFree():
    bucket = Bucket()
    buffers = PartBuffers(16 * MiB)
    w = opened(bucket, buffers, "a")
    result(w.write(b"t" * (3 * MiB)))
    result(w.close())  # the tail (3 MiB) saved in a.partial
    other = opened(bucket, buffers, "b")
    result(other.write(b"o" * (2 * MiB)))  # the only buffer
    del bucket.read[:]
    pending = Deferred.fromCoroutine(openWriter(bucket, "/a", "a", True, buffers))
    got = []
    pending.addCallback(got.append)
    assert not got and bucket.read == [] and buffers.waiting == 1
    assert bucket.dropped == ["a" + PARTIAL_SUFFIX]
    result(other.close())
    assert bucket.read == ["a" + PARTIAL_SUFFIX] and buffers.inUse == 1
    again = got[0]
    assert isinstance(again, S3Writer) and again.size == 3 * MiB
    result(again.write(b"u" * MiB))
    result(again.commit())
    assert buffers.inUse == 0
    assert bucket.objects["a"][1] == b"t" * (3 * MiB) + b"u" * MiB


def test_aSmallSavedTailTakesNoBuffer():
    bucket = Bucket()
    buffers = PartBuffers(16 * MiB)
    w = opened(bucket, buffers, "a")
    result(w.write(b"t" * 1000))
    result(w.close())
    assert buffers.inUse == 0
    again = opened(bucket, buffers, "a")
    assert again.size == 1000 and buffers.inUse == 0


def test_atLeastOneBuffer():
    assert PartBuffers(1).count == 1
    assert PartBuffers(64 * MiB).count == 4


def test_unboundedWithoutBuffers():
    w = opened(Bucket(), None, "a")
    assert result(w.write(b"z" * (4 * MiB))) is None


def test_theStatusOfAnUploadReadsOnlyTheTailsSize():
    bucket = Bucket()
    w = opened(bucket, PartBuffers(16 * MiB), "a")
    result(w.write(b"t" * (3 * MiB)))
    result(w.close())
    del bucket.read[:]
    assert result(Deferred.fromCoroutine(partialState(bucket, "a"))) == (None, [], 3 * MiB)
    assert bucket.read == []
