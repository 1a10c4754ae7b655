"""Pin the public API: a change to ``tvfeed_async.__all__`` must be deliberate.

When you add or remove a public name, update EXPECTED here in the same commit.
"""

from __future__ import annotations

import types

import tvfeed_async
from tvfeed_async import errors

EXPECTED = {
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
}


def test_all_is_exactly_the_expected_set() -> None:
    assert set(tvfeed_async.__all__) == EXPECTED
    assert len(tvfeed_async.__all__) == len(set(tvfeed_async.__all__)), "duplicates in __all__"


def test_every_public_name_resolves() -> None:
    for name in tvfeed_async.__all__:
        assert getattr(tvfeed_async, name) is not None, name
    namespace: dict[str, object] = {}
    exec("from tvfeed_async import *", namespace)
    assert set(namespace) - {"__builtins__"} == EXPECTED


def test_nothing_public_is_exported_by_accident() -> None:
    # Submodules are reachable as attributes once imported; every other public attribute must
    # be listed (``annotations`` is the __future__ feature object).
    extra = {
        name
        for name, value in vars(tvfeed_async).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    } - EXPECTED
    assert extra == set()


def test_the_whole_error_tree_is_public() -> None:
    assert set(errors.__all__) <= EXPECTED
    for name in errors.__all__:
        error = getattr(tvfeed_async, name)
        assert issubclass(error, errors.TvFeedError)


def test_version_is_a_string() -> None:
    assert isinstance(tvfeed_async.__version__, str)
    assert tvfeed_async.__version__.count(".") == 2
