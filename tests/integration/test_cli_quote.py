"""``tvfeed-async quote`` (#18): NDJSON on a pipe (a real subprocess), and the table."""

from __future__ import annotations

import io
import json
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import anyio

from tvfeed_async import Quote
from tvfeed_async.cli_quote import _watch_table, quote_table
from tvfeed_async.testing import TvSimulator

CLI = [sys.executable, "-m", "tvfeed_async.cli"]
BTC = "BINANCE:BTCUSDT"


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TV_", "TVFEED_"))}
    env["TVFEED_CACHE_DIR"] = str(tmp_path / "cache")
    return env


def _args(sim: TvSimulator) -> list[str]:
    return ["--ws-url", sim.endpoints.ws_url]


async def test_quote_prints_ndjson_on_a_pipe(tv_simulator: TvSimulator, tmp_path: Path) -> None:
    with anyio.fail_after(60):
        result = await anyio.run_process(
            [*CLI, *_args(tv_simulator), "quote", BTC, "NASDAQ:NOPE", "FX:EURUSD"],
            env=_env(tmp_path),
            check=False,
        )
    lines = [json.loads(line) for line in result.stdout.decode().splitlines()]
    assert [line["symbol"] for line in lines] == [BTC, "NASDAQ:NOPE", "FX:EURUSD"]
    assert result.returncode == 1  # one symbol has no quote
    forming = tv_simulator.forming_bar(BTC, "1")
    assert forming is not None
    assert lines[0]["last"] == forming.close
    assert lines[0]["update_mode"] == "streaming"
    assert lines[1]["error"]
    assert lines[2]["error"] is None


async def test_quote_watch_prints_each_update(tv_simulator: TvSimulator, tmp_path: Path) -> None:
    command = [*CLI, *_args(tv_simulator), "quote", BTC, "--watch"]
    process = await anyio.open_process(command, env=_env(tmp_path))
    try:
        assert process.stdout is not None
        buffer = b""
        lines: list[dict[str, object]] = []
        with anyio.fail_after(30):
            while not lines:
                buffer += await process.stdout.receive()
                lines = [json.loads(line) for line in buffer.split(b"\n")[:-1]]
            await tv_simulator.clock.advance(30)  # two deltas (they may coalesce into one line)
            forming = tv_simulator.forming_bar(BTC, "1")
            assert forming is not None
            while len(lines) < 2 or lines[-1]["last"] != forming.close:
                buffer += await process.stdout.receive()
                lines = [json.loads(line) for line in buffer.split(b"\n")[:-1]]
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(10):
            await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
        await process.aclose()
    assert lines[-1]["time"] == datetime.fromtimestamp(tv_simulator.clock.now(), UTC).isoformat()
    assert [line["symbol"] for line in lines] == [BTC] * len(lines)


def test_table_has_a_row_per_quote_and_shows_errors() -> None:
    moment = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
    raw = {
        "lp": 64000.5,
        "bid": 64000.0,
        "ask": 64001.0,
        "volume": 1234.0,
        "ch": 100.25,
        "chp": 0.16,
        "currency_code": "USDT",
        "lp_time": moment.timestamp(),
        "update_mode": "delayed_streaming_900",
    }
    good = Quote(BTC, "regular", None, MappingProxyType(raw))
    bad = Quote("NASDAQ:NOPE", "regular", "unknown symbol", MappingProxyType({}))
    lines = quote_table([good, bad]).splitlines()
    assert lines[0].split()[:2] == ["symbol", "last"]
    assert lines[1].split()[:4] == [BTC, "64,000.5", "+100.25", "+0.16%"]
    assert "2026-01-05 14:30:00" in lines[1]
    assert lines[1].endswith("delayed 900 s")
    assert lines[2].split() == ["NASDAQ:NOPE", "error:", "unknown", "symbol"]


class _ScriptedStream:
    """Stands in for a QuoteStream: yields the given quotes, then ends."""

    def __init__(self, quotes: list[Quote]) -> None:
        self._quotes = list(quotes)
        self.symbols = sorted({quote.symbol for quote in quotes})

    def __aiter__(self) -> _ScriptedStream:
        return self

    async def __anext__(self) -> Quote:
        if not self._quotes:
            raise StopAsyncIteration
        await anyio.sleep(0.05)
        return self._quotes.pop(0)


async def test_watch_table_redraws_in_place_with_the_latest_values() -> None:
    def quote(symbol: str, last: float) -> Quote:
        return Quote(symbol, "regular", None, MappingProxyType({"lp": last}))

    out = io.StringIO()
    quotes = [quote(BTC, 1.0), quote("BINANCE:ETHUSDT", 2.0), quote(BTC, 3.0)]
    await _watch_table(_ScriptedStream(quotes), out)  # type: ignore[arg-type]
    frames = out.getvalue().split("\x1b[H\x1b[J")[1:]
    assert frames  # at most REDRAWS_PER_SECOND a second: the 3 quotes take 0.15 s
    rows = frames[-1].splitlines()[1:]
    assert [row.split()[:2] for row in rows] == [["BINANCE:BTCUSDT", "3"], ["BINANCE:ETHUSDT", "2"]]
