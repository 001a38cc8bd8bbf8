"""Known open findings (see the hostile-input issue): these tests are kept as
they should pass and marked xfail (not strict) until the findings are fixed."""

import pytest

OPEN = {
    "test_random_manifests": "lone surrogates in descriptions poison the search index",
    "test_lone_surrogate_description_does_not_poison_the_index": "lone surrogates poison the search index",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        reason = OPEN.get(item.originalname or item.name)
        if reason:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=False))
