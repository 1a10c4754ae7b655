"""tvfeed_async: an asyncio-native TradingView market data client.

The public API is exactly what ``__all__`` lists; everything else is private.
"""

from __future__ import annotations

from .auth import SessionCache
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
from .feed import TvFeed
from .history import HistoryResult, SymbolInfo
from .protocol.bars import Bar, Gap
from .protocol.intervals import Interval
from .protocol.studies import ScriptSummary
from .protocol.symbols import Symbol, parse_symbol
from .search import SearchResult
from .stats import FeedStats

__version__ = "0.1.0"

__all__ = [
    # the session manager
    "TvFeed",
    # values
    "Bar",
    "FeedStats",
    "Gap",
    "HistoryResult",
    "SearchResult",
    "ScriptSummary",
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
