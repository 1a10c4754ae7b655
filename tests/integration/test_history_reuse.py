"""History requests reuse idle chart sessions (issue #22): the next request on the socket
switches a finished request's session to its own symbol and series (``resolve_symbol`` under
a new alias, ``modify_series`` under a new turnaround) instead of creating one; the frames
still equal the simulator's truth."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import polars as pl
import pytest

from tvfeed_async import SymbolNotFound, Timeouts, TvFeed
from tvfeed_async.testing.simulator import TvSimulator

from ..support.feeds import open_feed
from .test_history import assert_same


def _truth(sim: TvSimulator, request: dict[str, Any]) -> pl.DataFrame:
    symbol, interval = request["symbol"], request["interval"]
    if "start" in request:
        return sim.truth(symbol, interval).filter(
            (pl.col("time") >= request["start"]) & (pl.col("time") < request["end"])
        )
    return sim.truth(symbol, interval, n_bars=request["n_bars"])


def _mixed_requests(sim: TvSimulator) -> list[dict[str, Any]]:
    now = datetime.fromtimestamp(sim.clock.now(), UTC)
    start = now - timedelta(days=20)
    return [
        {"symbol": "BINANCE:BTCUSDT", "interval": "1", "n_bars": 50},
        {"symbol": "BINANCE:ETHUSDT", "interval": "60", "n_bars": 300},
        {"symbol": "NASDAQ:AAPL", "interval": "1D", "n_bars": 100},
        {"symbol": "BINANCE:BTCUSDT", "interval": "1", "n_bars": 12_345},  # pages 3 times
        {"symbol": "BINANCE:BTCUSDT", "interval": "5", "start": start, "end": start + timedelta(9)},
        {"symbol": "NASDAQ:NOSUCHTHING", "interval": "1", "n_bars": 10},  # fails
        {"symbol": "BINANCE:ETHUSDT", "interval": "1", "n_bars": 7_000},
        {"symbol": "FX:EURUSD", "interval": "15", "start": start, "end": start + timedelta(3)},
        {"symbol": "NASDAQ:AAPL", "interval": "1", "n_bars": 500},
        {"symbol": "BINANCE:BTCUSDT", "interval": "1W", "n_bars": 20},
    ]


def _methods(sim: TvSimulator) -> dict[str, int]:
    return dict(sim.stats.methods)


def _open_charts(sim: TvSimulator) -> int:
    """Chart sessions the simulator holds on its open connections."""
    return sum(
        len(connection._charts)
        for connection in sim._hub.connections.values()
        if not connection.closing
    )


async def _eventually(check: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await anyio.sleep(0.02)


async def _run(feed: TvFeed, request: dict[str, Any]) -> pl.DataFrame:
    options = {key: value for key, value in request.items() if key != "symbol"}
    return await feed.get_hist(request["symbol"], **options)


async def test_a_long_mixed_sequence_reuses_one_session(tv_simulator: TvSimulator) -> None:
    requests = _mixed_requests(tv_simulator)
    async with open_feed(tv_simulator) as feed:
        for request in requests:
            if "NOSUCHTHING" in request["symbol"]:
                with pytest.raises(SymbolNotFound):
                    await _run(feed, request)
                continue
            assert_same(await _run(feed, request), _truth(tv_simulator, request))
        methods = _methods(tv_simulator)
        # One session before the unknown symbol, whose session is deleted, one after.
        await _eventually(lambda: tv_simulator.stats.methods["chart_delete_session"] == 1)
        methods = _methods(tv_simulator)
        assert methods["chart_create_session"] == 2
        assert methods["chart_delete_session"] == 1
        assert methods["resolve_symbol"] == len(requests)
        assert methods["modify_series"] >= len(requests) - 2
        assert _open_charts(tv_simulator) == 1


async def test_reuse_off_creates_a_session_per_request(tv_simulator: TvSimulator) -> None:
    requests = [r for r in _mixed_requests(tv_simulator) if "NOSUCH" not in r["symbol"]]
    timeouts = Timeouts(request=60.0, idle=30.0, idle_chart_session=0)
    async with open_feed(tv_simulator, timeouts=timeouts) as feed:
        for request in requests:
            assert_same(await _run(feed, request), _truth(tv_simulator, request))
        await _eventually(lambda: _open_charts(tv_simulator) == 0)
        methods = _methods(tv_simulator)
        assert methods["chart_create_session"] == len(requests)
        assert methods["chart_delete_session"] == len(requests)
        assert "modify_series" not in methods or methods["modify_series"] < len(requests)
