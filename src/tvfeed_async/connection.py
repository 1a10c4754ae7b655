"""Old name of :mod:`tvfeed_async.supervisor` (Supervisor, Link and Route: the socket, its
reconnects and the routing of messages),
kept so that existing imports work.

This module *is* that module (``sys.modules`` maps both names to one object), so attributes
patched or read through either name are the same.
"""

import sys

from .supervisor import *  # noqa: F403 (every public name, for type checkers)
from .supervisor import __all__ as __all__

sys.modules[__name__] = sys.modules["tvfeed_async.supervisor"]
