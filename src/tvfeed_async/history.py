"""Historical requests on the shared socket: count mode with paging, and date ranges.

One request = one chart session with one series (``sds_1``), as the maintained clients do
(PROTOCOL.md §3). Completion is driven by protocol events only: ``series_completed`` ends a
chunk; ``symbol_error``, ``series_error`` and ``critical_error`` end the request at once with a
typed error (USERS.md 2, 17). A cumulative deadline guards against a server that goes quiet.

Count mode asks for ``n_bars + 1`` bars (the newest is usually still forming), then pages back
with ``request_more_data`` until enough bars arrived or a chunk adds no older bar (history
exhausted). Re-sent bars are dropped by open time, never by index (§10.10).

Range mode follows §3.9: ``create_series`` with a small count, then one ``modify_series`` with
``r,<from>:<to>`` (unix seconds) per window of at most the per-request cap, each awaited in
turn so the batches cannot be confused (§10.11); bars outside the range are filtered out.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import anyio
import polars as pl

from .chart import SERIES_ID, SYMBOL_REF, chart_error, open_chart
from .connection import Link, Supervisor
from .errors import (
    ConnectionLost,
    TvFeedError,
)
from .frames import finalize, frame_from_wire_bars
from .protocol.connection import new_session_id
from .protocol.intervals import Interval
from .protocol.messages import (
    Row,
    SeriesCompleted,
    SeriesData,
    ServerMessage,
    SymbolResolved,
    chart_delete_session,
    create_series,
    modify_series,
    range_param,
    request_more_data,
)
from .protocol.symbols import Symbol

__all__ = [
    "FailedLink",
    "HistoryRequest",
    "HistoryResult",
    "SymbolInfo",
    "fetch_history",
    "fetch_symbol_info",
]


#: Symbol types that have no volume, for a symbol_resolved that does not say (2019 servers).
_NO_VOLUME_TYPES = ("index", "economic")


@dataclass(frozen=True, slots=True)
class SymbolInfo:
    """The ``symbol_resolved`` fields that matter (the full object is in ``raw``).

    Attributes:
        full_name: ``EXCHANGE:TICKER`` as the server spells it.
        delay_seconds: data delay when the server says so (anonymous data may be delayed).
    """

    full_name: str
    name: str
    description: str
    type: str
    exchange: str
    timezone: str
    session: str
    pricescale: int | None
    minmov: int | None
    currency: str
    has_volume: bool
    has_intraday: bool
    has_extended_hours: bool
    update_mode: str | None
    delay_seconds: int | None
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_resolved(
        cls, info: dict[str, Any], fallback_name: str, bars_have_volume: bool | None = None
    ) -> SymbolInfo:
        """Build from a ``symbol_resolved`` info object.

        Args:
            bars_have_volume: whether the bars that came with it carry volume, when known.
                ``has_volume`` comes from ``visible_plots_set`` (``"ohlcv"``) or
                ``volume_type`` when the server sends them (2026 servers); 2019 servers sent
                neither (tests/integration/test_real_service_behaviour.py reads two genuine
                2019 frames), and then the bars decide, or without bars the symbol type
                (indices have none).
        """

        def text(key: str) -> str:
            value = info.get(key)
            return value if isinstance(value, str) else ""

        def integer(key: str) -> int | None:
            value = info.get(key)
            return int(value) if isinstance(value, int | float) else None

        plots = text("visible_plots_set")
        volume_type = text("volume_type")
        return cls(
            full_name=text("full_name") or text("pro_name") or fallback_name,
            name=text("name"),
            description=text("description"),
            type=text("type"),
            exchange=text("exchange"),
            timezone=text("timezone"),
            session=text("session"),
            pricescale=integer("pricescale"),
            minmov=integer("minmov"),
            currency=text("currency_code") or text("currency_id"),
            has_volume=(
                plots == "ohlcv"
                if plots
                else True
                if volume_type
                else bars_have_volume
                if bars_have_volume is not None
                else text("type") not in _NO_VOLUME_TYPES
            ),
            has_intraday=bool(info.get("has_intraday", False)),
            has_extended_hours=bool(info.get("has_extended_hours", False)),
            update_mode=text("update_mode") or None,
            delay_seconds=integer("delay"),
            raw=info,
        )


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    """A validated historical request (built by ``TvFeed.get_hist``)."""

    symbol: Symbol
    interval: Interval
    n_bars: int | None = None
    start: int | None = None
    end: int | None = None
    session: str = "regular"
    adjustment: str = "splits"
    back_adjusted: bool = False
    include_partial: bool = False
    timezone: str | None = None

    def describe(self) -> str:
        """Short human description used in error messages."""
        what = f"{self.symbol.full} {self.interval.code}"
        if self.start is not None:
            return f"{what} from {self.start} to {self.end}"
        return f"{what} n_bars={self.n_bars}"


@dataclass(slots=True)
class HistoryResult:
    """Bars and what is known about how the request ended.

    Attributes:
        frame: the bars (schema in ``tvfeed_async.frames``).
        exhausted: the server's history ran out before ``n_bars`` (count mode) or before
            the start of the range.
        symbol_info: the resolved symbol, when the server sent it.
        chunks: how many of its requests the server answered (1 + pages, or windows in
            range mode); one answer may span several ``timescale_update`` packets.
        cut_short: the server went quiet while paging (no answer within
            ``Timeouts.page``): the frame holds every bar that arrived, but the history may
            reach further back than it does.
        requests: how many series requests were sent (create/modify_series and
            request_more_data).
    """

    frame: pl.DataFrame
    exhausted: bool
    symbol_info: SymbolInfo | None
    chunks: int
    cut_short: bool = False
    requests: int = 0


class _Quiet(Exception):
    """The server sent nothing for this request within the page deadline."""


class _ChartRoute:
    """Collects the messages of one history chart session (runs in the reader task).

    Data and completions are matched on the turnaround id of the request that asked for
    them (``expected``): a late ``series_completed`` or batch of an earlier request of the
    same series is dropped, never taken for the answer to the current one (the server echoes
    the turnaround id of each create/modify_series in its data and its series_completed).
    """

    def __init__(self, symbol: str, request_name: str) -> None:
        self.symbol = symbol
        self.request_name = request_name
        self.chunks: list[list[Row]] = []
        self.info: dict[str, Any] | None = None
        self.error: TvFeedError | None = None
        self.completed: SeriesCompleted | None = None
        self.server_time: float | None = None
        self.bar_close_time: int | None = None
        self.accepting = True
        self.expected = "s1"
        self.stale = 0
        self.requests = 0
        self.answers = 0
        self.last_activity = 0.0
        self._event = anyio.Event()
        self.resolved = anyio.Event()

    @property
    def awaiting_reply(self) -> bool:
        """True while the request waits for the server (see Supervisor._critical_error)."""
        return self.accepting and self.error is None

    def handle(self, message: ServerMessage) -> None:
        if isinstance(message, SeriesData):
            payload = message.series.get(SERIES_ID)
            if payload is None or not self.accepting:
                return
            if payload.turnaround and payload.turnaround != self.expected:
                self.stale += 1
                return
            self.last_activity = time.monotonic()
            if payload.rows:
                self.chunks.append(payload.rows)
                if payload.bar_close_time is not None:
                    self.bar_close_time = payload.bar_close_time
            if message.server_time is not None:
                self.server_time = message.server_time
        elif isinstance(message, SeriesCompleted):
            if message.series_id == SERIES_ID:
                if message.turnaround and message.turnaround != self.expected:
                    self.stale += 1
                    return
                self.completed = message
                self.answers += 1
                self._event.set()
        elif isinstance(message, SymbolResolved):
            self.info = message.info
            self.resolved.set()
        else:
            error = chart_error(message, self.symbol, self.request_name)
            if error is not None:
                self._fail(error)

    def connection_lost(self, error: TvFeedError) -> None:
        self._fail(error if isinstance(error, ConnectionLost) else ConnectionLost(str(error)))

    def _fail(self, error: TvFeedError) -> None:
        if self.error is None:
            self.error = error
        self._event.set()
        self.resolved.set()

    def expect(self, turnaround: str) -> None:
        """The next request sent carries ``turnaround``: answer only that."""
        self.expected = turnaround
        self.requests += 1
        self.last_activity = time.monotonic()

    async def wait_chunk(self, quiet: float | None = None) -> SeriesCompleted:
        """Wait for the next ``series_completed`` (or raise the error that ended the request).

        Args:
            quiet: raise :class:`_Quiet` when nothing at all arrives for this request
                (data or completion) for this many seconds.
        """
        if quiet is None:
            await self._event.wait()
        else:
            while not self._event.is_set():
                remaining = self.last_activity + quiet - time.monotonic()
                if remaining <= 0:
                    raise _Quiet
                with anyio.move_on_after(remaining):
                    await self._event.wait()
        self._event = anyio.Event()
        if self.error is not None:
            raise self.error
        completed = self.completed
        assert completed is not None
        self.completed = None
        return completed


_ROW_BAR = attrgetter("v")
_BAR_TIME = attrgetter("timestamp")


def _chunk_start(rows: list[Row]) -> int:
    return rows[0].v.timestamp


def _row_times(rows: list[Row]) -> Iterator[int]:
    """The rows' open times (C-level maps: no Python step per row)."""
    return map(_BAR_TIME, map(_ROW_BAR, rows))


