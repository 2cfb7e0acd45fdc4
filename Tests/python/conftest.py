import os

import adamcore

# The tests must exercise the built package, never the source tree.
assert "bindings" not in os.path.dirname(adamcore.__file__), adamcore.__file__

