"""tvfeed_async.metrics: the Prometheus collector reads feed.health() and feed.stats at scrape
time, for a TvFeed and a FeedPool (#22)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from tvfeed_async import Bar, RetryPolicy, Timeouts
from tvfeed_async.metrics import FeedCollector, register, serve
from tvfeed_async.pool import FeedPool

from ..scripted import wait_for
from ..support.feeds import cli_env, open_feed

pytestmark = pytest.mark.timeout(60)
MINUTE = 60
FAST: dict[str, Any] = {
    "timeouts": Timeouts(request=30.0, idle=30.0),
    "retry": RetryPolicy(initial=0.01, maximum=0.05, max_attempts=50),
}
SERIES = [("BINANCE:BTCUSDT", "1"), ("BINANCE:ETHUSDT", "5")]


def newest_closed_time(sim: Any, interval: str) -> int:
    """Open time of the newest bar the simulator's clock has closed."""
    seconds = int(interval) * MINUTE
    return (int(sim.clock.now()) // seconds - 1) * seconds


def closed_time(source: Any, symbol: str, interval: str) -> int | None:
    """The health's ``last_closed_time`` of one series, unix seconds."""
    for series in source.health().streams:
        if (series.symbol, series.interval) == (symbol, interval):
            last = series.last_closed_time
            return None if last is None else int(last.timestamp())
    return None


async def read_until(stream: Any, timestamp: int) -> Bar:
    """Read the stream's bars up to the closed one that opened at ``timestamp``."""
    async with asyncio.timeout(10):
        while True:
            bar = await anext(stream)
            if bar.closed and bar.timestamp == timestamp:
                return bar


async def newest_closed(sim: Any, source: Any, stream: Any, symbol: str, interval: str) -> Bar:
    """The stream's newest closed bar, once the feed took every update the clock sent."""
    newest = newest_closed_time(sim, interval)
    await wait_for(lambda: closed_time(source, symbol, interval) == newest)
    return await read_until(stream, newest)


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(registry: CollectorRegistry) -> Samples:
    """Every sample of one collection, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def value(samples: CollectorRegistry | Samples, name: str, **labels: str) -> float | None:
    """A sample of ``samples`` (a registry is collected now)."""
    if isinstance(samples, CollectorRegistry):
        return samples.get_sample_value(name, labels)
    return samples.get((name, frozenset(labels.items())))


async def test_a_scrape_shows_what_the_feed_health_says(tv_simulator) -> None:
    sim = tv_simulator
    async with open_feed(sim, **FAST) as feed:
        streams = [feed.stream(symbol, interval=interval) for symbol, interval in SERIES]
        for symbol, interval in SERIES:
            await sim.wait_subscribed(symbol, interval)
        await sim.clock.advance(12 * MINUTE)
        last = [
            await newest_closed(sim, feed, stream, symbol, interval)
            for stream, (symbol, interval) in zip(streams, SERIES, strict=True)
        ]
        registry = CollectorRegistry()
        register(feed, registry)
        before = time.time()
        samples = scrape(registry)
        after = time.time()
        text = generate_latest(registry).decode()
        health = feed.health()
        for stream in streams:
            await stream.aclose()

    assert health.connected
    assert value(samples, "tvfeed_connected") == 1
    assert "tvfeed_connected 1.0" in text
    assert value(samples, "tvfeed_reconnects_total") == health.reconnects == 0
    assert value(samples, "tvfeed_connections_opened_total") == 1
    assert value(samples, "tvfeed_streams") == len(health.streams) == 2
    assert value(samples, "tvfeed_symbols_monitored") == health.symbols_monitored == 2
    age = value(samples, "tvfeed_last_data_age_seconds")
    assert age is not None
    assert 0 <= age < 5
    # No error yet: the sample is left out rather than given a made-up time.
    assert value(samples, "tvfeed_last_error_timestamp_seconds") is None
    for bar, series in zip(last, sorted(health.streams, key=lambda s: s.symbol), strict=True):
        labels = {"symbol": series.symbol, "interval": series.interval}
        assert (bar.symbol, bar.interval) == (series.symbol, series.interval)
        closed = value(samples, "tvfeed_stream_last_closed_bar_timestamp_seconds", **labels)
        assert closed == bar.timestamp
        assert series.last_bar_time is not None
        assert value(samples, "tvfeed_stream_last_bar_timestamp_seconds", **labels) == (
            series.last_bar_time.timestamp()
        )
        lag = value(samples, "tvfeed_stream_lag_seconds", **labels)
        assert lag is not None
        assert before - bar.timestamp <= lag <= after - bar.timestamp
        assert value(samples, "tvfeed_stream_live", **labels) == 1
        assert value(samples, "tvfeed_stream_consumers", **labels) == series.consumers == 1
        assert value(samples, "tvfeed_stream_gaps_total", **labels) == series.gaps == 0
        assert value(samples, "tvfeed_stream_reopens_total", **labels) == series.reopens
        assert value(samples, "tvfeed_stream_rejected_bars_total", **labels) == (
            series.rejected_bars
        )


async def test_a_reconnect_is_counted_and_the_error_time_shown(tv_simulator) -> None:
    sim = tv_simulator
    async with open_feed(sim, **FAST) as feed:
        registry = CollectorRegistry()
        register(feed, registry)
        async with contextlib.aclosing(feed.stream("BINANCE:BTCUSDT", interval="1")) as stream:
            await sim.wait_subscribed("BINANCE:BTCUSDT", "1")
            assert value(registry, "tvfeed_reconnects_total") == 0
            assert sim.faults.drop_open() == 1
            await wait_for(lambda: feed.health().reconnects == 1 and feed.health().connected)
            await sim.clock.advance(3 * MINUTE)
            await asyncio.wait_for(anext(stream), 10)
            health = feed.health()
            assert value(registry, "tvfeed_reconnects_total") == 1
            assert value(registry, "tvfeed_connections_opened_total") == 2
            assert value(registry, "tvfeed_connected") == 1
            assert health.last_error_time is not None
            assert value(registry, "tvfeed_last_error_timestamp_seconds") == (
                health.last_error_time.timestamp()
            )


async def test_a_scrape_after_the_feed_closed_says_not_connected(tv_simulator) -> None:
    registry = CollectorRegistry()
    async with open_feed(tv_simulator, **FAST) as feed:
        register(feed, registry)
        async with contextlib.aclosing(feed.stream("BINANCE:BTCUSDT", interval="1")):
            await tv_simulator.wait_subscribed("BINANCE:BTCUSDT", "1")
            assert value(registry, "tvfeed_connected") == 1
            assert value(registry, "tvfeed_streams") == 1
    generate_latest(registry)
    assert value(registry, "tvfeed_connected") == 0
    assert not feed.health().connected
    assert value(registry, "tvfeed_streams") == 0
    assert value(registry, "tvfeed_symbols_monitored") == 0
    assert value(registry, "tvfeed_connections_opened_total") == 1


async def test_series_of_one_symbol_and_interval_give_one_sample_each(tv_simulator) -> None:
    # A regular and an extended-session series of the same symbol are two server series
    # with the same (symbol, interval): Prometheus refuses two samples with equal labels.
    sim = tv_simulator
    async with open_feed(sim, **FAST) as feed:
        regular = feed.stream("NASDAQ:AAPL", interval="1")
        extended = feed.stream("NASDAQ:AAPL", interval="1", extended_session=True)
        async with contextlib.aclosing(regular), contextlib.aclosing(extended):
            await wait_for(lambda: len(feed.health().streams) == 2)
            registry = CollectorRegistry()
            register(feed, registry)
            lines = [
                line
                for line in generate_latest(registry).decode().splitlines()
                if line.startswith("tvfeed_stream_consumers{")
            ]
    assert lines == ['tvfeed_stream_consumers{interval="1",symbol="NASDAQ:AAPL"} 2.0']


async def test_a_pool_is_labelled_by_socket_and_account(tv_simulator) -> None:
    sim = tv_simulator
    pool = FeedPool(
        series_per_socket=1, endpoints=sim.endpoints, session_cache=False, use_env=False, **FAST
    )
    registry = CollectorRegistry()
    async with pool:
        register(pool, registry)
        streams = [
            pool.stream(symbol, interval=interval, partial=True) for symbol, interval in SERIES
        ]
        async with contextlib.AsyncExitStack() as stack:
            for stream in streams:
                await stack.enter_async_context(contextlib.aclosing(stream))
                await asyncio.wait_for(anext(stream), 10)  # the forming bar: it is live
            await sim.clock.advance(12 * MINUTE)
            for stream, (symbol, interval) in zip(streams, SERIES, strict=True):
                await newest_closed(sim, pool, stream, symbol, interval)
            health = pool.health()
            places = [pool.socket_of(symbol, interval=interval) for symbol, interval in SERIES]
            samples = scrape(registry)
            assert pool.sockets == 2
            assert value(samples, "tvfeed_sockets") == 2
            assert value(samples, "tvfeed_sockets_connected") == health.sockets_connected == 2
            assert value(samples, "tvfeed_streams") == len(health.streams) == 2
            assert value(samples, "tvfeed_symbols_monitored") == health.symbols_monitored
            for entry in health.sockets:
                where = {"socket": str(entry.socket), "account": str(entry.account)}
                assert entry.health is not None
                assert value(samples, "tvfeed_connected", **where) == 1
                assert value(samples, "tvfeed_reconnects_total", **where) == 0
            for (symbol, interval), place in zip(SERIES, places, strict=True):
                (entry,) = [e for e in health.sockets if e.socket == place]
                assert entry.health is not None
                (series,) = entry.health.streams
                assert series.last_closed_time is not None
                labels = {
                    "socket": str(place),
                    "account": str(entry.account),
                    "symbol": symbol,
                    "interval": interval,
                }
                assert value(
                    samples, "tvfeed_stream_last_closed_bar_timestamp_seconds", **labels
                ) == (series.last_closed_time.timestamp())
                assert value(samples, "tvfeed_stream_live", **labels) == 1
                # Without the socket's labels there is no such sample.
                assert value(samples, "tvfeed_stream_live", symbol=symbol, interval=interval) is (
                    None
                )
    generate_latest(registry)
    assert value(registry, "tvfeed_streams") == 0


async def test_served_metrics_answer_on_the_loop_and_stop_with_the_block(tv_simulator) -> None:
    async with open_feed(tv_simulator, **FAST) as feed:
        async with (
            serve(feed, 0, labels={"feed": "main"}) as server,
            aiohttp.ClientSession() as http,
        ):
            assert server.port != 0
            async with http.get(server.url) as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain")
                text = await response.text()
            assert 'tvfeed_connected{feed="main"} 1.0' in text
            assert server.registry.get_sample_value("tvfeed_connected", {"feed": "main"}) == 1
        with pytest.raises(aiohttp.ClientConnectionError):
            async with aiohttp.ClientSession() as http, http.get(server.url):
                pass


async def test_a_second_collector_of_the_same_names_is_refused(tv_simulator) -> None:
    async with open_feed(tv_simulator, **FAST) as feed:
        registry = CollectorRegistry()
        register(feed, registry)
        with pytest.raises(ValueError, match="tvfeed_connected"):
            register(feed, registry)
        other = register(feed, registry, prefix="other", labels={"feed": "b"})
        assert isinstance(other, FeedCollector)
        assert value(registry, "other_connected", feed="b") == 1
        with pytest.raises(ValueError, match="symbol"):
            FeedCollector(feed, labels={"symbol": "x"})
        with pytest.raises(ValueError, match="not a Prometheus"):
            FeedCollector(feed, prefix="not a name")


def test_importing_the_package_does_not_import_prometheus_client() -> None:
    code = (
        "import sys, tvfeed_async, tvfeed_async.feed, tvfeed_async.pool; "
        "print('prometheus_client' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "False"


def test_without_prometheus_client_the_import_error_says_what_to_install() -> None:
    code = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "try:\n"
        "    import tvfeed_async.metrics\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert 'pip install "tvfeed-async[prometheus]"' in result.stdout


def _record(*options: str, root: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "tvfeed_async.cli",
        "record",
        "BINANCE:BTCUSDT",
        "--interval",
        "5",
        "--to",
        str(root),
        "--backfill",
        "20",
        *options,
    ]


async def test_record_serves_its_feeds_metrics(tv_simulator, tmp_path: Path) -> None:
    sim = tv_simulator
    process = await asyncio.create_subprocess_exec(
        *_record("--metrics-port", "0", root=tmp_path / "candles"),
        env=cli_env(sim, tmp_path),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(30):
            while not (line := (await process.stderr.readline()).decode()).startswith("metrics: "):
                assert line, "record ended before it printed the metrics URL"
            url = line.removeprefix("metrics: ").strip()
            live = 'tvfeed_stream_live{interval="5",symbol="BINANCE:BTCUSDT"} 1.0'
            async with aiohttp.ClientSession() as http:
                while True:
                    async with http.get(url) as response:
                        text = await response.text()
                    if live in text:
                        break
                    await sim.clock.advance(5 * MINUTE)
                    await asyncio.sleep(0.05)
        assert "tvfeed_connected 1.0" in text
        assert "tvfeed_streams 1.0" in text
        process.terminate()
        async with asyncio.timeout(30):
            _, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()


async def test_record_says_when_the_metrics_port_is_taken(tv_simulator, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with asyncio.timeout(60):
            result = await anyio.run_process(
                _record("--metrics-port", str(port), root=tmp_path / "candles"),
                env=cli_env(tv_simulator, tmp_path),
                check=False,
            )
    error = result.stderr.decode()
    assert result.returncode == 1, error
    assert f"cannot serve the metrics on 127.0.0.1:{port}" in error
    assert error.count("\n") == 1, error


async def test_governor_figures_are_scraped(tv_simulator_factory) -> None:
    """The governor's pace and the rate limits it met are metrics too: after a server that
    rate-limits at 2 sessions per burst, the factor is below 1 and the limit is counted."""
    from tvfeed_async import Limits, RetryPolicy
    from tvfeed_async.testing.ws_server import ServerConfig

    sim = await tv_simulator_factory(config=ServerConfig(session_rate=5.0, session_burst=2))
    limits = Limits(chart_sessions_per_second=100.0, session_burst=8, rate_limit_recovery=600)
    retry = RetryPolicy(initial=0.01, maximum=0.05, history_attempts=10)
    async with open_feed(sim, limits=limits, retry=retry) as feed:
        symbols = [f"BINANCE:SIM{index:03d}USDT" for index in range(1, 9)]
        await feed.get_hist_many(symbols, interval="1", n_bars=10)
        registry = CollectorRegistry()
        register(feed, registry)
        samples = scrape(registry)
        governor = feed.governor.stats
    assert governor.rate_limited >= 1
    assert value(samples, "tvfeed_governor_rate_limited_total") == governor.rate_limited
    assert value(samples, "tvfeed_governor_factor") == governor.factor < 1
    assert value(samples, "tvfeed_governor_chart_sessions_total") == governor.chart_sessions >= 8
    assert value(samples, "tvfeed_governor_waits_total") == governor.waits
