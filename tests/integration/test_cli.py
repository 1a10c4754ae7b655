"""The ``tvfeed-async`` command line, run as a real subprocess against the simulator."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import anyio
import polars as pl
import pyotp
import pytest
import pytest_asyncio

import tvfeed_async
from tvfeed_async.demo import check_live_bars
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
            # Text formats carry prices at the symbol's pricescale (2 decimals for BTCUSDT).
            frame = pl.read_csv(path)
            assert frame.get_column("close").to_list() == truth["close"].round(2).to_list()
        else:
            rows = [json.loads(line) for line in path.read_text().splitlines()]
            assert [row["close"] for row in rows] == truth["close"].round(2).to_list()


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
    assert result.returncode == 1  # one of the symbols failed
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
    assert code == 130
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
    assert code == 130


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
    process = await anyio.open_process(pipeline, env=_env(tmp_path), start_new_session=True)
    try:
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
    finally:
        if process.returncode is None:
            os.killpg(process.pid, signal.SIGKILL)  # bash, the CLI and head
        await process.aclose()
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


# --------------------------------------------------------------------------- output

ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")
PRICES = ["open", "high", "low", "close"]


def _rounded_truth(sim: TvSimulator, symbol: str, interval: str, n_bars: int) -> pl.DataFrame:
    # BINANCE:BTCUSDT and BINANCE:ETHUSDT have pricescale 100 in the simulator's catalogue.
    info = sim.catalogue.get(symbol)
    assert info is not None
    assert info.pricescale == 100
    truth = sim.truth(symbol, interval, n_bars=n_bars)
    return truth.with_columns(pl.col(name).round(2) for name in PRICES)


@pytest.mark.parametrize("how", [["-o", "-", "--format"], ["--format"]])
@pytest.mark.parametrize("kind", ["csv", "ndjson", "parquet"])
async def test_hist_writes_each_format_to_stdout(sim, tmp_path, how, kind):
    result = await run_cli(
        *_args(sim),
        "hist",
        "BINANCE:BTCUSDT",
        "-i",
        "60",
        "-n",
        "30",
        *how,
        kind,
        env=_env(tmp_path),
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stderr == b""  # quiet off a terminal
    if kind == "parquet":
        frame = pl.read_parquet(io.BytesIO(result.stdout))
        assert frame.equals(sim.truth("BINANCE:BTCUSDT", "60", n_bars=30))
        return
    text = result.stdout.decode()
    if kind == "csv":
        frame = pl.read_csv(io.StringIO(text))
    else:
        frame = pl.DataFrame([json.loads(line) for line in text.splitlines()])
    truth = _rounded_truth(sim, "BINANCE:BTCUSDT", "60", 30)
    assert frame.height == 30
    for name in PRICES:
        assert frame.get_column(name).to_list() == truth.get_column(name).to_list()
    assert frame.get_column("time").to_list() == [t.isoformat() for t in truth["time"]]


async def test_hist_dash_output_defaults_to_csv(sim, tmp_path):
    result = await run_cli(
        *_args(sim), "hist", "BINANCE:BTCUSDT", "-n", "3", "-o", "-", env=_env(tmp_path)
    )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().splitlines()[0] == "time,symbol,open,high,low,close,volume"


async def test_one_time_format_and_prices_at_pricescale_everywhere(sim, tmp_path):
    env = _env(tmp_path)
    texts = {}
    for kind in ("csv", "ndjson"):
        path = tmp_path / f"out.{kind}"
        done = await run_cli(
            *_args(sim),
            "hist",
            "BINANCE:BTCUSDT",
            "-i",
            "1",
            "-n",
            "200",
            "-o",
            str(path),
            "--format",
            kind,
            env=env,
        )
        assert done.returncode == 0, done.stderr.decode()
        texts[kind] = path.read_text()
    csv_times = pl.read_csv(io.StringIO(texts["csv"])).get_column("time").to_list()
    json_rows = [json.loads(line) for line in texts["ndjson"].splitlines()]
    assert csv_times == [row["time"] for row in json_rows]
    assert all(ISO_TIME.match(value) for value in csv_times)
    # No binary float tails such as 90107.54000000001: at most two decimals (pricescale 100).
    raw_prices = re.findall(r'"(?:open|high|low|close)":(-?[0-9.e+-]+)', texts["ndjson"])
    assert len(raw_prices) == 4 * 200
    assert all(re.fullmatch(r"-?\d+(\.\d{1,2})?", value) for value in raw_prices)
    assert all(
        re.fullmatch(r"\d+(\.\d{1,2})?", cell)
        for line in texts["csv"].splitlines()[1:]
        for cell in line.split(",")[2:6]
    )


async def test_hist_prints_the_whole_table_off_a_terminal(sim, tmp_path):
    result = await run_cli(
        *_args(sim), "hist", "BINANCE:BTCUSDT", "-i", "1", "-n", "100", env=_env(tmp_path)
    )
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert "…" not in out
    for moment in sim.truth("BINANCE:BTCUSDT", "1", n_bars=100)["time"]:
        assert f"{moment:%Y-%m-%d %H:%M:%S}" in out


async def test_hist_warns_when_history_is_cut_short(sim, tmp_path):
    asked = 60_000
    available = sim.truth("BINANCE:ETHUSDT", "1D").height
    assert available < asked
    path = tmp_path / "eth.parquet"
    result = await run_cli(
        *_args(sim),
        "hist",
        "BINANCE:ETHUSDT",
        "-n",
        str(asked),
        "-o",
        str(path),
        env=_env(tmp_path),
    )
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert pl.read_parquet(path).height == available
    assert f"only {available:,} bars exist (asked for {asked:,})" in err
    enough = await run_cli(*_args(sim), "hist", "BINANCE:ETHUSDT", "-n", "10", env=_env(tmp_path))
    assert "warning" not in enough.stderr.decode()


def _open_pty() -> tuple[int, int]:
    import pty

    return pty.openpty()


async def _read_until_exit(process, master: int) -> bytes:
    os.set_blocking(master, False)
    data = b""
    with anyio.fail_after(60):
        while True:
            try:
                chunk = os.read(master, 65536)
            except BlockingIOError:
                if process.returncode is not None:
                    return data
                await anyio.sleep(0.02)
                continue
            except OSError:  # EIO: the terminal's other side is closed
                return data
            if not chunk:
                return data
            data += chunk


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
async def test_progress_on_a_terminal_only(sim, tmp_path):
    symbols = ["BINANCE:BTCUSDT", "BINANCE:ETHUSDT", "FX:EURUSD"]
    master, slave = _open_pty()
    command = [*CLI, *_args(sim), "hist", *symbols, "-n", "50", "-o", str(tmp_path / "a.csv")]
    try:
        async with await anyio.open_process(
            command, env=_env(tmp_path), stderr=slave, stdout=subprocess.DEVNULL
        ) as process:
            os.close(slave)
            slave = -1
            shown = (await _read_until_exit(process, master)).decode()
            await process.wait()
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    assert process.returncode == 0, shown
    for symbol in symbols:
        assert re.search(re.escape(symbol) + r"\s+50 bars\s+\d+\.\d\d s", shown), shown
    assert "symbols," in shown  # the status line, redrawn in place
    assert "\r" in shown
    quiet = await run_cli(
        *_args(sim),
        "hist",
        "BINANCE:BTCUSDT",
        "-n",
        "50",
        "-o",
        str(tmp_path / "b.csv"),
        env=_env(tmp_path),
    )
    assert quiet.returncode == 0
    assert quiet.stderr.decode() == f"wrote 50 bars to {tmp_path / 'b.csv'}\n"


async def test_any_failed_symbol_gives_a_non_zero_exit_and_the_rest_is_written(sim, tmp_path):
    path = tmp_path / "both.csv"
    result = await run_cli(
        *_args(sim),
        "hist",
        "NASDAQ:NOSUCH",
        "BINANCE:BTCUSDT",
        "-n",
        "4",
        "-o",
        str(path),
        env=_env(tmp_path),
    )
    err = result.stderr.decode()
    assert result.returncode == 1
    assert "NASDAQ:NOSUCH" in err
    assert "SymbolNotFound" in err
    assert "Traceback" not in err
    assert pl.read_csv(path).get_column("symbol").to_list() == ["BINANCE:BTCUSDT"] * 4


async def test_ctrl_c_during_hist_exits_130(sim, tmp_path):
    sim.faults.next_connection(stall_after_packets=1)  # the history never completes
    command = [*CLI, *_args(sim), "hist", "BINANCE:BTCUSDT", "-n", "10"]
    async with await anyio.open_process(command, env=_env(tmp_path)) as process:
        with anyio.fail_after(20):
            while sim.stats.methods["create_series"] < 1:  # noqa: ASYNC110 (a server counter)
                await anyio.sleep(0.02)
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(10):
            code = await process.wait()
        assert process.stderr is not None
        err = (await process.stderr.receive()).decode()
    assert code == 130
    assert "Traceback" not in err


async def test_version(tmp_path):
    result = await run_cli("--version", env=_env(tmp_path))
    assert result.returncode == 0
    assert result.stdout.decode().strip() == f"tvfeed-async {tvfeed_async.__version__}"


async def test_stream_prices_at_pricescale(sim, tmp_path):
    command = [*CLI, *_args(sim), "stream", "BINANCE:BTCUSDT", "--ndjson"]
    plain = [*CLI, *_args(sim), "stream", "BINANCE:BTCUSDT"]
    async with (
        await anyio.open_process(command, env=_env(tmp_path)) as as_json,
        await anyio.open_process(plain, env=_env(tmp_path)) as as_text,
    ):
        await sim.wait_subscribed("BINANCE:BTCUSDT", count=2, timeout=20)
        await sim.clock.advance(30 * 60)
        assert as_json.stdout is not None
        assert as_text.stdout is not None
        rows = [json.loads(line) for line in await _read_lines(as_json.stdout, 30)]
        lines = await _read_lines(as_text.stdout, 30)
        as_json.send_signal(signal.SIGINT)
        as_text.send_signal(signal.SIGINT)
    truth = _rounded_truth(sim, "BINANCE:BTCUSDT", "1", 30)
    for name in PRICES:
        assert [row[name] for row in rows] == truth.get_column(name).to_list()
    assert all(ISO_TIME.match(row["time"]) for row in rows)
    closes = [float(line.split(" C ")[1].split()[0]) for line in lines]
    assert closes == truth.get_column("close").to_list()
    assert all(
        re.search(r" O \d+\.\d\d H \d+\.\d\d L \d+\.\d\d C \d+\.\d\d ", line) for line in lines
    )


async def test_simulate_account_lets_login_be_tried_offline(tmp_path):
    secret = pyotp.random_base32()
    command = [*CLI, "simulate", "--account", f"me:s3cret:{secret}", "--account", "you:pw"]
    async with await anyio.open_process(command, env=_env(tmp_path)) as process:
        assert process.stdout is not None
        lines = await _read_lines(process.stdout, 8)  # accounts, endpoints, exports, clock
        found = re.search(
            r"TVFEED_WS_URL=(\S+) TVFEED_WWW_URL=(\S+) TVFEED_SYMBOL_SEARCH_URL=(\S+)",
            "\n".join(lines),
        )
        assert found, lines
        env = _env(tmp_path)
        env.update(TVFEED_WS_URL=found[1], TVFEED_WWW_URL=found[2], TV_PASSWORD="s3cret")
        env["TVFEED_SYMBOL_SEARCH_URL"] = found[3]
        login = await run_cli("login", "--username", "me", "--totp-secret", secret, env=env)
        wrong = await run_cli("login", "--username", "you", env={**env, "TV_PASSWORD": "no"})
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(10):
            await process.wait()
    out = login.stdout.decode() + login.stderr.decode()
    assert login.returncode == 0, out
    assert "signed in as me" in out
    assert "s3cret" not in out
    assert "account: me (plan free, 2FA with TOTP)" in lines
    assert "account: you (plan free, no 2FA)" in lines
    assert wrong.returncode == 1
    assert "InvalidCredentials" in _one_clean_line(wrong)


@pytest.mark.parametrize(
    "account", ["nobody", "me:", "me:pw:not-base32!", "me:pw:JBSWY3DPEHPK3PXP"]
)
async def test_simulate_rejects_a_malformed_account(tmp_path, account):
    result = await run_cli("simulate", "--account", account, env=_env(tmp_path))
    err = result.stderr.decode()
    assert result.returncode == 2
    assert "--account" in err
    assert "Traceback" not in err


async def test_demo_with_no_time_still_checks_every_bar(tmp_path):
    result = await run_cli("demo", "--seconds", "0", env=_env(tmp_path))
    out = result.stdout.decode()
    assert result.returncode == 0, out + result.stderr.decode()
    assert out.count("60 of 60 closed bars, each once and in order: == ground truth") == 2
    assert "demo finished: all bars matched" in out


async def test_demo_check_reports_missing_bars(tv_simulator):
    await tv_simulator.clock.advance(10 * 60)
    truth = tv_simulator.truth("BINANCE:BTCUSDT", "1", n_bars=10)
    bars = [
        tvfeed_async.Bar(int(t.timestamp()), o, h, lo, c, v, "BINANCE:BTCUSDT", "1", True)
        for t, _, o, h, lo, c, v in truth.iter_rows()
    ]
    assert check_live_bars(bars, truth)[0]
    same, report = check_live_bars(bars[:4] + bars[5:], truth)
    assert not same
    assert "9 of 10" in report
    assert not check_live_bars(bars + bars[-1:], truth)[0]


async def test_simulate_with_a_session_rate_limits_a_client_that_does_not_pace(tmp_path):
    """``simulate --session-rate`` makes the simulator answer as TradingView does when
    sessions come too fast, for trying a service's pacing offline."""
    from tvfeed_async import Endpoints, Limits, RetryPolicy, TvFeed

    command = [*CLI, "simulate", "--port", "0", "--session-rate", "1", "--session-burst", "2"]
    async with await anyio.open_process(command, env=_env(tmp_path)) as process:
        assert process.stdout is not None
        lines = await _read_lines(process.stdout, 1)
        url = next(line for line in lines if "ws_url=" in line).split("ws_url=", 1)[1].split()[0]
        unpaced = Limits(chart_sessions_per_second=None)
        retry = RetryPolicy(initial=0.01, maximum=0.05, max_attempts=3, history_attempts=1)
        try:
            async with TvFeed(
                endpoints=Endpoints(ws_url=url),
                limits=unpaced,
                retry=retry,
                session_cache=False,
                use_env=False,
            ) as feed:
                symbols = [f"BINANCE:SIM{index:03d}USDT" for index in range(1, 7)]
                await feed.get_hist_many(symbols, interval="1", n_bars=5)
                limited = feed.governor.stats.rate_limited
        finally:
            process.send_signal(signal.SIGINT)
            with anyio.fail_after(10):
                await process.wait()
    assert limited >= 1


@pytest.mark.parametrize("option", [["--session-rate", "0"], ["--session-rate", "fast"]])
async def test_simulate_rejects_a_bad_session_rate(tmp_path, option):
    result = await run_cli("simulate", *option, env=_env(tmp_path))
    assert result.returncode == 2
    assert "--session-rate" in result.stderr.decode()
    assert "Traceback" not in result.stderr.decode()