async def _open_chart(
    link: Link, supervisor: Supervisor, request: HistoryRequest, route: _ChartRoute
) -> str:
    """Open the request's chart session (counted on ``link``: see Link.acquire_chart_session).
    Whoever gets the session id back closes it with :func:`_close_chart`."""
    await link.acquire_chart_session()
    session = new_session_id("cs")
    supervisor.add_route(session, route)
    try:
        await open_chart(
            link,
            session,
            request.symbol.full,
            adjustment=request.adjustment,
            trading_session=request.session,
            back_adjusted=request.back_adjusted,
        )
    except BaseException:
        await _close_chart(link, supervisor, session)
        raise
    return session


async def _close_chart(link: Link, supervisor: Supervisor, session: str) -> None:
    supervisor.remove_route(session)
    try:
        if not link.closed:
            # Best effort: the session dies with the socket anyway.
            with anyio.move_on_after(1.0, shield=True):
                with contextlib.suppress(ConnectionLost):
                    await link.send(chart_delete_session(session))
    finally:
        # After the delete went out, so that a waiter's new session never makes one too many.
        link.release_chart_session()


class FailedLink(ConnectionLost):
    """A request failed because its socket died; carries that socket so the retry waits for
    the next one (the reader may not have noticed the death yet)."""

    def __init__(self, error: ConnectionLost, link: Link) -> None:
        super().__init__(str(error))
        self.link = link


