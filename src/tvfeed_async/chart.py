"""What every chart session of the feed shares: opening it, and the errors it can end with.

History requests and live streams each use one chart session. They open it the same way
(``chart_create_session``, then ``resolve_symbol`` of the symbol as ``sds_sym_1``) and turn
the same server messages into the same typed errors. The conversation itself, ids and
matching included, is :class:`~tvfeed_async.protocol.chart_session.ChartSession` (pure);
this module is the part that sends.
"""

from __future__ import annotations

from .protocol.chart_session import (
    ENTITLEMENT_REASONS,
    PERMISSION_REASONS,
    SERIES_ID,
    SYMBOL_REF,
    ChartSession,
    chart_error,
)
from .supervisor import Link

__all__ = [
    "ENTITLEMENT_REASONS",
    "PERMISSION_REASONS",
    "SERIES_ID",
    "SYMBOL_REF",
    "chart_error",
    "open_chart",
]


async def open_chart(
    link: Link,
    session: str,
    symbol: str,
    *,
    adjustment: str,
    trading_session: str,
    back_adjusted: bool,
    chart: ChartSession | None = None,
) -> None:
    """Create chart session ``session`` and resolve ``symbol`` as :data:`SYMBOL_REF` in it.

    Args:
        chart: the session's state machine, if the caller keeps one (its id becomes
            ``session``); else a throw-away one builds the messages.

    Raises:
        ConnectionLost: the socket closed while sending.
    """
    if chart is None:
        chart = ChartSession(session, symbol)
    chart.session_id = session
    _, resolve = chart.resolve(
        symbol, adjustment=adjustment, trading_session=trading_session, back_adjusted=back_adjusted
    )
    for message in (*chart.open(), *resolve):
        await link.send(message)
