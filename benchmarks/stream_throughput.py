"""Streaming throughput: live bar updates from the simulator's socket to ``async for``.

Measures, against the bundled simulator running in its own process
(``benchmarks/_stream_server.py``, driven over a stdin/stdout control channel):

a. the most forming-bar updates per second one ``TvFeed`` (one socket, one core, consumers in
   tasks) delivers to 100 and 1,000 ``feed.stream(symbol, interval, partial=True)`` loops,
   with the server pushing as fast as the socket takes them; the server's send rate and both
   processes' CPU time say which side is the bottleneck;
b. latency from the server's send stamp to the consumer's receipt (p50/p99) at 10,000
   updates/s offered load over 1,000 streams (one ``du`` per WebSocket message, as
   TradingView sends them);
c. memory per idle stream (1,000 idle streams; RSS delta and tracemalloc delta, each in a
   fresh process, divided by 1,000);
d. ``import tvfeed_async`` time (fresh interpreter, best of N, minus ``python -c pass``);
e. the same measure as (a)/(b) for PyPI ``tvkit`` with 100 streams, when it is installed in
   ``/tmp/tvkit-venv`` (``benchmarks/_tvkit_client.py``).

Keys: 1,000 distinct (symbol, interval) subscriptions: BINANCE:BTCUSDT, ETHUSDT and
SIM001USDT..SIM060USDT times 17 intervals (the 13 standard ones and 2, 4, 10, 20 minutes, which
need a paid plan: the feed uses a simulator-issued pro_premium token). 100 streams are the first
100 of them. Each update carries the server's wall-clock send time in its volume field.

Run: ``python benchmarks/stream_throughput.py [--quick] [--repeats N] [--output PATH]``.
Prints tables and writes ``benchmarks/results/stream_throughput.json``. Timings are noisy on a
shared machine: best of N runs (N = ``--repeats``) is reported for throughput, the run with the
lowest p99 for latency.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import re
import statistics
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from _child import JsonChild, rss_bytes

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "stream_throughput.json"
SERVER = HERE / "_stream_server.py"
TVKIT_CLIENT = HERE / "_tvkit_client.py"
TVKIT_PYTHON = Path("/tmp/tvkit-venv/bin/python")

TARGET_UPDATES = 100_000
TARGET_P99_MS = 5.0
TARGET_IDLE_KB = 20.0
LATENCY_RATE = 10_000

SYMBOLS = ["BINANCE:BTCUSDT", "BINANCE:ETHUSDT"] + [f"BINANCE:SIM{n:03d}USDT" for n in range(1, 61)]
INTERVALS = ["1", "3", "5", "15", "30", "45", "60", "120", "180", "240", "1D", "1W", "1M"]
INTERVALS += ["2", "4", "10", "20"]
STAMP_FLOOR = 1e9  # a volume above this is a send stamp (unix seconds), not a real volume


def stream_keys(count: int) -> list[tuple[str, str]]:
    """``count`` distinct (symbol, interval) keys."""
    keys = [(symbol, interval) for interval in INTERVALS for symbol in SYMBOLS]
    if count > len(keys):
        raise ValueError(f"at most {len(keys)} distinct keys")
    return keys[:count]


# ------------------------------------------------------------------ the simulator process


class Server(JsonChild):
    """The simulator process and its control channel."""

    def __init__(self, process: asyncio.subprocess.Process, hello: dict[str, Any]) -> None:
        super().__init__(process, hello)
        self.ws_url: str = hello["ws_url"]
        self.token: str = hello["token"]
        self.control_port: int = hello["control_port"]

    @classmethod
    async def start(cls) -> Server:  # type: ignore[override]
        script = os.environ.get("STREAM_SERVER_SCRIPT", str(SERVER))
        return await super().start(sys.executable, script, ready_timeout=60)


class Control:
    """The same calls as :class:`Server`, over the server's loopback control port: what a
    client process of another source tree (``--compare``) drives the server with."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ws_url: str, token: str
    ) -> None:
        self._reader, self._writer = reader, writer
        self.ws_url, self.token = ws_url, token

    @classmethod
    async def connect(cls, port: int, ws_url: str, token: str) -> Control:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer, ws_url, token)

    async def call(self, **command: Any) -> dict[str, Any]:
        self._writer.write(json.dumps(command).encode() + b"\n")
        await self._writer.drain()
        answer: dict[str, Any] = json.loads(await self._reader.readline())
        if "error" in answer:
            raise RuntimeError(f"simulator: {answer['error']}")
        return answer

    async def close(self) -> None:
        self._writer.close()
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()


