"""Historical requests on the shared socket: count mode with paging, and date ranges.

One request = one chart session with one series (``sds_1``), as the maintained clients do;
but a session whose request ended cleanly is kept open, idle, on its socket (up to
``Timeouts.idle_chart_session`` seconds, at most ``Limits.max_in_flight`` per socket), and the
next count request there takes it: ``resolve_symbol`` of its symbol under a new alias
(``sds_sym_2``...) and ``modify_series`` of ``sds_1`` under a new turnaround, instead of a new
session (see :class:`_IdleCharts`; date ranges open their own: :data:`_REUSE_FOR_RANGES`).
The conversation (ids, turnaround matching, paging and window decisions) is the pure
:class:`~tvfeed_async.protocol.chart_session.ChartSession` with a
:class:`~tvfeed_async.protocol.chart_session.CountJob` or
:class:`~tvfeed_async.protocol.chart_session.RangeJob`; this module is its driver: it
sends what the session asks for and waits. Completion is driven by protocol events only:
``series_completed`` ends a chunk; ``symbol_error``, ``series_error`` and ``critical_error``
end the request at once with a typed error. A cumulative deadline (the feed's) guards
against a server that goes quiet, and a page deadline against one that stops paging.

Count mode asks for ``n_bars + 1`` bars (the newest is usually still forming; ``n_bars`` are
enough when the newest turns out closed, or is kept), then pages back with
``request_more_data`` until enough bars arrived or a chunk adds no older bar (history
exhausted). The server may re-send bars across pages and re-bases its indexes, so re-sent
bars are dropped by open time, never by index.

Range mode: ``create_series`` with a count of 1, then one ``modify_series`` with
``r,<from>:<to>`` (unix seconds) per window of at most the per-request cap, each awaited in
turn so the batches cannot be confused (the answer to the 1-bar request is not part of the
range); bars outside the range are filtered out (servers may send some).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import anyio
import polars as pl

from .chart import open_chart
from .errors import (
    ConnectionLost,
    TvFeedError,
)
from .frames import finalize, frame_from_wire_bars
from .protocol.chart_session import (
    SYMBOL_REF,
    Answered,
    ChartFailed,
    ChartSession,
    CountJob,
    Event,
    RangeJob,
    Resolved,
    Series,
)
from .protocol.client import new_session_id
from .protocol.intervals import Interval
from .protocol.messages import (
    BarValues,
    ClientMessage,
    Row,
    ServerMessage,
    chart_delete_session,
)
from .protocol.symbols import Symbol
from .slots import TOP_UP_BARS
from .supervisor import Link, Supervisor

__all__ = [
    "CollectedHistory",
    "FailedLink",
    "HistoryRequest",
    "HistoryResult",
    "SymbolInfo",
    "collect_history",
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
    """The route of one history chart session: it feeds the session's messages (in the
    reader task) to its :class:`ChartSession`, which keeps the bars and decides the next
    request, and wakes the request task when there is something to send or the request
    ended.

    Data and completions are matched on the turnaround id of the request that asked for
    them: a late ``series_completed`` or batch of an earlier request of the same series is
    dropped, never taken for the answer to the current one.
    """

    def __init__(self, symbol: str, request_name: str, idle: _IdleChart | None = None) -> None:
        self.symbol = symbol
        self.request_name = request_name
        if idle is None:
            self.chart = ChartSession("", symbol, request_name)
            self.series = self.chart.new_series(SYMBOL_REF)
        else:  # a reused session: see _switch_chart
            self.chart, self.series = idle.chart, idle.series
        #: Client messages the session asked for, not sent yet (the request task sends them).
        self.outgoing: list[ClientMessage] = []
        self.last_activity = 0.0
        #: The frame built page by page (count mode: see PageFrames), and how many of the
        #: series' batches had arrived at its latest answer.
        self.pages: PageFrames | None = None
        self.answered_chunks = 0
        self._event = anyio.Event()
        self.resolved = anyio.Event()

    # What arrived, as the frame builder and fetch_history read it.
    @property
    def chunks(self) -> list[list[Row]]:
        return self.series.chunks

    @property
    def info(self) -> dict[str, Any] | None:
        resolved = self.chart.resolved
        return resolved.get(self.series.symbol_ref) or next(iter(resolved.values()), None)

    @property
    def error(self) -> TvFeedError | None:
        return self.chart.error

    @property
    def bar_close_time(self) -> int | None:
        return self.series.bar_close_time

    @property
    def server_time(self) -> float | None:
        return self.series.server_time

    @property
    def answers(self) -> int:
        return self.series.answers

    @property
    def requests(self) -> int:
        return self.series.requests

    @property
    def stale(self) -> int:
        return self.series.stale

    @property
    def accepting(self) -> bool:
        return self.chart.accepting

    @accepting.setter
    def accepting(self, value: bool) -> None:
        self.chart.accepting = value

    @property
    def awaiting_reply(self) -> bool:
        """True while the request waits for the server (see Supervisor._critical_error)."""
        return self.chart.accepting and self.chart.error is None

    def handle(self, message: ServerMessage) -> None:
        chart = self.chart
        activity = chart.activity
        follow = chart.receive(message)
        if chart.activity != activity:
            self.last_activity = time.monotonic()
        if follow:
            self.outgoing += follow
        if chart.events:
            self._events(chart.take_events())
        elif follow:
            self._event.set()

    def _events(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, Resolved | ChartFailed):
                self.resolved.set()
            elif isinstance(event, Answered):
                self.answered_chunks = len(self.series.chunks)
        self._event.set()

    def connection_lost(self, error: TvFeedError) -> None:
        self.chart.fail(error if isinstance(error, ConnectionLost) else ConnectionLost(str(error)))
        self._events(self.chart.take_events())

    async def wait(self, quiet: float, *, done: Callable[[], bool]) -> None:
        """Wait until there is something to send, ``done()`` holds, or the session failed.

        Raises:
            The error that ended the request.
            _Quiet: nothing at all arrived for this request (data or completion) for
                ``quiet`` seconds; before its first answer only once some data came (a slow
                server may take long; one that never completes must not cost the bars it
                sent).
        """
        while not self.outgoing and not done() and self.chart.error is None:
            remaining = self.last_activity + quiet - time.monotonic()
            if remaining <= 0:
                if self.series.answers or self.series.chunks:
                    raise _Quiet
                self.last_activity = time.monotonic()
                continue
            event = self._event
            with anyio.move_on_after(remaining):
                await event.wait()
            if event.is_set():
                self._event = anyio.Event()
        if self.chart.error is not None:
            raise self.chart.error

    async def run(
        self,
        link: Link,
        job: CountJob | RangeJob,
        quiet: float,
        on_top_up: Callable[[], None] | None = None,
    ) -> bool:
        """Run ``job`` on the route's series: send what the session asks for, as it asks;
        returns whether the history ran out. ``on_top_up`` is called once the only page
        left to come is a top-up (see :mod:`tvfeed_async.slots`).

        Raises:
            The error that ended the request; _Quiet (see :meth:`wait`).
        """
        self.last_activity = time.monotonic()
        if isinstance(job, CountJob):
            self.pages = PageFrames(self.symbol)
        await _send(link, self.chart.start(self.series, job))
        while True:
            await self.wait(quiet, done=lambda: job.done)
            if self.outgoing:
                pending, self.outgoing = self.outgoing, []
                self.last_activity = time.monotonic()
                await _send(link, pending)
                asked = [m.params[2] for m in pending if m.method == "request_more_data"]
                if on_top_up is not None and asked and _is_top_up(job, max(asked)):
                    on_top_up()
                if self.pages is not None:
                    # The answers so far are framed while the next page is on its way,
                    # unless that page is small: then they are framed with it at the end.
                    page = max(asked, default=PageFrames.SMALL)
                    self.pages.take(
                        self.series.chunks, self.answered_chunks, build=page >= PageFrames.SMALL
                    )
            elif job.done:
                return job.exhausted


def _is_top_up(job: CountJob | RangeJob, page: int) -> bool:
    """Whether a page of ``page`` bars is a count request's small last one (CountJob asks
    for the remaining bars when they fit a page, else for a full page)."""
    return isinstance(job, CountJob) and page <= TOP_UP_BARS and page < job.bar_limit


async def _send(link: Link, messages: list[ClientMessage]) -> None:
    for message in messages:
        await link.send(message)


async def _open_chart(
    link: Link, supervisor: Supervisor, request: HistoryRequest, route: _ChartRoute
) -> str:
    """Open the request's chart session (counted on ``link``: see Link.acquire_chart_session).
    Whoever gets the session id back closes it with :func:`_close_chart`."""
    await link.acquire_chart_session()
    session = new_session_id("cs")
    route.chart.session_id = session
    route.series.interval = request.interval.code
    supervisor.add_route(session, route)
    try:
        await open_chart(
            link,
            session,
            request.symbol.full,
            adjustment=request.adjustment,
            trading_session=request.session,
            back_adjusted=request.back_adjusted,
            chart=route.chart,
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
            with anyio.move_on_after(supervisor.timeouts.session_delete, shield=True):
                with contextlib.suppress(ConnectionLost):
                    await link.send(chart_delete_session(session))
    finally:
        # After the delete went out, so that a waiter's new session never makes one too many.
        link.release_chart_session()


async def _switch_chart(
    link: Link, supervisor: Supervisor, request: HistoryRequest, route: _ChartRoute, session: str
) -> str:
    """Switch the idle session ``session`` (``route`` adopted its chart and series) to
    ``request``: ``resolve_symbol`` under a new alias; the job's first request is then a
    ``modify_series`` (see :meth:`ChartSession.reuse`). Closed like :func:`_open_chart`'s."""
    supervisor.add_route(session, route)
    try:
        resolve = route.chart.reuse(
            route.series,
            request.symbol.full,
            route.request_name,
            request.interval.code,
            adjustment=request.adjustment,
            trading_session=request.session,
            back_adjusted=request.back_adjusted,
        )
        await _send(link, resolve)
    except BaseException:
        await _close_chart(link, supervisor, session)
        raise
    return session


