"""Everything at once, seeded: one recorder writing to PostgreSQL, Redis and Parquet with a
small backlog bound, while the simulator drops, stalls and restarts connections and the
database and Redis are restarted or paused. Afterwards all three stores hold exactly the
simulator's truth."""

from __future__ import annotations

import random
from pathlib import Path

import anyio
import pytest

from tvfeed_async import RetryPolicy, Timeouts, TvFeed
from tvfeed_async.recorder import Recorder
from tvfeed_async.sinks import ParquetSink, PostgresSink, RedisSink, SeriesKey
from tvfeed_async.testing import TvSimulator

from .helpers import MINUTE, assert_exactly_truth, wait_for_store
from .servers import PostgresServer, RedisServer
from .stores import Row, parquet_rows, postgres_rows, redis_rows
from .test_recorder import first_bars, recording

KEYS = [SeriesKey(f"BINANCE:SIM{n:03d}USDT", "1") for n in range(20, 25)]

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("seed", [5, 6])
async def test_three_sinks_under_every_fault_hold_exactly_the_truth(
    lively_simulator: TvSimulator,
    postgres_server: PostgresServer,
    postgres_dsn: str,
    redis_server: RedisServer,
    redis_url: str,
    tmp_path: Path,
    seed: int,
) -> None:
    sim = lively_simulator
    rng = random.Random(seed)
    root = tmp_path / "dataset"

    async def read_postgres(key: SeriesKey) -> list[Row]:
        return await postgres_rows(postgres_dsn, key)

    async def read_redis(key: SeriesKey) -> list[Row]:
        return await redis_rows(redis_url, key)

    async def read_parquet(key: SeriesKey) -> list[Row]:
        return parquet_rows(root, key)

    readers = [read_postgres, read_redis, read_parquet]
    first = first_bars(sim, KEYS, 25)
    feed_options = {
        "timeouts": Timeouts(request=30.0, idle=0.5),
        "retry": RetryPolicy(initial=0.01, maximum=0.05, max_attempts=100),
        "session_cache": False,
        "use_env": False,
    }
    async with (
        PostgresSink(postgres_dsn, connect_timeout=2) as postgres,
        RedisSink(redis_url, socket_timeout=1) as redis,
        ParquetSink(root) as parquet,
        TvFeed(endpoints=sim.endpoints, **feed_options) as feed,  # type: ignore[arg-type]
    ):
        recorder = Recorder(
            feed,
            KEYS,
            [postgres, redis, parquet],
            initial_bars=25,
            max_pending=15,
            batch_size=20,
            retry_initial=0.02,
            retry_max=0.3,
        )
        async with recording(recorder):
            for read in readers:
                await wait_for_store(read, sim, KEYS)
            paused = False
            for _ in range(25):
                roll = rng.random()
                if roll < 0.12:
                    sim.faults.drop_open()
                elif roll < 0.2:
                    sim.faults.stall_open()
                elif roll < 0.26:
                    await sim.restart()
                elif roll < 0.34:
                    postgres_server.kill()
                    postgres_server.start()
                elif roll < 0.42:
                    redis_server.kill()
                    redis_server.start()
                elif roll < 0.55 and not paused:
                    redis_server.pause()
                    paused = True
                elif paused and roll < 0.75:
                    redis_server.resume()
                    paused = False
                await sim.clock.advance(rng.randint(1, 6) * MINUTE)
                await anyio.sleep(rng.random() * 0.3)
            if paused:
                redis_server.resume()
            await sim.clock.advance(2 * MINUTE)
            held = [await wait_for_store(read, sim, KEYS, limit=90) for read in readers]
    for stored, metrics in zip(held, recorder.metrics, strict=True):
        try:
            assert_exactly_truth(stored, sim, first)
        except AssertionError as failure:
            raise AssertionError(f"{metrics.sink}: {failure}; {metrics.as_dict()}") from None
    assert sum(metrics.overflows for metrics in recorder.metrics) >= 1
