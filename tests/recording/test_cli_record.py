"""``tvfeed-async record``: arguments, errors, clean stop and its metrics line."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import anyio
import pytest

from tvfeed_async.cli import main
from tvfeed_async.sinks import SeriesKey
from tvfeed_async.testing import TvSimulator

from ..support.feeds import cli_env
from .helpers import MINUTE, assert_exactly_truth, wait_for_store
from .stores import Row, parquet_rows

BTC = SeriesKey("BINANCE:BTCUSDT", "5")


def test_an_unknown_target_scheme_is_one_line_and_status_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    status = main(["record", "BINANCE:BTCUSDT", "--to", "mysql://localhost/db"])
    error = capsys.readouterr().err
    assert status == 1
    assert error.count("\n") == 1
    assert "postgresql://" in error


def test_maxlen_needs_a_redis_target(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    status = main(["record", "BINANCE:BTCUSDT", "--to", str(tmp_path), "--maxlen", "10"])
    assert status == 1
    assert "--maxlen" in capsys.readouterr().err


def test_record_is_listed_in_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["record", "--help"])
    out = capsys.readouterr().out
    for option in ("--to", "--backfill", "--since", "--forming", "--max-pending", "--extended"):
        assert option in out


async def test_sigterm_stops_cleanly_and_prints_the_metrics(
    tv_simulator: TvSimulator, tmp_path: Path
) -> None:
    sim = tv_simulator
    root = tmp_path / "candles"
    first = {BTC: int(sim.truth_rows(BTC.symbol, "5", n_bars=19)[0][0])}

    async def read(key: SeriesKey) -> list[Row]:
        return parquet_rows(root, key)

    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tvfeed_async.cli",
        "record",
        BTC.symbol,
        "--interval",
        "5",
        "--to",
        str(root),
        "--backfill",
        "20",
        "--stats-every",
        "0.2",
        env=cli_env(sim, tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_for_store(read, sim, [BTC])
        await sim.clock.advance(30 * MINUTE)
        held = await wait_for_store(read, sim, [BTC])
        process.terminate()
        with anyio.fail_after(30):
            _, err = await process.communicate()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, err.decode()
    assert_exactly_truth(held, sim, first)
    lines = [line for line in err.decode().splitlines() if line.startswith("{")]
    final = json.loads(lines[-1])
    assert final["sinks"][0]["sink"] == str(root)
    assert final["sinks"][0]["bars_written"] == len(held[BTC]) == 19 + 6
    assert final["sinks"][0]["gaps"] == []


async def test_an_unknown_symbol_fails_with_the_servers_reason(
    tv_simulator: TvSimulator, tmp_path: Path
) -> None:
    with anyio.fail_after(60):
        result = await anyio.run_process(
            [
                sys.executable,
                "-m",
                "tvfeed_async.cli",
                "record",
                "NOPE:NOTHING",
                "--to",
                str(tmp_path / "candles"),
            ],
            env=cli_env(tv_simulator, tmp_path),
            check=False,
        )
    assert result.returncode == 1
    assert "SymbolNotFound" in result.stderr.decode()
