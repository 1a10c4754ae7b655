"""tvkit (PyPI), a third-party client, fetches bars from the simulator.

tvkit is not a project dependency. The test runs when tvkit is importable here, or when
``TVFEED_TVKIT_PYTHON`` names an interpreter that has it (e.g. a scratch venv made with
``python -m venv /tmp/tvkit-venv && /tmp/tvkit-venv/bin/pip install tvkit``); otherwise it
skips. Two changes are made to tvkit, both from the outside: its WebSocket URL
(``OHLCV.ws_url``) points at the simulator, and its symbol pre-check, a hard-coded
``GET https://www.tradingview.com/symbols/<EX>-<SYM>`` (no network here), is replaced by a
no-op.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sys

import pytest

from tvfeed_async.testing.simulator import TvSimulator

pytestmark = pytest.mark.peer

CLIENT = """
import asyncio, json, sys
import tvkit.api.chart.ohlcv as ohlcv_module
from tvkit.api.chart.ohlcv import OHLCV

async def no_validation(*args, **kwargs):
    return True

ohlcv_module.validate_symbols = no_validation

async def main(url, symbol, interval, count):
    async with OHLCV() as client:
        client.ws_url = url
        bars = await client.get_historical_ohlcv(symbol, interval, bars_count=count)
    print(json.dumps([[b.timestamp, b.open, b.high, b.low, b.close, b.volume] for b in bars]))

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
"""


def tvkit_python() -> str:
    if importlib.util.find_spec("tvkit") is not None:
        return sys.executable
    configured = os.environ.get("TVFEED_TVKIT_PYTHON")
    if configured and os.path.exists(configured):
        return configured
    pytest.skip("tvkit is not importable (set TVFEED_TVKIT_PYTHON to a venv that has it)")


@pytest.mark.parametrize(("symbol", "interval"), [("NASDAQ:AAPL", "60"), ("BINANCE:BTCUSDT", "15")])
async def test_tvkit_fetches_the_ground_truth(symbol: str, interval: str) -> None:
    python = tvkit_python()
    async with TvSimulator(http_port=None) as sim:
        process = await asyncio.create_subprocess_exec(
            python,
            "-c",
            CLIENT,
            sim.endpoints.ws_url,
            symbol,
            interval,
            "100",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 120)
        assert process.returncode == 0, err.decode()[-2000:]
        bars = json.loads(out)
        truth = {row[0]: row for row in sim.truth_rows(symbol, interval, n_bars=6_000)}
        forming = sim.forming_bar(symbol, interval)
    assert len(bars) >= 100
    closed = [bar for bar in bars if forming is None or int(bar[0]) != forming.timestamp]
    assert closed
    assert [tuple([int(bar[0]), *bar[1:]]) for bar in closed] == [
        truth[int(bar[0])] for bar in closed
    ]
    assert sim.stats.connections_opened == 1
