"""Scale soak: thousands of live series and quotes through a ``FeedPool``, one virtual hour with
faults, on the bundled simulator with the service's limits on (issue #22).

The simulator runs in its own process (``benchmarks/_scale_server.py``, driven over stdin and
stdout) so that the client's CPU time and memory are measured apart from the server's;
``--in-process`` runs it in the client's event loop instead (what the small test does).

* Series: ``--symbols`` generated crypto pairs (``BINANCE:SC0000USDT``...) times the intervals
  1, 5, 15 and 60 minutes, one ``pool.stream(symbol, interval=..., partial=True)`` consumer
  task each. The simulator allows its default 200 chart sessions per socket and a token's
  ``max_connections`` (50), and closes a socket that creates chart and quote sessions faster
  than ``--session-rate`` per second (burst ``--session-burst``), both kinds counted
  together, with "max sessions rate reached". The client's governor paces chart sessions at
  70% of that rate and quote sessions at 10%, each with half the burst (its two buckets are
  separate, so their sum must stay inside the server's one); the pool spreads the series
  over sockets of 184.
* Quotes: ``--quotes`` more generated pairs (``BINANCE:QT00000USDT``...), streamed with
  ``pool.stream_quotes`` in watchlists of ``--quote-chunk`` symbols each.
* Virtual time: ``--virtual-seconds`` of simulator time (``sim.clock.advance``) in steps of
  ``--step`` seconds, with the faults of ``--faults`` spread evenly over it: ``drop`` (every
  open socket's TCP connection cut), ``stall`` (every socket goes silent: the client's idle
  timeout finds it), ``restart`` (the server closes every socket, code 1012) and ``refuse``
  (every socket dropped and the next three upgrades refused with HTTP ``--refuse-status``,
  503 by default: the client takes a 429 for a rate limit and halves its session rates, which
  on its own makes the next resubscription of every series 8 times slower). After each fault the
  clock moves one more step while the sockets are down (those bars come by backfill), then
  the soak waits until the simulator holds every series and quote symbol live again and
  says how long that took.
* Check: every series' closed bars are compared with the simulator's truth over the window
  it was live (from its first bar's open time until the last bar closed before the end):
  bars lost (in the truth, never delivered), duplicated (delivered more than once) and wrong
  (delivered with other values). All three must be 0.

Run: ``python benchmarks/scale_soak.py [--quick] [--symbols N] [--quotes N]
[--virtual-seconds S] [--in-process]``. Prints a summary and writes
``benchmarks/results/scale_soak.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib.util
import json
import os
import platform
import resource
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from _child import JsonChild, rss_bytes

from tvfeed_async import FeedPool, Limits, RetryPolicy, Timeouts
from tvfeed_async.config import Endpoints

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "scale_soak.json"
SERVER_SCRIPT = HERE / "_scale_server.py"
INTERVALS = ["1", "5", "15", "60"]
FAULTS = ["drop", "stall", "restart", "refuse", "drop"]


def _load_server_module() -> Any:
    """``_scale_server.py`` as a module (its catalogue, names and command handler)."""
    name = "_tvfeed_scale_server"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, SERVER_SCRIPT)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


server_side = _load_server_module()


# ------------------------------------------------------------------ the simulator


class RemoteSim(JsonChild):
    """The simulator in a process of its own (``_scale_server.py``)."""

    quit_wait = 30.0

    def __init__(self, process: asyncio.subprocess.Process, hello: dict[str, Any]) -> None:
        super().__init__(process, hello)
        self.ws_url: str = hello["ws_url"]
        self.token: str = hello["token"]
        self.primed_seconds: float = hello.get("primed_seconds", 0.0)

    @classmethod
    async def start(  # type: ignore[override]
        cls, symbols: int, quotes: int, rate: float, burst: int
    ) -> RemoteSim:
        return await super().start(
            sys.executable,
            os.environ.get("SCALE_SERVER_SCRIPT", str(SERVER_SCRIPT)),
            f"--series-symbols={symbols}",
            f"--quote-symbols={quotes}",
            f"--session-rate={rate}",
            f"--session-burst={burst}",
            ready_timeout=600,
            limit=2**26,
        )

    def server_cpu(self) -> float | None:
        """The server process's CPU seconds so far."""
        return self.cpu_seconds()


