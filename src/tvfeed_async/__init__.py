"""tvfeed_async: an asyncio-native TradingView market data client.

The public API is exactly what ``__all__`` lists; everything else is private.

Importing the package is light: the values, the configuration and the error tree come from
modules that need only the standard library and msgspec. The names whose modules need aiohttp,
anyio, polars or pyotp (``TvFeed``, ``SessionCache``, ``HistoryResult``, ``SymbolInfo``,
``SearchResult``, ``Quote``) are imported on first use by the module ``__getattr__`` below, so that
``import tvfeed_async.protocol`` and tools that only need the values start quickly.
"""

from __future__ import annotations

import importlib
import typing

from .config import Endpoints, Limits, RetryPolicy, Timeouts
from .errors import (
    AuthError,
    CaptchaRequired,
    ConnectionLost,
    ConsumerTooSlow,
    EntitlementError,
    FramingError,
    GapError,
    InvalidCredentials,
    InvalidInterval,
    InvalidRequest,
    InvalidSymbol,
    ProtocolError,
    RateLimited,
    RequestTimeout,
    SymbolNotFound,
    TokenExpired,
    TvFeedError,
    TwoFactorRequired,
    UnsafeRedirect,
)
from .events import Event, FeedHealth, StreamHealth
from .protocol.bars import Bar, Gap
from .protocol.intervals import Interval
from .protocol.studies import ScriptSummary
from .protocol.symbols import Symbol, parse_symbol
from .stats import FeedStats

if typing.TYPE_CHECKING:
    from .auth.cache import SessionCache
    from .feed import TvFeed
    from .history import HistoryResult, SymbolInfo
    from .pool import FeedPool
    from .quotes import Quote
    from .search import SearchResult
    from .study_stream import StudyPoint

# Public name -> the submodule that defines it, imported when the name is first looked up.
_LAZY_NAMES = {
    "TvFeed": ".feed",
    "SessionCache": ".auth.cache",
    "HistoryResult": ".history",
    "SymbolInfo": ".history",
    "SearchResult": ".search",
    "Quote": ".quotes",
    "FeedPool": ".pool",
    "StudyPoint": ".study_stream",
}


def __getattr__(name: str) -> object:
    module_name = _LAZY_NAMES.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name, __name__), name)
    # Cache it: later lookups find the global and no longer reach this function.
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY_NAMES))


__version__ = "0.1.0"

__all__ = [
    # the session manager
    "TvFeed",
    "FeedPool",
    # values
    "Bar",
    "Event",
    "FeedHealth",
    "FeedStats",
    "StreamHealth",
    "Gap",
    "HistoryResult",
    "Quote",
    "SearchResult",
    "ScriptSummary",
    "StudyPoint",
    "SymbolInfo",
    "Interval",
    "Symbol",
    "parse_symbol",
    # configuration
    "Endpoints",
    "SessionCache",
    "Limits",
    "RetryPolicy",
    "Timeouts",
    # errors
    "AuthError",
    "CaptchaRequired",
    "ConnectionLost",
    "ConsumerTooSlow",
    "EntitlementError",
    "FramingError",
    "GapError",
    "InvalidCredentials",
    "InvalidInterval",
    "InvalidRequest",
    "InvalidSymbol",
    "ProtocolError",
    "RateLimited",
    "RequestTimeout",
    "SymbolNotFound",
    "TokenExpired",
    "TvFeedError",
    "TwoFactorRequired",
    "UnsafeRedirect",
    "__version__",
]
