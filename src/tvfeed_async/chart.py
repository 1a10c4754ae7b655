"""What every chart session of the feed shares: opening it, and the errors it can end with.

History requests and live streams each use one chart session with one series (PROTOCOL.md
§3.4-§3.8). They open it the same way and turn the same three server messages into the same
typed errors; this module is that common part.
"""

from __future__ import annotations

from .connection import Link
from .errors import (
    EntitlementError,
    InvalidRequest,
    ProtocolError,
    SymbolNotFound,
    TvFeedError,
)
from .protocol.messages import (
    CriticalError,
    SeriesError,
    ServerMessage,
    SymbolError,
    chart_create_session,
    resolve_symbol,
    symbol_spec,
)

__all__ = [
    "ENTITLEMENT_REASONS",
    "PERMISSION_REASONS",
    "SERIES_ID",
    "SYMBOL_REF",
    "chart_error",
    "open_chart",
]

#: The one series of each chart session, and its symbol alias (as TVKIT/HAMED name them).
SERIES_ID = "sds_1"
SYMBOL_REF = "sds_sym_1"
#: series_error reasons that mean "your plan does not include this": custom_resolution and
#: study_not_auth:<study> (TradingView-API reads them), seconds_not_entitled and
#: "unsupported resolution" (listed by the Go client finance-data-stream).
ENTITLEMENT_REASONS = (
    "seconds_not_entitled",
    "custom_resolution",
    "study_not_auth",
    "unsupported resolution",
)
#: symbol_error reasons that mean the symbol exists but the account may not see it.
PERMISSION_REASONS = ("permission denied",)


async def open_chart(
    link: Link,
    session: str,
    symbol: str,
    *,
    adjustment: str,
    trading_session: str,
    back_adjusted: bool,
) -> None:
    """Create chart session ``session`` and resolve ``symbol`` as :data:`SYMBOL_REF` in it.

    Raises:
        ConnectionLost: the socket closed while sending.
    """
    spec = symbol_spec(
        symbol, adjustment=adjustment, session=trading_session, back_adjustment=back_adjusted
    )
    await link.send(chart_create_session(session))
    await link.send(resolve_symbol(session, SYMBOL_REF, spec))


def chart_error(message: ServerMessage, symbol: str, name: str) -> TvFeedError | None:
    """The typed error a chart message ends its request or stream with, or None.

    Args:
        message: any message routed to the chart session.
        symbol: ``EXCHANGE:TICKER`` of the session.
        name: how errors name the request (e.g. ``"BINANCE:BTCUSDT 1 n_bars=10"``).
    """
    if isinstance(message, SymbolError):
        if message.reason.lower().startswith(PERMISSION_REASONS):
            lacking = " ".join(message.details)
            return EntitlementError(
                f"{name}: TradingView says {message.reason!r}"
                + (f" ({lacking})" if lacking else "")
                + ": the account may not see this symbol's data (it needs a data "
                "subscription or plan that includes it; sign in with one)",
                " ".join((message.reason, *message.details)),
            )
        return SymbolNotFound(symbol, message.reason)
    if isinstance(message, SeriesError):
        reason = message.reason
        if reason.lower().startswith(ENTITLEMENT_REASONS) or "not_entitled" in reason:
            return EntitlementError(
                f"{name}: TradingView says {reason!r}: the account's plan does not include "
                "this (seconds, custom intervals, non-standard chart types such as Renko "
                "need a paid plan; sign in with one)",
                reason,
            )
        return ProtocolError(f"{name}: series error {reason!r}")
    if isinstance(message, CriticalError):
        text = f"{name}: server refused the request ({message.message}; {message.detail})"
        if message.message.startswith("invalid"):
            return InvalidRequest(text)
        return ProtocolError(text)
    return None
