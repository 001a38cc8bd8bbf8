"""OneShot: one outcome, any number of waiters."""

from twisted.internet.defer import AlreadyCalledError, CancelledError
from twisted.python.failure import Failure
from twisted.trial import unittest

from txregistry.observe import OneShot


class OneShotTests(unittest.TestCase):
    def test_waitersBeforeAndAfterGetTheSameValue(self):
        shot = OneShot()
        early = [shot.wait(), shot.wait()]
        for d in early:
            self.assertNoResult(d)
        self.assertFalse(shot.fired)
        value = object()
        shot.fire(value)
        self.assertTrue(shot.fired)
        self.assertIs(shot.result, value)
        for d in early + [shot.wait()]:
            self.assertIs(self.successResultOf(d), value)

    def test_eachWaiterHasItsOwnDeferred(self):
        """A waiter's callbacks do not change what the next one gets."""
        shot = OneShot()
        first = shot.wait()
        first.addCallback(lambda n: n + 1)
        second = shot.wait()
        self.assertIsNot(first, second)
        shot.fire(1)
        self.assertEqual(self.successResultOf(first), 2)
        self.assertEqual(self.successResultOf(second), 1)
        self.assertEqual(self.successResultOf(shot.wait()), 1)

    def test_failureReachesEveryWaiter(self):
        shot = OneShot()
        early = shot.wait()
        error = ValueError("no")
        shot.fire(Failure(error))
        self.assertIs(self.failureResultOf(early, ValueError).value, error)
        self.assertIs(self.failureResultOf(shot.wait(), ValueError).value, error)
        self.assertIsInstance(shot.result, Failure)

    def test_exceptionIsAFailure(self):
        shot = OneShot()
        error = KeyError("k")
        shot.fire(error)
        self.assertIs(self.failureResultOf(shot.wait(), KeyError).value, error)

    def test_unwatchedFailureIsNotAnUnhandledError(self):
        """Nobody waited: the failure kept is not logged as unhandled when
        garbage-collected (trial fails a test that leaves one)."""
        shot = OneShot()
        shot.fire(Failure(ValueError("nobody asked")))
        del shot
        import gc

        gc.collect()
        self.assertEqual(self.flushLoggedErrors(ValueError), [])

    def test_firesOnce(self):
        shot = OneShot()
        shot.fire(None)
        self.assertRaises(AlreadyCalledError, shot.fire, None)

    def test_cancelledWaiterLeaves(self):
        shot = OneShot()
        gone, stays = shot.wait(), shot.wait()
        self.assertEqual(shot.waiting, 2)
        gone.cancel()
        self.failureResultOf(gone, CancelledError)
        self.assertEqual(shot.waiting, 1)
        shot.fire("x")
        self.assertEqual(self.successResultOf(stays), "x")
        self.assertEqual(shot.waiting, 0)

    def test_waiterFiringReentersSafely(self):
        """A waiter's callback that waits again gets the outcome at once."""
        shot = OneShot()
        seen = []
        shot.wait().addCallback(lambda v: shot.wait().addCallback(seen.append))
        shot.fire(3)
        self.assertEqual(seen, [3])

    def test_resultBeforeFiring(self):
        self.assertRaises(AttributeError, lambda: OneShot().result)