class _IdleChart:
    """A chart session of a finished history request, idle on its socket: its route while
    it waits (data of its last request is ignored; an error or the socket's death makes it
    unusable)."""

    __slots__ = ("broken", "chart", "pool", "series", "session", "since")

    def __init__(self, pool: _IdleCharts, session: str, route: _ChartRoute) -> None:
        self.pool = pool
        self.session = session
        self.chart = route.chart
        self.series = route.series
        self.since = time.monotonic()
        self.broken = False

    def handle(self, message: ServerMessage) -> None:
        self.chart.receive(message)  # not accepting: only errors and resolutions count
        self.chart.events.clear()
        if self.chart.error is not None and not self.broken:
            self.broken = True
            self.pool.wake()  # deleted by the reaper at once

    def connection_lost(self, error: TvFeedError) -> None:
        self.pool.forget(self)


class _IdleCharts:
    """The idle history chart sessions of one socket (``Link.reclaim_idle`` is this object:
    calling it deletes the oldest, for a stream or request that waits for a slot).

    Each keeps its slot in ``Link.chart_sessions``. The newest is taken first; one idle for
    ``timeout`` seconds is deleted (``chart_delete_session``) by a reaper task that runs
    while there are idle sessions; :func:`close_idle_charts` deletes them all when the feed
    closes; when the socket dies they die with it (nothing is sent).
    """

    def __init__(self, link: Link, supervisor: Supervisor, keep: int, timeout: float) -> None:
        self.link = link
        self.supervisor = supervisor
        self.keep = keep
        self.timeout = timeout
        self.idle: dict[str, _IdleChart] = {}  # oldest first
        self.closed = False
        self._reaper: asyncio.Task[None] | None = None
        self._wake = anyio.Event()

    def take(self) -> _IdleChart | None:
        """The newest usable idle session, out of the pool (its route is still registered:
        the caller replaces it)."""
        usable = next((e for e in reversed(self.idle.values()) if not e.broken), None)
        if usable is not None:
            del self.idle[usable.session]
        return usable  # broken ones are left to the reaper

    def park(self, session: str, route: _ChartRoute) -> bool:
        """Keep ``session`` (whose request ``route`` ended cleanly) for reuse; False when it
        must be deleted instead (the socket is closing, or ``keep`` are idle already)."""
        link = self.link
        if self.closed or link.closed or len(self.idle) >= self.keep or route.error is not None:
            return False
        entry = _IdleChart(self, session, route)
        self.idle[session] = entry
        self.supervisor.add_route(session, entry)
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(
                self._reap(), name="tvfeed-idle-charts"
            )
        # A stream (or request) waiting for a slot on a full socket takes this one: it sees
        # the socket still full and reclaims an idle session (Link.acquire_chart_session).
        link.wake_session_waiters()
        return True

    def forget(self, entry: _IdleChart) -> None:
        """The socket died: ``entry`` died with it; its slot is released."""
        if self.idle.pop(entry.session, None) is not None:
            self.supervisor.remove_route(entry.session)
            self.link.release_chart_session()
        self.wake()

    def wake(self) -> None:
        wake, self._wake = self._wake, anyio.Event()
        wake.set()

    async def __call__(self) -> bool:
        """Delete the oldest idle session (``Link.reclaim_idle``); False when none is idle."""
        if not self.idle:
            return False
        entry = self.idle.pop(next(iter(self.idle)))
        await _close_chart(self.link, self.supervisor, entry.session)
        return True

    async def close(self) -> None:
        """Delete every idle session; none is kept from now on."""
        self.closed = True
        reaper, self._reaper = self._reaper, None
        if reaper is not None and not reaper.done() and reaper is not asyncio.current_task():
            reaper.cancel()
        while await self():
            pass

    async def _reap(self) -> None:
        while self.idle and not self.link.closed:
            now = time.monotonic()
            due = [
                entry
                for entry in self.idle.values()
                if entry.broken or now - entry.since >= self.timeout
            ]
            for entry in due:
                if self.idle.pop(entry.session, None) is entry:
                    await _close_chart(self.link, self.supervisor, entry.session)
            if not self.idle:
                return
            oldest = min(entry.since for entry in self.idle.values())
            wake = self._wake
            with anyio.move_on_after(max(0.0, oldest + self.timeout - time.monotonic())):
                await wake.wait()


