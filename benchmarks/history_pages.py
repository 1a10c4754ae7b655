"""Series requests and wall time of 50 x 5,000-bar history jobs at a 50 ms round trip, for two
source trees side by side (e.g. before and after a change of the paging rule).

The simulator (frozen virtual time: Monday 14:00 UTC; ``--resend-every N``: its pages
re-send 3 bars every N-th time, 2 by default) and a ChaosProxy adding 25 ms per direction
(none with ``--loopback``) run in their own processes. Each job
runs in a fresh client process whose ``PYTHONPATH`` selects the source tree;
the trees alternate, job by job, so both see the same machine load. A job is one ``TvFeed``
(opened inside the timing), default limits (16 requests in flight), and 50
``fetch_history(..., n_bars=5000)`` at once; it reports the wall time and the sum of
``HistoryResult.requests`` (series requests sent: create_series plus request_more_data).

Jobs:

* ``forming``: 50 BINANCE spot symbols, 1-minute: the newest bar is forming (14:00 opened
  at the clock's now).
* ``partial``: the same with ``include_partial=True``.
* ``closed``: the four US stocks, repeated to 50 requests: the session opens at 14:30 UTC,
  so the newest minute bar (Friday's last) is closed.

Run: ``python benchmarks/history_pages.py BEFORE_SRC AFTER_SRC [--repeats 5]``; prints one
line per job and tree with the median wall time, its range, and the requests.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LATENCY = 0.025  # per direction: a 50 ms round trip
BARS = 5_000
JOBS = ("forming", "partial", "closed")


def _start(command: list[str], marker: str) -> tuple[subprocess.Popen[str], str]:
    """Start a helper process; return it and its first printed line containing ``marker``."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1
    )
    assert process.stdout is not None
    for line in process.stdout:
        if marker in line:
            return process, line
    process.kill()
    raise RuntimeError(f"{command[:4]} exited without printing {marker!r}")


async def serve_simulator(resend_every: int) -> None:
    """The ``--serve-simulator`` mode: frozen virtual time, ``request_more_data`` answers
    re-sending bars on every ``resend_every``-th page (0: never), until killed."""
    from tvfeed_async.testing import TvSimulator
    from tvfeed_async.testing.ws_server import ServerConfig

    config = ServerConfig(more_data_resend_every=resend_every)
    async with TvSimulator(http_port=None, config=config) as simulator:
        print(f"ws_url={simulator.endpoints.ws_url}", flush=True)
        await asyncio.Event().wait()


async def serve_proxy(target_port: int, latency: float) -> None:
    """The ``--serve-proxy`` mode: a ChaosProxy until killed."""
    from tvfeed_async.testing.chaos import ChaosProxy

    async with ChaosProxy("127.0.0.1", target_port, latency=latency) as proxy:
        print(f"proxy_port={proxy.port}", flush=True)
        await asyncio.Event().wait()


def symbols_for(job: str) -> list[str]:
    from tvfeed_async.testing.catalogue import default_catalogue

    catalogue = list(default_catalogue())
    if job == "closed":
        stocks = [f"{i.exchange}:{i.ticker}" for i in catalogue if i.exchange in ("NASDAQ", "NYSE")]
        return [stocks[n % len(stocks)] for n in range(50)]
    spot = [f"{i.exchange}:{i.ticker}" for i in catalogue if i.exchange == "BINANCE"]
    return spot[:50]


async def run_job(url: str, job: str) -> dict[str, float]:
    from tvfeed_async import Endpoints, TvFeed

    symbols = symbols_for(job)
    partial = job == "partial"
    cpu = time.process_time()
    start = time.perf_counter()
    async with TvFeed(endpoints=Endpoints(ws_url=url), session_cache=False, use_env=False) as feed:
        results = await asyncio.gather(
            *(
                feed.fetch_history(s, interval="1", n_bars=BARS, include_partial=partial)
                for s in symbols
            )
        )
    wall = time.perf_counter() - start
    cpu = time.process_time() - cpu
    assert all(r.frame.height == BARS for r in results), [r.frame.height for r in results]
    return {"wall": wall, "cpu": cpu, "requests": sum(r.requests for r in results)}


def client(tree: str, url: str, job: str) -> dict[str, float]:
    environment = dict(os.environ, PYTHONPATH=tree)
    completed = subprocess.run(
        [sys.executable, __file__, "--client", url, job],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("trees", nargs="*", help="BEFORE_SRC AFTER_SRC")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--jobs", nargs="+", choices=JOBS, default=list(JOBS))
    parser.add_argument("--loopback", action="store_true", help="no proxy: plain loopback")
    parser.add_argument("--client", nargs=2, metavar=("URL", "JOB"))
    parser.add_argument("--serve-proxy", nargs=2, metavar=("TARGET_PORT", "LATENCY"))
    parser.add_argument(
        "--resend-every",
        type=int,
        default=2,
        help="the simulator re-sends 3 bars on every N-th page (its default: 2; 0: never)",
    )
    parser.add_argument("--serve-simulator", type=int, metavar="RESEND_EVERY")
    arguments = parser.parse_args()
    if arguments.serve_simulator is not None:
        asyncio.run(serve_simulator(arguments.serve_simulator))
        return
    if arguments.serve_proxy:
        asyncio.run(serve_proxy(int(arguments.serve_proxy[0]), float(arguments.serve_proxy[1])))
        return
    if arguments.client:
        print(json.dumps(asyncio.run(run_job(*arguments.client))))
        return
    before, after = arguments.trees
    helpers = []
    try:
        command = [sys.executable, "-u", __file__, "--serve-simulator", str(arguments.resend_every)]
        simulator, line = _start(command, "ws_url=")
        helpers.append(simulator)
        url = line.split("ws_url=", 1)[1].split()[0]
        port = int(url.split(":")[2].split("/")[0])
        command = [sys.executable, "-u", __file__, "--serve-proxy", str(port), str(LATENCY)]
        proxy, line = _start(command, "proxy_port=")
        proxy_port = int(line.split("proxy_port=", 1)[1])
        helpers.append(proxy)
        rtt50 = f"ws://127.0.0.1:{proxy_port}{url.split(str(port), 1)[1]}"
        figures: dict[tuple[str, str], list[dict[str, float]]] = {}
        if arguments.loopback:
            rtt50 = url
        for _ in range(arguments.repeats):
            for job in arguments.jobs:
                for name, tree in (("before", before), ("after", after)):
                    figures.setdefault((job, name), []).append(client(tree, rtt50, job))
        for job in arguments.jobs:
            medians = {}
            for name in ("before", "after"):
                runs = figures[(job, name)]
                walls = [r["wall"] for r in runs]
                cpus = [r["cpu"] for r in runs]
                medians[name] = statistics.median(walls)
                requests = sorted({int(r["requests"]) for r in runs})
                print(
                    f"{job:8} {name:6} requests {requests} wall median {medians[name]:.3f} s "
                    f"(range {min(walls):.3f}-{max(walls):.3f}, n={len(walls)}); client CPU "
                    f"median {statistics.median(cpus):.3f} s ({min(cpus):.3f}-{max(cpus):.3f})"
                )
            print(f"{job:8} after/before wall {medians['after'] / medians['before']:.2f}")
    finally:
        for process in helpers:
            process.kill()


if __name__ == "__main__":
    main()
