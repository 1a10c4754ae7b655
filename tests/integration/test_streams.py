"""Live streams against the simulator's virtual clock, checked bar for bar with its truth."""

from __future__ import annotations

import contextlib
import random

import anyio
import polars as pl
import pytest

from tvfeed_async import (
    Bar,
    ConsumerTooSlow,
    EntitlementError,
    Gap,
    GapError,
    Limits,
    SymbolNotFound,
    Timeouts,
)

from ..support.feeds import open_feed
from ..support.streams import FAST, MINUTE, as_tuples, collect_closed, first_forming, truth_bars


async def test_closed_bars_exactly_once_in_order(tv_simulator):
    async with open_feed(tv_simulator) as feed:
        stream = feed.stream("BINANCE:BTCUSDT", interval="1", partial=True)
        async with contextlib.aclosing(stream):
            forming = await first_forming(stream)
            await tv_simulator.clock.advance(30 * MINUTE)
            closed = await collect_closed(stream, 30)
    start = forming.timestamp
    expected = truth_bars(tv_simulator, "BINANCE:BTCUSDT", "1", start, start + 30 * MINUTE)
    assert len(expected) == 30
    assert as_tuples(closed) == expected
    assert all(
        bar.closed and bar.symbol == "BINANCE:BTCUSDT" and bar.interval == "1" for bar in closed
    )


async def test_partial_stream_sees_revisions_of_the_forming_bar(tv_simulator):
    async with open_feed(tv_simulator) as feed:
        stream = feed.stream("BINANCE:ETHUSDT", interval="5", partial=True)
        async with contextlib.aclosing(stream):
            forming = await first_forming(stream)
            revisions: list[Bar] = []
            for _ in range(4):  # a consumer that keeps up sees the revisions one by one
                await tv_simulator.clock.advance(MINUTE)
                expected = tv_simulator.forming_bar("BINANCE:ETHUSDT", "5")
                assert expected is not None
                if expected.timestamp != forming.timestamp or expected.same_values(
                    revisions[-1] if revisions else forming
                ):
                    continue
                with anyio.fail_after(10):
                    revisions.append(await anext(stream))
                assert revisions[-1].same_values(expected)
            await tv_simulator.clock.advance(5 * MINUTE)
            closed = await collect_closed(stream, 1)
    assert revisions, "forming updates of the first bar were delivered"
    assert all(not bar.closed and bar.timestamp == forming.timestamp for bar in revisions)
    assert closed[0].timestamp == forming.timestamp
    assert as_tuples(closed) == truth_bars(
        tv_simulator, "BINANCE:ETHUSDT", "5", forming.timestamp, forming.timestamp + 1
    )


async def test_shared_subscription_and_cleanup(tv_simulator):
    async with open_feed(tv_simulator) as feed:
        first = feed.stream("BINANCE:BTCUSDT", interval="1", partial=True)
        second = feed.stream("BINANCE:BTCUSDT", interval="1", partial=True)
        await first_forming(first)
        await first_forming(second)
        assert feed.stream_count == 1
        assert tv_simulator.stats.methods["create_series"] == 1
        await first.aclose()
        await tv_simulator.clock.advance(3 * MINUTE)
        closed = await collect_closed(second, 3)
        assert len(closed) == 3
        await second.aclose()
        with anyio.fail_after(10):
            while tv_simulator.stats.methods["chart_delete_session"] < 1:  # noqa: ASYNC110 (a server counter has no event)
                await anyio.sleep(0.01)
        assert feed.stream_count == 0
        assert tv_simulator.stats.methods["remove_series"] == 1