def endpoints_for(ws_url: str) -> Any:
    from tvfeed_async.config import Endpoints

    return Endpoints(ws_url=ws_url, www_url="http://127.0.0.1:9", symbol_search_url="")


# ------------------------------------------------------------------ tvfeed_async client side


class Counters:
    """Shared by every consumer task: updates seen, stamped latencies."""

    __slots__ = ("first", "initial", "last", "latencies", "stamped")

    def __init__(self) -> None:
        self.initial = 0
        self.stamped = 0
        self.first = 0.0
        self.last = 0.0
        self.latencies: list[float] = []

    def reset(self) -> None:
        self.stamped = 0
        self.first = self.last = 0.0
        self.latencies = []


async def consume(feed: Any, symbol: str, interval: str, counters: Counters) -> None:
    await count_bars(feed.stream(symbol, interval=interval, partial=True), counters)


async def consume_many(feed: Any, keys: list[tuple[str, str]], counters: Counters) -> None:
    """One ``stream_many`` consumer over every key (the queue holds one forming bar per key)."""
    await count_bars(feed.stream_many(keys, partial=True), counters)


async def count_bars(stream: Any, counters: Counters) -> None:
    clock = time.time
    async for bar in stream:
        volume = bar.volume
        if volume is not None and volume > STAMP_FLOOR:
            now = clock()
            if not counters.stamped:
                counters.first = now
            counters.stamped += 1
            counters.last = now
            counters.latencies.append(now - volume)
        else:
            counters.initial += 1


class Streams:
    """One TvFeed with ``count`` consumer tasks, all live."""

    def __init__(self, server: Server | Control, count: int, many: bool = False) -> None:
        self.server = server
        self.count = count
        self.many = many
        self.counters = Counters()
        self.feed: Any = None
        self.tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Streams:
        from tvfeed_async import TvFeed

        self.feed = TvFeed(
            endpoints=endpoints_for(self.server.ws_url),
            auth_token=self.server.token,
            session_cache=False,
            use_env=False,
            limits=server_limits(),
        )
        await self.feed.__aenter__()
        keys = stream_keys(self.count)
        if self.many:
            self.tasks = [asyncio.create_task(consume_many(self.feed, keys, self.counters))]
        else:
            self.tasks = [
                asyncio.create_task(consume(self.feed, symbol, interval, self.counters))
                for symbol, interval in keys
            ]
        deadline = time.monotonic() + 120
        while True:
            live = (await self.server.call(cmd="series"))["series"]
            if live >= self.count and self.counters.initial >= self.count:
                break
            for task in self.tasks:
                if task.done() and task.exception() is not None:
                    raise RuntimeError(f"a stream failed: {task.exception()!r}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"only {live} series live, {self.counters.initial} streams ready"
                )
            await asyncio.sleep(0.05)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.feed.__aexit__(None, None, None)

    async def run(
        self, rate: float, seconds: float, per_message: int, writer: str = "direct"
    ) -> dict[str, Any]:
        """One push from the server; returns both sides' figures."""
        counters = self.counters
        counters.reset()
        gc.collect()
        cpu0 = time.process_time()
        start = time.time()
        answer = await self.server.call(
            cmd="run", rate=rate, seconds=seconds, per_message=per_message, writer=writer
        )
        # Wait until the client has consumed what was sent (or stopped making progress).
        seen, still = -1, 0
        while counters.stamped < answer["sent"] and still < 10:
            await asyncio.sleep(0.05)
            still = still + 1 if counters.stamped == seen else 0
            seen = counters.stamped
        cpu = time.process_time() - cpu0
        span = max(counters.last - start, 1e-9)
        latencies = sorted(counters.latencies)
        return {
            "streams": self.count,
            "consumers": 1 if self.many else self.count,
            "writer": writer,
            "compressed": answer.get("compressed"),
            "offered_rate": rate or None,
            "per_message": per_message,
            "server_sent": answer["sent"],
            "server_send_rate": answer["send_rate"],
            "server_cpu_share": answer["cpu_seconds"] / answer["seconds"],
            "consumed": counters.stamped,
            "coalesced_share": 1 - counters.stamped / answer["sent"],
            "consumed_rate": counters.stamped / span,
            "client_packet_rate": answer["sent"] / span,
            "client_cpu_share": cpu / span,
            "client_seconds": span,
            "client_cpu_us_per_du": cpu / answer["sent"] * 1e6,
            "server_cpu_us_per_du": answer["cpu_seconds"] / answer["sent"] * 1e6,
            "latency_ms": percentiles(latencies),
        }


