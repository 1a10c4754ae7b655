"""Chart sessions created, and wall time, for 1,000 history requests with idle chart
sessions reused (the default) and with reuse off (``Timeouts(idle_chart_session=0)``).

The simulator (frozen virtual time) runs in its own process and reports, when asked on its
stdin, how many of each method it received; the client runs here. A job is one ``TvFeed``
(opened outside the timing; ``Limits.max_in_flight`` 16, the default) and 1,000
``get_hist`` of 300 bars: 50 BINANCE symbols x 20 rounds, the rounds cycling through the
intervals 1, 5, 15 and 60 (so a reused session changes symbol and interval):

* ``sequential``: one request after the other;
* ``many``: each round is one ``get_hist_many`` of the 50 symbols (16 at a time).

Each frame is checked (300 bars, the symbol asked for) before the figures count. Sessions
created are the simulator's ``chart_create_session`` count over the job (and deleted, its
``chart_delete_session`` count, the feed's close included). The modes alternate within each
repeat, and which goes first alternates between repeats, so both see the same machine load;
an uncounted warm-up job first makes the simulator compute the truth of every series.

Run: ``python benchmarks/session_reuse.py [--repeats 3] [--output PATH]``; prints one line
per job and mode (sessions per 1,000 requests, wall median and range) and writes JSON to
``benchmarks/results/session_reuse.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "results" / "session_reuse.json"
SYMBOLS = 50
ROUNDS = 20
BARS = 300
INTERVALS = ("1", "5", "15", "60")
JOBS = ("sequential", "many")
MODES = ("reuse", "no_reuse")


async def serve_simulator() -> None:
    """The ``--serve-simulator`` mode: print the URL, then, for each line read on stdin,
    one line of JSON with the methods received so far; until killed or stdin closes."""
    from tvfeed_async.testing import TvSimulator

    async with TvSimulator(http_port=None) as simulator:
        print(f"ws_url={simulator.endpoints.ws_url}", flush=True)
        loop = asyncio.get_running_loop()
        while await loop.run_in_executor(None, sys.stdin.readline):
            print(json.dumps(dict(simulator.stats.methods)), flush=True)


class Simulator:
    """The simulator process."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-u", __file__, "--serve-simulator"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            bufsize=1,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if "ws_url=" not in line:
            self.process.kill()
            raise RuntimeError("the simulator did not start")
        self.url = line.split("ws_url=", 1)[1].strip()

    def methods(self) -> dict[str, int]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write("stats\n")
        self.process.stdin.flush()
        return dict(json.loads(self.process.stdout.readline()))

    def close(self) -> None:
        self.process.kill()
        self.process.wait()


def symbols() -> list[str]:
    from tvfeed_async.testing.catalogue import default_catalogue

    spot = [f"{i.exchange}:{i.ticker}" for i in default_catalogue() if i.exchange == "BINANCE"]
    return spot[:SYMBOLS]


def check(frame: Any, symbol: str) -> None:
    assert frame.height == BARS, (symbol, frame.height)
    assert frame.get_column("symbol")[0] == symbol, symbol


async def run_job(simulator: Simulator, job: str, mode: str) -> dict[str, float]:
    from tvfeed_async import Endpoints, Timeouts, TvFeed

    names = symbols()
    timeouts = Timeouts() if mode == "reuse" else Timeouts(idle_chart_session=0)
    before = simulator.methods()
    feed = TvFeed(
        endpoints=Endpoints(ws_url=simulator.url),
        timeouts=timeouts,
        session_cache=False,
        use_env=False,
    )
    requests = 0
    async with feed:
        start = time.perf_counter()
        for round_number in range(ROUNDS):
            interval = INTERVALS[round_number % len(INTERVALS)]
            if job == "sequential":
                for symbol in names:
                    check(await feed.get_hist(symbol, interval=interval, n_bars=BARS), symbol)
            else:
                results = await feed.get_hist_many(names, interval=interval, n_bars=BARS)
                for symbol in names:
                    check(results[symbol], symbol)
            requests += len(names)
        wall = time.perf_counter() - start
    after = simulator.methods()
    created = after.get("chart_create_session", 0)
    for _ in range(50):  # the deletes sent at the feed's close may still be on their way
        if after.get("chart_delete_session", 0) >= created:
            break
        await asyncio.sleep(0.02)
        after = simulator.methods()

    def grew(method: str) -> int:
        return after.get(method, 0) - before.get(method, 0)

    return {
        "wall": wall,
        "requests": requests,
        "sessions_created": grew("chart_create_session"),
        "sessions_deleted": grew("chart_delete_session"),
        "modify_series": grew("modify_series"),
        "create_series": grew("create_series"),
    }


def summary(runs: list[dict[str, float]]) -> dict[str, Any]:
    walls = [run["wall"] for run in runs]
    created = [run["sessions_created"] * 1_000 / run["requests"] for run in runs]
    return {
        "sessions_per_1000_requests": sorted(set(created)),
        "wall_median": statistics.median(walls),
        "wall_min": min(walls),
        "wall_max": max(walls),
        "runs": runs,
    }


async def measure(repeats: int, jobs: list[str]) -> dict[str, Any]:
    simulator = Simulator()
    figures: dict[tuple[str, str], list[dict[str, float]]] = {}
    try:
        # The simulator computes each symbol's truth the first time it is asked for (about
        # 3 s for these 200 series): a warm-up job, not counted, pays for it.
        await run_job(simulator, "many", "reuse")
        for repeat in range(repeats):
            order = MODES if repeat % 2 == 0 else MODES[::-1]
            for job in jobs:
                for mode in order:
                    figures.setdefault((job, mode), []).append(await run_job(simulator, job, mode))
    finally:
        simulator.close()
    result: dict[str, Any] = {
        "requests_per_job": SYMBOLS * ROUNDS,
        "bars": BARS,
        "intervals": list(INTERVALS),
        "repeats": repeats,
        "python": sys.version.split()[0],
        "jobs": {},
    }
    for job in jobs:
        result["jobs"][job] = {mode: summary(figures[(job, mode)]) for mode in MODES}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--jobs", nargs="+", choices=JOBS, default=list(JOBS))
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--serve-simulator", action="store_true")
    arguments = parser.parse_args()
    if arguments.serve_simulator:
        asyncio.run(serve_simulator())
        return
    result = asyncio.run(measure(arguments.repeats, arguments.jobs))
    for job, modes in result["jobs"].items():
        for mode, figures in modes.items():
            print(
                f"{job:10} {mode:8} sessions created per 1,000 requests "
                f"{figures['sessions_per_1000_requests']}; wall median "
                f"{figures['wall_median']:.3f} s (range {figures['wall_min']:.3f}-"
                f"{figures['wall_max']:.3f}, n={len(figures['runs'])})"
            )
        ratio = modes["reuse"]["wall_median"] / modes["no_reuse"]["wall_median"]
        print(f"{job:10} reuse/no_reuse wall {ratio:.2f}")
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {arguments.output}")


if __name__ == "__main__":
    main()
