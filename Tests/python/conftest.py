import os
import sys

import adamcore
import pytest

# The tests must exercise the built package, never the source tree.
assert "bindings" not in os.path.dirname(adamcore.__file__), adamcore.__file__


@pytest.fixture(autouse=True)
def _no_leaked_failure_state():
    yield
    assert not sys.exc_info()[0]