async def test_many_streams_on_one_socket_each_get_their_own_bars(lively_simulator):
    tv_simulator = lively_simulator
    symbols = [f"BINANCE:SIM{number:03d}USDT" for number in range(1, 61)]
    keys = [(symbol, interval) for symbol in symbols for interval in ("1", "3", "5", "15")][:220]
    received: dict[tuple[str, str], list[Bar]] = {key: [] for key in keys}
    starts: dict[tuple[str, str], int] = {}
    ready = anyio.Event()
    minutes = 45
    # lively_simulator allows 1,000 chart sessions per socket; the client's default is 200.
    async with open_feed(tv_simulator, limits=Limits(max_chart_sessions=1_000)) as feed:

        async def consume(symbol: str, interval: str) -> None:
            stream = feed.stream(symbol, interval=interval, partial=True)
            async with contextlib.aclosing(stream):
                starts[(symbol, interval)] = (await first_forming(stream)).timestamp
                if len(starts) == len(keys):
                    ready.set()
                async for bar in stream:
                    assert (bar.symbol, bar.interval) == (symbol, interval)
                    if not bar.closed:
                        continue
                    received[(symbol, interval)].append(bar)
                    end = bar.timestamp + int(interval) * MINUTE
                    if end >= starts[(symbol, interval)] + minutes * MINUTE:
                        return

        async with anyio.create_task_group() as task_group:
            for symbol, interval in keys:
                task_group.start_soon(consume, symbol, interval)
            with anyio.fail_after(60):
                await ready.wait()
            assert feed.connections_opened == 1
            assert feed.stream_count == len(keys)
            await tv_simulator.clock.advance(minutes * MINUTE + 1)
    assert tv_simulator.stats.connections_opened == 1
    for (symbol, interval), bars in received.items():
        start = starts[(symbol, interval)]
        expected = truth_bars(tv_simulator, symbol, interval, start, start + minutes * MINUTE)
        assert as_tuples(bars) == expected, (symbol, interval)


async def test_failing_symbol_does_not_disturb_other_streams(tv_simulator):
    async with open_feed(tv_simulator) as feed:
        good = feed.stream("BINANCE:BTCUSDT", interval="1", partial=True)
        async with contextlib.aclosing(good):
            start = (await first_forming(good)).timestamp
            with pytest.raises(SymbolNotFound):
                async for _ in feed.stream("NASDAQ:NOSUCHTHING", interval="1"):
                    pass
            with pytest.raises(EntitlementError):
                async for _ in feed.stream("BINANCE:BTCUSDT", interval="5S"):
                    pass
            await tv_simulator.clock.advance(5 * MINUTE)
            closed = await collect_closed(good, 5)
    assert as_tuples(closed) == truth_bars(
        tv_simulator, "BINANCE:BTCUSDT", "1", start, start + 5 * MINUTE
    )


async def test_slow_consumer_is_ended_without_stalling_others(tv_simulator):
    async with open_feed(tv_simulator) as feed:
        slow = feed.stream("BINANCE:BTCUSDT", interval="1", partial=True, queue_size=5)
        fast = feed.stream("BINANCE:BTCUSDT", interval="1", partial=True)
        async with contextlib.aclosing(slow), contextlib.aclosing(fast):
            await first_forming(slow)
            start = (await first_forming(fast)).timestamp
            await tv_simulator.clock.advance(20 * MINUTE)
            closed = await collect_closed(fast, 20)
            assert as_tuples(closed) == truth_bars(
                tv_simulator, "BINANCE:BTCUSDT", "1", start, start + 20 * MINUTE
            )
            got_slow: list[Bar] = []

            async def drain_slow() -> None:
                async for bar in slow:
                    got_slow.append(bar)

            with pytest.raises(ConsumerTooSlow):
                await drain_slow()
    # Everything queued before the overflow is still delivered, in order, before the error.
    closed_slow = [bar for bar in got_slow if bar.closed]
    assert len(closed_slow) == 5
    assert as_tuples(closed_slow) == as_tuples(closed[:5])


async def test_reconnect_backfills_bars_closed_during_the_outage(tv_simulator):
    async with open_feed(tv_simulator, **FAST) as feed:
        stream = feed.stream("BINANCE:BTCUSDT", interval="1", partial=True)
        async with contextlib.aclosing(stream):
            start = (await first_forming(stream)).timestamp
            await tv_simulator.clock.advance(5 * MINUTE)
            first = await collect_closed(stream, 5)
            tv_simulator.faults.refuse_upgrades(2)  # the first reconnects are refused (HTTP 429)
            assert tv_simulator.faults.drop_open() == 1
            await tv_simulator.clock.advance(40 * MINUTE)  # bars close while we are away
            rest = await collect_closed(stream, 40)
        assert feed.connections_opened == 2
    expected = truth_bars(tv_simulator, "BINANCE:BTCUSDT", "1", start, start + 45 * MINUTE)
    assert as_tuples(first + rest) == expected


