"""Quote throughput: ``qsd`` updates from the simulator's socket to ``async for`` (#18).

Measures, against the bundled simulator in its own process (this script with ``--serve``,
driven over a stdin/stdout control channel, like ``_stream_server.py`` for bars):

a. the most quote updates per second one ``TvFeed`` (one socket, one core) merges and hands to
   one ``async for quote in feed.stream_quotes(1,000 symbols)`` loop, the server pushing
   deltas (``lp`` and ``lp_time``) round-robin over the 1,000 symbols as fast as the socket
   takes them, 16 packets per WebSocket message; both processes' CPU time say which side is
   the bottleneck. ``merged/s`` counts deltas merged into the per-symbol state; ``yielded/s``
   counts quotes the loop received (fewer when updates of a symbol coalesce);
b. latency from the server's send stamp to the loop's receipt (p50/p99) at 10,000 updates/s
   offered over the 1,000 symbols, one ``qsd`` per WebSocket message;
c. memory per watched symbol: tracemalloc delta of a 1,000-symbol stream after its snapshots
   (default field set), divided by 1,000.

Each update carries the server's wall-clock send time (``time.time()``) as its ``lp_time``;
the consumer reads it back from ``quote.raw``. The server adds 1,000 coins
(``BINANCE:Q0000USDT``...) to the default catalogue; the snapshots are the simulator's own.

tvkit is not measured beside it. Its quotes come from ``OHLCV.get_quote_data(symbol,
interval, bars_count)``, one symbol per client, each client its own WebSocket with a chart
series next to the quote session: a 1,000-symbol watchlist would be 1,000 sockets and 1,000
chart series, which is not the same measure; and tvkit is not installed on this machine (the
bar benchmark looks for ``/tmp/tvkit-venv``).

Run: ``python benchmarks/quote_throughput.py [--repeats N] [--updates N] [--output PATH]``.
Prints a table and writes ``benchmarks/results/quote_throughput.json``: the median of N runs
(default 3) with the min and max.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import os
import platform
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "quote_throughput.json"
SYMBOLS = [f"BINANCE:Q{number:04d}USDT" for number in range(1_000)]
LATENCY_RATE = 10_000
TARGET_UPDATES = 100_000

# --------------------------------------------------------------------------- server side


def _catalogue() -> Any:
    from tvfeed_async.testing.catalogue import Catalogue, default_catalogue

    base = default_catalogue()
    coin = base.get("BINANCE:SIM001USDT")
    assert coin is not None
    extra = [
        dataclasses.replace(coin, ticker=name.split(":")[1], description=f"Quote coin {n}")
        for n, name in enumerate(SYMBOLS)
    ]
    return Catalogue([*base, *extra])


def _quote_symbols(sim: Any) -> list[tuple[Any, str, str]]:
    """(connection, session id, key) of every live quote symbol."""
    found = []
    for connection in sim.hub.connections.values():
        if connection.closing:
            continue
        for session_id, quote in connection._quotes.items():
            for key, symbol in quote.symbols.items():
                if symbol is not None and not symbol.cancelled:
                    found.append((connection, session_id, key))
    return found


async def _push(sim: Any, command: dict[str, Any]) -> dict[str, Any]:
    targets = _quote_symbols(sim)
    if not targets:
        return {"error": "no quote symbols"}
    # head + stamp + tail per symbol and price variant: JSON built once, the stamp cut in.
    templates = []
    for connection, session_id, key in targets:
        variants = []
        for k in range(7):
            head = (
                '{"m":"qsd","p":[' + json.dumps(session_id) + ',{"n":' + json.dumps(key)
            ) + f',"s":"ok","v":{{"lp":{10 + k * 0.01:.2f},"lp_time":'
            variants.append(head)
        templates.append((connection, variants))
    rate = float(command.get("rate", 0))
    total = int(command["updates"])
    per_message = int(command.get("per_message", 1))
    clock = time.time
    size = len(templates)
    sent = position = 0
    cpu0 = time.process_time()
    start = time.perf_counter()
    while sent < total:
        if rate > 0:
            due = min(int((time.perf_counter() - start) * rate), total) - sent
            if due <= 0:
                await asyncio.sleep(max(0.0, (sent + 1) / rate - (time.perf_counter() - start)))
                continue
        else:
            due = min(per_message * 16, total - sent)
        batch: dict[Any, list[str]] = {}
        for _ in range(due):
            connection, variants = templates[position]
            payload = variants[(sent + position) % 7] + repr(clock()) + "}}]}"
            position = position + 1 if position + 1 < size else 0
            batch.setdefault(connection, []).append(f"~m~{len(payload)}~m~{payload}")
        for connection, packets in batch.items():
            for offset in range(0, len(packets), per_message):
                connection.emit(packets[offset : offset + per_message])
            if len(connection.outbox) > 64:
                await connection.drained.wait()
        sent += due
        if rate <= 0:
            await asyncio.sleep(0)
    for connection, _ in templates:
        await connection.drained.wait()
    seconds = time.perf_counter() - start
    return {"sent": sent, "seconds": seconds, "cpu_seconds": time.process_time() - cpu0}


async def _serve() -> None:
    from tvfeed_async.testing import TvSimulator
    from tvfeed_async.testing.ws_server import ServerConfig

    # No quote deltas of the simulator's own during the run: its clock is never advanced.
    config = ServerConfig(heartbeat_interval=10.0, quote_update_period=3600.0)
    async with TvSimulator(config=config, http_port=None, catalogue=_catalogue()) as sim:
        print(json.dumps({"ws_url": sim.endpoints.ws_url}), flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                return
            command = json.loads(line)
            if command["cmd"] == "quit":
                return
            if command["cmd"] == "count":
                answer: dict[str, Any] = {"symbols": len(_quote_symbols(sim))}
            else:
                answer = await _push(sim, command)
            print(json.dumps(answer), flush=True)


# --------------------------------------------------------------------------- client side


class Server:
    """The ``--serve`` process and its control channel."""

    def __init__(self, process: asyncio.subprocess.Process, hello: dict[str, Any]) -> None:
        self.process = process
        self.hello = hello

    @classmethod
    async def start(cls) -> Server:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--serve",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        hello = json.loads(await asyncio.wait_for(process.stdout.readline(), 60))
        return cls(process, hello)

    async def ask(self, **command: Any) -> dict[str, Any]:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        await self.process.stdin.drain()
        answer: dict[str, Any] = json.loads(await self.process.stdout.readline())
        return answer

    async def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(b'{"cmd": "quit"}\n')
        await self.process.stdin.drain()
        await asyncio.wait_for(self.process.wait(), 10)


async def _measure(repeats: int, updates: int) -> dict[str, Any]:
    server = await Server.start()
    try:
        return await _measure_with(server, repeats, updates)
    finally:
        await server.close()


async def _measure_with(server: Server, repeats: int, updates: int) -> dict[str, Any]:
    from tvfeed_async import Endpoints, Timeouts, TvFeed

    endpoints = Endpoints(ws_url=server.hello["ws_url"])
    timeouts = Timeouts(request=120.0, idle=120.0)
    results: dict[str, Any] = {}
    async with TvFeed(
        endpoints=endpoints, timeouts=timeouts, session_cache=False, use_env=False
    ) as feed:
        # c. memory per symbol
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
        stream = feed.stream_quotes(SYMBOLS)
        await stream.snapshot()
        gc.collect()
        after = tracemalloc.take_snapshot()
        tracemalloc.stop()
        grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
        results["memory_bytes_per_symbol"] = grown / len(SYMBOLS)
        assert (await server.ask(cmd="count"))["symbols"] == len(SYMBOLS)
        while stream.pending:  # the snapshots
            await anext(stream)

        yielded = 0
        latencies: list[float] = []
        measuring_latency = False

        async def consume() -> None:
            nonlocal yielded
            clock = time.time
            async for quote in stream:
                yielded += 1
                if measuring_latency:
                    latencies.append(clock() - quote.raw["lp_time"])  # type: ignore[operator]

        task = asyncio.get_running_loop().create_task(consume())

        # a. throughput
        runs = []
        for _ in range(repeats):
            base_updates, base_yielded = stream.updates, yielded
            cpu0, start = time.process_time(), time.perf_counter()
            answer = asyncio.ensure_future(server.ask(cmd="push", updates=updates, per_message=16))
            while stream.updates - base_updates < updates:  # noqa: ASYNC110 (polling a counter)
                await asyncio.sleep(0.005)
            seconds = time.perf_counter() - start
            cpu = time.process_time() - cpu0
            served = await answer
            runs.append(
                {
                    "merged_per_s": updates / seconds,
                    "yielded_per_s": (yielded - base_yielded) / seconds,
                    "client_cpu_share": cpu / seconds,
                    "server_cpu_share": served["cpu_seconds"] / served["seconds"],
                }
            )
        results["throughput_runs"] = runs

        # b. latency at 10,000 updates/s
        lat_runs = []
        for _ in range(repeats):
            latencies.clear()
            measuring_latency = True
            base = stream.updates
            count = LATENCY_RATE * 5
            await server.ask(cmd="push", updates=count, per_message=1, rate=LATENCY_RATE)
            while stream.updates - base < count:  # noqa: ASYNC110 (polling a counter)
                await asyncio.sleep(0.005)
            await asyncio.sleep(0.05)
            measuring_latency = False
            ordered = sorted(latencies)
            lat_runs.append(
                {
                    "p50_ms": ordered[len(ordered) // 2] * 1e3,
                    "p99_ms": ordered[int(len(ordered) * 0.99)] * 1e3,
                    "samples": len(ordered),
                }
            )
        results["latency_runs"] = lat_runs
        task.cancel()
        await stream.aclose()
    return results


def _summary(runs: list[dict[str, Any]], key: str) -> dict[str, float]:
    values = [run[key] for run in runs]
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--updates", type=int, default=300_000)
    parser.add_argument("--output", type=Path, default=RESULTS)
    arguments = parser.parse_args()
    if arguments.serve:
        asyncio.run(_serve())
        return
    raw = asyncio.run(_measure(arguments.repeats, arguments.updates))
    summary = {
        "merged_per_s": _summary(raw["throughput_runs"], "merged_per_s"),
        "yielded_per_s": _summary(raw["throughput_runs"], "yielded_per_s"),
        "client_cpu_share": _summary(raw["throughput_runs"], "client_cpu_share"),
        "server_cpu_share": _summary(raw["throughput_runs"], "server_cpu_share"),
        "p50_ms_at_10k": _summary(raw["latency_runs"], "p50_ms"),
        "p99_ms_at_10k": _summary(raw["latency_runs"], "p99_ms"),
        "memory_bytes_per_symbol": raw["memory_bytes_per_symbol"],
    }
    print(f"quote updates, 1,000 symbols, one socket ({arguments.repeats} runs: median [min-max])")
    for name, figures in summary.items():
        if isinstance(figures, dict):
            print(
                f"  {name:24} {figures['median']:>12,.2f}  "
                f"[{figures['min']:,.2f} - {figures['max']:,.2f}]"
            )
        else:
            print(f"  {name:24} {figures:>12,.0f}")
    goal = summary["merged_per_s"]["median"] >= TARGET_UPDATES  # type: ignore[index]
    print(f"  goal >= {TARGET_UPDATES:,}/s merged: {'met' if goal else 'NOT met'}")
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": "quote_throughput",
        "symbols": len(SYMBOLS),
        "updates_per_run": arguments.updates,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "summary": summary,
        "raw": raw,
    }
    arguments.output.write_text(json.dumps(document, indent=2) + "\n")
    print(f"wrote {arguments.output}")


if __name__ == "__main__":
    main()
