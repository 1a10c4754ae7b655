"""History throughput: 50 symbols x 5,000 one-minute bars, one socket vs a socket per request.

The server runs in its own process. By default it is ``benchmarks/_history_server.py``, an
independently written server with the real service's habits (``--server independent``): the
newest bar is forming, one answer holds at most 5,000 bars, pages re-send a few bars, every
answer is serialised and deflated when it is asked for. ``--server simulator`` measures
against the bundled simulator instead (``python -m tvfeed_async.testing --virtual``: frozen
virtual time); both may be given. For each server these conditions: plain loopback; a 50 ms
round trip through a ``ChaosProxy`` process (25 ms per direction) that charges every new
connection one round trip for its TCP handshake (``handshake=True``), as a real link does;
the same round trip with connecting free (``rtt50_free_connect``: the model of the runs before
2026-12-03, which priced a new socket per request one round trip too low); and (unless ``--no-tls``;
independent server only) the handshake link to the server's ``wss://`` port
(``rtt50_tls``): real TLS end to end through the proxy, so every new connection also pays the
TLS handshake's round trip and both sides pay TLS's CPU, as with the real service, which serves
``wss://`` only. The certificate is a throwaway self-signed one made with the ``openssl``
command; the benchmark re-executes itself with ``SSL_CERT_FILE`` naming it, so every client
(aiohttp, ``websockets``, tvkit's subprocess) trusts it as it trusts a public CA. ``--compression``
adds the 50 ms proxy with limited bandwidth (``--bandwidth-mbit``; every approach runs there
too) and ``tvfeed_async`` with deflate forced on and off, to weigh permessage-deflate.

The client side runs in this process, one core, no threads. Every approach runs once per
repeat, interleaved, so load from other processes hits them alike; the figures are the
**median** over the repeats with their min-max spread, and each ratio is taken within a
repeat (then its median and spread are reported):

1. ``tvfeed_async``: one ``TvFeed`` (opened inside the timing), ``get_hist_many`` with the
   default ``Limits()`` (``tvfeed_async``) and with other ``max_in_flight`` values
   (``--in-flight``; ``tvfeed_async_all`` = every request at once); every frame must have
   exactly ``bars`` closed rows. Compression is the default policy as it applies to the
   server's real host: off on loopback (``Endpoints.compression="auto"``), on through the
   proxy, which stands for a remote host (``auto`` would see the proxy's loopback address).
2. Socket per request ("the tvdatafeed way"): sequentially, for each symbol, a fresh
   WebSocket (``websockets``, no compression offered, as tvdatafeed's websocket-client) -
   ``set_auth_token``, ``chart_create_session``, ``resolve_symbol``, ``create_series`` - read
   until ``series_completed``, parsed by the same protocol core (``ClientProtocol``) and
   frame builder, then closed.
3. The floor: the same requests pipelined on one raw ``websockets`` connection; messages are
   only split into packets (``FrameDecoder``) and ``orjson.loads``-ed, counting bars and
   ``series_completed``; no client logic, no frames. Measured with deflate negotiated
   (``floor``) and without (``floor_plain``); a repeat's floor is the faster of the two.
   The 0 ms proxy's floor shows the proxy is not the bottleneck.
4. ``tvkit`` (PyPI), in its own virtualenv, run as a subprocess per repeat: one ``OHLCV``
   client, ``get_historical_ohlcv`` per symbol, sequentially (each call opens a new socket;
   one client cannot run two requests at once). Timed inside that process (imports and
   interpreter start excluded). See ``benchmarks/_tvkit_runner.py``.

Run: ``python benchmarks/history_throughput.py [--repeats 5] [--quick] [--server S]
[--in-flight 16,32,50] [--compression] [--no-tls] [--profile]``. Prints a table and writes
``benchmarks/results/history_throughput.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import polars as pl
from _child import process_cpu
from websockets.asyncio.client import connect

from tvfeed_async import Endpoints, Limits, TvFeed
from tvfeed_async.frames import finalize, frame_from_wire_bars
from tvfeed_async.protocol import (
    ClientProtocol,
    FrameDecoder,
    Heartbeat,
    SeriesCompleted,
    SeriesData,
    new_session_id,
)
from tvfeed_async.protocol.messages import (
    ANONYMOUS_TOKEN,
    chart_create_session,
    create_series,
    resolve_symbol,
    set_auth_token,
    symbol_spec,
)
from tvfeed_async.testing.chaos import ChaosProxy

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "history_throughput.json"
TVKIT_RUNNER = HERE / "_tvkit_runner.py"
HISTORY_SERVER = HERE / "_history_server.py"
TLS_DIRECTORY = Path(tempfile.gettempdir()) / "tvfeed-history-benchmark-tls"
TVKIT_PYTHON = "/tmp/tvkit-venv/bin/python"
FLOOR_TARGET_RATIO = 1.2
BASELINE_TARGET_RATIO = 12.0
INTERVAL = "1"
LATENCY = 0.025  # per direction: a 50 ms round trip
MAX_MESSAGE = 64 * 1024 * 1024
SERVERS = ("independent", "simulator")


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


def start_server(
    kind: str, symbols: int, tls: tuple[Path, Path] | None = None
) -> tuple[subprocess.Popen[str], str, str | None]:
    """The server process, its ``ws://`` URL and (given a certificate) its ``wss://`` URL."""
    if kind == "independent":
        command = [sys.executable, "-u", str(HISTORY_SERVER), "--symbols", str(symbols)]
        if tls is not None:
            command += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    else:
        command = [sys.executable, "-u", "-m", "tvfeed_async.testing"]
        command += ["--port", "0", "--virtual", "--no-http"]
    process, line = _start(command, "ws_url=")
    secure = line.split("wss_url=", 1)[1].split()[0] if "wss_url=" in line else None
    return process, line.split("ws_url=", 1)[1].split()[0], secure