async def test_stall_is_detected_and_replaced(lively_simulator):
    tv_simulator = lively_simulator
    options = dict(FAST, timeouts=Timeouts(request=30.0, idle=0.5))
    async with open_feed(tv_simulator, **options) as feed:
        stream = feed.stream("BINANCE:ETHUSDT", interval="1", partial=True)
        async with contextlib.aclosing(stream):
            start = (await first_forming(stream)).timestamp
            assert tv_simulator.faults.stall_open() == 1
            await tv_simulator.clock.advance(10 * MINUTE)
            closed = await collect_closed(stream, 10)
        assert feed.connections_opened >= 2
    assert as_tuples(closed) == truth_bars(
        tv_simulator, "BINANCE:ETHUSDT", "1", start, start + 10 * MINUTE
    )


async def test_token_expiry_and_server_restart_lose_nothing(tv_simulator):
    async with open_feed(tv_simulator, **FAST) as feed:
        stream = feed.stream("BINANCE:BTCUSDT", interval="1", partial=True)
        async with contextlib.aclosing(stream):
            start = (await first_forming(stream)).timestamp
            await tv_simulator.clock.advance(3 * MINUTE)
            assert await tv_simulator.restart() == 1
            await tv_simulator.clock.advance(3 * MINUTE)
            tv_simulator.faults.max_sessions_rate_open()
            await tv_simulator.clock.advance(3 * MINUTE)
            closed = await collect_closed(stream, 9)
    assert as_tuples(closed) == truth_bars(
        tv_simulator, "BINANCE:BTCUSDT", "1", start, start + 9 * MINUTE
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_random_faults_exactly_once(lively_simulator, seed):
    """A seeded random schedule of drops, stalls and server restarts."""
    tv_simulator = lively_simulator
    rng = random.Random(seed)
    options = dict(FAST, timeouts=Timeouts(request=30.0, idle=0.3))
    minutes = 0
    async with open_feed(tv_simulator, **options) as feed:
        stream = feed.stream("BINANCE:SIM007USDT", interval="1", partial=True)
        async with contextlib.aclosing(stream):
            start = (await first_forming(stream)).timestamp
            closed: list[Bar] = []

            async def consume() -> None:
                async for bar in stream:
                    if bar.closed:
                        closed.append(bar)

            async with anyio.create_task_group() as task_group:
                task_group.start_soon(consume)
                for _ in range(12):
                    action = rng.choice(["drop", "stall", "restart", "none", "none"])
                    step = rng.randint(1, 30)
                    if action == "drop":
                        tv_simulator.faults.drop_open()
                    elif action == "stall":
                        tv_simulator.faults.stall_open()
                    elif action == "restart":
                        await tv_simulator.restart()
                    await tv_simulator.clock.advance(step * MINUTE)
                    minutes += step
                    await anyio.sleep(rng.random() * 0.2)
                with anyio.fail_after(30):
                    while len(closed) < minutes:  # noqa: ASYNC110 (polling the consumer's list)
                        await anyio.sleep(0.02)
                task_group.cancel_scope.cancel()
    expected = truth_bars(tv_simulator, "BINANCE:SIM007USDT", "1", start, start + minutes * MINUTE)
    assert as_tuples(closed) == expected


async def test_gap_is_reported_not_skipped(tv_simulator):
    """An outage longer than the backfill allowance is reported, never skipped."""
    from tvfeed_async import Limits

    sim = tv_simulator
    gaps: list[Gap] = []
    async with open_feed(sim, limits=Limits(max_backfill_bars=50), **FAST) as feed:
        raising = feed.stream("BINANCE:BTCUSDT", interval="1", partial=True)
        noting = feed.stream("BINANCE:BTCUSDT", interval="5", partial=True, on_gap=gaps.append)
        async with contextlib.aclosing(raising), contextlib.aclosing(noting):
            await first_forming(raising)
            await first_forming(noting)
            sim.faults.refuse_upgrades(1_000)
            assert sim.faults.drop_open() == 1
            await sim.clock.advance(600 * MINUTE)  # 600 one-minute bars, 120 five-minute bars
            sim.faults.refuse_upgrades(0)
            delivered: list[Bar] = []

            async def drain_raising() -> None:
                async for bar in raising:
                    delivered.append(bar)

            with anyio.fail_after(30), pytest.raises(GapError) as caught:
                await drain_raising()
            after_gap = await collect_closed(noting, 1)
    assert caught.value.resumed_at > caught.value.last_closed
    assert len(gaps) == 1
    assert gaps[0].before > gaps[0].after
    assert after_gap[0].timestamp >= gaps[0].before


async def test_stream_frames_prefills_and_rolls(tv_simulator):
    async with open_feed(tv_simulator) as feed:
        frames = feed.stream_frames("BINANCE:BTCUSDT", interval="1", window=100)
        async with contextlib.aclosing(frames):
            with anyio.fail_after(20):
                first = await anext(frames)
            assert first.height == 100
            await tv_simulator.clock.advance(3 * MINUTE)
            with anyio.fail_after(20):
                later = [await anext(frames) for _ in range(3)]
    last = later[-1]
    assert last.height == 100
    end = int(last.get_column("time").dt.epoch("s")[-1]) + 1
    truth = (
        tv_simulator.truth("BINANCE:BTCUSDT", "1")
        .filter(pl.col("time").dt.epoch("s") < end)
        .tail(100)
    )
    columns = ["time", "symbol", "open", "high", "low", "close", "volume"]
    assert last.select(columns).equals(truth.select(columns))


async def test_stream_many_merges_and_labels(tv_simulator):
    async with open_feed(tv_simulator) as feed:
        merged = feed.stream_many(
            [("BTCUSDT", "BINANCE", "1"), ("BINANCE:ETHUSDT", "5")], partial=True
        )
        async with contextlib.aclosing(merged):
            seen: set[tuple[str, str]] = set()
            with anyio.fail_after(20):
                while len(seen) < 2:
                    bar = await anext(merged)
                    seen.add((bar.symbol, bar.interval))
            await tv_simulator.clock.advance(10 * MINUTE)
            closed = await collect_closed(merged, 12)
    assert seen == {("BINANCE:BTCUSDT", "1"), ("BINANCE:ETHUSDT", "5")}
    assert sum(bar.interval == "1" for bar in closed) == 10
    assert sum(bar.interval == "5" for bar in closed) == 2


async def test_closing_the_feed_ends_streams(tv_simulator):
    ended = anyio.Event()
    async with open_feed(tv_simulator) as feed:

        async def consume() -> None:
            async for _ in feed.stream("BINANCE:BTCUSDT", interval="1"):
                pass
            ended.set()

        async with anyio.create_task_group() as task_group:
            task_group.start_soon(consume)
            with anyio.fail_after(10):
                while feed.stream_count == 0:  # noqa: ASYNC110 (no event for subscription start)
                    await anyio.sleep(0.01)
            await feed.aclose()
            with anyio.fail_after(5):
                await ended.wait()


async def test_backfill_larger_than_the_queue_is_paced_not_fatal(tv_simulator):
    """An outage can close more bars than a consumer's queue holds; a consumer that keeps up
    receives them all (the backfill waits for it) instead of being ended as too slow."""
    async with open_feed(tv_simulator, **FAST) as feed:
        stream = feed.stream("BINANCE:BTCUSDT", interval="1", partial=True, queue_size=10)
        async with contextlib.aclosing(stream):
            start = (await first_forming(stream)).timestamp
            tv_simulator.faults.refuse_upgrades(3)
            assert tv_simulator.faults.drop_open() == 1
            await tv_simulator.clock.advance(120 * MINUTE)
            closed = await collect_closed(stream, 120)
    assert as_tuples(closed) == truth_bars(
        tv_simulator, "BINANCE:BTCUSDT", "1", start, start + 120 * MINUTE
    )


async def test_reconnect_during_backfill_loses_nothing(tv_simulator):
    async with open_feed(tv_simulator, **FAST) as feed:
        stream = feed.stream("BINANCE:ETHUSDT", interval="1", partial=True)
        async with contextlib.aclosing(stream):
            start = (await first_forming(stream)).timestamp
            await tv_simulator.clock.advance(2 * MINUTE)
            # The next connection dies after its hello, symbol_resolved and series_loading:
            # in the middle of the backfill.
            tv_simulator.faults.next_connection(drop_after_packets=3)
            assert tv_simulator.faults.drop_open() == 1
            await tv_simulator.clock.advance(30 * MINUTE)
            closed = await collect_closed(stream, 32)
        assert feed.connections_opened == 3
    assert as_tuples(closed) == truth_bars(
        tv_simulator, "BINANCE:ETHUSDT", "1", start, start + 32 * MINUTE
    )
