"""History throughput: 50 symbols x 5,000 one-minute bars, one socket vs a socket per request.

The simulator runs in its own process (``python -m tvfeed_async.testing --virtual``: frozen
virtual time, so no live updates interfere), and so do the two ``ChaosProxy`` instances (a
0 ms one, to show the proxy is not the bottleneck, and a 25 ms-per-direction one for a 50 ms
round trip). The client side runs in this process, one core, no threads. Measured in the same
run, interleaved, best of N repeats, on plain loopback and through the 50 ms proxy:

1. ``tvfeed_async``: one ``TvFeed`` (opened inside the timing), ``get_hist_many`` with
   ``Limits(max_in_flight=50)`` (all at once) and with the default 16; every frame must have
   exactly ``bars`` rows.
2. Socket per request ("the tvdatafeed way"): sequentially, for each symbol, a fresh
   WebSocket (``websockets``) - ``set_auth_token``, ``chart_create_session``,
   ``resolve_symbol``, ``create_series`` - read until ``series_completed``, parsed by the same
   protocol core (``ClientProtocol``) and frame builder, then closed.
3. The floor: the same requests pipelined on one raw ``websockets`` connection; messages are
   only split into packets (``FrameDecoder``) and ``orjson.loads``-ed, counting bars and
   ``series_completed``; no client logic, no frames. Also through the 0 ms proxy.
4. ``tvkit`` (PyPI), in its own virtualenv, run as a subprocess per repeat: one ``OHLCV``
   client, ``get_historical_ohlcv`` per symbol, sequentially (each call opens a new socket;
   one client cannot run two requests at once). Timed inside that process (imports and
   interpreter start excluded). See ``benchmarks/_tvkit_runner.py``.

Run: ``python benchmarks/history_throughput.py [--repeats 3] [--quick] [--profile]``. Prints a
table and writes ``benchmarks/results/history_throughput.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import math
import os
import platform
import pstats
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import polars as pl
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from tvfeed_async import Endpoints, Limits, TvFeed
from tvfeed_async.frames import finalize, frame_from_wire_bars
from tvfeed_async.protocol import (
    ClientProtocol,
    FrameDecoder,
    Heartbeat,
    SeriesCompleted,
    SeriesData,
    encode_packet,
    new_session_id,
)
from tvfeed_async.protocol.messages import (
    ANONYMOUS_TOKEN,
    chart_create_session,
    create_series,
    request_more_data,
    resolve_symbol,
    set_auth_token,
    symbol_spec,
)
from tvfeed_async.testing.chaos import ChaosProxy
from tvfeed_async.testing.ws_server import ServerConfig, deflate_extension

RESULTS = Path(__file__).resolve().parent / "results" / "history_throughput.json"
TVKIT_RUNNER = Path(__file__).resolve().parent / "_tvkit_runner.py"
TVKIT_PYTHON = "/tmp/tvkit-venv/bin/python"
FLOOR_TARGET_RATIO = 1.5
BASELINE_TARGET_RATIO = 10.0
INTERVAL = "1"
LATENCY = 0.025  # per direction: a 50 ms round trip
CONDITIONS = ("loopback", "rtt50")
REPLAY_CONDITIONS = ("replay", "replay_rtt50")
MAX_MESSAGE = 64 * 1024 * 1024


# --------------------------------------------------------------------------- subprocesses


def _start(command: list[str], marker: str) -> tuple[subprocess.Popen[str], str]:
    """Start a helper process and return it with the first printed line containing marker."""
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, bufsize=1
    )
    assert process.stdout is not None
    for line in process.stdout:
        if marker in line:
            return process, line
    process.kill()
    raise RuntimeError(f"{command[:4]} exited without printing {marker!r}")


def start_simulator() -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-u", "-m", "tvfeed_async.testing"]
    command += ["--port", "0", "--virtual", "--no-http"]
    process, line = _start(command, "ws_url=")
    return process, line.split("ws_url=", 1)[1].split()[0]


def start_proxy(target_port: int, latency: float) -> tuple[subprocess.Popen[str], int]:
    command = [sys.executable, "-u", __file__, "--serve-proxy", str(target_port), str(latency)]
    process, line = _start(command, "proxy_port=")
    return process, int(line.split("proxy_port=", 1)[1])


async def serve_proxy(target_port: int, latency: float) -> None:
    """The ``--serve-proxy`` mode: a ChaosProxy until killed."""
    async with ChaosProxy("127.0.0.1", target_port, latency=latency) as proxy:
        print(f"proxy_port={proxy.port}", flush=True)
        await asyncio.Event().wait()


async def _record(url: str, symbol: str, bars: int) -> dict[str, Any]:
    """The simulator's own replies to one count request and a one-bar page, as payloads."""
    session = "cs_recordedxxxxx"
    replies: dict[str, Any] = {"session": session}
    decoder = FrameDecoder()
    async with connect(url, max_size=MAX_MESSAGE, proxy=None) as socket:
        replies["hello"] = await socket.recv()

        async def until(method: str) -> list[list[str]]:
            messages: list[list[str]] = []
            while True:
                packets = [p for p in decoder.feed(await socket.recv()) if isinstance(p, str)]
                messages.append(packets)
                if any(f'"m":"{method}"' in packet for packet in packets):
                    return messages

        for packet in [set_auth_token(ANONYMOUS_TOKEN).encode(), *_request(session, symbol, bars)]:
            await socket.send(packet)
        replies["create"] = await until("series_completed")
        replies["resolved"] = [m for m in replies["create"] if '"symbol_resolved"' in m[0]]
        replies["create"] = [m for m in replies["create"] if '"symbol_resolved"' not in m[0]]
        await socket.send(request_more_data(session, "sds_1", 1).encode())
        replies["more"] = await until("series_completed")
    return replies


