"""Configuration values: where to connect, how long to wait, how hard to retry, how much to hold.

All are frozen dataclasses with defaults that suit the real TradingView service.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from .errors import InvalidRequest

__all__ = ["Endpoints", "Limits", "RetryPolicy", "Timeouts"]


COMPRESSION_POLICIES = ("auto", "on", "off")


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the client connects.

    Attributes:
        ws_url: the chart-data WebSocket (``wss://data.tradingview.com/socket.io/websocket``).
        www_url: base URL for sign-in, two-factor and the home page that embeds the token.
        symbol_search_url: the symbol search v3 endpoint.
        pine_facade_url: base URL of the Pine script metadata API (``.../translate/<id>/<v>``).
        origin: the ``Origin`` header sent on the WebSocket upgrade and to symbol search.
        compression: whether the WebSocket offers permessage-deflate. ``"auto"`` (the
            default) offers it to remote hosts and not to loopback ones (``127.x``, ``::1``,
            ``localhost``: the bundled simulator, a local relay), where inflating only costs
            CPU; ``"on"`` and ``"off"`` decide it for every host. The server may still
            decline. A 50,000-bar history is about 4x smaller deflated; see
            benchmarks/README.md (``history_throughput.py --compression``) for the trade-off
            measured at 50 ms round trip and limited bandwidth.
    """

    ws_url: str = "wss://data.tradingview.com/socket.io/websocket"
    www_url: str = "https://www.tradingview.com"
    symbol_search_url: str = "https://symbol-search.tradingview.com/symbol_search/v3/"
    origin: str = "https://www.tradingview.com"
    pine_facade_url: str = "https://pine-facade.tradingview.com/pine-facade"
    compression: Literal["auto", "on", "off"] = "auto"

    def __post_init__(self) -> None:
        if self.compression not in COMPRESSION_POLICIES:
            raise InvalidRequest(
                f"Endpoints.compression must be one of {', '.join(COMPRESSION_POLICIES)}, "
                f"not {self.compression!r}"
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Endpoints:
        """Defaults overridden by ``TVFEED_WS_URL``, ``TVFEED_WWW_URL``,
        ``TVFEED_SYMBOL_SEARCH_URL``, ``TVFEED_ORIGIN``, ``TVFEED_PINE_FACADE_URL`` and
        ``TVFEED_WS_COMPRESSION`` (auto, on or off) when set.

        Raises:
            InvalidRequest: ``TVFEED_WS_COMPRESSION`` is none of auto, on, off.
        """
        env = os.environ if environ is None else environ
        base = cls()
        return replace(
            base,
            ws_url=env.get("TVFEED_WS_URL") or base.ws_url,
            www_url=env.get("TVFEED_WWW_URL") or base.www_url,
            symbol_search_url=env.get("TVFEED_SYMBOL_SEARCH_URL") or base.symbol_search_url,
            origin=env.get("TVFEED_ORIGIN") or base.origin,
            pine_facade_url=env.get("TVFEED_PINE_FACADE_URL") or base.pine_facade_url,
            compression=env.get("TVFEED_WS_COMPRESSION") or base.compression,  # type: ignore[arg-type]
        )


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Deadlines, in seconds.

    Attributes:
        connect: opening the WebSocket (TCP, TLS and upgrade).
        request: cumulative deadline of one historical request, paging included.
        page: a historical request whose server sends nothing more for this long while
            paging (or after part of its first answer) ends with the bars that came, marked
            ``cut_short``, instead of waiting for ``request`` and losing them.
        idle: a connection with no data and no heartbeat for this long is considered dead
            (real servers send a heartbeat every 10 s).
        close: how long the shutdown may wait for the closing handshake.
        http: one HTTP request (sign-in, search).
        token_refresh_margin: refresh the auth token this long before it lapses.
        token_min_validity: a token (given, cached or current) that lapses within this long
            is renewed before it is used: connecting with it would only cost a reconnect a
            moment later.
        backfill_patience: after a reconnect, a stream consumer whose queue stays full of
            backfilled bars for this long is ended with ``ConsumerTooSlow``.
        send: adding or removing quote symbols is given this long to reach a socket that
            does not take writes (shielded from the caller's cancellation).
        session_delete: deleting a chart or quote session when a request or stream ends is
            given this long (shielded; best effort: the session dies with the socket anyway).
        idle_chart_session: a history request's chart session is kept open this long after
            the request ended cleanly, for the next count request on the socket to reuse
            (a new symbol and series in the same session: fewer sessions created, which the
            server rate-limits); 0 deletes each at once, as before. At most twice
            ``Limits.max_in_flight`` are kept per socket (as many as top-ups may have open);
            a stream that needs a slot closes one.
    """

    connect: float = 15.0
    request: float = 60.0
    page: float = 10.0
    idle: float = 30.0
    close: float = 5.0
    http: float = 30.0
    token_refresh_margin: float = 300.0
    token_min_validity: float = 60.0
    backfill_patience: float = 10.0
    send: float = 5.0
    session_delete: float = 1.0
    idle_chart_session: float = 30.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Reconnect back-off: exponential with full jitter, capped, reset after a success.

    Attributes:
        initial: first delay.
        maximum: cap on a single delay.
        multiplier: growth per failed attempt.
        max_attempts: consecutive failed attempts before giving up (``None``, the default:
            never, so that a long-lived service comes back with the server; requests still
            end at their own deadline meanwhile). The first connection of a feed is not
            retried: ``async with TvFeed()`` raises its error at once.
        history_attempts: tries of one historical request whose socket fails under it, each
            on the next socket, before it raises ``ConnectionLost`` (at least 1).
        reopens_per_window, reopen_window: a live series the server ends with a chart error
            it may recover from is re-opened up to ``reopens_per_window`` times per
            ``reopen_window`` seconds, then its consumers get the error.
        token_refreshes_per_window, token_refresh_window: ``bad auth token`` answers are
            met with a token refresh up to this many times per window, then ``AuthError``.
        token_retry_delay: after a failed background token refresh, wait this long before
            the next try.
    """

    initial: float = 0.5
    maximum: float = 30.0
    multiplier: float = 2.0
    max_attempts: int | None = None
    history_attempts: int = 3
    reopens_per_window: int = 3
    reopen_window: float = 600.0
    token_refreshes_per_window: int = 3
    token_refresh_window: float = 600.0
    token_retry_delay: float = 60.0

    def delay(self, attempt: int, random_fraction: float) -> float:
        """Delay before attempt number ``attempt`` (0-based), with ``random_fraction`` in [0, 1)."""
        ceiling = min(self.maximum, self.initial * self.multiplier**attempt)
        return ceiling * (0.5 + 0.5 * random_fraction)


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one feed holds at once.

    Attributes:
        max_in_flight: historical requests waiting for full answers on the socket at the
            same time; as many more may be finishing with a small last page (a top-up: see
            ``tvfeed_async.slots``). Each holds a chart session, and up to twice this many
            are kept idle for reuse. 16 is as fast as the floor against the benchmark's
            independent server at 50 ms (benchmarks/README.md); more than half of
            ``session_burst`` at once is paced by the governor.
        bars_per_request: per-request cap used for paging when the token does not say
            (5,000 anonymous/free).
        stream_queue: per-subscription queue size (closed bars are never dropped; forming
            updates are coalesced when it is full).
        max_backfill_bars: after a reconnect, how many bars a stream may page back to close
            the hole; an outage longer than that (or than the server's history) is reported
            as a gap.
        close_grace: seconds a live bar is held back after the next bar opened, so that a
            late revision of its final values (the server may send one after the next bar's
            first update) still reaches the consumer. 0 (the default) delivers it at once,
            with the lowest latency; its late revisions are then dropped and counted in
            ``TvFeed.stats.late_revisions``. See docs/concepts.md.
        max_chart_sessions: chart sessions one socket may hold at once (history requests and
            streams each hold one); more wait for one to close. The server refuses sessions
            past its own limit and then fails the socket's later requests; the bundled
            simulator allows 200.
        chart_sessions_per_second, quote_sessions_per_second: how fast new chart and quote
            sessions may be created (the feed's :class:`~tvfeed_async.governor.Governor`;
            TradingView answers "max sessions rate reached" past a rate it does not
            publish). None: unpaced.
        series_requests_per_second: how fast ``create_series``, ``modify_series``,
            ``request_more_data`` and ``create_study`` may go out. None (the default):
            unpaced, as no limit on them is known; set it to pace them too.
        session_burst, series_burst: how many of each may go at once after a quiet spell.
        rate_limit_backoff: when the server rate-limits anyway, every rate is multiplied by
            this (down to 1/64 of the setting).
        rate_limit_recovery: seconds without another rate limit before the rates double
            back towards the setting.
    """

    max_in_flight: int = 16
    bars_per_request: int = 5_000
    stream_queue: int = 1_000
    max_backfill_bars: int = 50_000
    close_grace: float = 0.0
    max_chart_sessions: int = 200
    chart_sessions_per_second: float | None = 10.0
    quote_sessions_per_second: float | None = 10.0
    series_requests_per_second: float | None = None
    session_burst: int = 32
    series_burst: int = 100
    rate_limit_backoff: float = 0.5
    rate_limit_recovery: float = 60.0