async def fetch_history(
    supervisor: Supervisor,
    request: HistoryRequest,
    bar_limit: int,
    *,
    page_quiet: float = 10.0,
    after: Link | None = None,
) -> HistoryResult:
    """Run one historical request on the current socket.

    Args:
        page_quiet: when a page (or the first answer, once some of it came) brings nothing
            for this many seconds, stop and return what arrived (``cut_short``).
        after: a socket an earlier attempt failed on: wait for a newer one.

    Raises:
        SymbolNotFound, EntitlementError, InvalidRequest, ProtocolError: from the server.
        FailedLink: the socket died during the request (the caller may retry).
        Cancellation: the chart session is deleted (best effort) and the route removed.
    """
    link = await supervisor.wait_link(after)
    route = _ChartRoute(request.symbol.full, request.describe())
    cut_short = False
    try:
        session = await _open_chart(link, supervisor, request, route)
        try:
            if request.start is not None:
                run = _run_range(link, session, request, route, bar_limit, page_quiet)
            else:
                run = _run_count(link, session, request, route, bar_limit, page_quiet)
            try:
                exhausted = await run
            except _Quiet:
                exhausted, cut_short = False, True
        finally:
            route.accepting = False
            await _close_chart(link, supervisor, session)
    except ConnectionLost as error:
        raise FailedLink(error, link) from error
    frame = _build_frame(request, route)
    if request.n_bars is not None:
        exhausted = exhausted and frame.height < request.n_bars
    info = None
    if route.info:
        info = SymbolInfo.from_resolved(route.info, request.symbol.full, frame_has_volume(frame))
    return HistoryResult(frame, exhausted, info, route.answers, cut_short, route.requests)


