"""Old name of :mod:`tvfeed_async.protocol.client` (ClientProtocol, the pure per-connection
protocol state),
kept so that existing imports work.

This module *is* that module (``sys.modules`` maps both names to one object), so attributes
patched or read through either name are the same.
"""

import sys

from .client import *  # noqa: F403 (every public name, for type checkers)
from .client import __all__ as __all__

sys.modules[__name__] = sys.modules["tvfeed_async.protocol.client"]