def _port(url: str) -> int:
    """The port of a ``ws://`` or ``wss://`` URL with an explicit one."""
    return int(url.split(":")[2].split("/")[0])


def make_certificate() -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (ECDSA P-256, valid a day) and its key; one
    made in the last hour is used again (by the run this one re-executes as)."""
    TLS_DIRECTORY.mkdir(mode=0o700, exist_ok=True)
    certificate, key = TLS_DIRECTORY / "cert.pem", TLS_DIRECTORY / "key.pem"
    present = certificate.exists() and key.exists()
    if not present or time.time() - certificate.stat().st_mtime > 3600:
        command = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt"]
        command += ["ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj"]
        command += ["/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
        command += ["-keyout", str(key), "-out", str(certificate)]
        subprocess.run(command, check=True, capture_output=True)
    return certificate, key


def start_proxy(
    target_port: int, latency: float, bandwidth: float | None = None, *, handshake: bool = True
) -> tuple[subprocess.Popen[str], int]:
    command = [sys.executable, "-u", __file__, "--serve-proxy", str(target_port), str(latency)]
    command += [str(bandwidth or 0), str(int(handshake))]
    process, line = _start(command, "proxy_port=")
    return process, int(line.split("proxy_port=", 1)[1])


async def serve_proxy(target_port: int, latency: float, bandwidth: float, handshake: bool) -> None:
    """The ``--serve-proxy`` mode: a ChaosProxy until killed (bandwidth 0: unlimited)."""
    async with ChaosProxy(
        "127.0.0.1",
        target_port,
        latency=latency,
        bandwidth=bandwidth or None,
        handshake=handshake,
    ) as proxy:
        print(f"proxy_port={proxy.port}", flush=True)
        await asyncio.Event().wait()


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# --------------------------------------------------------------------------- approaches


async def run_tvfeed(
    url: str, symbols: list[str], bars: int, in_flight: int | None, compression: str
) -> None:
    endpoints = Endpoints(ws_url=url, compression=compression)  # type: ignore[arg-type]
    limits = Limits() if in_flight is None else Limits(max_in_flight=in_flight)
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
        async with connect(url, max_size=MAX_MESSAGE, proxy=None, compression=None) as socket:
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
        # This way returns whatever the server sent, the forming bar included.
        assert frame.height == bars, (symbol, frame.height)


async def run_floor(url: str, symbols: list[str], bars: int, *, deflate: bool = True) -> None:
    loads = orjson.loads
    compression = "deflate" if deflate else None
    async with connect(url, max_size=MAX_MESSAGE, proxy=None, compression=compression) as socket:
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
Run = Callable[[str], Awaitable[Measured]]


def plan_runs(arguments: argparse.Namespace, conditions: dict[str, Condition]) -> list[Step]:
    """Every (approach, condition) measured in one repeat, in the order they run."""
    symbols = [f"BINANCE:SIM{index:03d}USDT" for index in range(1, arguments.symbols + 1)]
    bars = arguments.bars

    def tvfeed(in_flight: int | None, compression: str | None = None) -> Callable[[Condition], Run]:
        def make(condition: Condition) -> Run:
            policy = compression or ("on" if condition.remote else "auto")
            return lambda url: timed(lambda: run_tvfeed(url, symbols, bars, in_flight, policy))

        return make

    def floor(deflate: bool) -> Callable[[Condition], Run]:
        return lambda _: lambda url: timed(lambda: run_floor(url, symbols, bars, deflate=deflate))

    def per_request(_: Condition) -> Run:
        return lambda url: timed(lambda: run_socket_per_request(url, symbols, bars))

    def tvkit(_: Condition) -> Run:
        async def run(url: str) -> Measured:
            return run_tvkit(url, symbols, bars)

        return run

    main: list[tuple[str, Callable[[Condition], Run]]] = [
        ("floor", floor(True)),
        ("floor_plain", floor(False)),
        ("tvfeed_async", tvfeed(None)),
    ]
    for count in arguments.in_flight:
        name = "tvfeed_async_all" if count >= arguments.symbols else f"tvfeed_async_{count}"
        main.append((name, tvfeed(min(count, arguments.symbols))))
    main.append(("socket_per_request", per_request))
    if arguments.tvkit:
        main.append(("tvkit", tvkit))
    compared: list[tuple[str, Callable[[Condition], Run]]] = [
        ("tvfeed_async_deflate", tvfeed(None, "on")),
        ("tvfeed_async_plain", tvfeed(None, "off")),
    ]
    steps = []
    for key, condition in conditions.items():
        if condition.proxy0:
            chosen = [main[0], main[1]]
        elif condition.remote and arguments.compression:
            chosen = main + compared
        else:
            chosen = main
        steps.extend(Step(name, key, make(condition)) for name, make in chosen)
    return steps


class Condition:
    """One server reached one way."""

    def __init__(
        self,
        server: str,
        url: str,
        pid: int,
        *,
        remote: bool = False,
        proxy0: bool = False,
        bandwidth: float | None = None,
    ) -> None:
        self.server = server
        self.url = url
        self.pid = pid
        self.remote = remote
        self.proxy0 = proxy0
        self.bandwidth = bandwidth


class Step:
    def __init__(self, approach: str, condition: str, run: Run) -> None:
        self.approach = approach
        self.condition = condition
        self.run = run

    @property
    def key(self) -> str:
        return f"{self.approach}@{self.condition}"


async def measure(
    arguments: argparse.Namespace, conditions: dict[str, Condition]
) -> dict[str, list[dict[str, float]]]:
    """Every step once per repeat, interleaved; each repeat's figures are kept."""
    steps = plan_runs(arguments, conditions)
    samples: dict[str, list[dict[str, float]]] = {}
    symbols = [f"BINANCE:SIM{index:03d}USDT" for index in range(1, arguments.symbols + 1)]
    # One untimed warm-up of each client on each loopback server (imports, first sockets).
    for condition in conditions.values():
        if not condition.remote:
            await run_tvfeed(condition.url, symbols[:2], arguments.bars, 2, "auto")
            await run_socket_per_request(condition.url, symbols[:1], arguments.bars)
            await run_floor(condition.url, symbols[:1], arguments.bars)
    for repeat in range(arguments.repeats):
        for step in steps:
            condition = conditions[step.condition]
            server = process_cpu(condition.pid)
            seconds, client = await step.run(condition.url)
            server = process_cpu(condition.pid) - server
            samples.setdefault(step.key, []).append(
                {"seconds": seconds, "client_cpu": client, "server_cpu": server}
            )
            print(
                f"  repeat {repeat + 1}: {step.key:44s} {seconds:7.3f} s wall, client CPU "
                f"{client:6.3f} s, server CPU {server:6.3f} s",
                flush=True,
            )
    return samples


