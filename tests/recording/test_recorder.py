"""The Recorder in this process, against the simulator's virtual clock and real stores."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import anyio
import pytest

from tvfeed_async import RetryPolicy, Timeouts, TvFeed
from tvfeed_async.recorder import RecordedGap, Recorder
from tvfeed_async.sinks import ParquetSink, SeriesKey
from tvfeed_async.testing import TvSimulator

from .conftest import Store
from .helpers import MINUTE, assert_exactly_truth, truth, wait_for_store
from .stores import Row, parquet_rows

BTC = SeriesKey("BINANCE:BTCUSDT", "1")
ETH = SeriesKey("BINANCE:ETHUSDT", "1")
KEYS = [BTC, ETH]
FAST = {
    "timeouts": Timeouts(request=30.0, idle=30.0),
    "retry": RetryPolicy(initial=0.01, maximum=0.05, max_attempts=50),
    "session_cache": False,
    "use_env": False,
}


@contextlib.asynccontextmanager
async def recording(recorder: Recorder) -> AsyncIterator[Recorder]:
    """Run ``recorder`` in the background for the body of the block."""
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(recorder.run)
        with anyio.fail_after(30):
            await recorder.started.wait()
        yield recorder
        tasks.cancel_scope.cancel()


def first_bars(sim: TvSimulator, keys: list[SeriesKey], initial_bars: int) -> dict[SeriesKey, int]:
    """Where an empty store starts: the newest ``initial_bars`` bars include the forming one,
    which the recorder leaves to the live stream, so the first is ``initial_bars - 1`` back."""
    return {
        key: int(sim.truth_rows(key.symbol, key.interval, n_bars=initial_bars - 1)[0][0])
        for key in keys
    }


async def advance(sim: TvSimulator, minutes: int, step: int = 3) -> None:
    for _ in range(0, minutes, step):
        await sim.clock.advance(step * MINUTE)
        await anyio.sleep(0.02)


async def test_backfill_then_live_exactly_once(tv_simulator: TvSimulator, store: Store) -> None:
    sim = tv_simulator
    first = first_bars(sim, KEYS, 50)
    async with TvFeed(endpoints=sim.endpoints, **FAST) as feed:  # type: ignore[arg-type]
        recorder = Recorder(feed, KEYS, store.sink, initial_bars=50)
        async with recording(recorder):
            await wait_for_store(store.read, sim, KEYS)  # the backfill, before time moves
            await advance(sim, 30)
            held = await wait_for_store(store.read, sim, KEYS)
    assert_exactly_truth(held, sim, first)
    for key in KEYS:
        assert len(held[key]) == 49 + 30
    metrics = recorder.metrics[0]
    assert metrics.syncs == 2
    assert metrics.resyncs == metrics.overflows == metrics.write_errors == 0
    assert metrics.live_bars + metrics.history_bars == metrics.bars_written == 2 * (49 + 30)
    assert metrics.live_bars >= 2 * 29  # the live stream wrote them, not repeated syncs


async def test_a_new_recorder_resumes_from_the_store(
    tv_simulator: TvSimulator, store: Store
) -> None:
    sim = tv_simulator
    first = first_bars(sim, KEYS, 20)
    async with (
        TvFeed(endpoints=sim.endpoints, **FAST) as feed,  # type: ignore[arg-type]
        recording(Recorder(feed, KEYS, store.sink, initial_bars=20)),
    ):
        await wait_for_store(store.read, sim, KEYS)
        await advance(sim, 9)
        await wait_for_store(store.read, sim, KEYS)
    await sim.clock.advance(45 * MINUTE)  # nobody records for 45 minutes
    async with store.new_sink() as sink, TvFeed(endpoints=sim.endpoints, **FAST) as feed:  # type: ignore[arg-type]
        recorder = Recorder(feed, KEYS, sink, initial_bars=20)
        async with recording(recorder):
            held = await wait_for_store(store.read, sim, KEYS)
            await advance(sim, 6)
            held = await wait_for_store(store.read, sim, KEYS)
    assert_exactly_truth(held, sim, first)
    assert recorder.metrics[0].gaps == []
    assert recorder.metrics[0].history_bars >= 2 * 44  # the 45 minutes came from history


async def test_a_gap_the_server_cannot_fill_is_recorded(tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with TvSimulator(history_bars=300, http_port=None) as sim:
        oldest = int(sim.truth_rows(BTC.symbol, "1")[0][0])
        # A bar stored long ago, older than anything the server still has.
        stale = oldest - 1000 * MINUTE
        from tvfeed_async import Bar

        gaps: list[RecordedGap] = []

        async def read(key: SeriesKey) -> list[Row]:
            return parquet_rows(tmp_path, key)

        async with ParquetSink(tmp_path) as sink:
            await sink.write([Bar(stale, 1.0, 1.0, 1.0, 1.0, 1.0, BTC.symbol, "1", True)])
            async with TvFeed(endpoints=sim.endpoints, **FAST) as feed:  # type: ignore[arg-type]
                recorder = Recorder(feed, [BTC], sink, on_gap=gaps.append)
                async with recording(recorder):
                    held = await wait_for_store(read, sim, [BTC])
                    await advance(sim, 3)
                    held = await wait_for_store(read, sim, [BTC])
        rows = held[BTC]
        assert rows[0][0] == stale
        assert rows[1:] == truth(sim, BTC, oldest)
        assert gaps == [RecordedGap(BTC, sink.name, stale, oldest)]
        assert recorder.metrics[0].gaps == gaps
        assert (tmp_path / "gaps.ndjson").read_text().count("\n") == 1


@pytest.mark.parametrize("bad", [("NOPE:NOTHING", "1")])
async def test_an_unknown_symbol_stops_the_recorder_with_the_feed_error(
    tv_simulator: TvSimulator, tmp_path, bad: tuple[str, str]
) -> None:  # type: ignore[no-untyped-def]
    from tvfeed_async import SymbolNotFound

    async with (
        ParquetSink(tmp_path) as sink,
        TvFeed(endpoints=tv_simulator.endpoints, **FAST) as feed,
    ):  # type: ignore[arg-type]
        with anyio.fail_after(30), pytest.raises(SymbolNotFound):
            await Recorder(feed, [BTC, bad], sink).run()


async def test_an_outage_longer_than_the_streams_backfill_is_filled_from_history(
    tv_simulator: TvSimulator, store: Store
) -> None:
    """The live stream can only backfill ``max_backfill_bars`` after a reconnect and reports
    the rest as a gap; the recorder then synchronises from its checkpoint through ranged
    history, which reaches further, so the store still ends up complete."""
    from tvfeed_async import Limits

    sim = tv_simulator
    first = first_bars(sim, KEYS, 20)
    options = dict(FAST, limits=Limits(max_backfill_bars=50))
    async with TvFeed(endpoints=sim.endpoints, **options) as feed:  # type: ignore[arg-type]
        recorder = Recorder(feed, KEYS, store.sink, initial_bars=20)
        async with recording(recorder):
            await wait_for_store(store.read, sim, KEYS)
            sim.faults.refuse_upgrades(1_000)
            assert sim.faults.drop_open() == 1
            await sim.clock.advance(300 * MINUTE)  # 300 bars: far past the 50 allowed
            sim.faults.refuse_upgrades(0)
            held = await wait_for_store(store.read, sim, KEYS)
            await advance(sim, 3)
            held = await wait_for_store(store.read, sim, KEYS)
    assert_exactly_truth(held, sim, first)
    metrics = recorder.metrics[0]
    assert metrics.resyncs >= len(KEYS)
    assert metrics.gaps == []


async def test_a_stream_that_joins_late_is_preceded_by_the_bars_it_missed(
    tv_simulator: TvSimulator, store: Store
) -> None:
    """The seam: history said the newest bar was F, but the first closed bar the live stream
    delivers is later (its subscription became live after more bars had closed). The bars in
    between come from a history request before that live bar is written. (White-box: the
    stream side is played by handing the lane the bar a late stream would deliver.)"""
    import time

    from tvfeed_async import Bar

    sim = tv_simulator
    first = first_bars(sim, [BTC], 10)
    async with TvFeed(endpoints=sim.endpoints, **FAST) as feed:  # type: ignore[arg-type]
        recorder = Recorder(feed, [BTC], store.sink, initial_bars=10)
        lane = recorder._lanes[0]
        await lane.load_checkpoints(recorder.keys)
        await lane._synchronise([BTC])
        synced = await store.read(BTC)
        assert len(synced) == 9
        await sim.clock.advance(12 * MINUTE)  # twelve bars close that no stream delivers
        newest = sim.truth_rows(BTC.symbol, "1", n_bars=1)[0]
        lane.offer(Bar(*newest, symbol=BTC.symbol, interval="1", closed=True), time.monotonic())
        await lane._write_live([lane.queue.popleft()])
    held = {BTC: await store.read(BTC)}
    assert_exactly_truth(held, sim, first)
    assert len(held[BTC]) == 9 + 12
    assert lane.metrics.seam_fetches == 1
    assert lane.metrics.live_bars == 1


async def test_forming_bars_go_to_the_latest_store_only(
    tv_simulator: TvSimulator, postgres_dsn: str, redis_url: str
) -> None:
    import asyncpg
    import redis.asyncio as redis

    from tvfeed_async.sinks import PostgresSink, RedisSink

    from .stores import postgres_rows, redis_rows

    sim = tv_simulator
    first = first_bars(sim, [BTC], 10)
    async with (
        PostgresSink(postgres_dsn) as postgres,
        RedisSink(redis_url) as redis_sink,
        TvFeed(endpoints=sim.endpoints, **FAST) as feed,  # type: ignore[arg-type]
    ):
        recorder = Recorder(feed, [BTC], [postgres, redis_sink], initial_bars=10, forming=True)
        async with recording(recorder):

            async def read(key: SeriesKey) -> list[Row]:
                return await postgres_rows(postgres_dsn, key)

            await wait_for_store(read, sim, [BTC])
            await sim.clock.advance(2 * MINUTE + 40)  # two bars close; the third is forming
            forming = sim.forming_bar(BTC.symbol, "1")
            assert forming is not None
            with anyio.fail_after(20):
                while True:
                    connection = await asyncpg.connect(postgres_dsn)
                    try:
                        latest = await connection.fetchrow(
                            "SELECT extract(epoch FROM time)::bigint AS t, close "
                            "FROM tv_bars_latest WHERE symbol = $1",
                            BTC.symbol,
                        )
                    finally:
                        await connection.close()
                    if latest is not None and (latest["t"], latest["close"]) == (
                        forming.timestamp,
                        forming.close,
                    ):
                        break
                    await anyio.sleep(0.05)
            held = await wait_for_store(read, sim, [BTC])
            client = redis.Redis.from_url(redis_url, decode_responses=True)
            try:
                with anyio.fail_after(20):
                    while True:
                        stored = await client.hget("tv:latest:BINANCE:BTCUSDT:1", "time")
                        if stored == str(forming.timestamp * 1000):
                            break
                        await anyio.sleep(0.05)
            finally:
                await client.aclose()
    assert_exactly_truth(held, sim, first)
    assert_exactly_truth({BTC: await redis_rows(redis_url, BTC)}, sim, first)
    assert forming.timestamp not in {row[0] for row in held[BTC]}
    assert all(metrics.forming_written >= 1 for metrics in recorder.metrics)


@pytest.mark.parametrize("session", ["regular", "extended"])
async def test_a_stock_across_the_market_open(
    tv_simulator: TvSimulator, store: Store, session: str
) -> None:
    """NASDAQ:AAPL at 09:00 New York: closed in the regular session (the newest bar is
    yesterday's last, already closed) and trading in the extended one. An hour later the
    store holds exactly the truth of that session, across the overnight hole in the grid."""
    sim = tv_simulator
    aapl = SeriesKey("NASDAQ:AAPL", "1")
    first = {aapl: int(sim.truth_rows(aapl.symbol, "1", session=session, n_bars=19)[0][0])}
    extended = session == "extended"
    if not extended:
        # The newest regular bar is yesterday's last. The backfill leaves it to the live
        # stream, which (like every stream of the feed) closes it when the day's first bar
        # arrives; so the store starts 20 bars back, not 19.
        first = {aapl: int(sim.truth_rows(aapl.symbol, "1", session=session, n_bars=20)[0][0])}
    async with TvFeed(endpoints=sim.endpoints, **FAST) as feed:  # type: ignore[arg-type]
        recorder = Recorder(feed, [aapl], store.sink, initial_bars=20, extended_session=extended)
        async with recording(recorder):
            with anyio.fail_after(30):
                while True:
                    if recorder.metrics[0].syncs >= 1 and await store.read(aapl):
                        break
                    await anyio.sleep(0.05)
            await advance(sim, 60)
            expected = sim.truth_rows(aapl.symbol, "1", session=session, start=first[aapl])
            with anyio.fail_after(30):
                while True:
                    held = await store.read(aapl)
                    if held and held[-1][0] >= expected[-1][0]:
                        break
                    await anyio.sleep(0.05)
    assert held == [tuple(row) for row in expected]


async def test_closing_the_feed_ends_the_recorder(tv_simulator: TvSimulator, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sim = tv_simulator
    async with ParquetSink(tmp_path) as sink:
        feed = TvFeed(endpoints=sim.endpoints, **FAST)  # type: ignore[arg-type]
        async with feed:
            recorder = Recorder(feed, KEYS, sink, initial_bars=5)
            # The task group ends only once run() has returned; it must not raise either.
            with anyio.fail_after(30):
                async with anyio.create_task_group() as tasks:
                    tasks.start_soon(recorder.run)
                    while True:
                        if recorder.metrics[0].syncs == len(KEYS):
                            break
                        await anyio.sleep(0.02)
                    await feed.aclose()  # mid-run
    assert recorder.metrics[0].bars_written == 2 * 4


async def test_an_empty_store_starts_at_since(tv_simulator: TvSimulator, store: Store) -> None:
    sim = tv_simulator
    since = int(sim.truth_rows(BTC.symbol, "1", n_bars=90)[0][0])  # 90 closed bars ago
    async with TvFeed(endpoints=sim.endpoints, **FAST) as feed:  # type: ignore[arg-type]
        recorder = Recorder(feed, [BTC], store.sink, since=since)
        async with recording(recorder):
            await wait_for_store(store.read, sim, [BTC])
            await advance(sim, 6)
            held = await wait_for_store(store.read, sim, [BTC])
    assert_exactly_truth(held, sim, {BTC: since})
    assert len(held[BTC]) == 90 + 6


async def test_a_recorder_runs_once(tv_simulator: TvSimulator, tmp_path) -> None:  # type: ignore[no-untyped-def]
    async with (
        ParquetSink(tmp_path) as sink,
        TvFeed(endpoints=tv_simulator.endpoints, **FAST) as feed,  # type: ignore[arg-type]
    ):
        recorder = Recorder(feed, [BTC], sink, initial_bars=5)
        async with recording(recorder):
            pass
        with pytest.raises(RuntimeError, match="runs once"):
            await recorder.run()


def test_recorder_arguments_are_checked() -> None:
    from tvfeed_async import InvalidRequest

    feed = TvFeed()
    sink = ParquetSink("unused")
    with pytest.raises(InvalidRequest, match="at least one"):
        Recorder(feed, [], sink)
    with pytest.raises(InvalidRequest, match="sink"):
        Recorder(feed, [BTC], [])
    with pytest.raises(InvalidRequest, match="max_pending"):
        Recorder(feed, [BTC], sink, max_pending=0)
    assert Recorder(feed, [("BINANCE:BTCUSDT", "1H")], sink).keys == [
        SeriesKey("BINANCE:BTCUSDT", "60")
    ]


async def test_history_cut_short_is_asked_again_not_recorded_as_a_gap(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A server that leaves the first range window unanswered (silent paging): the cut-short
    answer is retried, and no gap is recorded for a hole the server can fill."""
    from typing import Any

    from tvfeed_async import Bar

    from ..scripted import NOW, Conn, ScriptedServer, completed, resolved, series_update

    newest = NOW // MINUTE * MINUTE
    bars = [(newest - MINUTE * k, 100.0 + k) for k in range(2000)][::-1]
    checkpoint = newest - 500 * MINUTE
    silent = {"left": 1}

    async def handler(conn: Conn, method: str, params: list[Any]) -> None:
        if method == "resolve_symbol":
            await conn.send(resolved(params[0]))
        elif method == "create_series":
            cs, turnaround, count = params[0], params[2], params[5]
            await conn.send(
                series_update("timescale_update", cs, bars[-count:], turnaround),
                completed(cs, turnaround),
            )
        elif method == "modify_series":
            if silent["left"]:
                silent["left"] -= 1
                return  # no answer at all
            cs, turnaround = params[0], params[2]
            start, end = (int(x) for x in params[5][2:].split(":"))
            window = [bar for bar in bars if start <= bar[0] < end]
            await conn.send(
                series_update("timescale_update", cs, window, turnaround),
                completed(cs, turnaround),
            )

    gaps: list[RecordedGap] = []
    options = {**FAST, "timeouts": Timeouts(request=30.0, page=0.3, idle=30.0)}
    async with ScriptedServer(handler) as server, ParquetSink(tmp_path) as sink:
        stored = Bar(checkpoint, 1.0, 1.0, 1.0, 1.0, 1.0, BTC.symbol, "1", True)
        await sink.write([stored])
        async with TvFeed(endpoints=server.endpoints, **options) as feed:  # type: ignore[arg-type]
            recorder = Recorder(feed, [BTC], sink, on_gap=gaps.append)
            async with recording(recorder):
                with anyio.fail_after(20):
                    while len(parquet_rows(tmp_path, BTC)) < 500:  # noqa: ASYNC110
                        await anyio.sleep(0.05)
    rows = parquet_rows(tmp_path, BTC)
    assert [row[0] for row in rows] == list(range(checkpoint, newest, MINUTE))
    assert gaps == []
    assert recorder.metrics[0].history_errors >= 1  # the cut-short answer, asked again