#: Whether date-range requests take idle sessions too (ChartSession.reuse supports it: the
#: 1-bar probe and the windows are then all modify_series). Off: a range request opens a
#: session of its own, so its probe is a create_series and only its windows are
#: modify_series, the flow it always had (the scripted server of
#: tests/recording/test_recorder.py answers only that one); its session is kept idle
#: afterwards like any other, for count requests.
_REUSE_FOR_RANGES = False


def _may_reuse(request: HistoryRequest) -> bool:
    """Whether ``request`` may take an idle session: count requests, the way a series moves
    from symbol to symbol with modify_series and pages on with request_more_data."""
    return request.start is None or _REUSE_FOR_RANGES


def _idle_charts(link: Link, supervisor: Supervisor, keep: int) -> _IdleCharts | None:
    """The idle sessions of ``link``, or None when sessions are not reused."""
    timeout = supervisor.timeouts.idle_chart_session
    if keep <= 0 or timeout <= 0:
        return None
    pool = link.reclaim_idle
    if not isinstance(pool, _IdleCharts):
        pool = _IdleCharts(link, supervisor, keep, timeout)
        link.reclaim_idle = pool
    return pool


async def close_idle_charts(supervisor: Supervisor) -> int:
    """Delete the idle history sessions of the current socket (the feed is closing); returns
    how many there were."""
    link = supervisor.link
    pool = link.reclaim_idle if link is not None else None
    if not isinstance(pool, _IdleCharts):
        return 0
    count = len(pool.idle)
    await pool.close()
    return count