class LocalSim:
    """The same calls on a simulator in this process."""

    def __init__(self, sim: Any) -> None:
        self.sim = sim
        self.ws_url: str = sim.endpoints.ws_url
        self.token: str = sim.issue_token("pro_premium")

    @classmethod
    async def start(cls, symbols: int, quotes: int, rate: float, burst: int) -> LocalSim:
        sim = server_side.make_simulator(symbols, quotes, rate, burst, 2.0)
        server_side.prime(sim, symbols, quotes)
        await sim.start()
        return cls(sim)

    async def call(self, **command: Any) -> dict[str, Any]:
        reply: dict[str, Any] = await server_side.answer(self.sim, command)
        if "error" in reply:
            raise RuntimeError(f"simulator: {reply['error']}")
        return reply

    def server_cpu(self) -> float | None:
        return None

    async def stop(self) -> None:
        await self.sim.stop()


# ------------------------------------------------------------------ the client


@dataclasses.dataclass
class Settings:
    symbols: int
    quotes: int
    virtual_seconds: float
    step: float = 60.0
    faults: tuple[str, ...] = tuple(FAULTS)
    intervals: tuple[str, ...] = tuple(INTERVALS)
    quote_chunk: int = 500
    session_rate: float = 50.0
    session_burst: int = 40
    idle: float = 30.0  # Timeouts.idle's default
    refuse_status: int = 503
    series_per_socket: int | None = None  # None: the pool's default (184)
    subscribe_timeout: float = 900.0


class Series:
    __slots__ = ("bars", "error", "first_at", "start", "updates")

    def __init__(self) -> None:
        self.first_at: float | None = None
        self.start: int | None = None
        self.bars: list[tuple[Any, ...]] = []
        self.updates = 0
        self.error: str | None = None


async def consume_series(pool: FeedPool, symbol: str, interval: str, state: Series) -> None:
    try:
        async with pool.stream(symbol, interval=interval, partial=True) as bars:
            async for bar in bars:
                state.updates += 1
                if state.first_at is None:
                    state.first_at = time.perf_counter()
                    state.start = bar.timestamp
                if bar.closed:
                    state.bars.append(
                        (bar.timestamp, bar.open, bar.high, bar.low, bar.close, bar.volume)
                    )
    except asyncio.CancelledError:
        raise
    except Exception as error:
        state.error = repr(error)


class Quotes:
    def __init__(self) -> None:
        self.first: dict[str, float] = {}
        self.updates = 0
        self.errors: list[str] = []


async def consume_quotes(pool: FeedPool, symbols: list[str], state: Quotes) -> None:
    try:
        async with pool.stream_quotes(symbols) as quotes:
            async for quote in quotes:
                state.updates += 1
                if quote.symbol not in state.first:
                    state.first[quote.symbol] = time.perf_counter()
                if quote.error is not None:
                    state.errors.append(f"{quote.symbol}: {quote.error}")
    except asyncio.CancelledError:
        raise
    except Exception as error:
        state.errors.append(repr(error))


async def wait_until(condition: Any, limit: float, poll: float = 0.1) -> float:
    """Wait until ``condition()`` holds; the wall seconds it took (``limit``: gives up)."""
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > limit:
            raise TimeoutError(f"not reached within {limit:.0f} s")
        await asyncio.sleep(poll)
    return time.perf_counter() - start


async def wait_live(sim: Any, series: int, quotes: int, opened: int, limit: float) -> float:
    """Wait until the simulator has opened ``opened`` connections in all and holds ``series``
    live series and ``quotes`` quote symbols; the wall seconds it took."""
    start = time.perf_counter()
    while True:
        live = await sim.call(cmd="live")
        if (
            live["series"] >= series
            and live["quotes"] >= quotes
            and live["connections_opened"] >= opened
        ):
            return time.perf_counter() - start
        if time.perf_counter() - start > limit:
            raise TimeoutError(f"only {live} live after {limit:.0f} s (want {series}, {quotes})")
        await asyncio.sleep(0.2)


def compare(
    received: list[tuple[Any, ...]], truth: list[list[Any]], end: int
) -> tuple[int, int, int]:
    """(lost, duplicated, wrong) of one series' closed bars against its truth; delivered bars
    opening at or after ``end`` (closed after the window) are not counted."""
    expected = {row[0]: tuple(row) for row in truth}
    seen: Counter[int] = Counter(bar[0] for bar in received if bar[0] < end)
    lost = sum(1 for stamp in expected if stamp not in seen)
    duplicated = sum(count - 1 for count in seen.values() if count > 1)
    wrong = sum(1 for bar in received if bar[0] < end and expected.get(bar[0], bar) != tuple(bar))
    wrong += sum(1 for stamp in seen if stamp not in expected)
    return lost, duplicated, wrong


def interval_seconds(interval: str) -> int:
    return int(interval) * 60


