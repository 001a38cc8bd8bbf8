"""Known open findings (see the hostile-input issue): these tests are kept as
they should pass and marked xfail (not strict) until the findings are fixed."""

import pytest

OPEN = {
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        reason = OPEN.get(item.originalname or item.name)
        if reason:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=False))