class FailedLink(ConnectionLost):
    """A request failed because its socket died; carries that socket so the retry waits for
    the next one (the reader may not have noticed the death yet)."""

    def __init__(self, error: ConnectionLost, link: Link) -> None:
        super().__init__(str(error))
        self.link = link


def history_job(request: HistoryRequest, bar_limit: int) -> CountJob | RangeJob:
    """The job that walks the history ``request`` asks for.

    Count mode without the forming bar asks for ``n_bars + 1`` bars, as the newest is
    usually still forming and is dropped; but when the bars that came are ``n_bars`` and the
    newest of them is closed already (the market is closed, the data is delayed or frozen),
    nothing is missing and no page is asked for. With ``include_partial`` the forming bar is
    one of the ``n_bars`` kept, so ``n_bars`` are enough. A count that fits the per-request
    cap thus needs one answer whenever the newest bar is closed or kept.
    """
    if request.start is not None:
        assert request.end is not None
        return RangeJob(
            request.start, request.end, request.interval.seconds, bar_limit, request.n_bars
        )
    n_bars = request.n_bars
    assert n_bars is not None
    if request.include_partial:
        return CountJob(n_bars, bar_limit)
    interval = request.interval.seconds

    def newest_is_closed(seen: set[int], series: Series) -> bool:
        # The rule _drop_forming applies to the frame, applied to what came so far.
        if len(seen) < n_bars:
            return False
        return _closes_at(max(seen), series, interval) <= _now(series)

    return CountJob(n_bars + 1, bar_limit, newest_is_closed)


