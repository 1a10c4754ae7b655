"""The stores fail under a running recorder: PostgreSQL restarted (fast stop or SIGKILL),
Redis killed and restarted, Redis stalled with SIGSTOP. Afterwards every store holds exactly
the simulator's truth; while one store is stalled the other sink and the other streams go on
and the stalled sink's backlog stays within its bound."""

from __future__ import annotations

import contextlib

import anyio
import pytest

from tvfeed_async import Bar, TvFeed
from tvfeed_async.recorder import Recorder
from tvfeed_async.sinks import PostgresSink, RedisSink, SeriesKey
from tvfeed_async.testing import TvSimulator

from .helpers import MINUTE, assert_exactly_truth, wait_for_store
from .servers import PostgresServer, RedisServer
from .stores import Row, postgres_rows, redis_rows
from .test_recorder import FAST, first_bars, recording

KEYS = [SeriesKey(f"BINANCE:SIM{n:03d}USDT", "1") for n in range(10, 14)]
RETRY = {"retry_initial": 0.05, "retry_max": 0.5}

pytestmark = pytest.mark.slow


async def advance(sim: TvSimulator, minutes: int) -> None:
    for _ in range(minutes):
        await sim.clock.advance(MINUTE)
        await anyio.sleep(0.01)


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_postgres_restarted_mid_run(
    tv_simulator: TvSimulator, postgres_server: PostgresServer, postgres_dsn: str, how: str
) -> None:
    sim = tv_simulator

    async def read(key: SeriesKey) -> list[Row]:
        return await postgres_rows(postgres_dsn, key)

    first = first_bars(sim, KEYS, 30)
    async with (
        PostgresSink(postgres_dsn, connect_timeout=2) as sink,
        TvFeed(endpoints=sim.endpoints, **FAST) as feed,  # type: ignore[arg-type]
    ):
        recorder = Recorder(feed, KEYS, sink, initial_bars=30, **RETRY)  # type: ignore[arg-type]
        async with recording(recorder):
            await wait_for_store(read, sim, KEYS)
            await advance(sim, 5)
            if how == "stop":
                postgres_server.stop()
            else:
                postgres_server.kill()
            await advance(sim, 20)  # bars close while the database is down
            await anyio.sleep(0.5)
            postgres_server.start()
            await advance(sim, 5)
            held = await wait_for_store(read, sim, KEYS)
    assert_exactly_truth(held, sim, first)
    metrics = recorder.metrics[0]
    assert metrics.write_errors >= 1
    assert metrics.overflows == 0


async def test_redis_killed_and_restarted_mid_run(
    tv_simulator: TvSimulator, redis_server: RedisServer, redis_url: str
) -> None:
    sim = tv_simulator

    async def read(key: SeriesKey) -> list[Row]:
        return await redis_rows(redis_url, key)

    first = first_bars(sim, KEYS, 30)
    async with (
        RedisSink(redis_url, socket_timeout=2) as sink,
        TvFeed(endpoints=sim.endpoints, **FAST) as feed,  # type: ignore[arg-type]
    ):
        recorder = Recorder(feed, KEYS, sink, initial_bars=30, **RETRY)  # type: ignore[arg-type]
        async with recording(recorder):
            await wait_for_store(read, sim, KEYS)
            await advance(sim, 5)
            redis_server.kill()
            await advance(sim, 20)
            await anyio.sleep(0.5)
            redis_server.start()
            await advance(sim, 5)
            held = await wait_for_store(read, sim, KEYS)
    assert_exactly_truth(held, sim, first)
    assert recorder.metrics[0].write_errors >= 1


