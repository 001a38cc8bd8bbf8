"""The resources an operator scrapes: C{/metrics}, C{/health}, C{/ready}
(and Distribution's C{/debug/health}), none behind the registry's login.

L{DebugRoot} is the debug listener's whole site; L{WithHealth} puts the
same endpoints in front of the registry's own root on the main port."""

import json

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from txregistry.metrics.collectors import CONTENT_TYPE


def _json(request, status, doc):
    body = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Cache-Control", b"no-store")
    request.setHeader(b"Content-Length", b"%d" % (len(body),))
    return b"" if request.method == b"HEAD" else body


class MetricsPage(Resource):
    isLeaf = True

    def __init__(self, metrics):
        Resource.__init__(self)
        self.metrics = metrics

    def render_GET(self, request):
        body = self.metrics.render()
        if not isinstance(body, bytes):  # a Deferred (several workers: txregistry.workers.debug)
            gone = []
            request.notifyFinish().addErrback(gone.append)

            def answer(body):
                if not gone:
                    request.write(self._answer(request, body))
                    request.finish()

            body.addCallback(answer)
            return NOT_DONE_YET
        return self._answer(request, body)

    def _answer(self, request, body):
        request.setHeader(b"Content-Type", CONTENT_TYPE.encode("ascii"))
        request.setHeader(b"Cache-Control", b"no-store")
        request.setHeader(b"Content-Length", b"%d" % (len(body),))
        return b"" if request.method == b"HEAD" else body

    render_HEAD = render_GET


class HealthPage(Resource):
    """C{checks.liveness} or C{checks.readiness} as JSON: 200, or 503 when
    a check fails."""

    isLeaf = True

    def __init__(self, run):
        Resource.__init__(self)
        self.run = run

    def render_GET(self, request):
        gone = []
        request.notifyFinish().addErrback(gone.append)

        def answer(result):
            if gone:
                return
            healthy, doc = result
            request.write(_json(request, 200 if healthy else 503, doc))
            request.finish()

        self.run().addCallback(answer)
        return NOT_DONE_YET

    render_HEAD = render_GET


def pages(checks, metrics=None):
    """Path (bytes) -> leaf resource of the operator's endpoints."""
    out = {
        b"/health": HealthPage(checks.liveness),
        b"/healthz": HealthPage(checks.liveness),
        b"/ready": HealthPage(checks.readiness),
        b"/debug/health": HealthPage(checks.readiness),
    }
    if metrics is not None:
        out[b"/metrics"] = MetricsPage(metrics)
    return out


class _Dispatch(Resource):
    """A leaf routing by whole path to C{pages}, else to C{fallback}."""

    isLeaf = True

    def __init__(self, pages, fallback):
        Resource.__init__(self)
        self._pages = pages
        self._fallback = fallback

    def render(self, request):
        page = self._pages.get(request.path)
        if page is not None:
            request.txrRoute = request.path.strip(b"/").replace(b"/", b"_").decode("ascii")
            if request.method not in (b"GET", b"HEAD"):
                request.setResponseCode(405)
                request.setHeader(b"Allow", b"GET, HEAD")
                return _json(request, 405, {"errors": [{"code": "UNSUPPORTED", "message": "GET or HEAD only",
                                                        "detail": {}}]})
            return page.render(request)
        return self._fallback(request)


class WithHealth(_Dispatch):
    """The main port's root: the operator's endpoints, then C{wrapped}
    (the registry's root resource) for everything else."""

    def __init__(self, wrapped, checks, metrics=None):
        _Dispatch.__init__(self, pages(checks, metrics), wrapped.render)

    def showMetrics(self, metrics):
        """C{/metrics} (when it is here) renders C{metrics} from now on (a
        worker's: all workers' added up, L{txregistry.workers.channel})."""
        page = self._pages.get(b"/metrics")
        if page is not None:
            page.metrics = metrics


def _notFound(request):
    return _json(request, 404, {"errors": [{"code": "UNSUPPORTED", "message": "no such endpoint", "detail": {}}]})


class DebugRoot(_Dispatch):
    """The debug listener's site root: metrics and health, nothing else."""

    def __init__(self, checks, metrics):
        _Dispatch.__init__(self, pages(checks, metrics), _notFound)