def frame_has_volume(frame: pl.DataFrame) -> bool | None:
    """Whether the bars carry volume (None when there are no bars to tell)."""
    if frame.height == 0:
        return None
    return frame.get_column("volume").null_count() < frame.height


async def _run_count(
    link: Link,
    session: str,
    request: HistoryRequest,
    route: _ChartRoute,
    bar_limit: int,
    page_quiet: float,
) -> bool:
    """Count mode; returns whether the history ran out."""
    assert request.n_bars is not None
    wanted = request.n_bars + 1  # the newest bar is usually still forming
    route.expect("s1")
    await link.send(
        create_series(
            session, SERIES_ID, "s1", SYMBOL_REF, request.interval.code, min(wanted, bar_limit)
        )
    )
    await _wait_first(route, page_quiet)
    seen: set[int] = set()
    oldest: int | None = None
    processed = 0
    first = True
    while True:
        new_times: set[int] = set()
        for rows in route.chunks[processed:]:
            new_times.update(_row_times(rows))
        processed = len(route.chunks)
        new_times -= seen
        seen |= new_times
        page_oldest = min(new_times, default=None)
        added_older = page_oldest is not None and (oldest is None or page_oldest < oldest)
        if added_older:
            oldest = page_oldest
        if len(seen) >= wanted:
            return False
        if not added_older and (not first or not seen):
            # A page that brought no older bar (only re-sent ones, or none): history ends here.
            return True
        first = False
        # request_more_data continues the series: its answer carries the same turnaround.
        route.expect("s1")
        await link.send(request_more_data(session, SERIES_ID, min(bar_limit, wanted - len(seen))))
        await route.wait_chunk(page_quiet)


async def _wait_first(route: _ChartRoute, page_quiet: float) -> SeriesCompleted:
    """Wait for the answer to the first request: as long as the request deadline allows
    while nothing came (a slow server), but only ``page_quiet`` after the last data once
    some did (a server that never completes must not cost the bars it sent)."""
    while True:
        try:
            return await route.wait_chunk(page_quiet)
        except _Quiet:
            if route.chunks:
                raise
            route.last_activity = time.monotonic()


