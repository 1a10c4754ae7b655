"""The ``tvfeed-async`` command line, run as a real subprocess against the simulator."""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import polars as pl
import pytest
import pytest_asyncio

from tvfeed_async.testing import TvSimulator
from tvfeed_async.testing.http_app import Account

CLI = [sys.executable, "-m", "tvfeed_async.cli"]


@pytest_asyncio.fixture
async def sim():
    async with TvSimulator(accounts=[Account("trader", "pw-123456", 7, plan="pro")]) as simulator:
        yield simulator


def _args(sim: TvSimulator) -> list[str]:
    endpoints = sim.endpoints
    return [
        "--ws-url",
        endpoints.ws_url,
        "--www-url",
        endpoints.www_url,
        "--search-url",
        endpoints.symbol_search_url,
    ]


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TV_", "TVFEED_"))}
    env["TVFEED_CACHE_DIR"] = str(tmp_path / "cache")
    return env


async def run_cli(
    *args: str, env: dict[str, str], stdin: bytes = b""
) -> subprocess.CompletedProcess[bytes]:
    with anyio.fail_after(60):
        return await anyio.run_process([*CLI, *args], env=env, check=False, input=stdin)


async def test_demo_runs_offline_and_checks_truth(tmp_path):
    result = await run_cli("demo", "--seconds", "1", env=_env(tmp_path))
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert "demo finished: all bars matched" in out
    assert "1 connection(s) opened" in out


async def test_hist_table_and_files(sim, tmp_path):
    env = _env(tmp_path)
    table = await run_cli(
        *_args(sim), "hist", "BINANCE:BTCUSDT", "--interval", "60", "--bars", "5", env=env
    )
    assert table.returncode == 0, table.stderr.decode()
    assert "BINANCE:BTCUSDT" in table.stdout.decode()
    truth = sim.truth("BINANCE:BTCUSDT", "60", n_bars=5)
    for suffix in ("csv", "parquet", "json"):
        path = tmp_path / f"out.{suffix}"
        done = await run_cli(
            *_args(sim), "hist", "BINANCE:BTCUSDT", "-i", "60", "-n", "5", "-o", str(path), env=env
        )
        assert done.returncode == 0, done.stderr.decode()
        if suffix == "parquet":
            frame = pl.read_parquet(path)
            assert frame.equals(truth)
        elif suffix == "csv":
            frame = pl.read_csv(path)
            assert frame.get_column("close").to_list() == truth.get_column("close").to_list()
        else:
            rows = [json.loads(line) for line in path.read_text().splitlines()]
            assert [row["close"] for row in rows] == truth.get_column("close").to_list()


async def test_hist_many_symbols_reports_each(sim, tmp_path):
    result = await run_cli(
        *_args(sim),
        "hist",
        "BINANCE:BTCUSDT",
        "NASDAQ:NOSUCH",
        "FX:EURUSD",
        "-n",
        "3",
        env=_env(tmp_path),
    )
    err = result.stderr.decode()
    assert result.returncode == 0
    assert "BINANCE:BTCUSDT" in err
    assert "3 bars" in err
    assert "NASDAQ:NOSUCH" in err
    assert "failed" in err


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["hist", "NASDAQ:NOSUCH", "-n", "3"], "SymbolNotFound"),
        (["hist", "BINANCE:BTCUSDT", "--interval", "15m"], "ambiguous"),
        (["hist", "BINANCE:BTCUSDT", "-o", "out.xlsx"], ".parquet"),
    ],
)
async def test_errors_are_one_line_without_traceback(sim, tmp_path, args, needle):
    result = await run_cli(*_args(sim), *args, env=_env(tmp_path))
    err = result.stderr.decode()
    assert result.returncode == 1
    assert needle in err
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


async def test_search(sim, tmp_path):
    result = await run_cli(*_args(sim), "search", "AAPL", env=_env(tmp_path))
    assert result.returncode == 0, result.stderr.decode()
    assert "NASDAQ:AAPL" in result.stdout.decode()


async def test_login_caches_the_session_and_never_echoes_secrets(sim, tmp_path):
    env = _env(tmp_path)
    env["TV_PASSWORD"] = "pw-123456"
    result = await run_cli(*_args(sim), "login", "--username", "trader", env=env)
    out = result.stdout.decode() + result.stderr.decode()
    assert result.returncode == 0, out
    assert "plan pro" in out
    assert "pw-123456" not in out
    cache = tmp_path / "cache" / "sessions.json"
    assert cache.exists()
    assert (cache.stat().st_mode & 0o777) == 0o600
    assert sim.http is not None
    assert sim.http.signin_attempts == 1


async def _read_lines(stream, count: int) -> list[str]:
    lines: list[str] = []
    buffer = b""
    with anyio.fail_after(30):
        while len(lines) < count:
            chunk = await stream.receive()
            buffer += chunk
            *complete, buffer = buffer.split(b"\n")
            lines.extend(line.decode() for line in complete if line.strip())
    return lines