def median_run(runs: list[dict[str, Any]], figure: str) -> dict[str, Any]:
    """The run whose ``figure`` is the median (the lower middle one for an even count), with
    the median, spread and values of every summarised figure over all runs."""
    ranked = sorted(runs, key=lambda run: flatten(run).get(figure, float("inf")))
    chosen = dict(ranked[(len(ranked) - 1) // 2])
    chosen["over_runs"] = summarise(runs)
    return chosen


def decode_floor_us(packets: int = 20_000) -> float:
    """CPU time per ``du`` of the bare protocol pipeline (``codec_throughput.decode_du``:
    framing, parsing, bars) measured in this process now: the yardstick for the figures
    above, since the machine's speed varies with its load."""
    sys.path.insert(0, str(HERE))
    from codec_throughput import decode_du, du_messages, du_payloads

    messages = du_messages(du_payloads(packets))
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        decode_du(messages)
        best = min(best, time.process_time() - start)
    return best / packets * 1e6


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}

    def at(fraction: float) -> float:
        return values[min(len(values) - 1, int(fraction * len(values)))] * 1000

    return {
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "max": values[-1] * 1000,
        "mean": statistics.fmean(values) * 1000,
    }


async def profile_run(server: Server, count: int, seconds: float, per_message: int) -> str:
    """cProfile of the client during one saturated push; the top functions by own time."""

    async with Streams(server, count) as streams:
        profiler = cProfile.Profile(time.process_time)  # CPU time: the machine is shared
        profiler.enable()
        await streams.run(0, seconds, per_message)
        profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(30)
    stats.sort_stats("cumulative").print_stats(30)
    return out.getvalue()


# ------------------------------------------------------------------ memory per idle stream


def server_limits() -> Any:
    """The client's limits for the benchmark server, which allows 5,000 chart sessions per
    socket (_stream_server.py); the client's default is 200. The server has no session
    rate limit either, so the governor's pacing (10 chart sessions/s by default) is off:
    it would only make the 1,000 streams take 100 s to open, which is not what is measured."""
    from tvfeed_async import Limits

    return Limits(max_chart_sessions=5_000, chart_sessions_per_second=None)


async def memory_child(ws_url: str, token: str, count: int, traced: bool) -> dict[str, Any]:
    """In a fresh process: memory before and after ``count`` idle streams."""
    from tvfeed_async import TvFeed

    if traced:
        tracemalloc.start()

    def measure() -> int:
        gc.collect()
        if traced:
            return tracemalloc.get_traced_memory()[0]
        return rss_bytes()

    counters = Counters()
    keys = stream_keys(count + 1)
    feed = TvFeed(
        endpoints=endpoints_for(ws_url),
        auth_token=token,
        session_cache=False,
        use_env=False,
        limits=server_limits(),
    )
    async with feed:
        tasks = [asyncio.create_task(consume(feed, *keys[0], counters))]
        while counters.initial < 1:  # noqa: ASYNC110 - polling a counter is the point
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        before = measure()
        tasks += [asyncio.create_task(consume(feed, *key, counters)) for key in keys[1:]]
        while counters.initial < count + 1:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)
        after = measure()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return {"before": before, "after": after, "per_stream": (after - before) / count}


