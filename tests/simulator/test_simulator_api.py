"""TvSimulator's own API: determinism, truth queries, HTTP wiring, plugin, serve_forever."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime

import aiohttp
import polars as pl
import pytest

from tvfeed_async.config import Endpoints
from tvfeed_async.testing.clock import DEFAULT_START
from tvfeed_async.testing.simulator import TvSimulator, serve_forever

from .helpers import RawClient, rows_of


async def fetch(
    simulator: TvSimulator, symbol: str, interval: str, count: int
) -> list[tuple[object, ...]]:
    raw = await RawClient.open(simulator)
    await raw.start()
    history, _ = await raw.chart(symbol, interval, count)
    await raw.close()
    return rows_of(history)


async def test_two_instances_with_one_seed_serve_identical_bars() -> None:
    async with (
        TvSimulator(http_port=None, seed=7) as first,
        TvSimulator(http_port=None, seed=7) as second,
    ):
        for symbol, interval in (
            ("BINANCE:SIM042USDT", "5"),
            ("NASDAQ:AAPL", "1D"),
            ("FX:EURUSD", "60"),
        ):
            assert await fetch(first, symbol, interval, 500) == await fetch(
                second, symbol, interval, 500
            )
            assert first.truth(symbol, interval, n_bars=100).equals(
                second.truth(symbol, interval, n_bars=100)
            )
    async with TvSimulator(http_port=None, seed=8) as other:
        assert not other.truth("BINANCE:SIM042USDT", "5", n_bars=50).equals(
            TvSimulator(http_port=None, seed=7).truth("BINANCE:SIM042USDT", "5", n_bars=50)
        )


def test_any_window_matches_the_full_history() -> None:
    simulator = TvSimulator(http_port=None, history_bars=3_000)
    whole = simulator.truth("BINANCE:BTCUSDT", "15")
    assert whole.height == 3_000
    middle = simulator.truth(
        "BINANCE:BTCUSDT", "15", start=whole["time"][1000], end=whole["time"][1200]
    )
    assert middle.equals(whole.slice(1000, 200))
    assert simulator.truth("BINANCE:BTCUSDT", "15", n_bars=10).equals(whole.tail(10))


def test_truth_schema_and_invariants() -> None:
    simulator = TvSimulator(http_port=None)
    frame = simulator.truth("NASDAQ:AAPL", "60", n_bars=300)
    assert frame.schema == pl.Schema(
        {
            "time": pl.Datetime("us", "UTC"),
            "symbol": pl.String,
            "open": pl.Float64,
            "high": pl.Float64,
            "low": pl.Float64,
            "close": pl.Float64,
            "volume": pl.Float64,
        }
    )
    assert frame["symbol"].unique().to_list() == ["NASDAQ:AAPL"]
    assert frame["time"].is_sorted()
    assert frame["time"].max() < datetime.fromtimestamp(DEFAULT_START, UTC)
    checks = frame.select(
        (pl.col("high") >= pl.max_horizontal("open", "close")).all().alias("high"),
        (pl.col("low") <= pl.min_horizontal("open", "close")).all().alias("low"),
    )
    assert checks.row(0) == (True, True)
    with pytest.raises(KeyError):
        simulator.truth("NASDAQ:NOPE", "1")


async def test_clock_starts_at_the_documented_instant_and_advances() -> None:
    simulator = TvSimulator(http_port=None)
    assert simulator.clock.now() == datetime(2026, 1, 5, 14, 0, tzinfo=UTC).timestamp()
    assert simulator.forming_bar("NASDAQ:AAPL", "1") is None  # 09:00 in New York
    await simulator.clock.advance(3_600)
    bar = simulator.forming_bar("NASDAQ:AAPL", "1")
    assert bar is not None
    assert bar.closed is False
    assert bar.timestamp == int(simulator.clock.now())
    with pytest.raises(ValueError, match="backwards"):
        await simulator.clock.advance(-1)


async def test_endpoints_and_http_side(tv_simulator: TvSimulator) -> None:
    endpoints = tv_simulator.endpoints
    assert isinstance(endpoints, Endpoints)
    assert endpoints.ws_url == f"ws://127.0.0.1:{tv_simulator.port}/socket.io/websocket"
    assert endpoints.symbol_search_url == f"{endpoints.www_url}/symbol_search/v3/"
    async with (
        aiohttp.ClientSession() as session,
        session.get(
            endpoints.symbol_search_url,
            params={"text": "AAPL", "start": "0"},
            headers={"Origin": endpoints.origin},
        ) as response,
    ):
        assert response.status == 200
        found = await response.json()
    assert any(
        entry["exchange"] == "NASDAQ" and "AAPL" in entry["symbol"] for entry in found["symbols"]
    )


async def test_an_http_sign_in_token_works_on_the_socket() -> None:
    from tvfeed_async.testing.http_app import Account

    account = Account(username="trader", password="secret", user_id=42, plan="pro_premium")
    async with TvSimulator(accounts=[account]) as simulator:
        async with (
            aiohttp.ClientSession() as session,
            session.post(
                f"{simulator.endpoints.www_url}/accounts/signin/",
                data={"username": "trader", "password": "secret", "remember": "on"},
                headers={"Referer": "https://www.tradingview.com"},
            ) as response,
        ):
            body = await response.json()
        token = body["user"]["auth_token"]
        raw = await RawClient.open(simulator)
        await raw.start(token)
        history, completed = await raw.chart("BINANCE:BTCUSDT", "1", 30_000)
        assert len(history.series["s1"].rows) == 20_000
        assert completed.data_completed == "limit"
        await raw.close()


async def test_the_plugin_fixture_yields_a_started_simulator(tv_simulator: TvSimulator) -> None:
    bars = await fetch(tv_simulator, "BINANCE:ETHUSDT", "1", 10)
    assert len(bars) == 10
    assert tv_simulator.stats.connections_opened == 1


def test_the_plugin_imports_without_pytest_asyncio() -> None:
    code = (
        "import sys; sys.modules['pytest_asyncio'] = None\n"
        "import tvfeed_async.testing.pytest_plugin as plugin\n"
        "assert not plugin._HAVE_PYTEST_ASYNCIO\n"
        "assert 'tvfeed_async.testing.simulator' not in sys.modules\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


async def test_serve_forever_prints_endpoints_and_serves_until_cancelled() -> None:
    lines: list[str] = []
    task = asyncio.create_task(serve_forever(0, None, False, print_fn=lines.append))
    for _ in range(500):
        if lines:
            break
        await asyncio.sleep(0.01)
    assert lines[0].startswith("TradingView simulator: ws_url=ws://127.0.0.1:")
    url = lines[0].split("ws_url=", 1)[1]
    from websockets.asyncio.client import connect

    async with connect(url) as socket:
        assert "session_id" in await socket.recv()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
