"""What a service polls and watches for its dashboards: ``feed.health()`` and
``feed.events()``.

:class:`EventHub` is owned by the connection supervisor; the supervisor and the streams call
:meth:`EventHub.emit` (synchronous, never blocks, from any task). Each ``feed.events()``
iterator has its own bounded queue: when a watcher falls behind by more than
:data:`EVENT_QUEUE` events the oldest are dropped and counted (``Event.dropped_before`` of
the next one it gets), so a forgotten watcher can never grow memory.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # asyncio is imported when a watcher first waits (a light package import)
    import asyncio

__all__ = [
    "EVENT_QUEUE",
    "Event",
    "EventHub",
    "EventKind",
    "EventStream",
    "FeedHealth",
    "StreamHealth",
]

#: Events one watcher may have waiting before the oldest are dropped.
EVENT_QUEUE = 1_000

EventKind = Literal[
    "connected",
    "disconnected",
    "reconnected",
    "rate_limited",
    "gave_up",
    "backfilled",
    "gap",
    "stream_error",
    "stream_reopened",
]


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened to the feed.

    Attributes:
        kind: what happened (see :data:`EventKind`).
        time: when, UTC.
        detail: a human-readable sentence (an error text, a bar count...).
        symbol, interval: the stream it concerns, when it concerns one.
        bars: bars delivered by a backfill (``backfilled``).
        dropped_before: events this watcher missed just before this one (it lagged).
    """

    kind: EventKind
    time: datetime
    detail: str = ""
    symbol: str = ""
    interval: str = ""
    bars: int = 0
    dropped_before: int = 0


class EventStream:
    """``async for event in feed.events()``; ``aclose()`` (or ``async with``) stops it.

    It ends when the feed closes. A timeout around one step does not end it.
    """

    __slots__ = ("_closed", "_dropped", "_hub", "_queue", "_waiter")

    def __init__(self, hub: EventHub) -> None:
        self._hub = hub
        self._queue: deque[Event] = deque()
        self._dropped = 0
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def _push(self, event: Event) -> None:
        if len(self._queue) >= EVENT_QUEUE:
            self._queue.popleft()
            self._dropped += 1
        self._queue.append(event)
        self._wake()

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> Event:
        while not self._queue:
            if self._closed or self._hub.closed:
                self.close()
                raise StopAsyncIteration
            import asyncio

            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter
        event = self._queue.popleft()
        if self._dropped:
            dropped, self._dropped = self._dropped, 0
            event = Event(
                event.kind,
                event.time,
                event.detail,
                event.symbol,
                event.interval,
                event.bars,
                dropped,
            )
        return event

    def close(self) -> None:
        """Stop watching (synchronous; idempotent)."""
        self._closed = True
        self._hub._streams.discard(self)
        self._wake()

    async def aclose(self) -> None:
        """Stop watching."""
        self.close()

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()


class EventHub:
    """Fans events out to the feed's watchers and keeps the connection's health figures."""

    __slots__ = (
        "_streams",
        "closed",
        "connected",
        "connected_since",
        "last_error",
        "last_error_time",
    )

    def __init__(self) -> None:
        self._streams: set[EventStream] = set()
        self.closed = False
        self.connected = False
        self.connected_since: datetime | None = None
        self.last_error: str | None = None
        self.last_error_time: datetime | None = None

    def watch(self) -> EventStream:
        """A new watcher; it gets the events emitted from now on."""
        stream = EventStream(self)
        self._streams.add(stream)
        return stream

    def emit(
        self,
        kind: EventKind,
        detail: str = "",
        *,
        symbol: str = "",
        interval: str = "",
        bars: int = 0,
    ) -> None:
        """Record an event and hand it to every watcher (never blocks)."""
        now = datetime.now(UTC)
        if kind in ("connected", "reconnected"):
            self.connected, self.connected_since = True, now
        elif kind in ("disconnected", "gave_up"):
            self.connected, self.connected_since = False, None
        if kind in ("disconnected", "gave_up", "rate_limited", "stream_error"):
            self.last_error, self.last_error_time = detail, now
        if not self._streams:
            return
        event = Event(kind, now, detail, symbol, interval, bars)
        for stream in list(self._streams):
            stream._push(event)

    def close(self) -> None:
        """The feed is closing: every watcher's loop ends once it took what was queued."""
        self.closed = True
        self.connected, self.connected_since = False, None
        for stream in list(self._streams):
            stream._wake()


@dataclass(frozen=True, slots=True)
class StreamHealth:
    """One live series, as ``feed.health()`` sees it.

    Attributes:
        symbol, interval: the series.
        live: subscribed and streaming (False while it loads, backfills or waits for a
            socket).
        consumers: how many iterators share it.
        last_bar_time: open time of the newest bar seen (forming or closed), UTC.
        last_closed_time: open time of the newest bar delivered as closed, UTC.
        gaps: holes reported (the outage outlasted what the server could backfill).
        reopens: times the series was re-opened after a chart error.
        rejected_bars: updates dropped as impossible.
    """

    symbol: str
    interval: str
    live: bool
    consumers: int
    last_bar_time: datetime | None
    last_closed_time: datetime | None
    gaps: int
    reopens: int
    rejected_bars: int


@dataclass(frozen=True, slots=True)
class FeedHealth:
    """A snapshot for a dashboard (``feed.health()``).

    Attributes:
        connected: a socket is open and authenticated.
        connected_since: since when, UTC.
        reconnects: reconnections after a failure.
        last_data_age: seconds since the socket last received anything (data or heartbeat);
            None before the first.
        last_error, last_error_time: the latest connection or stream error, if any.
        symbols_monitored: distinct symbols of the live series.
        streams: one entry per live server series.
    """

    connected: bool
    connected_since: datetime | None
    reconnects: int
    last_data_age: float | None
    last_error: str | None
    last_error_time: datetime | None
    symbols_monitored: int
    streams: list[StreamHealth] = field(default_factory=list)


def utc(timestamp: int | None) -> datetime | None:
    """A unix time as a UTC datetime (None stays None)."""
    return None if timestamp is None else datetime.fromtimestamp(timestamp, UTC)


def age(since_monotonic: float | None) -> float | None:
    """Seconds since a ``time.monotonic()`` reading (None stays None)."""
    return None if since_monotonic is None else max(0.0, time.monotonic() - since_monotonic)
