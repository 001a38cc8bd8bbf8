"""L{txregistry.web.errors}: every exception answered with the spec's
envelope, its status and headers decided in the web layer alone."""

import json

import pytest

from txregistry.auth import Forbidden, LoginThrottled, TokenRequestError, Unauthorized
from txregistry.errors import MESSAGES, RegistryError
from txregistry.registry.manifests import parseManifest
from txregistry.registry.appender import blobTooLarge
from txregistry.storage import StorageFull, StorageUnavailable
from txregistry.web import routes
from txregistry.web.errors import STATUS, HTTPError, errorAnswer, rawErrorResponse


def envelope(answer):
    (error,) = json.loads(answer.body)["errors"]
    return error


def test_everyCodeHasAStatus():
    assert set(STATUS) == set(MESSAGES)


def test_modelErrorsCarryNoHTTP():
    error = RegistryError("BLOB_UNKNOWN", detail={"digest": "sha256:x"})
    assert not hasattr(error, "status") and not hasattr(error, "headers")
    with pytest.raises(TypeError):
        RegistryError("SIZE_INVALID", status=413)


def test_tooLargeIs413():
    answer = errorAnswer(blobTooLarge(10))
    assert (answer.status, envelope(answer)["code"], envelope(answer)["detail"]) == (413, "SIZE_INVALID", {"limit": 10})
    with pytest.raises(RegistryError) as e:
        parseManifest(b"{" + b" " * 20 + b"}", "application/vnd.oci.image.manifest.v1+json", maxSize=5)
    assert (errorAnswer(e.value).status, e.value.code) == (413, "MANIFEST_INVALID")


def test_retryAfterIsABytesHeader():
    answer = errorAnswer(RegistryError("TOOMANYREQUESTS", retryAfter=5))
    assert (answer.status, answer.headers) == (429, {b"Retry-After": b"5"})
    raw = rawErrorResponse(RegistryError("TOOMANYREQUESTS", retryAfter=5))
    assert raw.startswith(b"HTTP/1.1 429 ") and b"\r\nRetry-After: 5\r\n" in raw


@pytest.mark.parametrize("exc, status, code, headers", [
    (Unauthorized('Bearer realm="r"', "login"), 401, "UNAUTHORIZED", {b"WWW-Authenticate": b'Bearer realm="r"'}),
    (Forbidden("no"), 403, "DENIED", {}),
    (LoginThrottled(7), 429, "TOOMANYREQUESTS", {b"Retry-After": b"7"}),
    (TokenRequestError("bad scope"), 400, "UNSUPPORTED", {}),
    (StorageFull("disk"), 507, "UNAVAILABLE", {b"Retry-After": b"60"}),
    (StorageUnavailable("ro"), 503, "UNAVAILABLE", {b"Retry-After": b"60"}),
    (ValueError("bug"), 500, "UNAVAILABLE", {}),
    (HTTPError("UNSUPPORTED", "no", status=404), 404, "UNSUPPORTED", {}),
])
def test_anyException(exc, status, code, headers):
    answer = errorAnswer(exc)
    assert (answer.status, envelope(answer)["code"], answer.headers) == (status, code, headers)
    assert set(envelope(answer)) == {"code", "message", "detail"}
    assert "bug" not in answer.body.decode()  # an internal error says nothing of itself


def test_addingHeadersKeepsTheError():
    error = HTTPError.adding(RegistryError("RANGE_INVALID", "off", {"offset": 3}), {b"Range": b"0-2"})
    answer = errorAnswer(error)
    assert (answer.status, answer.headers, envelope(answer)) == (
        416, {b"Range": b"0-2"}, {"code": "RANGE_INVALID", "message": "off", "detail": {"offset": 3}})


def test_everyRouteNamesItsHandlers():
    for route in routes.ROUTES:
        for method, handler in route.handlers.items():
            assert callable(handler), (route.name, method)
            assert handler.__module__.startswith("txregistry.web."), (route.name, method)