def _closes_at(newest: int, series: Series, interval_seconds: int) -> int:
    """When the bar opening at ``newest`` closes: ``lbs.bar_close_time`` when the server
    sent it for that bar (a page's ``lbs`` is about an older bar), else open + interval."""
    close_time = series.bar_close_time
    if close_time is None or close_time <= newest:
        return newest + interval_seconds
    return close_time


def _now(series: Series) -> float:
    """The server's clock as its last batch said, else this machine's."""
    return series.server_time if series.server_time is not None else time.time()


@dataclass(slots=True)
class CollectedHistory:
    """What one request received, before its frame is built (:meth:`result` builds it)."""

    request: HistoryRequest
    route: _ChartRoute
    exhausted: bool
    cut_short: bool

    def result(self) -> HistoryResult:
        """Build the frame and the result (CPU work only: no socket is needed)."""
        request, route = self.request, self.route
        frame = _build_frame(request, route)
        exhausted = self.exhausted
        if request.n_bars is not None:
            exhausted = exhausted and frame.height < request.n_bars
        info = None
        if route.info:
            info = SymbolInfo.from_resolved(
                route.info, request.symbol.full, frame_has_volume(frame)
            )
        return HistoryResult(frame, exhausted, info, route.answers, self.cut_short, route.requests)


async def collect_history(
    supervisor: Supervisor,
    request: HistoryRequest,
    bar_limit: int,
    *,
    page_quiet: float = 10.0,
    after: Link | None = None,
    keep_idle: int = 0,
    on_top_up: Callable[[], None] | None = None,
) -> CollectedHistory:
    """Run one historical request on the current socket, up to the bars it received; when
    this returns the chart session is closed, or kept idle for the next request (see
    :class:`_IdleCharts`; only when it ended cleanly). Arguments and errors as
    :func:`fetch_history`."""
    link = await supervisor.wait_link(after)
    pool = _idle_charts(link, supervisor, keep_idle)
    idle = pool.take() if pool is not None and _may_reuse(request) else None
    route = _ChartRoute(request.symbol.full, request.describe(), idle)
    cut_short = clean = False
    try:
        if idle is None:
            session = await _open_chart(link, supervisor, request, route)
        else:
            session = await _switch_chart(link, supervisor, request, route, idle.session)
        try:
            try:
                job = history_job(request, bar_limit)
                exhausted = await route.run(link, job, page_quiet, on_top_up)
                clean = True
            except _Quiet:
                exhausted, cut_short = False, True
        finally:
            route.accepting = False
            if not (clean and pool is not None and pool.park(session, route)):
                await _close_chart(link, supervisor, session)
    except ConnectionLost as error:
        raise FailedLink(error, link) from error
    return CollectedHistory(request, route, exhausted, cut_short)


