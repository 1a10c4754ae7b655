"""Run tvkit's OHLCV client against a given WebSocket URL (used by history_throughput.py).

Runs in tvkit's own virtualenv (never the project's), so it imports nothing from
``tvfeed_async``. Usage::

    /tmp/tvkit-venv/bin/python benchmarks/_tvkit_runner.py URL BARS SYMBOL [SYMBOL ...]

Prints one JSON line: ``{"seconds": ..., "cpu_seconds": ..., "rows": [...], "version": ...}``.

tvkit is pointed at the URL through its public ``OHLCV.ws_url`` attribute (no patching). One
monkeypatch is needed: ``validate_symbols`` makes an HTTP GET to
``https://www.tradingview.com/symbols/<symbol>`` before every request, which cannot reach the
loopback simulator (and this machine has no internet), so it is replaced by a no-op.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from importlib.metadata import version

import tvkit.api.chart.ohlcv as ohlcv_module
from tvkit.api.chart.ohlcv import OHLCV


async def _no_validation(exchange_symbol: object) -> bool:
    return True


ohlcv_module.validate_symbols = _no_validation  # type: ignore[assignment]


async def fetch(url: str, bars: int, symbols: list[str]) -> dict[str, object]:
    cpu = time.process_time()
    start = time.perf_counter()
    rows = []
    async with OHLCV() as client:
        client.ws_url = url
        # Sequential: each get_historical_ohlcv closes the client's socket and opens a new one.
        for symbol in symbols:
            got = await client.get_historical_ohlcv(symbol, "1", bars_count=bars)
            rows.append(len(got))
    return {
        "seconds": time.perf_counter() - start,
        "cpu_seconds": time.process_time() - cpu,
        "rows": rows,
        "version": version("tvkit"),
    }


def main() -> None:
    logging.basicConfig(level=logging.WARNING)
    url, bars, *symbols = sys.argv[1:]
    print(json.dumps(asyncio.run(fetch(url, int(bars), symbols))))


if __name__ == "__main__":
    main()