def profile_tvfeed(arguments: argparse.Namespace, url: str) -> str:
    symbols = [f"BINANCE:SIM{index:03d}USDT" for index in range(1, arguments.symbols + 1)]
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(run_tvfeed(url, symbols, arguments.bars, None, "auto"))
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


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def ratios_for(
    samples: dict[str, list[dict[str, float]]], server: str, tvkit: bool
) -> dict[str, dict[str, float]]:
    """Ratios taken within each repeat, as median and min-max."""

    def walls(key: str) -> list[float] | None:
        found = samples.get(key)
        return None if found is None else [sample["seconds"] for sample in found]

    def ratio(numerator: list[float] | None, denominator: list[float] | None) -> Any:
        if numerator is None or denominator is None:
            return None
        return spread([a / b for a, b in zip(numerator, denominator, strict=True)])

    loop, rtt = server, f"{server}_rtt50"
    floors = {}
    for condition in (loop, rtt):
        deflated, plain = walls(f"floor@{condition}"), walls(f"floor_plain@{condition}")
        if deflated is not None and plain is not None:
            floors[condition] = [min(a, b) for a, b in zip(deflated, plain, strict=True)]
    result = {
        "tvfeed_async_over_floor_loopback": ratio(walls(f"tvfeed_async@{loop}"), floors.get(loop)),
        "tvfeed_async_over_floor_rtt50": ratio(walls(f"tvfeed_async@{rtt}"), floors.get(rtt)),
        "socket_per_request_over_tvfeed_async_rtt50": ratio(
            walls(f"socket_per_request@{rtt}"), walls(f"tvfeed_async@{rtt}")
        ),
        "socket_per_request_over_tvfeed_async_loopback": ratio(
            walls(f"socket_per_request@{loop}"), walls(f"tvfeed_async@{loop}")
        ),
    }
    for key in samples:
        name, condition = key.split("@")
        if name.startswith("tvfeed_async_") and condition == rtt:
            result[f"socket_per_request_over_{name}_rtt50"] = ratio(
                walls(f"socket_per_request@{rtt}"), walls(key)
            )
        if name.startswith("tvfeed_async_") and condition == loop:
            result[f"{name}_over_floor_loopback"] = ratio(walls(key), floors.get(loop))
    if tvkit:
        for condition, label in ((loop, "loopback"), (rtt, "rtt50")):
            result[f"tvkit_over_tvfeed_async_{label}"] = ratio(
                walls(f"tvkit@{condition}"), walls(f"tvfeed_async@{condition}")
            )
    for key in samples:
        name, condition = key.split("@")
        if condition.startswith(rtt + "_") and name in ("socket_per_request", "tvkit"):
            label = condition.removeprefix(server + "_")
            result[f"{name}_over_tvfeed_async_{label}"] = ratio(
                walls(key), walls(f"tvfeed_async@{condition}")
            )
        if name == "tvfeed_async_plain" and condition.startswith(rtt):
            result[f"plain_over_deflate_{condition.removeprefix(server + '_')}"] = ratio(
                walls(key), walls(f"tvfeed_async_deflate@{condition}")
            )
    return {name: value for name, value in result.items() if value is not None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--bars", type=int, default=5_000)
    parser.add_argument("--quick", action="store_true", help="10 symbols x 1,000 bars, 1 repeat")
    parser.add_argument("--server", action="append", choices=SERVERS, help="default: independent")
    parser.add_argument(
        "--in-flight",
        type=lambda text: [int(part) for part in text.split(",") if part],
        default=[50],
        help="max_in_flight values measured besides the default (comma-separated)",
    )
    parser.add_argument("--compression", action="store_true", help="deflate on vs off at 50 ms")
    parser.add_argument(
        "--bandwidth-mbit",
        type=lambda text: [float(part) for part in text.split(",") if part],
        default=[100.0, 20.0],
        help="link rates for --compression (megabits per second, comma-separated)",
    )
    parser.add_argument(
        "--tls",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also the 50 ms link to the server's wss:// port (default; needs openssl)",
    )
    parser.add_argument("--no-tvkit", dest="tvkit", action="store_false")
    parser.add_argument("--profile", action="store_true", help="cProfile tvfeed_async (loopback)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--serve-proxy", nargs=4, metavar=("TARGET_PORT", "LATENCY", "BYTES_S", "HANDSHAKE")
    )
    arguments = parser.parse_args()
    if arguments.serve_proxy:
        port, latency, rate, handshake = arguments.serve_proxy
        asyncio.run(serve_proxy(int(port), float(latency), float(rate), handshake == "1"))
        return
    servers = arguments.server or ["independent"]
    if arguments.tls and shutil.which("openssl") is None:
        print("openssl not found: the TLS link is skipped", file=sys.stderr)
        arguments.tls = False
    if "independent" not in servers:
        arguments.tls = False
    tls = make_certificate() if arguments.tls else None
    if tls is not None and os.environ.get("SSL_CERT_FILE") != str(tls[0]):
        # aiohttp builds its default SSL context when it is imported, so the certificate
        # must be trusted before this process starts: run again with it in the environment.
        os.environ["SSL_CERT_FILE"] = str(tls[0])
        os.execv(sys.executable, [sys.executable, __file__, *sys.argv[1:]])
    if arguments.quick:
        arguments.symbols, arguments.bars, arguments.repeats = 10, 1_000, 1
    version = tvkit_version() if arguments.tvkit else None
    if arguments.tvkit and version is None:
        print(f"tvkit not found at {TVKIT_PYTHON}: skipped", file=sys.stderr)
        arguments.tvkit = False

    helpers: list[subprocess.Popen[str]] = []
    conditions: dict[str, Condition] = {}
    try:
        for kind in servers:
            process, url, secure_url = start_server(
                kind, arguments.symbols, tls if kind == "independent" else None
            )
            helpers.append(process)
            port = _port(url)
            path = url.split(str(port), 1)[1]

            def proxied(
                latency: float,
                bandwidth: float | None = None,
                *,
                handshake: bool = True,
                target: int = port,
                scheme: str = "ws",
                base: str = path,
            ) -> str:
                proxy, proxy_port = start_proxy(target, latency, bandwidth, handshake=handshake)
                helpers.append(proxy)
                return f"{scheme}://127.0.0.1:{proxy_port}{base}"

            conditions[kind] = Condition(kind, url, process.pid)
            conditions[f"{kind}_proxy0"] = Condition(kind, proxied(0.0), process.pid, proxy0=True)
            conditions[f"{kind}_rtt50"] = Condition(
                kind, proxied(LATENCY), process.pid, remote=True
            )
            conditions[f"{kind}_rtt50_free_connect"] = Condition(
                kind, proxied(LATENCY, handshake=False), process.pid, remote=True
            )
            if secure_url is not None:
                conditions[f"{kind}_rtt50_tls"] = Condition(
                    kind,
                    proxied(LATENCY, target=_port(secure_url), scheme="wss"),
                    process.pid,
                    remote=True,
                )
            if arguments.compression:
                for mbit in arguments.bandwidth_mbit:
                    rate = mbit * 1e6 / 8
                    conditions[f"{kind}_rtt50_{mbit:g}mbit"] = Condition(
                        kind, proxied(LATENCY, rate), process.pid, remote=True, bandwidth=rate
                    )
            print(f"{kind} server {url}; {arguments.symbols} x {arguments.bars} bars", flush=True)
        samples = asyncio.run(measure(arguments, conditions))
        profile = (
            profile_tvfeed(arguments, conditions[servers[0]].url) if arguments.profile else None
        )
    finally:
        for process in helpers:
            _stop(process)

    total_bars = arguments.symbols * arguments.bars
    rows = []
    for key, found in samples.items():
        name, condition = key.split("@")
        seconds = spread([sample["seconds"] for sample in found])
        rows.append(
            {
                "approach": name,
                "condition": condition,
                "seconds": seconds,
                "bars_per_second_median": total_bars / seconds["median"],
                "client_cpu_seconds": spread([sample["client_cpu"] for sample in found]),
                "server_cpu_seconds": spread([sample["server_cpu"] for sample in found]),
            }
        )
    ratios = {kind: ratios_for(samples, kind, arguments.tvkit) for kind in servers}

    print()
    print(
        f"{'approach':22s} {'condition':28s} {'wall s median (min-max)':>26s} "
        f"{'client CPU s':>12s} {'server CPU s':>12s}"
    )
    for row in rows:
        wall = row["seconds"]
        print(
            f"{row['approach']:22s} {row['condition']:28s} {wall['median']:8.3f} "
            f"({wall['min']:.3f}-{wall['max']:.3f})    "
            f"{row['client_cpu_seconds']['median']:12.3f} "
            f"{row['server_cpu_seconds']['median']:12.3f}"
        )
    targets_met: dict[str, dict[str, bool]] = {}
    for kind, found in ratios.items():
        print(f"\nratios, {kind} server (median, min-max over repeats):")
        for name, value in found.items():
            print(f"  {name:52s} {value['median']:6.2f} ({value['min']:.2f}-{value['max']:.2f})")
        met = targets_met.setdefault(kind, {})
        floor = found.get("tvfeed_async_over_floor_loopback")
        if floor is not None:
            met["floor"] = floor["median"] <= FLOOR_TARGET_RATIO
            print(
                f"  tvfeed_async / floor on loopback: {floor['median']:.2f} (target <= "
                f"{FLOOR_TARGET_RATIO}: {'met' if met['floor'] else 'MISSED'})"
            )
        for other in ("socket_per_request", "tvkit"):
            links = (
                ("", "50 ms"),
                ("_free_connect", "50 ms, free connect"),
                ("_tls", "50 ms, TLS"),
            )
            for suffix, link in links:
                value = found.get(f"{other}_over_tvfeed_async_rtt50{suffix}")
                if value is None:
                    continue
                met[other + suffix] = value["median"] >= BASELINE_TARGET_RATIO
                print(
                    f"  {other} / tvfeed_async at {link}: {value['median']:.1f} (target >= "
                    f"{BASELINE_TARGET_RATIO:.0f}: {'met' if met[other + suffix] else 'MISSED'})"
                )
    if profile is not None:
        print(profile)

    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "sum_range_1000_us": sum_range_us(),
        "servers": servers,
        "symbols": arguments.symbols,
        "bars": arguments.bars,
        "interval": INTERVAL,
        "repeats": arguments.repeats,
        "statistic": "median over repeats, with min and max; ratios taken within each repeat",
        "latency_per_direction_s": LATENCY,
        "tls": arguments.tls,
        "bandwidth_mbit": arguments.bandwidth_mbit if arguments.compression else None,
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
        "targets_met": targets_met,
    }
    arguments.output.parent.mkdir(parents=True, exist_ok=True)
    arguments.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {arguments.output}")


if __name__ == "__main__":
    main()