def memory_per_stream(ws_url: str, token: str, count: int) -> dict[str, Any]:
    results: dict[str, Any] = {"streams": count}
    for mode in ("rss", "tracemalloc"):
        output = subprocess.run(
            [sys.executable, __file__, "--memory-child", mode, ws_url, token, str(count)],
            check=True,
            capture_output=True,
            text=True,
            timeout=300,
        ).stdout
        results[mode] = json.loads(output.strip().splitlines()[-1])
    return results


# ------------------------------------------------------------------ import time


def import_time(repeats: int) -> dict[str, Any]:
    def best(code: str) -> float:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            times.append(time.perf_counter() - start)
        return min(times)

    bare = best("pass")
    full = best("import tvfeed_async")
    trace = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import tvfeed_async"],
        check=True,
        capture_output=True,
        text=True,
    ).stderr
    rows = []
    for line in trace.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \| (\s*)(\S+)", line)
        if match:
            rows.append((int(match[2]), len(match[3]) // 2, match[4]))
    own = next((c for c, depth, name in rows if name == "tvfeed_async" and depth == 0), None)
    heavy = sorted(
        ((c, name) for c, depth, name in rows if depth <= 2 and name != "tvfeed_async"),
        reverse=True,
    )[:8]
    return {
        "python_bare_ms": bare * 1000,
        "with_import_ms": full * 1000,
        "import_ms": (full - bare) * 1000,
        "importtime_cumulative_ms": None if own is None else own / 1000,
        "heaviest_ms": {name: cumulative / 1000 for cumulative, name in heavy},
    }


# ------------------------------------------------------------------ tvkit


async def tvkit_runs(server: Server, count: int, seconds: float, rate: float) -> dict[str, Any]:
    """tvkit, 100 streams (one client per symbol), in a subprocess of its own venv."""
    if not os.path.exists(TVKIT_PYTHON):  # noqa: ASYNC240 - once, before any timing
        return {"skipped": f"{TVKIT_PYTHON} not found"}
    process = await asyncio.create_subprocess_exec(
        str(TVKIT_PYTHON),
        str(TVKIT_CLIENT),
        server.ws_url,
        str(count),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    assert process.stdin is not None
    results: dict[str, Any] = {"streams": count}
    try:
        ready = json.loads(await asyncio.wait_for(process.stdout.readline(), 120) or b"{}")
        results["ready"] = ready
        if not ready.get("ready"):
            raise RuntimeError(f"tvkit client not ready: {ready}")
        for name, offered in (("saturated", 0.0), ("paced", rate)):
            process.stdin.write(b"reset\n")
            await process.stdin.drain()
            await process.stdout.readline()
            cpu_before = json.loads(await _tvkit_ask(process, b"cpu\n"))["cpu"]
            start = time.time()
            answer = await server.call(cmd="run", rate=offered, seconds=seconds, per_message=1)
            seen, still, report = -1, 0, {}
            while still < 10:
                await asyncio.sleep(0.05)
                report = json.loads(await _tvkit_ask(process, b"report\n"))
                if report["stamped"] >= answer["sent"]:
                    break
                still = still + 1 if report["stamped"] == seen else 0
                seen = report["stamped"]
            span = max(report["last"] - start, 1e-9)
            results[name] = {
                "offered_rate": offered or None,
                "server_sent": answer["sent"],
                "server_send_rate": answer["send_rate"],
                "server_cpu_share": answer["cpu_seconds"] / answer["seconds"],
                "consumed": report["stamped"],
                "consumed_rate": report["stamped"] / span,
                "client_cpu_share": (report["cpu"] - cpu_before) / span,
                "latency_ms": report["latency_ms"],
            }
    except Exception as error:
        results["error"] = repr(error)
    finally:
        if process.returncode is None:
            process.stdin.write(b"quit\n")
            try:
                await asyncio.wait_for(process.wait(), 20)
            except TimeoutError:
                process.kill()
                await process.wait()
        assert process.stderr is not None
        results["stderr_tail"] = (await process.stderr.read()).decode(errors="replace")[-2000:]
    return results


async def _tvkit_ask(process: asyncio.subprocess.Process, line: bytes) -> bytes:
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write(line)
    await process.stdin.drain()
    return await asyncio.wait_for(process.stdout.readline(), 30)


# ------------------------------------------------------------------ medians, trees side by side

#: What each client process measures, in this order: (name, consumers, offered rate).
CASES = (
    ("separate", "1,000 streams, 1,000 consumers, saturated", 0),
    ("latency", "1,000 streams, 1,000 consumers, 10,000/s offered", LATENCY_RATE),
    ("many", "1,000 streams, one stream_many consumer, saturated", 0),
)
#: Goals of issue 17, per case: (figure, at least / at most, value).
GOALS = {
    "separate": ("consumed_rate", ">=", 100_000.0),
    "many": ("consumed_rate", ">=", 150_000.0),
    "latency": ("p99_ms", "<", 2.0),
}
#: The figures summarised over repeats (median and spread).
FIGURES = (
    "consumed_rate",
    "client_packet_rate",
    "server_send_rate",
    "coalesced_share",
    "client_cpu_share",
    "client_cpu_us_per_du",
    "server_cpu_share",
    "p50_ms",
    "p99_ms",
)


def flatten(run: dict[str, Any]) -> dict[str, Any]:
    """A run's figures with its latency percentiles as top-level keys."""
    flat = {key: value for key, value in run.items() if key != "latency_ms"}
    for name, value in run.get("latency_ms", {}).items():
        flat[f"{name}_ms"] = value
    return flat


def spread(values: list[float]) -> dict[str, Any]:
    """Median, min, max and every value (in run order)."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": values,
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    flat = [flatten(run) for run in runs]
    return {
        name: spread([run[name] for run in flat])
        for name in FIGURES
        if all(run.get(name) is not None for run in flat)
    }


async def client_child(
    port: int,
    ws_url: str,
    token: str,
    seconds: float,
    writer_check: bool,
    profile: bool,
    cases: set[str],
) -> dict[str, Any]:
    """In a client process (of whichever source tree PYTHONPATH names): every case once."""
    import tvfeed_async

    control = await Control.connect(port, ws_url, token)
    results: dict[str, Any] = {"tree": os.path.dirname(os.path.dirname(tvfeed_async.__file__))}
    try:
        if cases & {"separate", "latency"}:
            async with Streams(control, 1000) as streams:
                await streams.run(0, 0.5, 1)  # warm-up
                if "separate" in cases:
                    results["separate"] = await streams.run(0, seconds, 1)
                if "latency" in cases:
                    results["latency"] = await streams.run(LATENCY_RATE, seconds, 1)
                if writer_check:
                    # The old server path (websockets' send() per message), for the record.
                    results["separate_simulator_writer"] = await streams.run(
                        0, seconds, 1, writer="simulator"
                    )
        if "many" in cases:
            async with Streams(control, 1000, many=True) as streams:
                await streams.run(0, 0.5, 1)
                results["many"] = await streams.run(0, seconds, 1)
        if profile:
            # After the figures: cProfile's cost must not be in them.
            for many in (False, True):
                async with Streams(control, 1000, many=many) as streams:
                    profiler = cProfile.Profile(time.process_time)
                    profiler.enable()
                    await streams.run(0, seconds, 1)
                    profiler.disable()
                out = io.StringIO()
                pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(25)
                print(f"client profile, many={many}:\n{out.getvalue()}", file=sys.stderr)
    finally:
        await control.close()
    return results


def load_average() -> list[float]:
    return [round(value, 2) for value in os.getloadavg()]


async def compare(arguments: argparse.Namespace) -> dict[str, Any]:
    """Client processes of this tree and of ``--compare``'s tree, alternately, against one
    server process: every case ``--repeats`` times each, medians with their spread."""
    seconds = 1.5 if arguments.quick else 4.0
    repeats = arguments.repeats or 5
    trees = {"new": HERE.parent / "src", "old": arguments.compare / "src"}
    cases = set(arguments.cases.split(","))
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
    loads: list[dict[str, Any]] = []
    server = await Server.start()
    try:
        for repeat in range(repeats):
            order = list(trees) if repeat % 2 == 0 else list(trees)[::-1]
            for name in order:
                loads.append({"tree": name, "repeat": repeat, "before": load_average()})
                print(f"repeat {repeat + 1}/{repeats}: {name} client", file=sys.stderr)
                env = dict(os.environ, PYTHONPATH=str(trees[name]))
                child = await asyncio.create_subprocess_exec(
                    sys.executable,
                    __file__,
                    "--client-child",
                    str(server.control_port),
                    server.ws_url,
                    server.token,
                    str(seconds),
                    "1" if arguments.writer_check and repeat == 0 else "0",
                    *(["--profile"] if arguments.profile and repeat == 0 else []),
                    "--cases",
                    ",".join(sorted(cases)),
                    env=env,
                    stdout=asyncio.subprocess.PIPE,
                )
                output, _ = await child.communicate()
                if child.returncode:
                    raise RuntimeError(f"{name} client failed ({child.returncode})")
                runs[name].append(json.loads(output.decode().strip().splitlines()[-1]))
    finally:
        await server.stop()
    summary: dict[str, Any] = {}
    for case, _, _ in CASES:
        if case in cases:
            summary[case] = {name: summarise([run[case] for run in runs[name]]) for name in trees}
    return {
        "mode": "compare",
        "trees": {name: str(path) for name, path in trees.items()},
        "seconds_per_run": seconds,
        "repeats": repeats,
        "summary": summary,
        "load_average": loads,
        "runs": runs,
        "decode_floor_us_per_du": decode_floor_us(),
    }


def print_comparison(results: dict[str, Any]) -> None:
    print(
        f"\nmedians over {results['repeats']} runs of {results['seconds_per_run']:g} s each "
        "(min-max); old and new clients alternate against one server process"
    )
    header = f"{'case':<9} {'tree':<4} {'consumed/s':>26} {'du decoded/s':>26} "
    header += f"{'cli us/du':>16} {'coalesced':>9} {'p99 ms':>18}"
    print(header)

    def cell(figure: dict[str, Any] | None, form: str, width: int) -> str:
        if figure is None:
            return " " * width
        text = f"{figure['median']:{form}} ({figure['min']:{form}}-{figure['max']:{form}})"
        return f"{text:>{width}}"

    for case, _, _ in CASES:
        if case not in results["summary"]:
            continue
        for tree, figures in results["summary"][case].items():
            print(
                f"{case:<9} {tree:<4} {cell(figures.get('consumed_rate'), ',.0f', 26)} "
                f"{cell(figures.get('client_packet_rate'), ',.0f', 26)} "
                f"{cell(figures.get('client_cpu_us_per_du'), '.2f', 16)} "
                f"{figures['coalesced_share']['median']:>9.1%} "
                f"{cell(figures.get('p99_ms'), '.2f', 18)}"
            )
        figure, relation, goal = GOALS[case]
        medians = {tree: f[figure]["median"] for tree, f in results["summary"][case].items()}
        met = {
            tree: (value >= goal if relation == ">=" else value < goal)
            for tree, value in medians.items()
        }
        ratio = medians["new"] / medians["old"] if medians.get("old") else float("nan")
        print(
            f"          goal {figure} {relation} {goal:,g}: "
            + ", ".join(f"{tree} {'met' if ok else 'missed'}" for tree, ok in met.items())
            + f"; new/old median {ratio:.2f}"
        )
    loads = [entry["before"][0] for entry in results["load_average"]]
    print(f"1-minute load average before each client run: {min(loads)}-{max(loads)}")
    print(
        f"yardstick: the bare codec pipeline costs {results['decode_floor_us_per_du']:.1f} us "
        "CPU per du in this process now"
    )


# ------------------------------------------------------------------ driver


async def measure(arguments: argparse.Namespace) -> dict[str, Any]:
    quick = arguments.quick
    seconds = 1.5 if quick else 4.0
    repeats = arguments.repeats or (1 if quick else 3)
    results: dict[str, Any] = {}
    server = await Server.start()
    try:
        print("memory per idle stream...", file=sys.stderr)
        results["memory"] = memory_per_stream(server.ws_url, server.token, 1000)
        throughput = []
        latency = []
        for count in (100, 1000):
            async with Streams(server, count) as streams:
                await streams.run(0, 0.5, 1)  # warm-up
                for per_message in (1, 20):
                    print(f"saturated: {count} streams, {per_message}/message", file=sys.stderr)
                    runs = [await streams.run(0, seconds, per_message) for _ in range(repeats)]
                    throughput.append(median_run(runs, "consumed_rate"))
                if count < 1000 and quick:
                    continue
                for rate in (LATENCY_RATE, LATENCY_RATE // 10):
                    print(f"latency: {count} streams at {rate}/s", file=sys.stderr)
                    runs = [await streams.run(rate, seconds, 1) for _ in range(repeats)]
                    latency.append(median_run(runs, "p99_ms"))
        async with Streams(server, 1000, many=True) as streams:
            await streams.run(0, 0.5, 1)  # warm-up
            print("saturated: 1000 streams, one stream_many consumer", file=sys.stderr)
            runs = [await streams.run(0, seconds, 1) for _ in range(repeats)]
            throughput.append(median_run(runs, "consumed_rate"))
        results["decode_floor_us_per_du"] = decode_floor_us()
        results["throughput"] = throughput
        results["latency"] = latency
        if arguments.profile:
            print("profiling the client...", file=sys.stderr)
            results["profile_1000_streams"] = await profile_run(server, 1000, seconds, 1)
        if not arguments.no_tvkit:
            print("tvkit...", file=sys.stderr)
            results["tvkit"] = await tvkit_runs(server, 100, seconds, LATENCY_RATE)
    finally:
        await server.stop()
    print("import time...", file=sys.stderr)
    results["import"] = import_time(5 if quick else 20)
    return results


def print_tables(results: dict[str, Any]) -> None:
    print("\n(a) saturated: server pushes as fast as the socket takes them")
    header = (
        f"{'streams':>7} {'cons.':>5} {'du/msg':>6} {'server sent/s':>13} {'consumed/s':>11} "
        f"{'coalesced':>9} {'srv CPU':>7} {'cli CPU':>7} {'cli us/du':>9} "
        f"{'p50 ms':>8} {'p99 ms':>8}"
    )
    print(header)
    for run in results["throughput"]:
        lat = run["latency_ms"]
        print(
            f"{run['streams']:>7} {run['consumers']:>5} {run['per_message']:>6} "
            f"{run['server_send_rate']:>13,.0f} "
            f"{run['consumed_rate']:>11,.0f} {run['coalesced_share']:>9.1%} "
            f"{run['server_cpu_share']:>7.0%} {run['client_cpu_share']:>7.0%} "
            f"{run['client_cpu_us_per_du']:>9.1f} "
            f"{lat.get('p50', 0):>8.2f} {lat.get('p99', 0):>8.2f}"
        )
    print(f"target: >= {TARGET_UPDATES:,} updates/s end to end")
    floor = results["decode_floor_us_per_du"]
    print(
        f"yardstick: the bare codec pipeline costs {floor:.1f} us CPU per du in this process "
        "now (codec_throughput.decode_du); CPU shares are of wall time (the machine is shared)"
    )
    print("\n(b) latency, server send stamp -> consumer, paced, 1 du per WebSocket message")
    print(
        f"{'streams':>7} {'offered':>8} {'sent/s':>9} {'consumed':>9} {'p50 ms':>8} {'p90 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8} {'cli CPU':>7} {'cli us/du':>9}"
    )
    for run in results["latency"]:
        lat = run["latency_ms"]
        print(
            f"{run['streams']:>7} {run['offered_rate']:>8,.0f} {run['server_send_rate']:>9,.0f} "
            f"{run['consumed']:>9,} "
            f"{lat['p50']:>8.2f} {lat['p90']:>8.2f} {lat['p99']:>8.2f} {lat['max']:>8.2f} "
            f"{run['client_cpu_share']:>7.0%} {run['client_cpu_us_per_du']:>9.1f}"
        )
    print(f"target: p99 < {TARGET_P99_MS} ms at 10,000/s with 1,000 streams")
    memory = results["memory"]
    print(f"\n(c) memory per idle stream ({memory['streams']:,} idle streams)")
    print(f"  RSS delta:         {memory['rss']['per_stream'] / 1024:8.2f} KB/stream")
    print(f"  tracemalloc delta: {memory['tracemalloc']['per_stream'] / 1024:8.2f} KB/stream")
    print(f"  target: < {TARGET_IDLE_KB:g} KB")
    imports = results["import"]
    print("\n(d) import tvfeed_async (fresh interpreter, best of N)")
    print(
        f"  {imports['import_ms']:.1f} ms over bare python ({imports['with_import_ms']:.1f} ms "
        f"vs {imports['python_bare_ms']:.1f} ms); -X importtime cumulative "
        f"{imports['importtime_cumulative_ms']} ms"
    )
    for name, ms in imports["heaviest_ms"].items():
        print(f"    {name:<40} {ms:8.1f} ms")
    tvkit = results.get("tvkit")
    if tvkit:
        print("\n(e) tvkit, 100 streams (one client/socket per stream)")
        if "error" in tvkit or "skipped" in tvkit:
            print(f"  {tvkit.get('error') or tvkit.get('skipped')}")
        for name in ("saturated", "paced"):
            run = tvkit.get(name)
            if run:
                lat = run["latency_ms"]
                print(
                    f"  {name:<9} offered {run['offered_rate'] or 'max'}: server sent "
                    f"{run['server_send_rate']:,.0f}/s, consumed {run['consumed_rate']:,.0f}/s "
                    f"({run['consumed']:,} of {run['server_sent']:,}), client CPU "
                    f"{run['client_cpu_share']:.0%}, p50 {lat.get('p50', 0):.2f} ms, "
                    f"p99 {lat.get('p99', 0):.2f} ms"
                )


def environment() -> dict[str, Any]:
    import orjson
    import websockets

    start = time.perf_counter()
    for _ in range(1000):
        sum(range(1000))
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "websockets": websockets.__version__,
        "orjson": orjson.__version__,
        "sum_range_1000_us": (time.perf_counter() - start) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs, one repeat")
    parser.add_argument("--repeats", type=int, default=0, help="runs per figure (median reported)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--profile", action="store_true", help="cProfile the 1,000-stream client")
    parser.add_argument("--no-tvkit", action="store_true", help="skip the tvkit comparison")
    parser.add_argument(
        "--compare",
        type=lambda text: Path(text).absolute(),
        metavar="TREE",
        help="only the streaming cases, client processes of this tree and of TREE (a git "
        "worktree: TREE/src) alternately against one server; medians of --repeats (5) runs",
    )
    parser.add_argument(
        "--writer-check",
        action="store_true",
        help="with --compare: once per tree, also push through the simulator's own writer",
    )
    parser.add_argument(
        "--cases",
        default="separate,latency,many",
        help="with --compare: which of separate, latency, many (comma-separated)",
    )
    parser.add_argument("--memory-child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--client-child", nargs=5, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.client_child:
        port, ws_url, token, seconds, check = arguments.client_child
        answer = asyncio.run(
            client_child(
                int(port),
                ws_url,
                token,
                float(seconds),
                check == "1",
                arguments.profile,
                set(arguments.cases.split(",")),
            )
        )
        print(json.dumps(answer))
        return
    if arguments.compare:
        results = asyncio.run(compare(arguments))
        results["environment"] = environment()
        print_comparison(results)
        output = arguments.output
        if output == RESULTS:
            output = RESULTS.with_name("stream_compare.json")
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwrote {output}")
        return
    if arguments.memory_child:
        mode, ws_url, token, count = arguments.memory_child
        answer = asyncio.run(memory_child(ws_url, token, int(count), mode == "tracemalloc"))
        print(json.dumps(answer))
        return
    results = asyncio.run(measure(arguments))
    results["environment"] = environment()
    results["targets"] = {
        "updates_per_second": TARGET_UPDATES,
        "p99_ms_at_10000_per_second": TARGET_P99_MS,
        "idle_stream_kb": TARGET_IDLE_KB,
    }
    print_tables(results)
    if "profile_1000_streams" in results:
        print("\nclient profile, 1,000 streams saturated:")
        print(results["profile_1000_streams"])
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {arguments.output}")


if __name__ == "__main__":
    main()