async def serve_replay(simulator_url: str, count: int, bars: int) -> None:
    """The ``--serve-replay`` mode: a server that answers with the simulator's recorded bytes.

    At start it records, from the simulator, the replies to one request per symbol (and a
    one-bar ``request_more_data`` page); then it serves them with only the chart session id
    substituted, so its own cost per request is a string join and a deflate (at the
    simulator's zlib level). Understands
    exactly what the measured clients send: ``resolve_symbol``, ``create_series`` (any count:
    it replays the recorded ``bars``) and ``request_more_data``; everything else is ignored.
    """
    symbols = [f"BINANCE:SIM{index:03d}USDT" for index in range(1, count + 1)]
    recorded = {symbol: await _record(simulator_url, symbol, bars) for symbol in symbols}
    hello = recorded[symbols[0]]["hello"]

    def split(record: dict[str, Any], key: str) -> list[list[list[str]]]:
        return [[packet.split(record["session"]) for packet in m] for m in record[key]]

    templates = {
        symbol: {key: split(record, key) for key in ("resolved", "create", "more")}
        for symbol, record in recorded.items()
    }

    async def handle(socket: Any) -> None:
        await socket.send(hello)
        decoder = FrameDecoder()
        charts: dict[str, str] = {}

        async def reply(session: str, key: str) -> None:
            for message in templates[charts[session]][key]:
                await socket.send("".join(encode_packet(session.join(p)) for p in message))

        async for data in socket:
            for packet in decoder.feed(data):
                if isinstance(packet, Heartbeat):
                    continue
                message = orjson.loads(packet)
                method, params = message.get("m"), message.get("p", [])
                if method == "resolve_symbol":
                    spec = params[2]
                    name = orjson.loads(spec[1:])["symbol"] if spec.startswith("=") else spec
                    charts[params[0]] = name
                    await reply(params[0], "resolved")
                elif method == "create_series" and params[0] in charts:
                    await reply(params[0], "create")
                elif method == "request_more_data" and params[0] in charts:
                    await reply(params[0], "more")

    # Compressed exactly as the simulator compresses (same negotiated permessage-deflate,
    # zlib level ServerConfig.deflate_level), so the two servers differ only in generating bars.
    async with serve(
        handle,
        "127.0.0.1",
        0,
        max_size=MAX_MESSAGE,
        compression=None,
        extensions=[deflate_extension(ServerConfig().deflate_level)],
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        print(f"ws_url=ws://127.0.0.1:{port}/socket.io/websocket", flush=True)
        await asyncio.Event().wait()


def start_replay(simulator_url: str, count: int, bars: int) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-u", __file__, "--serve-replay", simulator_url, str(count)]
    process, line = _start([*command, str(bars)], "ws_url=")
    return process, line.split("ws_url=", 1)[1].split()[0]


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --------------------------------------------------------------------------- approaches


async def run_tvfeed(url: str, symbols: list[str], bars: int, in_flight: int) -> None:
    endpoints = Endpoints(ws_url=url)
    limits = Limits(max_in_flight=in_flight)
    async with TvFeed(endpoints=endpoints, session_cache=False, use_env=False, limits=limits) as f:
        results = await f.get_hist_many(symbols, interval=INTERVAL, n_bars=bars)
        opened = f.connections_opened
    assert opened == 1, opened
    for symbol, frame in results.items():
        assert isinstance(frame, pl.DataFrame), (symbol, frame)
        assert frame.height == bars, (symbol, frame.height)


def _request(session: str, symbol: str, bars: int) -> list[str]:
    return [
        chart_create_session(session).encode(),
        resolve_symbol(session, "sds_sym_1", symbol_spec(symbol)).encode(),
        create_series(session, "sds_1", "s1", "sds_sym_1", INTERVAL, bars).encode(),
    ]


async def run_socket_per_request(url: str, symbols: list[str], bars: int) -> None:
    for symbol in symbols:
        protocol = ClientProtocol()
        payloads = []
        async with connect(url, max_size=MAX_MESSAGE, proxy=None) as socket:
            session = new_session_id("cs")
            for packet in [
                set_auth_token(ANONYMOUS_TOKEN).encode(),
                *_request(session, symbol, bars),
            ]:
                await socket.send(packet)
            done = False
            while not done:
                for message in protocol.receive_data(await socket.recv()):
                    if isinstance(message, SeriesData):
                        payload = message.series.get("sds_1")
                        if payload is not None:
                            payloads.append(payload)
                    elif isinstance(message, SeriesCompleted):
                        done = True
                for echo in protocol.data_to_send():
                    await socket.send(echo)
        frame = finalize(
            frame_from_wire_bars([row.v for chunk in payloads for row in chunk.rows], symbol)
        )
        assert frame.height == bars, (symbol, frame.height)


async def run_floor(url: str, symbols: list[str], bars: int) -> None:
    loads = orjson.loads
    async with connect(url, max_size=MAX_MESSAGE, proxy=None) as socket:
        await socket.send(set_auth_token(ANONYMOUS_TOKEN).encode())
        for symbol in symbols:
            for packet in _request(new_session_id("cs"), symbol, bars):
                await socket.send(packet)
        decoder = FrameDecoder()
        completed = 0
        received = 0
        while completed < len(symbols):
            for item in decoder.feed(await socket.recv()):
                if isinstance(item, Heartbeat):
                    continue
                message = loads(item)
                method = message.get("m")
                if method == "series_completed":
                    completed += 1
                elif method == "timescale_update":
                    received += len(message["p"][1]["sds_1"]["s"])
    assert received == bars * len(symbols), received


def run_tvkit(url: str, symbols: list[str], bars: int) -> tuple[float, float]:
    command = [TVKIT_PYTHON, str(TVKIT_RUNNER), url + "?from=chart%2F", str(bars), *symbols]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"tvkit runner failed: {done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["rows"] == [bars] * len(symbols), result["rows"]
    return float(result["seconds"]), float(result["cpu_seconds"])


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of another process so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def timed(make: Callable[[], Awaitable[None]]) -> tuple[float, float]:
    """Wall seconds and this process's CPU seconds."""
    cpu = time.process_time()
    start = time.perf_counter()
    await make()
    return time.perf_counter() - start, time.process_time() - cpu


# --------------------------------------------------------------------------- driver


def tvkit_version() -> str | None:
    if not Path(TVKIT_PYTHON).exists():
        return None
    code = "from importlib.metadata import version; print(version('tvkit'))"
    done = subprocess.run([TVKIT_PYTHON, "-c", code], capture_output=True, text=True, check=False)
    return done.stdout.strip() if done.returncode == 0 else None


Measured = tuple[float, float]  # wall seconds, client CPU seconds


async def measure(
    arguments: argparse.Namespace, urls: dict[str, str], server_pids: dict[str, int]
) -> dict[str, dict[str, float]]:
    """Best of N for every (approach, condition), all run interleaved in each repeat.

    For each: the best wall time, the least client CPU time (this process, or tvkit's) and
    the least simulator CPU time seen over the repeats.
    """
    symbols = [f"BINANCE:SIM{index:03d}USDT" for index in range(1, arguments.symbols + 1)]
    bars = arguments.bars

    async def floor(url: str) -> Measured:
        return await timed(lambda: run_floor(url, symbols, bars))

    async def tvfeed_all(url: str) -> Measured:
        return await timed(lambda: run_tvfeed(url, symbols, bars, len(symbols)))

    async def tvfeed_16(url: str) -> Measured:
        return await timed(lambda: run_tvfeed(url, symbols, bars, 16))

    async def per_request(url: str) -> Measured:
        return await timed(lambda: run_socket_per_request(url, symbols, bars))

    async def tvkit(url: str) -> Measured:
        return run_tvkit(url, symbols, bars)

    approaches: list[tuple[str, Callable[[str], Awaitable[Measured]]]] = [
        ("floor", floor),
        ("tvfeed_async_all", tvfeed_all),
        ("tvfeed_async_16", tvfeed_16),
        ("socket_per_request", per_request),
    ]
    if arguments.tvkit:
        approaches.append(("tvkit", tvkit))
    conditions = CONDITIONS + (REPLAY_CONDITIONS if arguments.replay else ())
    plan = [(name, condition, run) for condition in conditions for name, run in approaches]
    plan.append(("floor", "proxy0", floor))
    best: dict[str, dict[str, float]] = {}
    # One untimed warm-up of each client on loopback (imports, first connections).
    await run_tvfeed(urls["loopback"], symbols[:2], bars, 2)
    await run_socket_per_request(urls["loopback"], symbols[:1], bars)
    await run_floor(urls["loopback"], symbols[:1], bars)
    for repeat in range(arguments.repeats):
        for name, condition, run in plan:
            server_pid = server_pids[condition]
            server = process_cpu(server_pid)
            seconds, client = await run(urls[condition])
            server = process_cpu(server_pid) - server
            key = f"{name}@{condition}"
            record = best.setdefault(
                key, {"seconds": math.inf, "client_cpu": math.inf, "server_cpu": math.inf}
            )
            record["seconds"] = min(record["seconds"], seconds)
            record["client_cpu"] = min(record["client_cpu"], client)
            record["server_cpu"] = min(record["server_cpu"], server)
            print(
                f"  repeat {repeat + 1}: {key:28s} {seconds:7.3f} s wall, client CPU "
                f"{client:6.3f} s, server CPU {server:6.3f} s",
                flush=True,
            )
    return best


def profile_tvfeed(arguments: argparse.Namespace, url: str) -> str:
    symbols = [f"BINANCE:SIM{index:03d}USDT" for index in range(1, arguments.symbols + 1)]
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(run_tvfeed(url, symbols, arguments.bars, len(symbols)))
    profiler.disable()
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(40)
    return out.getvalue()


def sum_range_us() -> float:
    best = float("inf")
    for _ in range(200):
        start = time.perf_counter()
        sum(range(1000))
        best = min(best, time.perf_counter() - start)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--bars", type=int, default=5_000)
    parser.add_argument("--quick", action="store_true", help="10 symbols x 1,000 bars, 1 repeat")
    parser.add_argument("--no-tvkit", dest="tvkit", action="store_false")
    parser.add_argument(
        "--no-replay", dest="replay", action="store_false", help="skip the replay-server runs"
    )
    parser.add_argument("--profile", action="store_true", help="cProfile tvfeed_async (loopback)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--serve-proxy", nargs=2, metavar=("TARGET_PORT", "LATENCY"))
    parser.add_argument("--serve-replay", nargs=3, metavar=("SIMULATOR_URL", "SYMBOLS", "BARS"))
    arguments = parser.parse_args()
    if arguments.serve_proxy:
        asyncio.run(serve_proxy(int(arguments.serve_proxy[0]), float(arguments.serve_proxy[1])))
        return
    if arguments.serve_replay:
        url, count, bars = arguments.serve_replay
        asyncio.run(serve_replay(url, int(count), int(bars)))
        return
    if arguments.quick:
        arguments.symbols, arguments.bars, arguments.repeats = 10, 1_000, 1
    version = tvkit_version() if arguments.tvkit else None
    if arguments.tvkit and version is None:
        print(f"tvkit not found at {TVKIT_PYTHON}: skipped", file=sys.stderr)
        arguments.tvkit = False

    helpers: list[subprocess.Popen[str]] = []
    try:
        simulator, url = start_simulator()
        helpers.append(simulator)
        port = int(url.split(":")[2].split("/")[0])
        proxy0, port0 = start_proxy(port, 0.0)
        helpers.append(proxy0)
        proxy50, port50 = start_proxy(port, LATENCY)
        helpers.append(proxy50)
        path = url.split(str(port), 1)[1]
        urls = {
            "loopback": url,
            "proxy0": f"ws://127.0.0.1:{port0}{path}",
            "rtt50": f"ws://127.0.0.1:{port50}{path}",
        }
        pids = dict.fromkeys(urls, simulator.pid)
        if arguments.replay:
            replay, replay_url = start_replay(url, arguments.symbols, arguments.bars)
            helpers.append(replay)
            replay_port = int(replay_url.split(":")[2].split("/")[0])
            proxy_replay, port_replay = start_proxy(replay_port, LATENCY)
            helpers.append(proxy_replay)
            urls["replay"] = replay_url
            urls["replay_rtt50"] = f"ws://127.0.0.1:{port_replay}{path}"
            pids["replay"] = pids["replay_rtt50"] = replay.pid
        print(f"simulator {url}; {arguments.symbols} symbols x {arguments.bars} bars", flush=True)
        best = asyncio.run(measure(arguments, urls, pids))
        profiled = urls["replay" if arguments.replay else "loopback"]
        profile = profile_tvfeed(arguments, profiled) if arguments.profile else None
    finally:
        for process in helpers:
            _stop(process)

    total_bars = arguments.symbols * arguments.bars
    rows = []
    for key, record in best.items():
        name, condition = key.split("@")
        rows.append(
            {
                "approach": name,
                "condition": condition,
                "seconds": record["seconds"],
                "bars_per_second": total_bars / record["seconds"],
                "client_cpu_seconds": record["client_cpu"],
                "server_cpu_seconds": record["server_cpu"],
            }
        )

    def wall(key: str) -> float:
        return best[key]["seconds"]

    def cpu(key: str) -> float:
        return best[key]["client_cpu"]

    floor_ratio = wall("tvfeed_async_all@loopback") / wall("floor@loopback")
    baseline_ratio = wall("socket_per_request@rtt50") / wall("tvfeed_async_all@rtt50")
    ratios = {
        "tvfeed_async_over_floor_loopback": floor_ratio,
        "tvfeed_async16_over_floor_loopback": wall("tvfeed_async_16@loopback")
        / wall("floor@loopback"),
        "tvfeed_async_over_floor_rtt50": wall("tvfeed_async_all@rtt50") / wall("floor@rtt50"),
        "client_cpu_tvfeed_async_over_floor_loopback": cpu("tvfeed_async_all@loopback")
        / cpu("floor@loopback"),
        "baseline_over_tvfeed_async_rtt50": baseline_ratio,
        "baseline_over_tvfeed_async16_rtt50": wall("socket_per_request@rtt50")
        / wall("tvfeed_async_16@rtt50"),
        "baseline_over_tvfeed_async_loopback": wall("socket_per_request@loopback")
        / wall("tvfeed_async_all@loopback"),
        "floor_proxy0_over_floor_loopback": wall("floor@proxy0") / wall("floor@loopback"),
    }
    if arguments.replay:
        ratios["replay_tvfeed_async_over_floor"] = wall("tvfeed_async_all@replay") / wall(
            "floor@replay"
        )
        ratios["replay_tvfeed_async16_over_floor"] = wall("tvfeed_async_16@replay") / wall(
            "floor@replay"
        )
        ratios["replay_client_cpu_tvfeed_async_over_floor"] = cpu("tvfeed_async_all@replay") / cpu(
            "floor@replay"
        )
        ratios["replay_rtt50_baseline_over_tvfeed_async"] = wall(
            "socket_per_request@replay_rtt50"
        ) / wall("tvfeed_async_all@replay_rtt50")
    if arguments.tvkit:
        for condition in CONDITIONS + (REPLAY_CONDITIONS if arguments.replay else ()):
            ratios[f"tvkit_over_tvfeed_async_{condition}"] = wall(f"tvkit@{condition}") / wall(
                f"tvfeed_async_all@{condition}"
            )

    print()
    print(
        f"{'approach':20s} {'condition':12s} {'wall s':>8s} {'bars/s':>9s} "
        f"{'client CPU s':>12s} {'server CPU s':>12s}"
    )
    for row in rows:
        print(
            f"{row['approach']:20s} {row['condition']:12s} {row['seconds']:8.3f} "
            f"{row['bars_per_second']:9,.0f} {row['client_cpu_seconds']:12.3f} "
            f"{row['server_cpu_seconds']:12.3f}"
        )
    print()
    for name, value in ratios.items():
        print(f"{name:44s} {value:6.2f}")
    print(
        f"tvfeed_async / floor on loopback (wall): {floor_ratio:.2f} (target <= "
        f"{FLOOR_TARGET_RATIO}: {'met' if floor_ratio <= FLOOR_TARGET_RATIO else 'MISSED'})"
    )
    print(
        f"socket per request / tvfeed_async at 50 ms: {baseline_ratio:.1f} (target >= "
        f"{BASELINE_TARGET_RATIO:.0f}: "
        f"{'met' if baseline_ratio >= BASELINE_TARGET_RATIO else 'MISSED'})"
    )
    if profile is not None:
        print(profile)

    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "sum_range_1000_us": sum_range_us(),
        "symbols": arguments.symbols,
        "bars": arguments.bars,
        "interval": INTERVAL,
        "repeats": arguments.repeats,
        "latency_per_direction_s": LATENCY,
        "tvkit_version": version,
        "tvkit_mode": "sequential, one OHLCV client, a new socket per request"
        if arguments.tvkit
        else None,
        "results": rows,
        "ratios": ratios,
        "targets": {
            "tvfeed_async_over_floor_loopback_max": FLOOR_TARGET_RATIO,
            "baseline_over_tvfeed_async_rtt50_min": BASELINE_TARGET_RATIO,
        },
        "targets_met": {
            "floor": floor_ratio <= FLOOR_TARGET_RATIO,
            "baseline": baseline_ratio >= BASELINE_TARGET_RATIO,
        },
    }
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {arguments.output}")


if __name__ == "__main__":
    main()
