"""txregistry.web.caller: route scopes, a request's shared authentication,
and the body that waits for it."""

from twisted.internet.defer import Deferred
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest

from txregistry.web.caller import Authentication, routeScopes
from txregistry.web.bodies import PendingBody
from txregistry.web.bodies import BoundedBody


class RouteScopesTests(unittest.TestCase):
    def test_scopes(self):
        self.assertEqual(routeScopes("base", "GET"), [])
        self.assertEqual(routeScopes("catalog", "GET"), [("registry", "catalog", ["*"])])
        self.assertEqual(routeScopes("manifest", "GET", "a/b"), [("repository", "a/b", ["pull"])])
        self.assertEqual(routeScopes("manifest", "PUT", "a/b"), [("repository", "a/b", ["pull", "push"])])
        self.assertEqual(routeScopes("blob", "DELETE", "a"), [("repository", "a", ["delete"])])
        for method in ("GET", "HEAD", "PATCH", "PUT", "DELETE"):
            self.assertEqual(routeScopes("upload", method, "a"), [("repository", "a", ["pull", "push"])])

    def test_unknown(self):
        self.assertRaises(ValueError, routeScopes, "manifest", "POST", "a")
        self.assertRaises(ValueError, routeScopes, "blob", "GET", None)


class AuthenticationTests(unittest.TestCase):
    def test_waitBeforeAndAfter(self):
        d = Deferred()
        a = Authentication(d)
        early = []
        a.wait().addCallback(early.append)
        self.assertFalse(a.done)
        self.assertIsNone(a.identity)
        d.callback("alice")
        late = []
        a.wait().addCallback(late.append)
        self.assertEqual((early, late, a.identity), (["alice"], ["alice"], "alice"))

    def test_failureGoesToEveryWaiter(self):
        d = Deferred()
        a = Authentication(d)
        first, second = a.wait(), None
        d.errback(Failure(ValueError("no")))
        second = a.wait()
        self.assertIsNone(a.identity)
        self.assertTrue(a.done)
        self.failureResultOf(first, ValueError)
        self.failureResultOf(second, ValueError)


class PendingBodyTests(unittest.TestCase):
    def test_heldThenHandedOn(self):
        t = StringTransport()
        body = PendingBody(t)
        self.assertEqual(t.producerState, "paused")
        body.write(b"abc")
        body.write(b"de")
        self.assertEqual(body.tell(), 5)
        target = BoundedBody(100)
        body.decide(target)
        self.assertEqual(t.producerState, "producing")
        body.write(b"f")
        self.assertEqual(target.getvalue(), b"abcdef")
        body.seek(0)
        self.assertEqual(body.read(), b"abcdef")

    def test_endedWhilePending(self):
        # The channel owns the transport once the body is complete.
        t = StringTransport()
        body = PendingBody(t)
        body.write(b"xy")
        body.seek(0)
        ended = []

        class Target(BoundedBody):
            def seek(self, offset, whence=0):
                ended.append(offset)
                return BoundedBody.seek(self, offset, whence)

        body.decide(Target(10))
        self.assertEqual(ended, [0])
        self.assertEqual(t.producerState, "paused")

    def test_closedWhilePending(self):
        closed = []

        class Target(BoundedBody):
            def close(self):
                closed.append(True)

        body = PendingBody(StringTransport())
        body.write(b"x")
        body.close()
        body.decide(Target(10))
        self.assertEqual(closed, [True])
        self.assertRaises(RuntimeError, body.decide, Target(10))

    def test_pausedWhileUndecided(self):
        body = PendingBody(StringTransport(), maxLength=100)
        self.assertEqual((body.paused, body.maxLength), (True, 100))
        body.decide(BoundedBody(10))
        self.assertFalse(body.paused)
        self.assertEqual(body.pauses, 1)

    def test_refusedBeforeDecided(self):
        refused = []

        class Target(BoundedBody):
            def refuse(self, error):
                refused.append(error)

        t = StringTransport()
        body = PendingBody(t)
        body.write(b"abc")
        body.refuse("too big")
        target = Target(10)
        body.decide(target)
        self.assertEqual((refused, target.getvalue()), (["too big"], b""))
        self.assertEqual(t.producerState, "paused")  # the channel ends the connection
