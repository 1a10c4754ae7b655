"""What a feed counts besides the data it delivers (``TvFeed.stats``)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["FeedStats"]


@dataclass(frozen=True, slots=True)
class FeedStats:
    """A snapshot of a feed's counters (each call of ``TvFeed.stats`` takes a new one).

    Attributes:
        connections_opened: WebSockets opened (1 unless the feed had to reconnect).
        reconnects: reconnections after a failure.
        malformed_messages: WebSocket messages that could not be decoded; each dropped the
            socket, and streams backfilled what they missed.
        unexpected_errors: errors nobody foresaw in the reader; each dropped the socket.
        critical_errors: ``critical_error`` messages received.
        token_rejections: ``bad auth token`` or ``unauthorized_access`` answers.
        unknown_messages: messages the feed does not interpret (studies, pointsets, depth,
            ``protocol_switched``...), by method; each kind is logged once at DEBUG.
        unrouted_messages: messages for a chart or quote session that is no longer open.
        rejected_bars: live or backfilled bar updates dropped as impossible (an open time off
            the interval's grid or far in the future, prices that are not finite).
        late_revisions: revisions of a bar that came after the bar was delivered as closed
            (see ``Limits.close_grace``).
        streams: live server series.
    """

    connections_opened: int = 0
    reconnects: int = 0
    malformed_messages: int = 0
    unexpected_errors: int = 0
    critical_errors: int = 0
    token_rejections: int = 0
    unknown_messages: dict[str, int] = field(default_factory=dict)
    unrouted_messages: int = 0
    rejected_bars: int = 0
    late_revisions: int = 0
    streams: int = 0
