"""The daemon's Prometheus metrics, on a registry of their own.

Labels never take values a client chooses: routes are the route table's
names (never a path or a repository), methods are the ones HTTP defines
(anything else is ``other``), codes are numbers.
"""

from typing import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
METHODS = frozenset(("GET", "HEAD", "PUT", "POST", "PATCH", "DELETE", "OPTIONS"))
# Seconds: small requests (a manifest GET takes about 0.5 ms) up to a
# minute-long blob transfer.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
STORAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """The collectors, and the few calls the daemon makes to feed them."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "txregistry_http_requests", "HTTP requests answered, by route, method and status code",
            ["route", "method", "code"], registry=r)
        self.duration = Histogram(
            "txregistry_http_request_duration_seconds",
            "Seconds from a request's head to the end of its response", ["route", "method"],
            buckets=DURATION_BUCKETS, registry=r)
        self.received = Counter(
            "txregistry_http_request_body_bytes", "Request body bytes received", ["route"], registry=r)
        self.sent = Counter(
            "txregistry_http_response_body_bytes", "Response body bytes sent", ["route"], registry=r)
        self.sendfileBytes = Counter(
            "txregistry_blob_sendfile_bytes", "Blob bytes the kernel copied from a file to a client (sendfile)",
            registry=r)
        self.storageDuration = Histogram(
            "txregistry_storage_operation_duration_seconds", "Seconds a storage operation took",
            ["driver", "operation"], buckets=STORAGE_BUCKETS, registry=r)
        self.storageErrors = Counter(
            "txregistry_storage_errors", "Storage operations that failed (a missing path is not a failure)",
            ["driver", "operation"], registry=r)
        self.s3Requests = Counter(
            "txregistry_s3_requests", "Requests sent to S3, by method and status code (0: no answer)",
            ["method", "code"], registry=r)
        self.s3Retries = Counter("txregistry_s3_retries", "S3 requests sent again", ["method"], registry=r)
        self.s3PartBuffers = Gauge(
            "txregistry_s3_part_buffers", "Part buffers of S3 uploads in use (limits.max_part_memory)", registry=r)
        self.s3PartBufferWaits = Gauge(
            "txregistry_s3_part_buffer_waits", "S3 uploads waiting for a part buffer, their bodies paused",
            registry=r)
        self.loginFailures = Counter("txregistry_login_failures", "Wrong passwords", registry=r)
        self.loginsThrottled = Counter(
            "txregistry_login_throttled", "Password checks refused (429) because of earlier failures", registry=r)
        self.uploads = Gauge("txregistry_uploads_in_progress", "Request bodies being written to uploads", registry=r)
        self.connections = Gauge("txregistry_http_connections", "HTTP connections open", registry=r)
        self.bodyMemory = Gauge(
            "txregistry_http_body_memory_bytes", "Bytes reserved for request bodies held in memory", registry=r)
        self.indexRepositories = Gauge(
            "txregistry_search_index_repositories", "Repositories in the search index", registry=r)
        self.indexLag = Gauge(
            "txregistry_search_index_lag", "Index updates not yet in the search database", registry=r)
        self.notificationEvents = Counter(
            "txregistry_notification_events",
            "Events of a notification endpoint: queued, sent (the endpoint answered 2xx), dropped (not queued)",
            ["endpoint", "outcome"], registry=r)
        self.notificationFailures = Counter(
            "txregistry_notification_failures", "Deliveries to a notification endpoint that failed (then retried)",
            ["endpoint"], registry=r)
        self.notificationPending = Gauge(
            "txregistry_notification_pending", "Events queued for a notification endpoint, not yet delivered",
            ["endpoint"], registry=r)
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)

    # --- fed by the daemon ---

    def request(self, route: str | None, method: str, code: int, duration: float | None, received: int,
                sent: int) -> None:
        method = method if method in METHODS else "other"
        route = route or "other"
        self.requests.labels(route, method, str(code)).inc()
        if duration is not None:
            self.duration.labels(route, method).observe(duration)
        if received:
            self.received.labels(route).inc(received)
        if sent:
            self.sent.labels(route).inc(sent)

    def sentfile(self, n: int) -> None:
        """C{n} more bytes of a blob went out with C{os.sendfile}."""
        self.sendfileBytes.inc(n)

    def storage(self, driver: str, operation: str, seconds: float, failed: bool) -> None:
        self.storageDuration.labels(driver, operation).observe(seconds)
        if failed:
            self.storageErrors.labels(driver, operation).inc()

    def s3Request(self, method: str, code: int | str) -> None:
        self.s3Requests.labels(method, str(code)).inc()

    def s3Retry(self, method: str) -> None:
        self.s3Retries.labels(method).inc()

    def loginFailed(self) -> None:
        self.loginFailures.inc()

    def loginThrottled(self) -> None:
        self.loginsThrottled.inc()

    def notificationEvent(self, endpoint: str, outcome: str) -> None:
        self.notificationEvents.labels(endpoint, outcome).inc()

    def notificationFailure(self, endpoint: str) -> None:
        self.notificationFailures.labels(endpoint).inc()

    def watchNotifications(self, endpoint: str, read: Callable[[], float]) -> None:
        """The pending gauge of C{endpoint} reads C{read()} at each scrape;
        its counters show from the start."""
        self.notificationPending.labels(endpoint).set_function(read)
        for outcome in ("queued", "sent", "dropped"):
            self.notificationEvents.labels(endpoint, outcome)
        self.notificationFailures.labels(endpoint)

    def watch(self, gauge: Gauge, read: Callable[[], float]) -> None:
        """Let C{gauge} (one of the gauges above) read its value from
        C{read()} at each scrape."""
        gauge.set_function(read)

    def render(self) -> bytes:
        """The text exposition format, as bytes."""
        return generate_latest(self.registry)