async def test_a_stalled_redis_stalls_nothing_else_and_catches_up(
    tv_simulator: TvSimulator, redis_server: RedisServer, redis_url: str, postgres_dsn: str
) -> None:
    sim = tv_simulator
    bound = 30

    async def read_postgres(key: SeriesKey) -> list[Row]:
        return await postgres_rows(postgres_dsn, key)

    async def read_redis(key: SeriesKey) -> list[Row]:
        return await redis_rows(redis_url, key)

    first = first_bars(sim, KEYS, 30)
    other: list[Bar] = []
    async with (
        PostgresSink(postgres_dsn) as postgres,
        RedisSink(redis_url, socket_timeout=1) as redis,
        TvFeed(endpoints=sim.endpoints, **FAST) as feed,  # type: ignore[arg-type]
    ):
        recorder = Recorder(
            feed, KEYS, [postgres, redis], initial_bars=30, max_pending=bound, **RETRY
        )  # type: ignore[arg-type]

        async def consume_another_stream() -> None:
            stream = feed.stream("BINANCE:BTCUSDT", interval="1")
            async with contextlib.aclosing(stream) as bars:
                async for bar in bars:
                    other.append(bar)

        async with recording(recorder), anyio.create_task_group() as tasks:
            tasks.start_soon(consume_another_stream)
            await wait_for_store(read_postgres, sim, KEYS)
            await wait_for_store(read_redis, sim, KEYS)
            await anyio.sleep(0.2)  # the other stream's subscription is live
            redis_server.pause()
            try:
                depths = []
                for _ in range(40):  # 4 series x 40 bars: far past the bound of 30
                    await advance(sim, 1)
                    depths.append(recorder.queue_depths()[1])
                # PostgreSQL and the other stream kept up while Redis answered nothing.
                held_postgres = await wait_for_store(read_postgres, sim, KEYS, limit=30)
                assert_exactly_truth(held_postgres, sim, first)
                with anyio.fail_after(30):
                    while len(other) < 40:  # noqa: ASYNC110 (polling the consumer's list)
                        await anyio.sleep(0.02)
                stalled = recorder.metrics[1]
                assert stalled.overflows >= 1
                assert max(depths) <= bound
                assert stalled.max_queue_depth <= bound
                assert recorder.metrics[0].overflows == 0
            finally:
                redis_server.resume()
            await advance(sim, 3)
            held_redis = await wait_for_store(read_redis, sim, KEYS, limit=60)
            held_postgres = await wait_for_store(read_postgres, sim, KEYS)
            tasks.cancel_scope.cancel()
    assert_exactly_truth(held_redis, sim, first)
    assert_exactly_truth(held_postgres, sim, first)
    stalled = recorder.metrics[1]
    assert stalled.resyncs >= 1
    assert stalled.dropped_bars >= bound
    assert [bar.timestamp for bar in other] == sorted({bar.timestamp for bar in other})


async def test_a_redis_that_lost_its_data_is_refilled(tv_simulator: TvSimulator) -> None:
    """A Redis without persistence restarted under the recorder comes back empty. The next
    write fails (its connection died), the recorder reads the streams' last ids again, sees
    that they hold less than it believed, and backfills them like new ones: the streams are
    complete again, with no hole, from ``initial_bars`` back."""
    sim = tv_simulator
    server = RedisServer(persistent=False)
    server.start()
    try:

        async def read(key: SeriesKey) -> list[Row]:
            return await redis_rows(server.url, key)

        async with (
            RedisSink(server.url, socket_timeout=2) as sink,
            TvFeed(endpoints=sim.endpoints, **FAST) as feed,  # type: ignore[arg-type]
        ):
            recorder = Recorder(feed, KEYS, sink, initial_bars=30, **RETRY)  # type: ignore[arg-type]
            async with recording(recorder):
                await wait_for_store(read, sim, KEYS)
                await advance(sim, 5)
                await wait_for_store(read, sim, KEYS)
                server.kill()
                server.start()  # empty
                await advance(sim, 10)
                held = await wait_for_store(read, sim, KEYS)
        # Refilled from initial_bars before the moment the loss was noticed (after the
        # restart, before now), and complete from there on.
        latest_possible = first_bars(sim, KEYS, 30)
        refilled = {key: rows[0][0] for key, rows in held.items()}
        assert all(refilled[key] <= latest_possible[key] for key in KEYS)
        assert_exactly_truth(held, sim, refilled)
        assert recorder.metrics[0].resyncs >= len(KEYS)
    finally:
        server.close()


async def test_a_store_down_at_start_holds_up_only_its_own_sink(
    tv_simulator: TvSimulator, redis_server: RedisServer, redis_url: str, postgres_dsn: str
) -> None:
    sim = tv_simulator

    async def read_postgres(key: SeriesKey) -> list[Row]:
        return await postgres_rows(postgres_dsn, key)

    async def read_redis(key: SeriesKey) -> list[Row]:
        return await redis_rows(redis_url, key)

    first = first_bars(sim, KEYS, 30)
    async with (
        PostgresSink(postgres_dsn) as postgres,
        RedisSink(redis_url, socket_timeout=1) as redis,
        TvFeed(endpoints=sim.endpoints, **FAST) as feed,  # type: ignore[arg-type]
    ):
        recorder = Recorder(feed, KEYS, [postgres, redis], initial_bars=30, **RETRY)  # type: ignore[arg-type]
        redis_server.pause()  # Redis answers nothing from before the recorder starts
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(recorder.run)
                await wait_for_store(read_postgres, sim, KEYS)
                await advance(sim, 10)
                held_postgres = await wait_for_store(read_postgres, sim, KEYS)
                assert_exactly_truth(held_postgres, sim, first)
                assert not recorder.started.is_set()  # Redis's checkpoints are still unknown
                # Redis's empty streams get their initial backfill once it answers: from now.
                first_redis = first_bars(sim, KEYS, 30)
                redis_server.resume()
                held_redis = await wait_for_store(read_redis, sim, KEYS)
                tasks.cancel_scope.cancel()
        finally:
            redis_server.resume()
    assert_exactly_truth(held_redis, sim, first_redis)
