"""Known open findings (see the hostile-input issue): these tests are kept as
they should pass and marked xfail (not strict) until the findings are fixed."""

import pytest

OPEN = {
    "test_path_tricks_every_route": "non-UTF-8 percent-escapes in path/Host: Klein answers a text 400 and logs a traceback",
    "test_random_paths": "non-UTF-8 percent-escapes in path/Host: Klein answers a text 400 and logs a traceback",
    "test_random_headers": "non-UTF-8 Host header: Klein answers a text 400 and logs a traceback",
    "test_header_limits": "non-UTF-8 Host header: Klein answers a text 400 and logs a traceback",
    "test_request_smuggling": "two Transfer-Encoding lines are accepted by twisted.web",
    "test_declared_length_over_the_manifest_limit": "no early 413 on a huge declared Content-Length",
    # The lone-surrogate finding is fixed; its references still draw path
    # segments with non-UTF-8 percent-escapes (as test_random_paths).
    "test_random_manifests": "non-UTF-8 percent-escapes in path: Klein answers a text 400 and logs a traceback",
    "test_trickling_client_is_cut_off": "no minimum-rate (slowloris) timeout yet",
    "test_client_that_stops_reading_is_cut_off": "no timeout on a client that stops reading",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        reason = OPEN.get(item.originalname or item.name)
        if reason:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=False))