async def test_stream_prints_closed_bars_and_exits_cleanly_on_ctrl_c(sim, tmp_path):
    command = [*CLI, *_args(sim), "stream", "BINANCE:BTCUSDT", "--interval", "1", "--ndjson"]
    async with await anyio.open_process(command, env=_env(tmp_path)) as process:
        with anyio.fail_after(20):
            while sim.stats.methods["create_series"] < 1:  # noqa: ASYNC110 (a server counter)
                await anyio.sleep(0.02)
        await anyio.sleep(0.3)
        await sim.clock.advance(3 * 60)
        assert process.stdout is not None
        lines = await _read_lines(process.stdout, 3)
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(10):
            code = await process.wait()
    bars = [json.loads(line) for line in lines]
    assert code == 0
    assert all(bar["closed"] and bar["symbol"] == "BINANCE:BTCUSDT" for bar in bars)
    times = [bar["time"] for bar in bars]
    assert times == sorted(times)
    assert len(set(times)) == 3


async def test_simulate_prints_endpoints_and_stops_on_ctrl_c(tmp_path):
    async with await anyio.open_process(
        [*CLI, "simulate", "--port", "0"], env=_env(tmp_path)
    ) as process:
        assert process.stdout is not None
        lines = await _read_lines(process.stdout, 1)
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(10):
            code = await process.wait()
    assert any("ws://127.0.0.1:" in line for line in lines)
    assert code == 0


def _one_clean_line(result: subprocess.CompletedProcess[bytes]) -> str:
    err = result.stderr.decode()
    assert "Traceback" not in err
    assert "ExceptionGroup" not in err
    assert len(err.strip().splitlines()) == 1, err
    return err


@pytest.mark.parametrize("where", ["missing-directory", "a-directory", "under-a-file"])
async def test_unwritable_output_fails_before_downloading(sim, tmp_path, where):
    (tmp_path / "file.txt").write_text("x")
    path = {
        "missing-directory": tmp_path / "missing" / "out.csv",
        "a-directory": tmp_path / "dir.csv",
        "under-a-file": tmp_path / "file.txt" / "out.parquet",
    }[where]
    if where == "a-directory":
        path.mkdir()
    result = await run_cli(
        *_args(sim), "hist", "BINANCE:BTCUSDT", "-n", "5", "-o", str(path), env=_env(tmp_path)
    )
    assert result.returncode == 1
    assert "--output" in _one_clean_line(result)
    assert sim.stats.connections_opened == 0  # nothing was downloaded first


@pytest.mark.parametrize(
    ("url", "needle"),
    [
        ("http://127.0.0.1:1/socket.io/websocket", "--ws-url"),
        ("nonsense", "--ws-url"),
        ("ws://127.0.0.1:99999/x", "--ws-url"),
        ("ws://127.0.0.1:1/socket.io/websocket", "could not open"),
    ],
)
async def test_bad_ws_url_is_one_clear_line(tmp_path, url, needle):
    result = await run_cli(
        "--ws-url", url, "hist", "BINANCE:BTCUSDT", "-n", "3", env=_env(tmp_path)
    )
    assert result.returncode == 1
    err = _one_clean_line(result)
    assert needle in err
    assert "ClientConnectorError(" not in err


async def test_bad_ws_url_from_the_environment_names_the_variable(tmp_path):
    env = _env(tmp_path)
    env["TVFEED_WS_URL"] = "localhost:8765"
    result = await run_cli("hist", "BINANCE:BTCUSDT", env=env)
    assert result.returncode == 1
    assert "TVFEED_WS_URL" in _one_clean_line(result)


async def test_stream_into_a_closed_pipe_exits_quietly(sim, tmp_path):
    command = " ".join(
        shlex.quote(part) for part in [*CLI, *_args(sim), "stream", "BINANCE:BTCUSDT"]
    )
    pipeline = ["bash", "-c", f"set -o pipefail; {command} | head -n 1"]
    async with await anyio.open_process(pipeline, env=_env(tmp_path)) as process:
        await sim.wait_subscribed("BINANCE:BTCUSDT", timeout=20)
        assert process.stdout is not None
        await sim.clock.advance(60)
        first = await _read_lines(process.stdout, 1)
        with anyio.fail_after(30):
            while process.returncode is None:  # head has left; the next bars hit the pipe
                await sim.clock.advance(60)
                await anyio.sleep(0.1)
        assert process.stderr is not None
        err = b""
        with contextlib.suppress(anyio.EndOfStream):
            while True:
                err += await process.stderr.receive()
    assert "BINANCE:BTCUSDT" in first[0]
    assert process.returncode == 0, err.decode()
    assert "Traceback" not in err.decode()
    assert "BrokenPipe" not in err.decode()
    assert err.decode().strip() == ""


async def test_login_without_a_terminal_says_what_it_needs(sim, tmp_path):
    result = await run_cli(*_args(sim), "login", env=_env(tmp_path), stdin=b"")
    assert result.returncode == 1
    assert "TV_PASSWORD" in _one_clean_line(result)
    assert sim.http is not None
    assert sim.http.signin_attempts == 0


@pytest.mark.parametrize("seconds", ["-1", "nan", "soon"])
async def test_demo_rejects_bad_seconds_without_a_traceback(tmp_path, seconds):
    result = await run_cli("demo", "--seconds", seconds, env=_env(tmp_path))
    err = result.stderr.decode()
    assert result.returncode == 2
    assert "Traceback" not in err
    assert "--seconds" in err
