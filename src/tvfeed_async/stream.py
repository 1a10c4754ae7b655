"""Live bars: shared subscriptions, bounded per-consumer queues, gap-free reconnects.

A *subscription* is one server series for one (symbol, interval, session, adjustment) key. It
lives in a task of the feed's task group and is shared by every consumer of that key; when the
last consumer leaves, its task ends and deletes the chart session on the server.

The supervisor's reader hands it every ``du``; its :class:`~tvfeed_async.protocol.BarMerger`
turns them into closed bars (exactly once, in order) and a forming bar, which are pushed to the
consumers' queues without ever blocking the reader:

* closed bars are never dropped; a consumer that lets ``queue_size`` closed bars pile up is
  ended with :class:`~tvfeed_async.errors.ConsumerTooSlow`;
* forming updates are coalesced: a consumer only ever has the latest one pending.

After a reconnect the subscription re-creates its series, asks for enough history to reach
back to the bar it last knew (paging with ``request_more_data`` if needed), merges, and
delivers the bars that closed during the outage before resuming live. If the server's
history cannot reach back that far, the gap is reported (``on_gap``) instead of skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import anyio
from anyio.abc import TaskGroup
from msgspec.structs import astuple

from .chart import SERIES_ID, SYMBOL_REF, open_chart
from .delivery import BarConsumer as Consumer
from .delivery import BarStream, GapPolicy
from .errors import (
    ConnectionLost,
    ConsumerTooSlow,
    EntitlementError,
    InvalidRequest,
    ProtocolError,
    SymbolNotFound,
    TvFeedError,
)
from .events import EventKind, StreamHealth, utc
from .protocol.bars import Bar, BarMerger, MergeResult
from .protocol.chart_session import Answered, Backfill, ChartFailed, ChartSession
from .protocol.client import new_session_id
from .protocol.intervals import Interval
from .protocol.messages import (
    LiveData,
    SeriesData,
    ServerMessage,
)
from .protocol.symbols import Symbol
from .supervisor import Link, Supervisor
from .wakeups import Flag

__all__ = ["BarStream", "Consumer", "GapPolicy", "StreamKey", "StreamManager", "Subscription"]

logger = logging.getLogger("tvfeed_async.stream")

_new_tuple = tuple.__new__  # Bar._make without its Python-level call (see protocol.bars)

#: Subscription._history_end until series_completed says where the history ends.
_NO_COMPLETION = 1 << 62
#: Server clocks later than this (unix seconds, year 2100) are not believed.
_LATEST_CLOCK = 4_102_444_800


@dataclass(frozen=True, slots=True)
class StreamKey:
    """What makes two streams the same server subscription."""

    symbol: Symbol
    interval: Interval
    session: str = "regular"
    adjustment: str = "splits"
    back_adjusted: bool = False


class Subscription:
    """One server series shared by its consumers (a Route of the supervisor)."""

    def __init__(
        self,
        manager: StreamManager,
        key: StreamKey,
        history: int,
    ) -> None:
        self.manager = manager
        self.key = key
        self._symbol = key.symbol.full
        self._interval = key.interval.code
        self._tail = (self._symbol, self._interval, False)  # symbol, interval, closed
        self.consumers: list[Consumer] = []
        grace = manager.close_grace
        self.merger = BarMerger(
            grid=1 if key.interval.unit == "S" else 60, clock=self._clock, grace=grace > 0
        )
        self._grace = grace
        self._release_timer: asyncio.TimerHandle | None = None
        self._server_time = 0.0
        self.retained: deque[Bar] = deque(maxlen=max(2, history))
        self.history = max(2, history)
        self.ready = Flag()
        self._scope = anyio.CancelScope()
        self._session: str | None = None
        self._link: Link | None = None
        # The chart session's state (ids, matching); a new one per socket. Data messages
        # take the fast path in handle() and only read its series id and turnaround.
        self._chart = ChartSession("", self._symbol, self._name)
        self._series = self._chart.new_series(SYMBOL_REF, self._interval)
        self._series.collect = False
        self._live = False
        self._pending: list[Bar] = []
        # The most bars _pending may hold before the consumers holding up a backfill's
        # delivery are ended (see _bound_pending); no bound while the history loads.
        self._pending_bound = _NO_COMPLETION
        self._history_end = 0
        self._completed = Flag()
        self._lost = Flag()
        self._error: TvFeedError | None = None
        self._reopens: deque[float] | None = None  # made on the first re-open (memory)
        self.stale = 0
        self.gaps = 0
        self.reopens = 0

    @property
    def awaiting_reply(self) -> bool:
        """True while the series is loading (see Supervisor._critical_error)."""
        return not self._live

    @property
    def live(self) -> bool:
        """Subscribed and streaming."""
        return self._live

    def _emit(self, kind: EventKind, detail: str, bars: int = 0) -> None:
        self.manager.supervisor.events.emit(
            kind, detail, symbol=self._symbol, interval=self._interval, bars=bars
        )

    def _clock(self) -> float:
        """Now, for the merger's look-ahead check: the later of this machine's clock and the
        server's (the envelope time of its last data message; a simulator's clock may run
        ahead of ours)."""
        return max(time.time(), self._server_time)

    # -------------------------------------------------- route callbacks (reader task)

    def handle(self, message: ServerMessage) -> None:
        # LiveData first: isinstance() on a struct subclass takes a slow path, once per update.
        if message.__class__ is LiveData or isinstance(message, SeriesData):
            # The subscription's series is the first of its chart session, created under
            # turnaround s1 and never modified (checked in _attach_to): constants here cost
            # less than reading them from the session, once per live update.
            payload = message.p.series.get(SERIES_ID)
            if payload is None or not payload.rows:
                return
            if payload.turnaround and payload.turnaround != "s1":
                self.stale += 1  # not our series' turnaround (the only one it sends)
                return
            server_time = message.t
            if server_time is not None and self._server_time < server_time < _LATEST_CLOCK:
                self._server_time = float(server_time)
            # Rows were validated by parse_message (a malformed one fails the whole message).
            if not self._live:
                # Loading or backfilling: keep the bars for the merge. A run of updates of
                # one bar (live revisions while a long backfill pages) keeps only its latest,
                # as the merge would: the list grows by bars, not by updates.
                pending = self._pending
                for bar in payload.bars(self._symbol, self._interval):
                    if pending and pending[-1][0] == bar[0]:
                        pending[-1] = bar
                    else:
                        pending.append(bar)
                        if len(pending) > self._pending_bound:
                            self._pending_overflow()
                return
            # The live path: one call per update, no intermediate lists. Each row's values
            # become a Bar of this series as SeriesPayload.bars() makes them (tuple.__new__
            # over the first six values and this series' tail), without its call and list.
            update = self.merger.update
            consumers = self.consumers
            tail = self._tail
            for row in payload.rows:
                closed, forming = update(_new_tuple(Bar, astuple(row.v) + tail))
                if closed is not None:
                    self.retained.append(closed)
                    for consumer in consumers:
                        consumer.push_closed(closed)
                if forming is not None:
                    for consumer in consumers:
                        consumer.push_forming(forming)
            if self._grace and self.merger.closing is not None and self._release_timer is None:
                self._schedule_release()
        else:
            chart = self._chart
            chart.receive(message)
            # symbol_resolved is not kept: ~6 KB per stream that streams do not need
            # (feed.resolve() returns it on demand).
            chart.resolved.clear()
            for event in chart.take_events():
                if isinstance(event, Answered):
                    # Bars queued after this point are live updates, not history (see
                    # _attach_to).
                    self._history_end = len(self._pending)
                    self._completed.set()
                elif isinstance(event, ChartFailed):
                    self._fail(event.error)

    def connection_lost(self, error: TvFeedError) -> None:
        self._live = False
        self._lost.set()
        self._completed.set()

    def _schedule_release(self) -> None:
        loop = asyncio.get_running_loop()
        self._release_timer = loop.call_later(self._grace, self._release_closing)

    def _release_closing(self) -> None:
        """The grace time of the closing bar is over: deliver it as closed (after a
        backfill in progress has delivered the older bars: see the end of _attach_to)."""
        self._release_timer = None
        if not self._live:
            return
        closed = self.merger.release()
        if closed is not None:
            self.retained.append(closed)
            for consumer in self.consumers:
                consumer.push_closed(closed)

    def _cancel_release(self) -> None:
        timer, self._release_timer = self._release_timer, None
        if timer is not None:
            timer.cancel()

    # -------------------------------------------------- delivery

    @property
    def _name(self) -> str:
        return f"{self._symbol} {self._interval}"

    def _push_forming(self, forming: Bar | None) -> None:
        if forming is not None:
            for consumer in self.consumers:
                consumer.push_forming(forming)

    async def _deliver_paced(self, closed: list[Bar]) -> None:
        """Deliver a backfill at the consumers' pace: an outage can close more bars than a
        queue holds, and a consumer that keeps up must not be ended for that. One that makes
        no room within ``Timeouts.backfill_patience`` seconds is ended as too slow."""
        for bar in closed:
            self.retained.append(bar)
            for consumer in list(self.consumers):
                if consumer.full:
                    with anyio.move_on_after(self.manager.supervisor.timeouts.backfill_patience):
                        await consumer.wait_for_room()
                consumer.push_closed(bar)

    def _fail(self, error: TvFeedError) -> None:
        """A chart error on this series' session: wake the loading step and the run loop,
        which either re-opens the series or ends the consumers with the error."""
        if self._error is None:
            self._error = error
        self._live = False
        self._completed.set()
        self._lost.set()

    def _may_reopen(self, error: TvFeedError) -> bool:
        """Whether a chart error is worth re-opening the series for (within a budget)."""
        if isinstance(error, SymbolNotFound | EntitlementError | InvalidRequest):
            return False  # the same request will get the same answer
        now = time.monotonic()
        reopens = self._reopens
        if reopens is None:
            reopens = self._reopens = deque()
        retry = self.manager.supervisor.retry
        while reopens and now - reopens[0] > retry.reopen_window:
            reopens.popleft()
        if len(reopens) >= retry.reopens_per_window:
            return False
        reopens.append(now)
        return True

    def attach(self, consumer: Consumer) -> None:
        """Add a consumer (it receives bars that close from now on)."""
        self.consumers.append(consumer)
        if self._live and self.merger.forming is not None:
            consumer.push_forming(self.merger.forming)

    def detach(self, consumer: Consumer) -> None:
        """Remove a consumer; the last one out stops the subscription."""
        if consumer in self.consumers:
            self.consumers.remove(consumer)
        if not self.consumers:
            self.manager.forget(self)
            self._scope.cancel()

    # -------------------------------------------------- the subscription task

    async def run(self) -> None:
        """Keep the series alive across reconnects until cancelled or failed."""
        supervisor = self.manager.supervisor
        with self._scope:
            try:
                while True:
                    link = await supervisor.wait_link()
                    try:
                        await self._attach_to(link)
                    except ConnectionLost:
                        continue
                    except TvFeedError as loading_error:
                        self._error = None
                        await self._after_chart_error(loading_error)
                        continue
                    await self._lost.wait()
                    chart_failure = self._error
                    if chart_failure is not None:
                        self._error = None
                        await self._after_chart_error(chart_failure)
            except TvFeedError as error:
                self.manager.forget(self)
                self._emit("stream_error", str(error))
                for consumer in list(self.consumers):
                    consumer.fail(error)
            finally:
                self._cancel_release()
                self.manager.forget(self)
                self.ready.set()
                wait = self.manager.supervisor.timeouts.session_delete
                with anyio.CancelScope(shield=True), anyio.move_on_after(wait):
                    await self._drop_session()

    async def _after_chart_error(self, error: TvFeedError) -> None:
        """Re-open the series after a chart error that may pass (a ``critical_error`` or an
        unknown ``series_error``), at most ``RetryPolicy.reopens_per_window`` times per
        ``reopen_window`` seconds; otherwise raise it, which ends every consumer with it."""
        if not self._may_reopen(error):
            raise error
        logger.warning("%s: %s; re-opening the series", self._name, error)
        self.reopens += 1
        self._emit("stream_reopened", str(error))
        await self._drop_session()

    async def _drop_session(self) -> None:
        session, link = self._session, self._link
        self._session = None
        if session is None or link is None:
            return
        self.manager.supervisor.remove_route(session)
        try:
            if link.closed or self.manager.closed:
                return  # the socket (or the whole feed) is going away: nothing to tidy up
            chart = self._chart
            try:
                for message in (*chart.remove_series(self._series), *chart.close()):
                    await link.send(message)
            except ConnectionLost:
                logger.debug("socket closed before %s could be removed", session)
        finally:
            link.release_chart_session()

    async def _attach_to(self, link: Link) -> None:
        supervisor = self.manager.supervisor
        if self._session is not None:  # the session of a socket that died
            supervisor.remove_route(self._session)
            if self._link is not None:
                self._link.release_chart_session()
            self._session = None
        await link.acquire_chart_session()
        session = new_session_id("cs")
        self._session, self._link = session, link
        self._lost = Flag()
        self._completed = Flag()
        self._live = False
        self._pending = []
        self._pending_bound = _NO_COMPLETION
        self._history_end = _NO_COMPLETION
        chart = self._chart = ChartSession(session, self._symbol, self._name)
        series = self._series = chart.new_series(SYMBOL_REF, self._interval)
        series.collect = False  # the bars go to self._pending, as Bars (see handle)
        supervisor.add_route(session, self)
        key = self.key
        newest = self.merger.newest_time
        resuming = newest is not None
        count = self.manager.backfill_count(self) if resuming else self.history + 1
        await open_chart(
            link,
            session,
            self._symbol,
            adjustment=key.adjustment,
            trading_session=key.session,
            back_adjusted=key.back_adjusted,
            chart=chart,
        )
        create = chart.create_series(series, count)
        assert series.series_id == SERIES_ID  # see handle()
        assert series.turnaround == "s1"
        for message in create:
            await link.send(message)
        if not await self._wait_completed(self.manager.request_timeout):
            if not self._pending:
                raise ProtocolError(
                    f"{self._name}: no answer to create_series within "
                    f"{self.manager.request_timeout:g} s"
                )
            logger.warning("%s: the series never completed; going on with its bars", self._name)
        backfill = None
        if newest is not None:
            # Page back until the history reaches the last bar we knew, or runs out.
            backfill = Backfill(newest, self.manager.max_backfill_bars, self.manager.bar_limit())
            while (page := backfill.next_page(self._pending)) is not None:
                for message in chart.request_more(series, page):
                    await link.send(message)
                if not await self._wait_completed(self.manager.page_timeout):
                    # A server that answers request_more_data with silence: the backfill
                    # ends with what came (a hole it leaves is reported as a gap below).
                    logger.warning("%s: no answer to request_more_data; backfill ends", self._name)
                    break
        pending, self._pending = self._pending, []
        if backfill is not None:
            self._bound_pending()
            gap = backfill.gap(pending, self.merger.last_closed)
            if gap is not None:
                # The history does not reach the bar we last knew: the bars in between, and
                # the final values of the bar that was forming, are unknown. Report the hole
                # and do not pass that bar off as closed.
                self.merger.discard_forming()
                gap = backfill.gap(pending, self.merger.last_closed)
                assert gap is not None
                self.gaps += 1
                self._emit("gap", f"bars between {gap.after} and {gap.before} may be missing")
                for consumer in list(self.consumers):
                    consumer.report_gap(gap, key)
            result = self._apply_history(pending)
            forming = result.forming
            self._emit("backfilled", f"{len(result.closed)} bars", bars=len(result.closed))
            await self._deliver_paced(result.closed)
            # Live updates that arrived while the backfill was being consumed.
            while self._pending:
                more, self._pending = self._pending, []
                result = self.merger.apply_many(more)
                forming = result.forming or forming
                await self._deliver_paced(result.closed)
            self._pending_bound = _NO_COMPLETION
            self._push_forming(forming)
        else:
            # History first (its closed bars are the past: retained, not delivered); then the
            # live updates that came after series_completed, before this task ran: a bar they
            # closed closed after the subscription, and its consumers get it.
            split = min(self._history_end, len(pending))
            result = self._apply_history(pending[:split])
            self.retained.extend(result.closed)
            forming = result.forming
            if split < len(pending):
                live = self.merger.apply_many(pending[split:])
                forming = live.forming or forming
                for bar in live.closed:
                    self.retained.append(bar)
                    for consumer in self.consumers:
                        consumer.push_closed(bar)
            self._push_forming(forming)
        self._live = True
        if self._grace and self.merger.closing is not None and self._release_timer is None:
            self._schedule_release()
        self.ready.set()

    def _bound_pending(self) -> None:
        """From now until the series is live, bars that arrive wait in ``_pending`` while
        the backfill is delivered at the pace of the slowest consumer: bound them by the
        largest consumer queue (a consumer that far behind is ended, never a bar dropped)."""
        self._pending_bound = max((c.max_closed for c in self.consumers), default=1)

    def _pending_overflow(self) -> None:
        """More bars arrived during a backfill's delivery than a consumer queue holds: end
        the consumers the delivery waits for (all of them if none is full) with
        ConsumerTooSlow; the delivery then goes on for the others."""
        slow = [c for c in self.consumers if c.full] or list(self.consumers)
        for consumer in slow:
            consumer.fail(
                ConsumerTooSlow(
                    f"{self._name}: {len(self._pending)} bars arrived while a backfill waited "
                    "for this consumer to take the bars that closed during an outage; it is "
                    "ended rather than lose one (consume faster or raise queue_size)"
                )
            )
        self._pending_bound = len(self._pending) + self._pending_bound

    def _apply_history(self, bars: list[Bar]) -> MergeResult:
        """Merge a history batch. Its bars are the server's final values, so the close grace
        does not hold any of them back."""
        result = self.merger.apply_many(bars)
        released = self.merger.release()
        if released is not None:
            result.closed.append(released)
        return result

    async def _wait_completed(self, patience: float) -> bool:
        """Wait for series_completed; False when ``patience`` seconds passed without it.

        Raises:
            The chart error the series got, or ConnectionLost.
        """
        with anyio.move_on_after(patience):
            await self._completed.wait()
        if not self._completed.is_set():
            return False
        self._completed = Flag()
        if self._error is not None:
            raise self._error
        if self._lost.is_set():
            raise ConnectionLost("connection lost while loading the series")
        return True


class StreamManager:
    """Owns the subscriptions of one feed."""

    def __init__(
        self,
        supervisor: Supervisor,
        task_group: TaskGroup,
        bar_limit: Callable[[], int],
        max_backfill_bars: int = 50_000,
        close_grace: float = 0.0,
        *,
        request_timeout: float = 60.0,
        page_timeout: float = 10.0,
    ) -> None:
        self.supervisor = supervisor
        self.max_backfill_bars = max_backfill_bars
        self.close_grace = close_grace
        self.request_timeout = request_timeout
        self.page_timeout = page_timeout
        self._task_group = task_group
        self.bar_limit = bar_limit
        self._subscriptions: dict[StreamKey, Subscription] = {}
        self._consumers: set[Consumer] = set()
        self.closed = False
        self.rejected_bars = 0
        self.late_revisions = 0

    @property
    def subscription_count(self) -> int:
        """How many server series are live (shared subscriptions count once)."""
        return len(self._subscriptions)

    def backfill_count(self, subscription: Subscription) -> int:
        """Bars to ask for when re-creating a series (paging covers longer outages)."""
        return min(self.bar_limit(), self.max_backfill_bars, max(subscription.history + 1, 300))

    def subscribe(self, key: StreamKey, consumer: Consumer, history: int = 2) -> Subscription:
        """Attach ``consumer`` to the subscription of ``key``, creating it if needed."""
        if self.closed:
            raise ConnectionLost("the feed is closed")
        subscription = self._subscriptions.get(key)
        if subscription is None or subscription.history < history:
            if subscription is not None and subscription.history < history:
                subscription.history = history
                subscription.retained = deque(subscription.retained, maxlen=history)
            else:
                subscription = Subscription(self, key, history)
                self._subscriptions[key] = subscription
                self._task_group.start_soon(subscription.run)
        self._consumers.add(consumer)
        subscription.attach(consumer)
        return subscription

    def unsubscribe(self, subscription: Subscription, consumer: Consumer) -> None:
        """Detach ``consumer`` (synchronous: safe in an async generator's ``finally``)."""
        consumer.finish()
        self._consumers.discard(consumer)
        subscription.detach(consumer)

    def forget(self, subscription: Subscription) -> None:
        """Drop a subscription from the table (it stopped or failed)."""
        if self._subscriptions.get(subscription.key) is subscription:
            del self._subscriptions[subscription.key]
            self.rejected_bars += subscription.merger.rejected
            self.late_revisions += subscription.merger.late_revisions

    def health(self) -> list[StreamHealth]:
        """One entry per live server series (see ``TvFeed.health``)."""
        return [
            StreamHealth(
                symbol=sub.key.symbol.full,
                interval=sub.key.interval.code,
                live=sub.live,
                consumers=len(sub.consumers),
                last_bar_time=utc(sub.merger.newest_time),
                last_closed_time=utc(sub.merger.last_closed),
                gaps=sub.gaps,
                reopens=sub.reopens,
                rejected_bars=sub.merger.rejected,
            )
            for sub in self._subscriptions.values()
        ]

    def counts(self) -> tuple[int, int]:
        """Bars rejected as impossible, and late revisions dropped, over every series."""
        live = list(self._subscriptions.values())
        return (
            self.rejected_bars + sum(sub.merger.rejected for sub in live),
            self.late_revisions + sum(sub.merger.late_revisions for sub in live),
        )

    def close(self) -> None:
        """End every consumer normally (the feed is closing)."""
        self.closed = True
        for consumer in list(self._consumers):
            consumer.finish()
        self._consumers.clear()
