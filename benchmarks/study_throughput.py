"""Study throughput: 50 symbols x 5,000 one-minute bars with one study each, against bars alone.

The simulator runs in its own process (``python -m tvfeed_async.testing --virtual``: frozen
virtual time, HTTP side on for pine-facade). The client runs in this process: one ``TvFeed``
(opened outside the timing), all symbols at once (``Limits(max_in_flight=50)``), best of N:

1. bars alone: ``get_hist(symbol, "1", n_bars=5000)``;
2. ``get_study(symbol, "1", study="STD;RSI", n_bars=5000)`` (the bars load on the chart
   session, then the study; the frame is ``time`` + ``RSI``);
3. ``get_hist(symbol, "1", n_bars=5000, studies=["STD;RSI"])`` (bars and the RSI column).

Every frame must have exactly 5,000 rows. The simulator computes the study in Python on its
side, so the figures include its work too (the real service's cost is not known).

Run: ``python benchmarks/study_throughput.py [--repeats 3] [--symbols 50] [--bars 5000]``.
Prints a table and writes ``benchmarks/results/study_throughput.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import polars as pl

from tvfeed_async import Endpoints, Limits, Timeouts, TvFeed

RESULTS = Path(__file__).parent / "results" / "study_throughput.json"


def start_simulator() -> tuple[subprocess.Popen[str], dict[str, str]]:
    command = [sys.executable, "-u", "-m", "tvfeed_async.testing", "--port", "0", "--virtual"]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1
    )
    assert process.stdout is not None
    urls: dict[str, str] = {}
    for line in process.stdout:
        for key in ("ws_url", "www_url", "pine_facade_url"):
            if f"{key}=" in line and key not in urls:
                urls[key] = line.split(f"{key}=", 1)[1].split()[0]
        if len(urls) == 3:
            return process, urls
    process.kill()
    raise RuntimeError("the simulator exited without printing its endpoints")


async def timed(run: Callable[[], Awaitable[list[pl.DataFrame]]], bars: int) -> float:
    began = time.perf_counter()
    frames = await run()
    elapsed = time.perf_counter() - began
    assert all(frame.height == bars for frame in frames), [frame.height for frame in frames]
    return elapsed


async def measure(urls: dict[str, str], symbols: list[str], bars: int, repeats: int) -> Any:
    endpoints = Endpoints(
        ws_url=urls["ws_url"], www_url=urls["www_url"], pine_facade_url=urls["pine_facade_url"]
    )
    options: dict[str, Any] = {
        "endpoints": endpoints,
        # The simulator has no session rate limit: unpaced, so the figures are the study
        # path's, not the governor's 10 chart sessions/s (docs/scale.md).
        "limits": Limits(max_in_flight=len(symbols), chart_sessions_per_second=None),
        "timeouts": Timeouts(request=300.0),
        "session_cache": False,
        "use_env": False,
    }
    results: dict[str, list[float]] = {"bars": [], "get_study": [], "get_hist_studies": []}
    async with TvFeed(**options) as feed:

        async def bars_alone() -> list[pl.DataFrame]:
            jobs = [feed.get_hist(s, interval="1", n_bars=bars) for s in symbols]
            return list(await asyncio.gather(*jobs))

        async def study_alone() -> list[pl.DataFrame]:
            jobs = [feed.get_study(s, interval="1", study="STD;RSI", n_bars=bars) for s in symbols]
            return list(await asyncio.gather(*jobs))

        async def joined() -> list[pl.DataFrame]:
            jobs = [
                feed.get_hist(s, interval="1", n_bars=bars, studies=["STD;RSI"]) for s in symbols
            ]
            return list(await asyncio.gather(*jobs))

        await bars_alone()  # warm-up: the simulator builds its bar truth once
        for _ in range(repeats):
            results["bars"].append(await timed(bars_alone, bars))
            results["get_study"].append(await timed(study_alone, bars))
            results["get_hist_studies"].append(await timed(joined, bars))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--bars", type=int, default=5000)
    arguments = parser.parse_args()
    symbols = [f"BINANCE:SIM{index:03d}USDT" for index in range(1, arguments.symbols + 1)]
    process, urls = start_simulator()
    try:
        results = asyncio.run(measure(urls, symbols, arguments.bars, arguments.repeats))
    finally:
        process.kill()
        process.wait()
    total = arguments.symbols * arguments.bars
    summary = {
        name: {"best_s": min(times), "times_s": times, "bars_per_s": total / min(times)}
        for name, times in results.items()
    }
    print(f"{arguments.symbols} symbols x {arguments.bars} bars, best of {arguments.repeats}")
    for name, figures in summary.items():
        print(f"  {name:<18} {figures['best_s']:7.2f} s  {figures['bars_per_s']:>10,.0f} bars/s")
    RESULTS.parent.mkdir(exist_ok=True)
    document = {
        "symbols": arguments.symbols,
        "bars": arguments.bars,
        "repeats": arguments.repeats,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "results": summary,
    }
    RESULTS.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