async def _run_range(
    link: Link,
    session: str,
    request: HistoryRequest,
    route: _ChartRoute,
    bar_limit: int,
    page_quiet: float,
) -> bool:
    """Range mode: windows of ``r,<from>:<to>`` walked back from ``end`` to ``start``.

    Only the part of the range where data can be is walked: a first 1-bar request tells the
    newest bar (nothing after it is asked for), windows that come back empty double in span
    (walking back to 1970 or 1900 over years with no data takes a few dozen requests, not
    thousands), and a window the bar limit cut short (``data_completed: "limit"``, or a full
    page) is continued from its oldest bar, so that nothing inside it is skipped.
    """
    assert request.start is not None
    assert request.end is not None
    interval = request.interval
    route.expect("s1")
    await link.send(create_series(session, SERIES_ID, "s1", SYMBOL_REF, interval.code, 1))
    await _wait_first(route, page_quiet)
    newest = max((t for rows in route.chunks for t in _row_times(rows)), default=None)
    route.chunks.clear()  # the batch of the count above is not part of the range (§10.11)
    if newest is None:
        return True  # the series has no bars at all
    # A window of bar_limit bars spans at least bar_limit * interval seconds, whatever the
    # market hours, so a window of that span cannot hold more bars than one request returns.
    base_span = max(interval.seconds, (bar_limit - 1) * interval.seconds)
    span = base_span
    open_ended = request.n_bars is not None  # "n_bars before end": walk back until enough
    collected: set[int] = set()
    turnaround = 1
    # Windows still to ask for, newest first: (from, to) with from <= time < to.
    window_end = min(request.end, newest + interval.seconds)
    todo: list[tuple[int, int]] = []
    while todo or window_end > request.start:
        revisit = bool(todo)
        if revisit:
            window_start, window_stop = todo.pop()
        else:
            window_start, window_stop = max(request.start, window_end - span), window_end
            window_end = window_start
        turnaround += 1
        before = len(route.chunks)
        route.expect(f"s{turnaround}")
        await link.send(
            modify_series(
                session,
                SERIES_ID,
                f"s{turnaround}",
                SYMBOL_REF,
                interval.code,
                range_param(window_start, window_stop),
            )
        )
        completed = await route.wait_chunk(page_quiet)
        times = {
            timestamp
            for rows in route.chunks[before:]
            for timestamp in _row_times(rows)
            if window_start <= timestamp < window_stop
        }
        collected.update(times)
        if times and (completed.data_completed == "limit" or len(times) >= bar_limit):
            # The bar limit cut this window: what it did not return is asked for again,
            # newer part first (a server may keep either end of an over-full window).
            oldest_here, newest_here = min(times), max(times)
            if oldest_here > window_start:
                if revisit:
                    todo.append((window_start, oldest_here))
                else:
                    window_end = oldest_here
            if newest_here + interval.seconds < window_stop:
                todo.append((newest_here + 1, window_stop))
        elif not revisit and len(times) < bar_limit // 4:
            span *= 2  # sparse or no data here: look further back at once
        if open_ended and not todo:
            assert request.n_bars is not None
            if len(collected) > request.n_bars:
                return False
    oldest = min(collected, default=None)
    exhausted = oldest is None or oldest > request.start + interval.seconds
    return exhausted


def _build_frame(request: HistoryRequest, route: _ChartRoute) -> pl.DataFrame:
    # Pages arrive newest first, each older than the last; put the batches in time order (a
    # stable sort by first bar: a live update of the newest bar stays after the batch it
    # revises) so that the usual result is already sorted and finalize() skips its sort.
    chunks = sorted(route.chunks, key=_chunk_start)
    bars = [row.v for chunk in chunks for row in chunk]
    frame = finalize(frame_from_wire_bars(bars, request.symbol.full))
    if request.start is not None and request.end is not None:
        start_us = request.start * 1_000_000
        end_us = request.end * 1_000_000
        epoch = pl.col("time").dt.epoch("us")
        frame = frame.filter((epoch >= start_us) & (epoch < end_us))
    if not request.include_partial and frame.height:
        frame = _drop_forming(frame, request, route)
    if request.n_bars is not None and frame.height > request.n_bars:
        frame = frame.tail(request.n_bars)
    if request.timezone is not None:
        frame = frame.with_columns(pl.col("time").dt.convert_time_zone(request.timezone))
    return frame


def _drop_forming(frame: pl.DataFrame, request: HistoryRequest, route: _ChartRoute) -> pl.DataFrame:
    newest = frame.get_column("time").dt.epoch("s")[-1]
    close_time = route.bar_close_time
    if close_time is None or close_time <= newest:
        close_time = int(newest) + request.interval.seconds
    now = route.server_time if route.server_time is not None else time.time()
    if close_time > now:
        return frame.head(frame.height - 1)
    return frame


async def fetch_symbol_info(supervisor: Supervisor, symbol: Symbol, session: str) -> SymbolInfo:
    """Resolve a symbol on the shared socket.

    Raises:
        SymbolNotFound: the server answered ``symbol_error``.
    """
    link = await supervisor.wait_link()
    route = _ChartRoute(symbol.full, f"{symbol.full} resolve")
    request = HistoryRequest(symbol=symbol, interval=Interval("1D"), session=session)
    chart = await _open_chart(link, supervisor, request, route)
    try:
        await route.resolved.wait()
    finally:
        await _close_chart(link, supervisor, chart)
    if route.info is None:
        raise route.error or ConnectionLost("the connection was lost while resolving")
    return SymbolInfo.from_resolved(route.info, symbol.full)
