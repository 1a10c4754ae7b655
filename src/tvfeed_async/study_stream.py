"""Live study rows: ``TvFeed.stream_study``, with the bars' contract.

One :class:`StudySubscription` per stream runs one chart session on the current socket: the
series' history (count mode, paged like ``get_hist``), then ``create_study`` on it, its rows
until ``study_completed``, then the live ``du`` rows of the study (``st`` entries whose
``v[0]`` is the row's open time). A row is closed once a row of a later open time has come
(the server's study rows follow its bars: a later row means a later bar has opened), or, in
the history, when its bar's close time has passed on the server's clock.

Delivery goes through a :class:`~tvfeed_async.delivery.Consumer` keyed by (symbol,
interval, study): every closed row exactly once and in open-time order, the forming row
coalesced. After a reconnect the subscription opens a new chart session, loads enough bars
to reach back to the last closed row it delivered (at least as many as at the start, so a
recursive study such as RSI is computed over about the same history), and delivers the rows
that closed in between before going live; if the history cannot reach back that far, the
hole is reported (``on_gap``) instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from operator import itemgetter
from typing import NamedTuple

import anyio
from anyio.abc import TaskGroup

from .delivery import Consumer, GapPolicy, ItemKind, ItemStream
from .errors import ConnectionLost, TvFeedError
from .history import (
    HistoryRequest,
    _close_chart,
    _closes_at,
    _now,
    _open_chart,
    _Quiet,
    history_job,
)
from .protocol.bars import Gap
from .protocol.chart_session import ChartFailed, Event, StudyFailed
from .protocol.messages import SeriesData, ServerMessage, StudyRow
from .protocol.studies import ScriptMetadata, row_values, study_values
from .studies import _StudyRoute
from .supervisor import Link, Supervisor

__all__ = [
    "STUDY_POINTS",
    "GapPolicy",
    "StudyPoint",
    "StudyStream",
    "StudySubscription",
    "start_study_stream",
]

logger = logging.getLogger("tvfeed_async.study_stream")


class StudyPoint(NamedTuple):
    """One row of a study's values.

    Attributes:
        timestamp: open time of the bar the row belongs to, unix seconds UTC.
        values: one value per plot, in the order of ``plots``; None where the study has no
            value (TradingView's ``1e100``, e.g. warm-up bars).
        symbol: ``EXCHANGE:TICKER``.
        interval: the TradingView interval code.
        study: the script id (``STD;RSI``).
        closed: True once a later bar has opened; False for the forming row.
        plots: the plot names, from the script's metadata (``("RSI",)``).
    """

    timestamp: int
    values: tuple[float | None, ...]
    symbol: str
    interval: str
    study: str
    closed: bool = False
    plots: tuple[str, ...] = ()

    @property
    def time(self) -> datetime:
        """The open time as a timezone-aware UTC datetime."""
        return datetime.fromtimestamp(self.timestamp, UTC)

    def as_dict(self) -> dict[str, float | None]:
        """Plot name -> value."""
        return dict(zip(self.plots, self.values, strict=False))


#: Study rows are keyed by (symbol, interval, study); index 5 says whether one is closed.
STUDY_POINTS: ItemKind[StudyPoint] = ItemKind(
    key=itemgetter(2, 3, 4), closed=itemgetter(5), name="study rows"
)


class _Key:
    """What a gap report names (``delivery._SeriesKey``)."""

    __slots__ = ("interval", "symbol")

    def __init__(self, request: HistoryRequest) -> None:
        self.symbol = request.symbol
        self.interval = request.interval


class _LiveStudyRoute(_StudyRoute):
    """The study route of one socket: collects like ``get_study`` until the study completed,
    then hands each live row to the subscription instead of keeping it."""

    def __init__(self, subscription: StudySubscription, request: HistoryRequest) -> None:
        super().__init__(request.symbol.full, subscription.name, 1)
        self.subscription = subscription
        self.live = False
        self.lost = anyio.Event()

    def handle(self, message: ServerMessage) -> None:
        if self.live and isinstance(message, SeriesData):
            # The bars are not needed once live (only their study's rows), and not kept.
            entry = message.p.series.get("st1")
            if entry is not None and entry.study_rows:
                self.subscription.take_rows(entry.study_rows)
            return
        super().handle(message)

    def _events(self, events: list[Event]) -> None:
        super()._events(events)
        if self.live:
            for event in events:
                if isinstance(event, StudyFailed | ChartFailed) and not isinstance(
                    event.error, ConnectionLost
                ):
                    self.lost.set()  # the chart or study died on the server: re-open it

    @property
    def awaiting_reply(self) -> bool:
        """True while the history and the study load (a live study is not waiting)."""
        return not self.live and super().awaiting_reply

    def connection_lost(self, error: TvFeedError) -> None:
        super().connection_lost(error)
        self.study_done.set()
        self.lost.set()


#: Re-opens of a live study after server-side failures allowed per window (seconds).
REOPENS_PER_WINDOW = 3
REOPEN_WINDOW = 600.0


class _LiveFailure(Exception):
    """The chart or the study failed on the server after the study was live."""

    def __init__(self, error: TvFeedError) -> None:
        super().__init__(str(error))
        self.error = error


class StudySubscription:
    """One study on one series, live across reconnects, feeding one consumer.

    Args:
        supervisor: the feed's socket supervisor.
        request: the series (count mode: ``n_bars`` is the history loaded at the start).
        load_script: fetches the script's metadata and checks the inputs into the
            ``create_study`` inputs object (pine-facade; run once, in the subscription's task).
        consumer: where the rows go.
        bar_limit: the most bars one request returns.
        max_backfill_bars: the most bars a reconnect loads to reach back.
        page_quiet: seconds without any answer before a page is given up.
    """

    def __init__(
        self,
        supervisor: Supervisor,
        request: HistoryRequest,
        load_script: Callable[[], Awaitable[tuple[ScriptMetadata, dict[str, object]]]],
        consumer: Consumer[StudyPoint],
        *,
        bar_limit: Callable[[], int],
        max_backfill_bars: int,
        page_quiet: float,
    ) -> None:
        self.supervisor = supervisor
        self.request = request
        self.consumer = consumer
        self.name = f"study on {request.symbol.full} {request.interval.code}"
        self._load_script = load_script
        self._bar_limit = bar_limit
        self._max_backfill = max_backfill_bars
        self._page_quiet = page_quiet
        self._symbol = request.symbol.full
        self._interval = request.interval.code
        self._meta: ScriptMetadata | None = None
        self._plots = 0
        self._scope = anyio.CancelScope()
        #: Open time of the newest closed row delivered (None: none yet).
        self.last_closed: int | None = None
        #: The forming row: its open time and latest values (None: none yet).
        self._forming: tuple[int, tuple[float | None, ...]] | None = None
        self.gaps = 0
        self.stale = 0
        self.reconnects = 0
        self.reopens = 0
        self._reopen_times: list[float] = []

    # -------------------------------------------------- rows (reader task)

    def _point(self, timestamp: int, values: tuple[float | None, ...], closed: bool) -> StudyPoint:
        meta = self._meta
        assert meta is not None
        return StudyPoint(
            timestamp, values, self._symbol, self._interval, meta.pine_id, closed, meta.plots
        )

    def take_rows(self, rows: list[StudyRow]) -> None:
        """Live rows, oldest first: a row of a later time closes the forming one."""
        for row in rows:
            parsed = row_values(row, self._plots)
            if parsed is not None:
                self._take(*parsed)

    def _take(self, timestamp: int, values: tuple[float | None, ...]) -> None:
        forming = self._forming
        last = self.last_closed
        if last is not None and timestamp <= last:
            self.stale += 1  # a revision of a row already delivered as closed
            return
        if forming is not None and timestamp < forming[0]:
            self.stale += 1  # older than the forming row: nothing left to revise
            return
        if forming is not None and timestamp > forming[0]:
            self._close(*forming)
        self._forming = (timestamp, values)
        self.consumer.push_forming(self._point(timestamp, values, False))

    def _close(self, timestamp: int, values: tuple[float | None, ...]) -> None:
        self.last_closed = timestamp
        self._forming = None
        self.consumer.push_closed(self._point(timestamp, values, True))

    # -------------------------------------------------- the task

    def close(self) -> None:
        """Stop (the consumer detached): the task deletes its chart session and ends."""
        self._scope.cancel()

    async def run(self) -> None:
        """Load the script, then keep the study alive across reconnects until cancelled, the
        feed gives up, or the study fails while loading (bad inputs, no access, an unknown
        symbol: the consumer gets the error)."""
        with self._scope:
            try:
                meta, inputs = await self._load_script()
                self._meta, self._plots = meta, len(meta.plots)
                failed: Link | None = None
                while True:
                    link = await self.supervisor.wait_link(failed)
                    try:
                        await self._attach(link, inputs)
                    except ConnectionLost:
                        failed = link
                        self.reconnects += 1
                    except _LiveFailure as failure:
                        self._may_reopen(failure.error)
            except TvFeedError as error:
                self.consumer.fail(error)
            finally:
                self.consumer.finish()

    def _may_reopen(self, error: TvFeedError) -> None:
        """Re-open after the chart or study died on the server while live, at most
        :data:`REOPENS_PER_WINDOW` times per :data:`REOPEN_WINDOW` seconds; else raise it."""
        now = time.monotonic()
        recent = [t for t in self._reopen_times if now - t < REOPEN_WINDOW]
        if len(recent) >= REOPENS_PER_WINDOW:
            raise error
        self._reopen_times = [*recent, now]
        self.reopens += 1
        logger.warning("%s: %s; re-opening the study", self.name, error)

    def _history_request(self) -> HistoryRequest:
        """The bars to load on this socket: the start's ``n_bars``, or enough to reach back
        to the last closed row delivered (capped by ``max_backfill_bars``)."""
        request = self.request
        wanted = request.n_bars or 2
        if self.last_closed is not None:
            behind = int((time.time() - self.last_closed) // request.interval.seconds) + 3
            wanted = min(max(wanted, behind), max(self._max_backfill, wanted))
        return dataclasses.replace(request, n_bars=wanted, include_partial=True)

    async def _attach(self, link: Link, inputs: dict[str, object]) -> None:
        request = self._history_request()
        route = _LiveStudyRoute(self, request)
        session = await _open_chart(link, self.supervisor, request, route)
        try:
            with contextlib.suppress(_Quiet):
                await route.run(link, history_job(request, self._bar_limit()), self._page_quiet)
            for message in route.add_studies([inputs]):
                await link.send(message)
            await route.study_done.wait()
            if route.error is not None:
                raise route.error
            if route.study_failure is not None:
                raise route.study_failure
            self._deliver_history(route)
            route.live = True
            await route.lost.wait()
            if route.error is not None and not isinstance(route.error, ConnectionLost):
                raise _LiveFailure(route.error)
            if route.study_failure is not None:
                raise _LiveFailure(route.study_failure)
            raise ConnectionLost(f"{self.name}: the socket closed")
        finally:
            route.accepting = False
            await _close_chart(link, self.supervisor, session)

    def _deliver_history(self, route: _LiveStudyRoute) -> None:
        """The rows the study computed over the loaded history: the closed ones not yet
        delivered, in order (a gap reported if they do not reach back to the last one
        delivered), then the newest as forming unless its bar has closed."""
        study = route.chart.studies["st1"]
        rows = study_values(study.rows, self._plots)
        study.rows = []  # live rows are taken one by one from now on (route.live)
        if not rows:
            return
        times = sorted(rows)
        newest = times[-1]
        newest_closed = _closes_at(newest, route.series, self.request.interval.seconds) <= _now(
            route.series
        )
        last = self.last_closed
        if last is not None and times[0] > last:
            self.gaps += 1
            self.consumer.report_gap(Gap(last, times[0]), _Key(self.request))
        self._forming = None
        for timestamp in times[:-1]:
            if last is None or timestamp > last:
                self._close(timestamp, rows[timestamp])
        if newest_closed:
            if self.last_closed is None or newest > self.last_closed:
                self._close(newest, rows[newest])
        else:
            self._forming = (newest, rows[newest])
            self.consumer.push_forming(self._point(newest, rows[newest], False))


class StudyStream(ItemStream[StudyPoint]):
    """The live rows of one study: what ``TvFeed.stream_study`` returns.

    An :class:`~tvfeed_async.delivery.ItemStream` of :class:`StudyPoint`: closed rows exactly
    once, in open-time order; with ``partial=True`` the latest forming row too. Ending it
    (``aclose()``, leaving ``async with``, the end of the feed, an error) deletes its chart
    session on the server.
    """

    __slots__ = ("_subscription",)

    def __init__(self, subscription: StudySubscription) -> None:
        super().__init__(subscription.consumer)
        self._subscription = subscription

    @property
    def subscription(self) -> StudySubscription:
        """The subscription feeding this stream (its counters: gaps, reconnects, stale)."""
        return self._subscription

    def _detach(self) -> None:
        self._subscription.close()
        self._consumer.finish()

    def __aiter__(self) -> StudyStream:
        return self

    async def __aenter__(self) -> StudyStream:
        return self


def start_study_stream(
    task_group: TaskGroup,
    subscription: StudySubscription,
) -> StudyStream:
    """Start ``subscription``'s task in ``task_group`` and return its stream."""
    task_group.start_soon(subscription.run)
    return StudyStream(subscription)
