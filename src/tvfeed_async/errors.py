"""The one exception tree of tvfeed_async.

Every error the library raises on purpose is a :class:`TvFeedError`. Errors from aiohttp and
anyio are translated at the layer boundary, so callers only ever need to catch these::

    TvFeedError
    ├── InvalidRequest (also ValueError)          bad arguments: caught before anything is sent
    │   ├── InvalidInterval                        "15m", "XX", 0 minutes ...
    │   └── InvalidSymbol                          "", "A:B:C", a tuple of the wrong shape ...
    ├── SymbolNotFound                             the server answered symbol_error
    ├── EntitlementError                           the account may not use this (seconds bars ...)
    ├── RateLimited                                HTTP 429, "max sessions rate reached", rate_limit
    ├── ProtocolError                              the server said protocol_error / critical_error,
    │   └── FramingError                           or sent bytes that are not the protocol
    ├── ConnectionLost                             the socket died and the request could not finish
    ├── RequestTimeout (also TimeoutError)         the server went quiet past a deadline
    ├── ConsumerTooSlow                            a stream consumer fell too far behind
    ├── GapError                                   an outage was longer than the server can backfill
    └── AuthError                                  sign-in and token problems
        ├── InvalidCredentials
        ├── TwoFactorRequired
        ├── CaptchaRequired
        ├── TokenExpired
        └── UnsafeRedirect                         a redirect to another host was not followed

Messages say what happened and what to do next. No message ever contains a secret.
"""

from __future__ import annotations

__all__ = [
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
]


class TvFeedError(Exception):
    """Base class of every error tvfeed_async raises on purpose."""


class InvalidRequest(TvFeedError, ValueError):
    """The arguments of a call are wrong; nothing was sent to the server."""


class InvalidInterval(InvalidRequest):
    """An interval string or value that TradingView does not understand."""


class InvalidSymbol(InvalidRequest):
    """A symbol or exchange that cannot be turned into ``EXCHANGE:TICKER``."""


class SymbolNotFound(TvFeedError):
    """The server could not resolve a symbol (it answered ``symbol_error``).

    Attributes:
        symbol: the ``EXCHANGE:TICKER`` that was asked for.
        reason: the server's own words, e.g. ``"invalid symbol"``.
    """

    def __init__(self, symbol: str, reason: str) -> None:
        self.symbol = symbol
        self.reason = reason
        super().__init__(
            f"TradingView could not resolve {symbol!r}: {reason}. "
            "Check the exchange prefix and ticker (search with feed.search_symbol())."
        )


class EntitlementError(TvFeedError):
    """The account is not allowed this data (e.g. seconds intervals on a free plan).

    Attributes:
        reason: the server's reason code, e.g. ``"seconds_not_entitled"``.
    """

    def __init__(self, message: str, reason: str = "") -> None:
        self.reason = reason
        super().__init__(message)


class RateLimited(TvFeedError):
    """TradingView is throttling this client. Slow down; do not retry in a tight loop.

    Attributes:
        retry_after: seconds the server asked to wait, when it said so.
    """

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class ProtocolError(TvFeedError):
    """The server reported a protocol-level error, or the conversation broke its rules."""


class FramingError(ProtocolError):
    """Text received on the socket is not a valid sequence of ``~m~<len>~m~`` packets.

    This is the only error the framing decoder raises, whatever the input.
    """


class ConnectionLost(TvFeedError):
    """The WebSocket closed or failed and the operation could not be completed on it."""


class RequestTimeout(TvFeedError, TimeoutError):
    """A request got no completing answer from the server within its deadline."""


class ConsumerTooSlow(TvFeedError):
    """A stream's consumer fell so far behind that closed bars would have had to be dropped.

    The stream ends with this error instead of losing bars; consume faster, or use a larger
    ``queue_size``.

    Raised by the stream's ``async for`` once the ``queue_size`` closed items (bars, study
    rows) queued before the overflow were taken; other streams go on. Forming updates and
    quotes are coalesced instead (only the latest value per series or symbol waits), so they
    never cause it (see ``tvfeed_async.delivery``).
    """


class GapError(TvFeedError):
    """An outage lasted longer than the server's history can backfill.

    Attributes:
        last_closed: open time (unix seconds) of the last bar delivered before the gap.
        resumed_at: open time (unix seconds) of the first bar available after it.
    """

    def __init__(self, message: str, last_closed: int, resumed_at: int) -> None:
        self.last_closed = last_closed
        self.resumed_at = resumed_at
        super().__init__(message)


class AuthError(TvFeedError):
    """Base class of authentication failures."""


class InvalidCredentials(AuthError):
    """The username, password or second-factor code was rejected."""


class TwoFactorRequired(AuthError):
    """The account needs a second factor that was not supplied or is not supported.

    Attributes:
        factors: the factor names the server offered, e.g. ``["totp"]`` or ``["sms"]``.
    """

    def __init__(self, message: str, factors: list[str] | None = None) -> None:
        self.factors = list(factors or [])
        super().__init__(message)


class CaptchaRequired(AuthError):
    """TradingView wants a reCAPTCHA solved before it accepts a password sign-in."""


class TokenExpired(AuthError):
    """The auth token lapsed and could not be refreshed without a new sign-in."""


class UnsafeRedirect(AuthError):
    """A request that carries credentials was redirected off the configured hosts.

    The redirect was not followed, so nothing secret (password, two-factor code, session
    cookies, auth token) went to the other host. Check the configured endpoints; a genuine
    TradingView server does not send these redirects.
    """
