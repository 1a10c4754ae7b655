"""Recording throughput, lag and memory: PostgreSQL, Redis Streams and Parquet sinks.

Real servers (started like the tests do: ``tests/recording/servers.py``, on free loopback
ports); this process is pinned to one core (``sched_setaffinity``), the servers run beside it.
Three measurements per sink:

1. **Sink writes, bars/s**: ``sink.write`` of 1,000-bar batches (one series per batch, in time
   order, the way a backfill writes), ``--series`` series x ``--bars`` bars, until all are
   acknowledged. Best of ``--repeats``, each into an empty store.
2. **Close to durable lag**: a ``Recorder`` on ``--streams`` live 1-minute streams from the
   bundled simulator (in this process, virtual clock). The clock is moved one minute at a time;
   each move closes one bar per stream. Two figures: the recorder's own lag (a closed bar's
   arrival from the socket to the sink's acknowledgement, ``SinkMetrics.lag_seconds``), and
   the wall time from the clock move to the moment every bar it closed is acknowledged.
3. **Memory while the store is stalled** (Redis only, SIGSTOP): the same recorder with
   ``max_pending`` = ``--max-pending``; ``--stall-minutes`` minutes of bars arrive while Redis
   answers nothing. Reported: the sink's peak queue depth, its overflows, and the growth of
   Python heap (tracemalloc) and of the process RSS over the stall; then Redis resumes and the
   time until the store is complete again. The same run with a healthy Redis is the baseline
   (the simulator runs in this process, so its own allocations are in both).
4. **Resuming**: the store holds every series up to 30 minutes ago; a ``ChaosProxy`` adds
   ``--latency`` seconds per direction between the feed and the simulator; the time until
   every series is complete again, with
   ``sync_concurrency`` 1 and 8 (history requests of one sink in flight at once).

Run from the repository root: ``python benchmarks/record_throughput.py [--quick]``. Prints a
table and writes ``benchmarks/results/record_throughput.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import resource
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.recording.servers starts the servers

from tests.recording.servers import PostgresServer, RedisServer  # noqa: E402

from tvfeed_async import Bar, Endpoints, RetryPolicy, Timeouts, TvFeed  # noqa: E402
from tvfeed_async.recorder import Recorder  # noqa: E402
from tvfeed_async.sinks import ParquetSink, PostgresSink, RedisSink, SeriesKey, Sink  # noqa: E402
from tvfeed_async.testing import TvSimulator  # noqa: E402
from tvfeed_async.testing.chaos import ChaosProxy  # noqa: E402
from tvfeed_async.testing.ws_server import ServerConfig  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "record_throughput.json"
START = 1_767_225_600  # 2026-01-01 00:00 UTC
MINUTE = 60


def synthetic(series: int, bars: int) -> list[list[Bar]]:
    """``series`` runs of ``bars`` one-minute bars (values need every digit of a double)."""
    runs = []
    for s in range(series):
        symbol = f"BENCH:S{s:03d}"
        runs.append(
            [
                Bar(
                    START + n * MINUTE,
                    100 + n / 3,
                    100.5 + n / 3,
                    99.5 + n / 3,
                    100 + n / 7,
                    1000 + n / 9,
                    symbol,
                    "1",
                    True,
                )
                for n in range(bars)
            ]
        )
    return runs


async def write_rate(make_sink: Callable[[], Sink], runs: list[list[Bar]], batch: int) -> float:
    async with make_sink() as sink:
        started = time.perf_counter()
        for run in runs:
            for first in range(0, len(run), batch):
                await sink.write(run[first : first + batch])
        elapsed = time.perf_counter() - started
    return sum(len(run) for run in runs) / elapsed


def rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


@contextlib.asynccontextmanager
async def recording(recorder: Recorder) -> AsyncIterator[None]:
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(recorder.run)
        await recorder.started.wait()
        yield
        tasks.cancel_scope.cancel()


async def wait_written(recorder: Recorder, index: int, count: int, limit: float = 120) -> None:
    """Poll the sink's acknowledged count every millisecond (the lag's resolution)."""
    with anyio.fail_after(limit):
        while True:
            if recorder.metrics[index].bars_written >= count:
                return
            await anyio.sleep(0.001)


FEED_OPTIONS: dict[str, Any] = {
    "timeouts": Timeouts(request=120.0, idle=60.0),
    "retry": RetryPolicy(initial=0.01, maximum=0.1, max_attempts=100),
    "session_cache": False,
    "use_env": False,
}


async def live_lag(make_sink: Callable[[], Sink], streams: int, minutes: int) -> dict[str, Any]:
    keys = [SeriesKey(f"BINANCE:SIM{n:03d}USDT", "1") for n in range(1, streams + 1)]
    config = ServerConfig(heartbeat_interval=None, max_chart_sessions=1_000)
    async with (
        TvSimulator(http_port=None, config=config) as sim,
        make_sink() as sink,
        TvFeed(endpoints=sim.endpoints, **FEED_OPTIONS) as feed,
    ):
        recorder = Recorder(feed, keys, sink, initial_bars=10)
        async with recording(recorder):
            await wait_written(recorder, 0, 9 * streams)
            await anyio.sleep(0.5)  # every live subscription is up
            expected = recorder.metrics[0].bars_written
            durable: list[float] = []
            for _ in range(minutes):
                expected += streams
                moved = time.perf_counter()
                await sim.clock.advance(MINUTE)
                await wait_written(recorder, 0, expected)
                durable.append(time.perf_counter() - moved)
                await anyio.sleep(0.05)
        lags = sorted(recorder.metrics[0].lag_seconds)
    return {
        "streams": streams,
        "minutes": minutes,
        "recorder_lag_p50_ms": 1000 * lags[len(lags) // 2],
        "recorder_lag_p99_ms": 1000 * lags[min(len(lags) - 1, int(0.99 * len(lags)))],
        "advance_to_all_durable_median_ms": 1000 * statistics.median(durable),
        "advance_to_all_durable_max_ms": 1000 * max(durable),
    }


async def resume_time(
    make_sink: Callable[[], Sink], streams: int, concurrency: int, latency: float
) -> float:
    """Seconds from a recorder's start to every series complete again, when the store holds
    each series up to 30 minutes ago and the link to the server is a ``ChaosProxy`` adding
    ``latency`` seconds per direction (a round trip of twice that)."""
    keys = [SeriesKey(f"BINANCE:SIM{n:03d}USDT", "1") for n in range(1, streams + 1)]
    config = ServerConfig(heartbeat_interval=None, max_chart_sessions=1_000)
    async with TvSimulator(http_port=None, config=config) as sim, make_sink() as sink:
        await sink.write(
            [
                Bar(*sim.truth_rows(key.symbol, "1", n_bars=1)[0], key.symbol, "1", True)
                for key in keys
            ]
        )
        await sim.clock.advance(30 * MINUTE)
        async with ChaosProxy("127.0.0.1", sim.port, latency=latency) as proxy:
            endpoints = replace(
                sim.endpoints, ws_url=f"ws://127.0.0.1:{proxy.port}/socket.io/websocket"
            )
            elapsed = await _time_resume(endpoints, keys, sink, concurrency)
    return elapsed


async def _time_resume(
    endpoints: Endpoints, keys: list[SeriesKey], sink: Sink, concurrency: int
) -> float:
    async with TvFeed(endpoints=endpoints, **FEED_OPTIONS) as feed:
        recorder = Recorder(feed, keys, sink, sync_concurrency=concurrency)
        started = time.perf_counter()
        async with recording(recorder):
            # 30 bars closed per series since its stored one.
            await wait_written(recorder, 0, 30 * len(keys), limit=600)
            return time.perf_counter() - started


async def stalled_memory(
    redis_server: RedisServer, streams: int, stall_minutes: int, max_pending: int, stall: bool
) -> dict[str, Any]:
    """Heap and RSS growth of this whole process (recorder, feed and the in-process
    simulator) while ``stall_minutes`` of bars arrive; ``stall=False`` is the baseline with a
    healthy Redis, so the difference is what the stall costs."""
    keys = [SeriesKey(f"BINANCE:SIM{n:03d}USDT", "1") for n in range(1, streams + 1)]
    config = ServerConfig(heartbeat_interval=None, max_chart_sessions=1_000)
    async with (
        TvSimulator(http_port=None, config=config) as sim,
        RedisSink(redis_server.url, socket_timeout=2) as sink,
        TvFeed(endpoints=sim.endpoints, **FEED_OPTIONS) as feed,
    ):
        recorder = Recorder(
            feed, keys, sink, initial_bars=10, max_pending=max_pending, retry_max=0.5
        )
        async with recording(recorder):
            await wait_written(recorder, 0, 9 * streams)
            await anyio.sleep(0.5)
            tracemalloc.start()
            heap_before = tracemalloc.get_traced_memory()[0]
            rss_before = rss_kb()
            if stall:
                redis_server.pause()
            try:
                for _ in range(stall_minutes):
                    await sim.clock.advance(MINUTE)
                    await anyio.sleep(0.001)
                await anyio.sleep(0.5)
                heap_now, heap_peak = tracemalloc.get_traced_memory()
                rss_after = rss_kb()
            finally:
                tracemalloc.stop()
                resumed = time.perf_counter()
                redis_server.resume()
            target = 9 * streams + stall_minutes * streams
            # Complete again: every series' newest bar is stored.
            newest = int(sim.truth_rows(keys[0].symbol, "1", n_bars=1)[0][0])
            with anyio.fail_after(300):
                while True:
                    stored = [await sink.last_stored(key) for key in keys]
                    if all(value == newest for value in stored):
                        break
                    await anyio.sleep(0.05)
            caught_up = time.perf_counter() - resumed
        metrics = recorder.metrics[0]
    return {
        "redis_paused": stall,
        "streams": streams,
        "stall_minutes": stall_minutes,
        "bars_during_stall": stall_minutes * streams,
        "max_pending": max_pending,
        "peak_queue_depth": metrics.max_queue_depth,
        "overflows": metrics.overflows,
        "dropped_bars": metrics.dropped_bars,
        "resyncs": metrics.resyncs,
        "heap_growth_kb": (heap_now - heap_before) / 1024,
        "heap_peak_growth_kb": (heap_peak - heap_before) / 1024,
        "rss_growth_kb": rss_after - rss_before,
        "catch_up_seconds": caught_up,
        "bars_expected_total": target,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", type=int, default=20)
    parser.add_argument("--bars", type=int, default=5_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--streams", type=int, default=60, help="at most 60 (SIM001..060)")
    parser.add_argument("--minutes", type=int, default=20)
    parser.add_argument("--stall-minutes", type=int, default=300)
    parser.add_argument("--max-pending", type=int, default=2_000)
    parser.add_argument(
        "--latency", type=float, default=0.025, help="seconds per direction (resume test)"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    args = parser.parse_args()
    if args.quick:
        args.series, args.bars, args.repeats = 5, 2_000, 1
        args.streams, args.minutes, args.stall_minutes = 20, 5, 60
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    postgres = PostgresServer()
    postgres.initialise()
    postgres.start()
    redis_server = RedisServer()
    redis_server.start()
    scratch = Path(tempfile.mkdtemp(prefix="tvfeed-bench-"))
    results: dict[str, Any] = {
        "machine": platform.platform(),
        "python": platform.python_version(),
        "cpus_visible": os.cpu_count(),
        "pinned_to": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "write": {},
        "lag": {},
    }
    try:
        databases = iter(range(1, 1_000))

        def new_postgres() -> Sink:
            return PostgresSink(postgres.dsn, table=f"bench_{next(databases)}")

        def new_redis() -> Sink:
            return RedisSink(redis_server.url)

        parquet_runs = iter(range(1, 1_000))

        def new_parquet() -> Sink:
            return ParquetSink(scratch / f"run{next(parquet_runs)}")

        sinks: dict[str, Callable[[], Sink]] = {
            "postgresql": new_postgres,
            "redis": new_redis,
            "parquet": new_parquet,
        }
        runs = synthetic(args.series, args.bars)
        for name, make in sinks.items():
            rates = []
            for _ in range(args.repeats):
                if name == "redis":
                    await flush_redis(redis_server)
                rates.append(await write_rate(make, runs, 1_000))
            results["write"][name] = {
                "bars": args.series * args.bars,
                "batch": 1_000,
                "best_bars_per_second": max(rates),
                "all_bars_per_second": rates,
            }
            print(f"{name:<11} write  best {max(rates):>10,.0f} bars/s  (runs {rates})")
        for name, make in sinks.items():
            if name == "redis":
                await flush_redis(redis_server)
            lag = await live_lag(make, args.streams, args.minutes)
            results["lag"][name] = lag
            print(
                f"{name:<11} lag    recorder p50 {lag['recorder_lag_p50_ms']:.2f} ms "
                f"p99 {lag['recorder_lag_p99_ms']:.2f} ms; clock move -> all "
                f"{args.streams} durable: median {lag['advance_to_all_durable_median_ms']:.1f} "
                f"ms, max {lag['advance_to_all_durable_max_ms']:.1f} ms"
            )
        resume: dict[str, float] = {}
        for concurrency in (1, 8):
            resume[str(concurrency)] = await resume_time(
                new_postgres, args.streams, concurrency, args.latency
            )
        results["resume_postgresql"] = {
            "streams": args.streams,
            "minutes_missed": 30,
            "round_trip_s": 2 * args.latency,
            "seconds_by_sync_concurrency": resume,
        }
        print(
            f"resume {args.streams} series 30 min behind, {2000 * args.latency:.0f} ms round "
            f"trip: sync_concurrency 1 {resume['1']:.2f} s, 8 {resume['8']:.2f} s"
        )
        for paused in (False, True):
            await flush_redis(redis_server)
            stall = await stalled_memory(
                redis_server, args.streams, args.stall_minutes, args.max_pending, paused
            )
            results["stalled_redis" if paused else "healthy_redis"] = stall
            print(
                f"redis {'paused ' if paused else 'healthy'}: {stall['bars_during_stall']} bars "
                f"arrived, queue peak {stall['peak_queue_depth']} (bound "
                f"{stall['max_pending']}), overflows {stall['overflows']}, heap "
                f"+{stall['heap_growth_kb']:.0f} KB (peak +{stall['heap_peak_growth_kb']:.0f} "
                f"KB), RSS +{stall['rss_growth_kb']} KB; complete "
                f"{stall['catch_up_seconds']:.2f} s after resuming"
            )
    finally:
        redis_server.close()
        postgres.close()
        shutil.rmtree(scratch, ignore_errors=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2))
    print(f"wrote {RESULTS}")


async def flush_redis(server: RedisServer) -> None:
    import redis.asyncio as redis

    client = redis.Redis.from_url(server.url)
    try:
        await client.flushall()
    finally:
        await client.aclose()


if __name__ == "__main__":
    asyncio.run(main())
