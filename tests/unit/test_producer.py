"""ReaderProducer: a push producer that honours pause/resume and stop."""

from twisted.internet.defer import Deferred, succeed
from twisted.trial import unittest

from txregistry.web.producer import ReaderProducer


class SlowReader:
    """Hands out reads one at a time, when the test says so."""

    def __init__(self, data):
        self.data = data
        self.pos = 0
        self.pending = None
        self.reads = 0
        self.closed = False

    def read(self, n):
        self.reads += 1
        self.pending = (Deferred(), n)
        return self.pending[0]

    def deliver(self):
        d, n = self.pending
        self.pending = None
        chunk = self.data[self.pos : self.pos + n]
        self.pos += len(chunk)
        d.callback(chunk)

    def close(self):
        self.closed = True


class Consumer:
    def __init__(self):
        self.written = []
        self.producer = None

    def registerProducer(self, producer, streaming):
        assert streaming
        self.producer = producer

    def unregisterProducer(self):
        self.producer = None

    def write(self, data):
        self.written.append(data)


class ReaderProducerTests(unittest.TestCase):
    def test_copiesExactlyLength(self):
        reader = SlowReader(b"x" * 100)
        consumer = Consumer()
        done = ReaderProducer(reader, consumer, 95, chunkSize=10).start()
        while reader.pending:
            reader.deliver()
        self.assertEqual(b"".join(consumer.written), b"x" * 95)
        self.assertIsNone(self.successResultOf(done))
        self.assertIsNone(consumer.producer, "unregistered before the request finishes")
        self.assertTrue(reader.closed)

    def test_pauseStopsReading(self):
        reader = SlowReader(b"y" * 100)
        consumer = Consumer()
        producer = ReaderProducer(reader, consumer, 100, chunkSize=10)
        producer.start()
        producer.pauseProducing()
        reader.deliver()  # the read in flight completes...
        self.assertIsNone(reader.pending)  # ...and no new read starts while paused
        self.assertEqual(reader.reads, 1)
        producer.resumeProducing()
        self.assertIsNotNone(reader.pending)

    def test_stopOnDisconnect(self):
        reader = SlowReader(b"z" * 100)
        consumer = Consumer()
        producer = ReaderProducer(reader, consumer, 100, chunkSize=10)
        done = producer.start()
        reader.deliver()
        producer.stopProducing()  # while the next read is in flight
        self.assertFalse(reader.closed, "closed under a read in flight")
        self.assertIsNone(consumer.producer, "unregistered before the request may finish")
        self.successResultOf(done)
        reader.deliver()  # a late read result is dropped
        self.assertTrue(reader.closed)
        self.assertEqual(len(consumer.written), 1)
        self.assertIsNone(reader.pending)

    def test_stopBetweenReads(self):
        reader = SlowReader(b"z" * 100)
        consumer = Consumer()
        producer = ReaderProducer(reader, consumer, 100, chunkSize=10)
        done = producer.start()
        producer.pauseProducing()
        reader.deliver()
        producer.stopProducing()
        self.assertTrue(reader.closed)
        self.assertIsNone(consumer.producer)
        self.successResultOf(done)

    def test_failedReadAfterStopIsQuiet(self):
        reader = SlowReader(b"z" * 100)
        producer = ReaderProducer(reader, Consumer(), 100, chunkSize=10)
        done = producer.start()
        producer.stopProducing()
        reader.pending[0].errback(ValueError("read of closed file"))
        self.assertTrue(reader.closed)
        self.successResultOf(done)
        self.assertEqual(self.flushLoggedErrors(ValueError), [])

    def test_shortFileFails(self):
        class Short:
            closed = False

            def read(self, n):
                return succeed(b"")

            def close(self):
                self.closed = True

        consumer = Consumer()
        done = ReaderProducer(Short(), consumer, 10).start()
        self.failureResultOf(done, RuntimeError)