async def fetch_history(
    supervisor: Supervisor,
    request: HistoryRequest,
    bar_limit: int,
    *,
    page_quiet: float = 10.0,
    after: Link | None = None,
    keep_idle: int = 0,
) -> HistoryResult:
    """Run one historical request on the current socket.

    Args:
        page_quiet: when a page (or the first answer, once some of it came) brings nothing
            for this many seconds, stop and return what arrived (``cut_short``).
        after: a socket an earlier attempt failed on: wait for a newer one.
        keep_idle: keep up to this many chart sessions of cleanly ended requests idle on
            the socket for later requests to reuse (for ``Timeouts.idle_chart_session``
            seconds); 0 deletes each when its request ends.

    Raises:
        SymbolNotFound, EntitlementError, InvalidRequest, ProtocolError: from the server.
        FailedLink: the socket died during the request (the caller may retry).
        Cancellation: the chart session is deleted (best effort) and the route removed.
    """
    collected = await collect_history(
        supervisor, request, bar_limit, page_quiet=page_quiet, after=after, keep_idle=keep_idle
    )
    return collected.result()


def frame_has_volume(frame: pl.DataFrame) -> bool | None:
    """Whether the bars carry volume (None when there are no bars to tell)."""
    if frame.height == 0:
        return None
    return frame.get_column("volume").null_count() < frame.height


def _chunk_start(rows: list[Row]) -> int:
    return rows[0].v.timestamp


_BAR_TIME = attrgetter("timestamp")


def _epoch(frame: pl.DataFrame) -> pl.Series:
    """The frame's open times in unix seconds."""
    return frame.get_column("time").dt.epoch("s")


def _in_order(frame: pl.DataFrame) -> bool:
    """Strictly increasing open times (then they are also unique)."""
    times = frame.get_column("time")
    return times.is_sorted() and times.n_unique() == times.len()


def reference_frame(chunks: list[list[Row]], symbol: str) -> pl.DataFrame:
    """The frame of every batch a request received, sorted by time, one row per open time:
    where batches overlap, the batch that starts later wins (a live update of the newest bar
    after the batch it revises, the first answer over a page that re-sends its bars)."""
    # Pages arrive newest first, each older than the last; put the batches in time order (a
    # stable sort by first bar: a live update of the newest bar stays after the batch it
    # revises) so that the usual result is already sorted and finalize() skips its sort.
    ordered = sorted(chunks, key=_chunk_start)
    bars = [row.v for chunk in ordered for row in chunk]
    return finalize(frame_from_wire_bars(bars, symbol))


class _Part:
    """One framed answer of :class:`PageFrames`: its frame (None while a small answer waits
    to be framed with the others) and its open times, sorted: its values, or (after the
    reference rules) the times themselves."""

    __slots__ = ("frame", "times", "values")

    def __init__(
        self,
        frame: pl.DataFrame | None,
        values: list[BarValues] | None = None,
        times: list[int] | None = None,
    ) -> None:
        self.frame = frame
        self.values = values
        self.times = times

    @property
    def first(self) -> int:
        return self.values[0].timestamp if self.values is not None else self._times[0]

    @property
    def last(self) -> int:
        return self.values[-1].timestamp if self.values is not None else self._times[-1]

    @property
    def _times(self) -> list[int]:
        assert self.times is not None
        return self.times

    def times_from(self, time_of: int) -> list[int]:
        """The part's open times at or after ``time_of``, in order."""
        if self.values is not None:
            index = bisect.bisect_left(self.values, time_of, key=_BAR_TIME)
            return [value.timestamp for value in self.values[index:]]
        return self._times[bisect.bisect_left(self._times, time_of) :]

    def holds(self, time_of: int) -> bool:
        """Whether the part has a bar opening at ``time_of`` (which is within its span)."""
        if self.values is not None:
            index = bisect.bisect_left(self.values, time_of, key=_BAR_TIME)
            return index < len(self.values) and self.values[index].timestamp == time_of
        index = bisect.bisect_left(self._times, time_of)
        return index < len(self._times) and self._times[index] == time_of


