"""tvkit side of ``stream_throughput.py``; runs under ``/tmp/tvkit-venv/bin/python``.

Usage: ``_tvkit_client.py WS_URL COUNT``. Opens COUNT ``tvkit.api.chart.ohlcv.OHLCV`` clients
(tvkit streams one symbol per client, i.e. one WebSocket each), anonymous, pointed at the
simulator by setting the client's ``ws_url`` attribute, and iterates
``client.get_ohlcv(symbol, interval, bars_count=2)`` in one task per stream.

Two things are patched in this process only, both reported by the benchmark:

* ``validate_symbols`` (tvkit GETs ``https://www.tradingview.com/symbols/<symbol>`` before
  every stream; there is no internet here) is replaced by a no-op;
* nothing else: the WebSocket, framing, parsing and models are tvkit's own.

Prints ``{"ready": true, ...}`` once every stream has yielded its history bars, then answers
stdin commands (one JSON line each): ``reset``, ``cpu``, ``report`` (updates carrying a send
stamp in the volume field, latency percentiles), ``quit``.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

STAMP_FLOOR = 1e9
SYMBOLS = ["BINANCE:BTCUSDT", "BINANCE:ETHUSDT"] + [f"BINANCE:SIM{n:03d}USDT" for n in range(1, 61)]
INTERVALS = ["1", "3", "5", "15", "30", "45", "60", "120", "180", "240", "1D", "1W", "1M"]


class Counters:
    def __init__(self) -> None:
        self.initial = 0
        self.stamped = 0
        self.last = 0.0
        self.latencies: list[float] = []
        self.errors: list[str] = []


async def consume(url: str, symbol: str, interval: str, counters: Counters) -> None:
    from tvkit.api.chart.ohlcv import OHLCV

    try:
        async with OHLCV() as client:
            client.ws_url = url
            first = True
            async for bar in client.get_ohlcv(symbol, interval=interval, bars_count=2):
                volume = bar.volume
                if volume > STAMP_FLOOR:
                    now = time.time()
                    counters.stamped += 1
                    counters.last = now
                    counters.latencies.append(now - volume)
                elif first:
                    counters.initial += 1
                    first = False
    except Exception as error:
        counters.errors.append(f"{symbol} {interval}: {error!r}")


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    values = sorted(values)

    def at(fraction: float) -> float:
        return values[min(len(values) - 1, int(fraction * len(values)))] * 1000

    return {"p50": at(0.5), "p90": at(0.9), "p99": at(0.99), "max": values[-1] * 1000}


async def main(url: str, count: int) -> None:
    import tvkit.api.chart.ohlcv as ohlcv_module

    async def no_validation(exchange_symbol: Any) -> bool:
        return True

    ohlcv_module.validate_symbols = no_validation  # type: ignore[assignment]
    keys = [(symbol, interval) for interval in INTERVALS for symbol in SYMBOLS][:count]
    counters = Counters()
    tasks = [asyncio.create_task(consume(url, *key, counters)) for key in keys]
    deadline = time.monotonic() + 90
    while counters.initial + len(counters.errors) < count and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.05)
    ready = counters.initial == count
    print(
        json.dumps({"ready": ready, "streams": counters.initial, "errors": counters.errors[:5]}),
        flush=True,
    )
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while ready:
        line = (await reader.readline()).strip()
        if not line or line == b"quit":
            break
        if line == b"reset":
            counters.stamped, counters.last, counters.latencies = 0, 0.0, []
            answer: dict[str, Any] = {"ok": True}
        elif line == b"cpu":
            answer = {"cpu": time.process_time()}
        elif line == b"report":
            answer = {
                "stamped": counters.stamped,
                "last": counters.last,
                "cpu": time.process_time(),
                "latency_ms": percentiles(counters.latencies),
                "errors": counters.errors[:5],
            }
        else:
            answer = {"error": line.decode()}
        print(json.dumps(answer), flush=True)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
