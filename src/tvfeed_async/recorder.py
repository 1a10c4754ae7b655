"""Record closed bars into stores, exactly once across crashes (``Recorder``).

For every series and every sink the recorder keeps a *checkpoint*: the open time of the newest
bar that the sink has acknowledged. It is read from the store itself at start
(``Sink.last_stored``), so a recorder killed at any moment resumes from what is durable, and
it advances only after a write was acknowledged. The sinks store idempotently, so a batch
written again after a crash (or after an answer lost on the way) doubles nothing.

The life of one (sink, series) pair:

1. **Synchronise through history.** Ask the server for its newest bar ``F`` (it may be still
   forming), then fetch every bar from the checkpoint (inclusive) to ``F`` (exclusive) with a
   range request, or the last ``initial_bars`` when the store holds nothing yet, and write
   them in batches (up to ``sync_concurrency`` series at once: their requests run together,
   their writes in turn). If the answer does not reach back to the checkpoint bar itself, the
   server cannot fill the hole: a :class:`RecordedGap` is written to the sink
   (``record_gap``), logged, counted and passed to ``on_gap``, and recording goes on after it.
2. **Join the live stream.** Live bars (``feed.stream``, one per series, shared by the sinks)
   at or before the checkpoint are dropped as already stored. Every bar before ``F`` is stored
   by step 1, so a first live bar at ``F`` follows on directly. A first live bar later than
   ``F`` (the subscription became live after more bars had closed) is preceded by a history
   request for the bars between the checkpoint and it (the *seam fetch*). After that, the
   stream's own guarantee (each closed bar once, in order, across reconnects) holds.
3. **Never stall.** Live bars reach each sink through its own bounded queue (``max_pending``
   bars). Offering a bar never waits: a sink whose queue is full drops its whole live backlog
   and marks the series it held for step 1 again, from its own checkpoint (the bars can be
   fetched again). That is logged and counted (``SinkMetrics.overflows``, ``dropped_bars``,
   ``resyncs``), and neither the socket reader, the other series nor the other sinks wait.

A write that fails (:class:`~tvfeed_async.sinks.SinkError`) is retried with back-off; before
each retry the sink's checkpoints are read again, and a series whose store holds less than the
recorder believed (a store restored from an older copy, or a Redis without an append-only
file) is synchronised again from what the store really holds.

Forming bars (``forming=True``) are optional: the newest one of each series is kept, one slot
per series and sink, and written with ``Sink.write_latest`` after the closed bars, never mixed
with them. They are best effort: a failed forming write is counted and not retried (a newer
forming bar follows).

No threads: each sink's writer, each series' stream and the synchronisations are tasks of the
recorder's own task group, which lives inside :meth:`Recorder.run`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, NoReturn

import anyio
import polars as pl

from .errors import (
    AuthError,
    EntitlementError,
    InvalidRequest,
    RequestTimeout,
    SymbolNotFound,
    TvFeedError,
)
from .feed import TimeLike, TvFeed
from .protocol.bars import Bar, Gap
from .protocol.intervals import Interval, IntervalLike
from .protocol.symbols import SymbolLike, parse_symbol
from .sinks._base import SeriesKey, Sink, SinkError

if TYPE_CHECKING:
    from .pool import FeedPool

__all__ = ["RecordedGap", "Recorder", "SinkMetrics"]

logger = logging.getLogger("tvfeed_async.recorder")

#: Errors after which retrying cannot help: the recorder stops and raises them.
FATAL_ERRORS = (InvalidRequest, SymbolNotFound, EntitlementError, AuthError)

#: How many recent close-to-durable lags each sink keeps (for ``SinkMetrics.lag_seconds``).
LAG_SAMPLES = 10_000


@dataclass(frozen=True, slots=True)
class RecordedGap:
    """Bars of ``key`` between two open times that the server could not provide.

    Attributes:
        key: the series.
        sink: the sink's name.
        after: open time of the last bar stored before the hole (unix seconds).
        before: open time of the first bar the server had after it.
    """

    key: SeriesKey
    sink: str
    after: int
    before: int


@dataclass(slots=True)
class SinkMetrics:
    """Counters of one sink (``Recorder.metrics``).

    Attributes:
        sink: the sink's name.
        bars_written: closed bars acknowledged by the sink (history and live).
        history_bars: of those, bars that came from history requests.
        live_bars: of those, bars that came from the live stream.
        batches: acknowledged writes.
        write_errors: failed writes (each retried).
        syncs: synchronisations through history (the first one of each series included).
        resyncs: synchronisations after an overflow, an interrupted stream or a store that
            lost data.
        overflows: times the live backlog was dropped because the queue was full.
        dropped_bars: live bars dropped with it (fetched again through history).
        seam_fetches: history requests for bars between a checkpoint and a first live bar.
        history_errors: failed history requests (each retried).
        forming_written: forming bars written to the "latest" store.
        forming_errors: failed forming writes (not retried).
        max_queue_depth: the most live bars that were waiting at once.
        gaps: holes the server could not fill.
        lag_seconds: recent lags from a live bar's close (its arrival) to its acknowledgement.
    """

    sink: str
    bars_written: int = 0
    history_bars: int = 0
    live_bars: int = 0
    batches: int = 0
    write_errors: int = 0
    syncs: int = 0
    resyncs: int = 0
    overflows: int = 0
    dropped_bars: int = 0
    seam_fetches: int = 0
    history_errors: int = 0
    forming_written: int = 0
    forming_errors: int = 0
    max_queue_depth: int = 0
    gaps: list[RecordedGap] = field(default_factory=list)
    lag_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=LAG_SAMPLES))

    def as_dict(self) -> dict[str, object]:
        """The counters as plain values (lags summarised), e.g. for JSON."""
        lags = sorted(self.lag_seconds)

        def quantile(q: float) -> float | None:
            return lags[min(len(lags) - 1, int(q * len(lags)))] if lags else None

        return {
            "sink": self.sink,
            "bars_written": self.bars_written,
            "history_bars": self.history_bars,
            "live_bars": self.live_bars,
            "batches": self.batches,
            "write_errors": self.write_errors,
            "syncs": self.syncs,
            "resyncs": self.resyncs,
            "overflows": self.overflows,
            "dropped_bars": self.dropped_bars,
            "seam_fetches": self.seam_fetches,
            "history_errors": self.history_errors,
            "forming_written": self.forming_written,
            "forming_errors": self.forming_errors,
            "max_queue_depth": self.max_queue_depth,
            "gaps": [
                {
                    "symbol": g.key.symbol,
                    "interval": g.key.interval,
                    "after": g.after,
                    "before": g.before,
                }
                for g in self.gaps
            ],
            "lag_p50_seconds": quantile(0.5),
            "lag_p99_seconds": quantile(0.99),
        }


KeyLike = SeriesKey | tuple[SymbolLike, IntervalLike]


def _series_key(value: KeyLike) -> SeriesKey:
    if isinstance(value, SeriesKey):
        return SeriesKey(parse_symbol(value.symbol).full, Interval.parse(value.interval).code)
    symbol, interval = value
    return SeriesKey(parse_symbol(symbol).full, Interval.parse(interval).code)


def _frame_bars(frame: pl.DataFrame, key: SeriesKey) -> list[Bar]:
    columns = zip(
        frame.get_column("time").dt.epoch("s"),
        frame.get_column("open"),
        frame.get_column("high"),
        frame.get_column("low"),
        frame.get_column("close"),
        frame.get_column("volume"),
        strict=True,
    )
    return [
        Bar(int(opened), open_, high, low, close, volume, key.symbol, key.interval, True)
        for opened, open_, high, low, close, volume in columns
    ]


class _Backoff:
    def __init__(self, initial: float, maximum: float) -> None:
        self.initial = initial
        self.maximum = maximum
        self.delay = initial

    async def sleep(self) -> None:
        await anyio.sleep(self.delay)
        self.delay = min(self.maximum, self.delay * 2)

    def reset(self) -> None:
        self.delay = self.initial


class _Lane:
    """One sink: its checkpoints, its bounded live queue and its writer."""

    def __init__(self, recorder: Recorder, sink: Sink) -> None:
        self.recorder = recorder
        self.sink = sink
        self.metrics = SinkMetrics(sink.name)
        self.checkpoint: dict[SeriesKey, int | None] = {}
        # After a synchronisation: every bar before this open time is stored. None: the live
        # stream is joined, and its own ordering guarantee holds.
        self.covered_until: dict[SeriesKey, int | None] = {}
        # Series to synchronise through history, in the order they were marked; all of them
        # until the checkpoints are loaded and the first synchronisation starts.
        self.needs_sync: dict[SeriesKey, None] = dict.fromkeys(recorder.keys)
        self.synced_once: set[SeriesKey] = set()
        self.queue: deque[tuple[Bar, float]] = deque()
        self.forming: dict[SeriesKey, Bar] = {}
        self.recheck = False
        self._wakeup = asyncio.Event()

    # ---------------------------------------------------------------- the stream side

    def offer(self, bar: Bar, arrived: float) -> None:
        """Queue a live closed bar; never waits (runs in a stream task)."""
        key = SeriesKey(bar.symbol, bar.interval)
        if key in self.needs_sync:
            return  # its synchronisation has not started: history will bring this bar
        queue = self.queue
        if len(queue) >= self.recorder.max_pending:
            self._overflow(key)
            return
        queue.append((bar, arrived))
        if len(queue) > self.metrics.max_queue_depth:
            self.metrics.max_queue_depth = len(queue)
        self._wakeup.set()

    def offer_forming(self, bar: Bar) -> None:
        """Keep the newest forming bar of its series (coalescing)."""
        self.forming[SeriesKey(bar.symbol, bar.interval)] = bar
        self._wakeup.set()

    def _overflow(self, key: SeriesKey) -> None:
        affected = {SeriesKey(bar.symbol, bar.interval) for bar, _ in self.queue}
        affected.add(key)
        dropped = len(self.queue) + 1
        self.queue.clear()
        self.metrics.overflows += 1
        self.metrics.dropped_bars += dropped
        logger.warning(
            "%s fell %d live bars behind: dropping them and re-synchronising %d series "
            "through history from its own checkpoints",
            self.sink.name,
            dropped,
            len(affected),
        )
        for series in sorted(affected):
            self.mark_for_sync(series)

    def mark_for_sync(self, key: SeriesKey) -> None:
        """Synchronise ``key`` through history again (its live bars are not trusted)."""
        self.needs_sync[key] = None
        self._wakeup.set()

    # ---------------------------------------------------------------- the writer

    async def run(self) -> None:
        """Write until cancelled: live batches first, then one pending synchronisation, and
        the forming bars whenever no closed bar is waiting."""
        recorder = self.recorder
        # Each sink reads its own checkpoints: a store that is down at start holds up only
        # its own writer (every series waits in needs_sync meanwhile, so no live bar queues).
        await self.load_checkpoints(recorder.keys)
        recorder._lane_ready()
        while True:
            if self.queue:
                batch = [
                    self.queue.popleft() for _ in range(min(recorder.batch_size, len(self.queue)))
                ]
                await self._write_live(batch)
            elif self.needs_sync:
                await self._synchronise(list(self.needs_sync)[: recorder.sync_concurrency])
            elif not self.forming:
                self._wakeup.clear()
                # Bars that arrive while a write is under way make up the next batch.
                await self._wakeup.wait()
                continue
            if self.forming and not self.queue:
                await self._write_forming()

    async def _write_live(self, batch: list[tuple[Bar, float]]) -> None:
        out: list[Bar] = []
        arrivals: list[float] = []
        newest: dict[SeriesKey, int] = {}
        from_history = 0
        for bar, arrived in batch:
            key = SeriesKey(bar.symbol, bar.interval)
            if key in self.needs_sync:
                continue
            last = newest.get(key, self.checkpoint.get(key))
            if last is not None and bar.timestamp <= last:
                continue
            cover = self.covered_until.get(key)
            if cover is not None and bar.timestamp > cover:
                between = await self._history_between(key, last, bar.timestamp)
                if between is None:
                    continue  # the request failed: the series was marked for a new sync
                between = [b for b in between if last is None or b.timestamp > last]
                out.extend(between)
                from_history += len(between)
                if between:
                    last = between[-1].timestamp
            self.covered_until[key] = None
            out.append(bar)
            arrivals.append(arrived)
            newest[key] = bar.timestamp
        if not out:
            return
        stored = await self._store(out)
        if stored:
            acknowledged = time.monotonic()
            self.metrics.live_bars += len(out) - from_history
            self.metrics.history_bars += from_history
            self.metrics.lag_seconds.extend(acknowledged - arrived for arrived in arrivals)

    async def _history_between(
        self, key: SeriesKey, after: int | None, before: int
    ) -> list[Bar] | None:
        """Closed bars of ``key`` after ``after`` and before ``before`` (the seam fetch)."""
        recorder = self.recorder
        self.metrics.seam_fetches += 1
        start = after if after is not None else before - recorder.initial_bars * _seconds(key)
        try:
            bars = await self._history(key, start=start, end=before)
        except FATAL_ERRORS:
            raise
        except RuntimeError:
            await self.recorder._feed_closed()
        except TvFeedError as error:
            self.metrics.history_errors += 1
            logger.warning("%s %s: seam history request failed (%s)", self.sink.name, key, error)
            self.mark_for_sync(key)
            return None
        return [bar for bar in bars if bar.timestamp < before]

    async def _synchronise(self, keys: list[SeriesKey]) -> None:
        """Step 1 of the module docstring for a few series: their history requests run
        concurrently (each retried until it succeeds), then their bars are written one series
        after the other. The writer does nothing else meanwhile, so no live bar of these
        series is written before their history."""
        for key in keys:
            # Unmarked before the first request, so that live bars arriving from now on queue.
            self.needs_sync.pop(key, None)
            self.metrics.syncs += 1
            if key in self.synced_once:
                self.metrics.resyncs += 1
                logger.info(
                    "%s %s: re-synchronising from %s", self.sink.name, key, self.checkpoint.get(key)
                )
            self.synced_once.add(key)
        fetched: dict[SeriesKey, tuple[list[Bar], int | None, Gap | None]] = {}

        async def fetch(key: SeriesKey) -> None:
            fetched[key] = await self._fetch_retrying(key)

        async with anyio.create_task_group() as tasks:
            for key in keys:
                tasks.start_soon(fetch, key)
        for key in keys:
            await self._apply_history(key, *fetched[key])

    async def _fetch_retrying(self, key: SeriesKey) -> tuple[list[Bar], int | None, Gap | None]:
        backoff = _Backoff(self.recorder.retry_initial, self.recorder.retry_max)
        while True:
            try:
                return await self._fetch_since_checkpoint(key)
            except FATAL_ERRORS:
                raise
            except RuntimeError:
                await self.recorder._feed_closed()
            except TvFeedError as error:
                self.metrics.history_errors += 1
                logger.warning(
                    "%s %s: history request failed (%s); retrying in %.1f s",
                    self.sink.name,
                    key,
                    error,
                    backoff.delay,
                )
                await backoff.sleep()

    async def _apply_history(
        self, key: SeriesKey, bars: list[Bar], newest: int | None, gap: Gap | None
    ) -> None:
        if gap is not None:
            await self._record_gap(key, gap)
        size = self.recorder.batch_size
        for first in range(0, len(bars), size):
            chunk = bars[first : first + size]
            if not await self._store(chunk):
                return  # the store lost data meanwhile: the series was marked again
            self.metrics.history_bars += len(chunk)
        self.covered_until[key] = newest
        logger.info(
            "%s %s: %d bars from history; stored up to %s",
            self.sink.name,
            key,
            len(bars),
            self.checkpoint.get(key),
        )

    async def _fetch_since_checkpoint(
        self, key: SeriesKey
    ) -> tuple[list[Bar], int | None, Gap | None]:
        """(closed bars after the checkpoint, the server's newest open time, a gap or None)."""
        recorder = self.recorder
        checkpoint = self.checkpoint.get(key)
        if checkpoint is None and recorder.since is None:
            bars = await self._history(key, n_bars=recorder.initial_bars)
            if not bars:
                return [], None, None
            # The newest bar may still be forming: the live stream (or a seam fetch) brings it.
            return bars[:-1], bars[-1].timestamp, None
        probed = await self._history(key, n_bars=1)
        if not probed:
            return [], checkpoint, None
        newest = probed[-1].timestamp
        if checkpoint is None:
            assert recorder.since is not None
            start = _unix_seconds(recorder.since)
            if newest <= start:
                return [], None, None
            # Ending the range just after the newest bar spares the windows up to the wall
            # clock's now (a server whose time is not the wall clock's, like the simulator).
            since = await self._history(key, start=start, end=newest + _seconds(key))
            return [bar for bar in since if bar.timestamp < newest], newest, None
        if newest <= checkpoint:
            return [], checkpoint, None
        fetched = [
            bar
            for bar in await self._history(key, start=checkpoint, end=newest + _seconds(key))
            if bar.timestamp < newest
        ]
        gap = None
        if not any(bar.timestamp == checkpoint for bar in fetched):
            # The answer does not reach back to the last stored bar: the server's history does
            # not cover the hole, so bars in it may be missing for good.
            later = [bar.timestamp for bar in fetched if bar.timestamp > checkpoint]
            gap = Gap(after=checkpoint, before=later[0] if later else newest)
        return [bar for bar in fetched if bar.timestamp > checkpoint], newest, gap

    async def _history(
        self,
        key: SeriesKey,
        *,
        n_bars: int | None = None,
        start: int | None = None,
        end: int | None = None,
    ) -> list[Bar]:
        """Bars of ``key`` from the feed's history, the newest included even if forming."""
        recorder = self.recorder
        result = await recorder.feed.fetch_history(
            key.symbol,
            interval=key.interval,
            n_bars=n_bars,
            start=start,
            end=end,
            extended_session=recorder.extended_session,
            adjustment=recorder.adjustment,
            include_partial=True,
        )
        if result.cut_short:
            # The server went quiet while paging: the answer may stop short of the checkpoint,
            # which would look like a hole the server cannot fill. Ask again later instead.
            raise RequestTimeout(
                f"{key}: the server went quiet while paging; the history was cut short"
            )
        return _frame_bars(result.frame, key)

    async def _record_gap(self, key: SeriesKey, gap: Gap) -> None:
        recorded = RecordedGap(key, self.sink.name, gap.after, gap.before)
        logger.warning(
            "%s %s: the server cannot provide the bars between %d and %d; recorded as a gap",
            self.sink.name,
            key,
            gap.after,
            gap.before,
        )
        backoff = _Backoff(self.recorder.retry_initial, self.recorder.retry_max)
        while True:
            try:
                await self.sink.record_gap(key, gap)
                break
            except SinkError as error:
                self.metrics.write_errors += 1
                logger.warning("%s: could not record the gap (%s); retrying", self.sink.name, error)
                await backoff.sleep()
        self.metrics.gaps.append(recorded)
        if self.recorder.on_gap is not None:
            self.recorder.on_gap(recorded)

    async def _store(self, bars: list[Bar]) -> bool:
        """Write until acknowledged, then advance the checkpoints. False when a re-check of
        the store showed that it lost bars: those series were marked for a new sync and their
        bars left out; the others' were still written."""
        backoff = _Backoff(self.recorder.retry_initial, self.recorder.retry_max)
        complete = True
        while bars:
            if self.recheck:
                try:
                    lost = await self._recheck_checkpoints()
                except SinkError as error:
                    logger.warning("%s still failing (%s)", self.sink.name, error)
                    await backoff.sleep()
                    continue
                if lost:
                    complete = False
                    bars = [bar for bar in bars if SeriesKey.of(bar) not in lost]
                    if not bars:
                        break
            try:
                await self.sink.write(bars)
            except SinkError as error:
                self.metrics.write_errors += 1
                self.recheck = True
                logger.warning(
                    "%s: write of %d bars failed (%s); retrying in %.1f s",
                    self.sink.name,
                    len(bars),
                    error,
                    backoff.delay,
                )
                await backoff.sleep()
                continue
            for bar in bars:
                self.checkpoint[SeriesKey(bar.symbol, bar.interval)] = bar.timestamp
            self.metrics.bars_written += len(bars)
            self.metrics.batches += 1
            break
        return complete

    async def _recheck_checkpoints(self) -> set[SeriesKey]:
        """Read every series' checkpoint from the store again after a failure (a restarted
        store may have lost bars of any series); the series it lost bars of."""
        lost: set[SeriesKey] = set()
        for key in self.recorder.keys:
            stored = await self.sink.last_stored(key)
            believed = self.checkpoint.get(key)
            if believed is not None and (stored is None or stored < believed):
                logger.warning(
                    "%s %s: the store holds bars up to %s, not %s: re-synchronising",
                    self.sink.name,
                    key,
                    stored,
                    believed,
                )
                self.checkpoint[key] = stored
                lost.add(key)
                self.mark_for_sync(key)
        self.recheck = False
        return lost

    async def _write_forming(self) -> None:
        if not self.sink.supports_latest:
            self.forming.clear()
            return
        pending = []
        for key, bar in self.forming.items():
            stored = self.checkpoint.get(key)
            if stored is None or stored < bar.timestamp:
                pending.append(bar)
        self.forming.clear()
        if not pending:
            return
        try:
            await self.sink.write_latest(pending)
        except SinkError as error:
            self.metrics.forming_errors += 1
            logger.info("%s: forming write failed (%s); a newer one follows", self.sink.name, error)
            return
        self.metrics.forming_written += len(pending)

    async def load_checkpoints(self, keys: Sequence[SeriesKey]) -> None:
        """Read every series' checkpoint from the store (retried until it answers)."""
        backoff = _Backoff(self.recorder.retry_initial, self.recorder.retry_max)
        for key in keys:
            while True:
                try:
                    self.checkpoint[key] = await self.sink.last_stored(key)
                    break
                except SinkError as error:
                    logger.warning(
                        "%s: cannot read the checkpoint of %s (%s)", self.sink.name, key, error
                    )
                    await backoff.sleep()
            self.needs_sync[key] = None


def _unix_seconds(value: TimeLike) -> int:
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return int(moment.timestamp())
    if isinstance(value, date):
        return int(datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp())
    return int(value)


def _seconds(key: SeriesKey) -> int:
    return Interval.parse(key.interval).seconds


class Recorder:
    """Record the closed bars of some series into one or more sinks, exactly once.

    Args:
        feed: an open :class:`~tvfeed_async.TvFeed`, or a :class:`~tvfeed_async.FeedPool` to
            spread the series over several sockets.
        keys: the series: :class:`~tvfeed_async.sinks.SeriesKey` or ``(symbol, interval)``
            pairs (``("BINANCE:BTCUSDT", "1")``).
        sinks: one opened sink or several; each gets its own checkpoints, queue and writer.
        initial_bars: how many recent bars to fetch for a series its sink holds nothing of.
        since: instead, fetch from this time (datetime or unix seconds) for such a series.
        max_pending: live bars a sink may have waiting before its backlog is dropped and it
            re-synchronises through history.
        batch_size: most bars per write.
        forming: also write each series' forming bar with ``Sink.write_latest``.
        extended_session, adjustment: passed to the feed's history and stream requests.
        on_gap: called with each :class:`RecordedGap`.
        retry_initial, retry_max: back-off bounds (seconds) for failed writes and requests.
        sync_concurrency: history requests one sink runs at once while it synchronises
            several series (the feed's ``Limits.max_in_flight`` bounds them all).

    Example::

        async with TvFeed() as feed, PostgresSink("postgresql://localhost/market") as sink:
            await Recorder(feed, [("BINANCE:BTCUSDT", "1")], sink).run()
    """

    def __init__(
        self,
        feed: TvFeed | FeedPool,
        keys: Iterable[KeyLike],
        sinks: Sink | Sequence[Sink],
        *,
        initial_bars: int = 1000,
        since: TimeLike | None = None,
        max_pending: int = 10_000,
        batch_size: int = 1000,
        forming: bool = False,
        extended_session: bool = False,
        adjustment: str = "splits",
        on_gap: Callable[[RecordedGap], None] | None = None,
        retry_initial: float = 0.2,
        retry_max: float = 10.0,
        sync_concurrency: int = 8,
    ) -> None:
        self.feed = feed
        self.keys = list(dict.fromkeys(_series_key(key) for key in keys))
        if not self.keys:
            raise InvalidRequest("Recorder needs at least one (symbol, interval)")
        sink_list = [sinks] if isinstance(sinks, Sink) else list(sinks)
        if not sink_list:
            raise InvalidRequest("Recorder needs at least one sink")
        for name, value in (
            ("initial_bars", initial_bars),
            ("max_pending", max_pending),
            ("batch_size", batch_size),
            ("sync_concurrency", sync_concurrency),
        ):
            if isinstance(value, bool) or value <= 0:
                raise InvalidRequest(f"{name} must be a positive int, not {value!r}")
        self.initial_bars = initial_bars
        self.since = since
        self.max_pending = max_pending
        self.batch_size = batch_size
        self.forming = forming
        self.extended_session = extended_session
        self.adjustment = adjustment
        self.on_gap = on_gap
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.sync_concurrency = sync_concurrency
        self._lanes = [_Lane(self, sink) for sink in sink_list]
        self._scope: anyio.CancelScope | None = None
        self._lanes_loading = len(self._lanes)
        #: Set once every sink has read its checkpoints from its store.
        self.started = anyio.Event()

    def _lane_ready(self) -> None:
        self._lanes_loading -= 1
        if self._lanes_loading == 0:
            self.started.set()

    @property
    def metrics(self) -> list[SinkMetrics]:
        """One :class:`SinkMetrics` per sink, in the order the sinks were given."""
        return [lane.metrics for lane in self._lanes]

    def queue_depths(self) -> list[int]:
        """Live bars waiting for each sink right now."""
        return [len(lane.queue) for lane in self._lanes]

    async def run(self) -> None:
        """Record until cancelled, or until the feed closes.

        Raises:
            SymbolNotFound, EntitlementError, InvalidRequest, AuthError: retrying cannot
                help; the recorder stops.

        Everything else (lost connections, timeouts, failing stores, a stream that ended) is
        retried. Cancelling it stops every task of the recorder; a write that was under way
        is either acknowledged or will be written again by the next run (of a new
        ``Recorder``: one runs once).
        """
        if self._scope is not None:
            raise RuntimeError("a Recorder runs once; create a new one")
        try:
            async with anyio.create_task_group() as tasks:
                self._scope = tasks.cancel_scope
                for key in self.keys:
                    tasks.start_soon(self._pump, key, name=f"record {key}")
                for lane in self._lanes:
                    tasks.start_soon(lane.run, name=f"record to {lane.sink.name}")
        except BaseExceptionGroup as group:
            # Raise the library's own error, not the task group's wrapping of it.
            fatal, _ = group.split(FATAL_ERRORS)
            if fatal is not None:
                first = fatal.exceptions[0]
                while isinstance(first, BaseExceptionGroup):
                    first = first.exceptions[0]
                raise first from None
            raise

    async def _pump(self, key: SeriesKey) -> None:
        """Hand the live bars of ``key`` to every sink's queue; restart the stream if it ends
        with an error (the sinks then synchronise that series again)."""
        backoff = _Backoff(self.retry_initial, self.retry_max)
        lanes = self._lanes
        while True:
            stream = self.feed.stream(
                key.symbol,
                interval=key.interval,
                partial=self.forming,
                extended_session=self.extended_session,
                adjustment=self.adjustment,
                on_gap=lambda gap: self._stream_gap(key, gap),
            )
            try:
                async with contextlib.aclosing(stream) as bars:
                    async for bar in bars:
                        if bar.closed:
                            arrived = time.monotonic()
                            for lane in lanes:
                                lane.offer(bar, arrived)
                        else:
                            for lane in lanes:
                                lane.offer_forming(bar)
                        backoff.reset()
            except FATAL_ERRORS:
                raise
            except TvFeedError as error:
                logger.warning("%s: the live stream ended (%s); restarting it", key, error)
                for lane in lanes:
                    lane.mark_for_sync(key)
                await backoff.sleep()
                continue
            except RuntimeError:
                await self._feed_closed()  # the feed refuses new streams once it is closed
            # The stream ends without an error only when the feed closes.
            await self._feed_closed()

    async def _feed_closed(self) -> NoReturn:
        """The feed was closed (its calls raise RuntimeError, its streams end): stop the
        recorder, so that :meth:`run` returns. Never returns: the caller is cancelled."""
        if self._scope is not None and not self._scope.cancel_called:
            logger.info("the feed closed; the recorder stops")
            self._scope.cancel()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")  # pragma: no cover (cancelled in sleep_forever)

    def _stream_gap(self, key: SeriesKey, gap: Gap) -> None:
        # The feed could not backfill an outage; each sink re-synchronises from its own
        # checkpoint, and that synchronisation records what history cannot provide.
        logger.warning("%s: the live stream reports a gap (%d..%d)", key, gap.after, gap.before)
        for lane in self._lanes:
            lane.mark_for_sync(key)