async def run_soak(sim: Any, settings: Settings, log: Any = print) -> dict[str, Any]:
    """Subscribe, run the virtual hour with faults, check every closed bar; the figures."""
    keys = [
        (server_side.series_symbol(n), interval)
        for n in range(settings.symbols)
        for interval in settings.intervals
    ]
    quote_symbols = [server_side.quote_symbol(n) for n in range(settings.quotes)]
    # The simulator counts chart and quote sessions in one bucket per socket, the governor
    # in two buckets per account, each with session_burst saved: the client's chart and
    # quote rates together stay at 80% of the server's, and their bursts together within it.
    limits = Limits(
        chart_sessions_per_second=settings.session_rate * 0.7,
        quote_sessions_per_second=settings.session_rate * 0.1,
        session_burst=max(1, settings.session_burst // 2),
    )
    endpoints = Endpoints(ws_url=sim.ws_url, www_url="http://127.0.0.1:9", symbol_search_url="")
    pool = FeedPool(
        [{"auth_token": sim.token}],
        series_per_socket=settings.series_per_socket,
        endpoints=endpoints,
        limits=limits,
        timeouts=Timeouts(idle=settings.idle, request=120.0),
        retry=RetryPolicy(initial=0.2, maximum=5.0),  # max_attempts=None: retry for ever
        session_cache=False,
        use_env=False,
    )
    series = {key: Series() for key in keys}
    quotes = Quotes()
    tasks: list[asyncio.Task[None]] = []
    figures: dict[str, Any] = {"series": len(keys), "quotes": len(quote_symbols)}
    rss0 = rss_bytes()
    cpu0 = time.process_time()
    async with pool:
        try:
            # Series.
            started = time.perf_counter()
            for (symbol, interval), state in series.items():
                tasks.append(asyncio.create_task(consume_series(pool, symbol, interval, state)))

            def all_first() -> bool:
                return all(s.first_at is not None or s.error for s in series.values())

            await wait_until(all_first, settings.subscribe_timeout)
            firsts = [s.first_at for s in series.values() if s.first_at is not None]
            figures["series_first_bar_seconds"] = max(firsts) - started if firsts else None
            cpu1, rss1 = time.process_time(), rss_bytes()
            figures["series_subscribe_cpu_seconds"] = cpu1 - cpu0
            figures["series_rss_bytes"] = rss1 - rss0
            log(f"{len(keys)} series live in {figures['series_first_bar_seconds']:.1f} s")
            # Quotes.
            started = time.perf_counter()
            for offset in range(0, len(quote_symbols), settings.quote_chunk):
                chunk = quote_symbols[offset : offset + settings.quote_chunk]
                tasks.append(asyncio.create_task(consume_quotes(pool, chunk, quotes)))
            await wait_until(
                lambda: len(quotes.first) >= len(quote_symbols), settings.subscribe_timeout
            )
            figures["quotes_first_snapshot_seconds"] = (
                max(quotes.first.values()) - started if quote_symbols else 0.0
            )
            cpu2, rss2 = time.process_time(), rss_bytes()
            figures["quotes_subscribe_cpu_seconds"] = cpu2 - cpu1
            figures["quotes_rss_bytes"] = rss2 - rss1
            log(
                f"{len(quote_symbols)} quotes live in "
                f"{figures['quotes_first_snapshot_seconds']:.1f} s"
            )
            live = await sim.call(cmd="live")
            figures["live_at_start"] = live
            log(
                f"per socket: series {live['series_per_connection']}, quotes "
                f"{live['quotes_per_connection']}"
            )
            # The virtual hour.
            steps = max(1, int(settings.virtual_seconds // settings.step))
            count = len(settings.faults)
            fault_at = {
                max(0, round(steps * (i + 1) / (count + 1)) - 1): name
                for i, name in enumerate(settings.faults)
            }
            recoveries: list[dict[str, Any]] = []
            soak_wall = time.perf_counter()
            server_cpu0 = sim.server_cpu()
            for step in range(steps):
                name = fault_at.get(step)
                if name is not None:
                    opened = (await sim.call(cmd="live"))["connections_opened"]
                    affected = (
                        await sim.call(cmd="fault", name=name, refuse_status=settings.refuse_status)
                    )["affected"]
                    fault_wall = time.perf_counter()
                await sim.call(cmd="advance", seconds=settings.step)
                if name is not None:
                    # Recovered: every affected socket replaced, everything live again.
                    await wait_live(sim, len(keys), len(quote_symbols), opened + affected, 900.0)
                    took = time.perf_counter() - fault_wall
                    recoveries.append({"fault": name, "sockets": affected, "seconds": took})
                    log(f"step {step + 1}/{steps}: {name} on {affected} sockets, {took:.1f} s")
                if (step + 1) % 10 == 0:
                    log(f"step {step + 1}/{steps}: {time.perf_counter() - soak_wall:.0f} s")
                await asyncio.sleep(0)
            end = int((await sim.call(cmd="now"))["now"])
            figures["soak_wall_seconds"] = time.perf_counter() - soak_wall
            figures["recoveries"] = recoveries
            # Every series: its closed bars up to the end, against the truth.
            windows = []
            for symbol, interval in keys:
                state = series[(symbol, interval)]
                start = state.start if state.start is not None else end
                windows.append([symbol, interval, start, end - interval_seconds(interval)])
            truth = (await sim.call(cmd="truth", keys=windows))["bars"]
            wanted = dict(zip(keys, truth, strict=True))

            def delivered() -> bool:
                # Every series that did not fail has a closed bar at or past its last truth bar.
                for key, rows in wanted.items():
                    state = series[key]
                    if not rows or state.error is not None:
                        continue
                    if not state.bars or state.bars[-1][0] < rows[-1][0]:
                        return False
                return True

            with contextlib.suppress(TimeoutError):
                figures["final_delivery_seconds"] = await wait_until(delivered, 120.0)
            cpu3 = time.process_time()
            figures["soak_cpu_seconds"] = cpu3 - cpu2
            server_cpu1 = sim.server_cpu()
            if server_cpu0 is not None and server_cpu1 is not None:
                figures["server_soak_cpu_seconds"] = server_cpu1 - server_cpu0
            figures["rss_peak_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
            figures["sockets"] = pool.sockets
            figures["series_per_socket"] = [entry.series for entry in pool.health().sockets]
            figures["pool_reconnects"] = pool.health().reconnects
            figures["governor"] = [_plain(governor.stats) for governor in pool.governors]
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
    # The check.
    by_interval: dict[str, dict[str, int]] = {
        interval: {"lost": 0, "duplicated": 0, "wrong": 0, "expected": 0, "series": 0}
        for interval in settings.intervals
    }
    failures = []
    for key, rows in wanted.items():
        state = series[key]
        row = by_interval[key[1]]
        lost, duplicated, wrong = compare(state.bars, rows, end - interval_seconds(key[1]))
        row["lost"] += lost
        row["duplicated"] += duplicated
        row["wrong"] += wrong
        row["expected"] += len(rows)
        row["series"] += 1
        if state.error is not None or lost or duplicated or wrong:
            failures.append({"key": list(key), "error": state.error, "lost": lost})
    total = {
        name: sum(row[name] for row in by_interval.values())
        for name in ("lost", "duplicated", "wrong", "expected", "series")
    }
    figures["bars"] = {"total": total, "by_interval": by_interval}
    figures["failed_series"] = failures[:20]
    figures["failed_series_count"] = len(failures)
    figures["quote_updates"] = quotes.updates
    figures["quote_errors"] = quotes.errors[:20]
    figures["series_updates"] = sum(s.updates for s in series.values())
    figures["simulator"] = await sim.call(cmd="stats")
    figures["cpu_seconds_total"] = time.process_time() - cpu0
    return figures


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _plain(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


def summary(figures: dict[str, Any], settings: Settings) -> list[str]:
    total = figures["bars"]["total"]
    n_series, n_quotes = figures["series"], figures["quotes"]
    hours = settings.virtual_seconds / 3600
    lines = [
        f"{n_series} series ({settings.symbols} symbols x {len(settings.intervals)} intervals), "
        f"{n_quotes} quotes, {settings.virtual_seconds:.0f} virtual s, "
        f"faults {', '.join(settings.faults)}",
        f"closed bars: {total['expected']} expected, lost {total['lost']}, duplicated "
        f"{total['duplicated']}, wrong {total['wrong']}; failed series "
        f"{figures['failed_series_count']}",
    ]
    for interval, row in figures["bars"]["by_interval"].items():
        lines.append(
            f"  interval {interval:>2}: {row['expected']:>7} expected, lost {row['lost']}, "
            f"duplicated {row['duplicated']}, wrong {row['wrong']}"
        )
    lines.append(
        f"first bar of every series: {figures['series_first_bar_seconds']:.1f} s; first "
        f"snapshot of every quote: {figures['quotes_first_snapshot_seconds']:.1f} s"
    )
    per_series_kb = figures["series_rss_bytes"] / max(1, n_series) / 1024
    per_quote_kb = figures["quotes_rss_bytes"] / max(1, n_quotes) / 1024
    lines.append(
        f"client RSS: +{per_series_kb:.1f} KB per series, +{per_quote_kb:.2f} KB per quote; "
        f"peak {figures['rss_peak_bytes'] / 2**20:.0f} MB"
    )
    soak_cpu = figures["soak_cpu_seconds"]
    series_ms = figures["series_subscribe_cpu_seconds"] / max(1, n_series) * 1e3
    quote_ms = figures["quotes_subscribe_cpu_seconds"] / max(1, n_quotes) * 1e3
    lines.append(
        f"client CPU: subscribe {series_ms:.2f} ms per series, {quote_ms:.2f} ms per quote; "
        f"soak {soak_cpu:.1f} s for {hours:.2f} virtual h "
        f"({figures['series_updates']} bar updates, {figures['quote_updates']} quote updates); "
        f"server soak CPU {figures.get('server_soak_cpu_seconds', float('nan')):.1f} s"
    )
    sim = figures["simulator"]
    lines.append(
        f"sockets: {figures['sockets']} now, {sim['connections_opened']} opened on the server "
        f"({sim['upgrades_refused']} upgrades refused); chart sessions "
        f"{sim['chart_sessions_created']}, quote sessions {sim['quote_sessions_created']}, "
        f"rate limited {sim['sessions_rate_limited']}"
    )
    for index, stats in enumerate(figures["governor"]):
        lines.append(f"governor {index}: {stats}")
    for entry in figures["recoveries"]:
        lines.append(
            f"  {entry['fault']:>7} ({entry['sockets']} sockets): all live again in "
            f"{entry['seconds']:.1f} s"
        )
    lines.append(f"soak wall time {figures['soak_wall_seconds']:.1f} s")
    return lines


async def main_async(arguments: argparse.Namespace) -> dict[str, Any]:
    settings = Settings(
        symbols=arguments.symbols,
        quotes=arguments.quotes,
        virtual_seconds=arguments.virtual_seconds,
        step=arguments.step,
        faults=tuple(f for f in arguments.faults.split(",") if f),
        quote_chunk=arguments.quote_chunk,
        session_rate=arguments.session_rate,
        session_burst=arguments.session_burst,
        refuse_status=arguments.refuse_status,
        idle=arguments.idle,
    )
    kind = LocalSim if arguments.in_process else RemoteSim
    sim = await kind.start(
        settings.symbols, settings.quotes, settings.session_rate, settings.session_burst
    )
    wall = time.perf_counter()
    try:
        figures = await run_soak(sim, settings)
    finally:
        await sim.stop()
    figures["wall_seconds"] = time.perf_counter() - wall
    figures["settings"] = dataclasses.asdict(settings)
    figures["in_process"] = arguments.in_process
    figures["server_primed_seconds"] = getattr(sim, "primed_seconds", None)
    figures["machine"] = {
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_before": arguments.load_before,
        "load_after": os.getloadavg(),
    }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=500)
    parser.add_argument("--quotes", type=int, default=10_000)
    parser.add_argument("--virtual-seconds", type=float, default=3600.0)
    parser.add_argument("--step", type=float, default=60.0, help="virtual seconds per advance")
    parser.add_argument("--faults", default=",".join(FAULTS))
    parser.add_argument("--quote-chunk", type=int, default=500, help="symbols per quote stream")
    parser.add_argument("--session-rate", type=float, default=50.0, help="server's limit, /s")
    parser.add_argument("--session-burst", type=int, default=40)
    parser.add_argument(
        "--refuse-status", type=int, default=503, help="HTTP status of refused upgrades"
    )
    parser.add_argument("--idle", type=float, default=30.0, help="client's Timeouts.idle, s")
    parser.add_argument("--quick", action="store_true", help="50 x 4 series, 500 quotes, 10 min")
    parser.add_argument("--in-process", action="store_true", help="simulator in this process")
    parser.add_argument("--output", type=Path, default=RESULTS)
    arguments = parser.parse_args()
    if arguments.quick:
        arguments.symbols, arguments.quotes, arguments.virtual_seconds = 50, 500, 600.0
    arguments.load_before = os.getloadavg()
    figures = asyncio.run(main_async(arguments))
    settings = Settings(**figures["settings"])
    for line in summary(figures, settings):
        print(line)
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print(f"wrote {arguments.output}")
    total = figures["bars"]["total"]
    if total["lost"] or total["duplicated"] or total["wrong"] or figures["failed_series_count"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