class PageFrames:
    """The frame of a count request, built one answer at a time, while the next page is on
    its way; the same frame as :func:`reference_frame` of all the batches.

    Count mode pages back in time: each answer starts before everything received so far.
    An answer's batches are framed when it completes, and the bars it re-sends (open times
    already framed, which the newer batch wins) are cut from it before its columns are
    built, so the request's frame is the framed answers end to end, with no sort and no
    de-duplication over the whole request. Small answers (and an answer followed by a small
    page) are kept as values and framed together by :meth:`finish`: a frame has a fixed
    cost of about 0.1 ms, whatever its size. Live updates (a batch that starts at the
    newest bar received, or after it: the forming bar revised, or the next one opened) are
    set aside and laid over the head by :meth:`finish`, replacing the newest rows they
    revise. Anything else (a batch that starts inside what is framed; a re-sent time that
    the framed part lacks; live updates that revise rows they do not all replace; an answer
    out of order) makes :meth:`finish` return None, and the caller builds the reference
    frame instead.
    """

    __slots__ = ("_live", "_parts", "_taken", "failed", "symbol")

    #: Answers with fewer kept bars than this are framed together at the end (a frame costs
    #: about 0.1 ms however few rows it has; a page often brings a single bar).
    SMALL = 1_024

    def __init__(self, symbol: str) -> None:
        self.symbol = symbol
        # Newest first, each part older than the one before: a frame, or the values of a
        # small answer still to frame; and the part's open times, sorted (its values, or the
        # times themselves), where re-sent bars are looked up.
        self._parts: list[_Part] = []
        # Live updates, as they arrived (finish() sorts them by first open time, stably, as
        # the reference does).
        self._live: list[list[Row]] = []
        self._taken = 0
        self.failed = False

    @property
    def _oldest(self) -> int | None:
        return self._parts[-1].first if self._parts else None

    def take(self, chunks: list[list[Row]], end: int, *, build: bool = True) -> None:
        """Frame ``chunks[:end]`` not framed yet: the batches of one complete answer.

        Args:
            build: False to keep the answer's values and frame them at the end with the
                answers after it (when the next one is known to be small: one frame then
                costs less than two and their concatenation).
        """
        if self.failed or end <= self._taken:
            return
        answer = self._set_aside_live(sorted(chunks[self._taken : end], key=_chunk_start))
        self._taken = end
        if not answer:
            return
        oldest = self._oldest
        if oldest is not None and _chunk_start(answer[-1]) >= oldest:
            self.failed = True  # a batch that is not older than what is framed
            return
        values = [row.v for chunk in answer for row in chunk]
        if not all(
            _chunk_start(newer) > older[-1].v.timestamp
            for older, newer in itertools.pairwise(answer)
        ):
            # Batches that overlap inside this answer (a live revision of its newest bar):
            # the reference rules on this answer.
            self._take_unordered(values, oldest)
            return
        kept = values
        if oldest is not None:
            # Cut the re-sent bars (open time at or after the oldest framed) before the
            # columns are built: found by bisection, which holds if the answer is in order
            # (checked below, and on the rows around the cut).
            cut = bisect.bisect_left(values, oldest, key=_BAR_TIME)
            resent = values[cut:]
            if (cut and values[cut - 1].timestamp >= oldest) or not all(
                value.timestamp >= oldest for value in resent
            ):
                self._take_unordered(values, oldest)
                return
            if resent and not self._all_framed([value.timestamp for value in resent]):
                self.failed = True
                return
            kept = values[:cut]
        if not kept:
            return
        if len(kept) < self.SMALL or not build:
            # Framed by finish(), which checks the order of the frame it builds.
            self._parts.append(_Part(None, kept))
            return
        frame = frame_from_wire_bars(kept, self.symbol)
        if _in_order(frame):
            self._parts.append(_Part(frame, kept))
        else:
            self._take_unordered(values, oldest)

    def _set_aside_live(self, answer: list[list[Row]]) -> list[list[Row]]:
        """The batches of ``answer`` (sorted by first open time) that page, after moving the
        live ones to ``_live``: those starting at or after the newest framed bar, and, within
        an answer, one starting at the newest bar of the batches before it (a revision of
        the forming bar that came with the answer)."""
        framed = self._parts[0].last if self._parts else None
        newest: int | None = None
        paged: list[list[Row]] = []
        for batch in answer:
            start = _chunk_start(batch)
            if (framed is not None and start >= framed) or start == newest:
                self._live.append(batch)
                continue
            paged.append(batch)
            last = batch[-1].v.timestamp
            newest = last if newest is None else max(newest, last)
        return paged

    def _overlay(self) -> tuple[int, list[BarValues]] | None:
        """The live updates as laid over the head: how many of the newest part's rows they
        replace, and their bars (one per open time, the last given winning, in time order);
        None when they revise rows they do not all replace (the reference rules then)."""
        if not self._live:
            return 0, []
        latest: dict[int, BarValues] = {}
        for batch in sorted(self._live, key=_chunk_start):
            for row in batch:
                latest[row.v.timestamp] = row.v
        times = sorted(latest)
        bars = [latest[time_of] for time_of in times]
        if not self._parts:
            return 0, bars
        head = self._parts[0]
        if times[0] < head.first:
            return None
        replaced = head.times_from(times[0])
        if replaced != times[: len(replaced)]:
            return None
        return len(replaced), bars

    def _take_unordered(self, values: list[BarValues], oldest: int | None) -> None:
        """An answer with re-sent or revised bars inside it: the reference rules on it."""
        frame = finalize(frame_from_wire_bars(values, self.symbol))
        epoch = _epoch(frame)
        if oldest is not None:
            resent = epoch.filter(epoch >= oldest)
            if resent.len() and not self._all_framed(resent.to_list()):
                self.failed = True
                return
            frame = frame.filter(epoch < oldest)
            epoch = epoch.filter(epoch < oldest)
        if frame.height:
            self._parts.append(_Part(frame, times=epoch.to_list()))

    def _all_framed(self, times: list[int]) -> bool:
        """Whether every open time of ``times`` (unix seconds) is framed already."""
        for time_of in times:
            part = next((p for p in self._parts if p.first <= time_of <= p.last), None)
            if part is None or not part.holds(time_of):
                return False
        return True

    def finish(self, chunks: list[list[Row]]) -> pl.DataFrame | None:
        """The frame of every batch in ``chunks`` (those after the last answer included), or
        None when the reference frame must be built."""
        self.take(chunks, len(chunks))
        overlay = None if self.failed else self._overlay()
        if overlay is None:
            return None
        replaced, live = overlay
        frames: list[pl.DataFrame] = []
        small: list[BarValues] = []  # consecutive small answers, oldest first
        head = self._parts[0] if self._parts else None
        for part in reversed(self._parts):  # oldest first
            cut = replaced if part is head else 0  # the head's rows the live ones replace
            if part.frame is None:
                assert part.values is not None
                small += part.values[: len(part.values) - cut]
                continue
            if small:
                frames.append(frame_from_wire_bars(small, self.symbol))
                small = []
            frames.append(part.frame.slice(0, part.frame.height - cut))
        small += live
        if small or not frames:
            frames.append(frame_from_wire_bars(small, self.symbol))
        frame = frames[0] if len(frames) == 1 else pl.concat(frames)
        # The answers kept as values were taken on trust (their bisection and look-ups hold
        # only if each is in order): the whole frame in order proves it; else the reference
        # rules.
        return frame if _in_order(frame) else None


def _build_frame(request: HistoryRequest, route: _ChartRoute) -> pl.DataFrame:
    frame = None if route.pages is None else route.pages.finish(route.chunks)
    if frame is None:
        frame = reference_frame(route.chunks, request.symbol.full)
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
    newest = int(frame.get_column("time").dt.epoch("s")[-1])
    if _closes_at(newest, route.series, request.interval.seconds) > _now(route.series):
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
