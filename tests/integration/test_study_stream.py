"""``TvFeed.stream_study`` against the simulator's virtual clock: live study rows with the
bars' contract (each closed row once, in order, across reconnects), checked against
formulas written out here over the simulator's bar truth, not against its study engine."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from datetime import datetime

import anyio
import pytest

from tvfeed_async import EntitlementError, InvalidRequest, StudyPoint, SymbolNotFound

from ..support.feeds import open_feed
from ..support.streams import FAST, MINUTE, truth_bars
from .test_studies import sma, wilder_rsi

BTC = "BINANCE:BTCUSDT"


def close_to(actual: float | None, expected: float | None) -> bool:
    if actual is None or expected is None:
        return actual is expected
    return abs(actual - expected) <= 1e-6 * max(1.0, abs(expected))


async def take(
    stream, count: int, *, closed_only: bool = True, limit: float = 30
) -> list[StudyPoint]:
    rows: list[StudyPoint] = []
    with anyio.fail_after(limit):
        async for row in stream:
            if row.closed or not closed_only:
                rows.append(row)
                if len(rows) == count:
                    break
    return rows


def sma_truth(sim, rows: list[StudyPoint], length: int) -> dict[int, float | None]:
    """SMA of the truth closes at each row's time (the ``length - 1`` bars before it read
    from the truth too)."""
    start = rows[0].timestamp - (length - 1) * MINUTE
    bars = truth_bars(sim, BTC, "1", start, rows[-1].timestamp + 1)
    values = sma([bar[4] for bar in bars], length)
    return {bar[0]: value for bar, value in zip(bars, values, strict=True)}


async def test_sma_rows_once_in_order_from_history_to_live(tv_simulator):
    async with open_feed(tv_simulator) as feed:
        stream = feed.stream_study(
            BTC, interval="1", study="STD;SMA", inputs={"length": 9}, history=40, partial=True
        )
        async with contextlib.aclosing(stream):
            history = await take(stream, 39)
            await tv_simulator.clock.advance(15 * MINUTE)
            live = await take(stream, 15)
            forming = await take(stream, 1, closed_only=False)
    rows = history + live
    times = [row.timestamp for row in rows]
    assert times == list(range(times[0], times[0] + len(rows) * MINUTE, MINUTE))
    assert all(row.plots == ("MA",) and row.study == "STD;SMA" for row in rows)
    assert all(row.symbol == BTC and row.interval == "1" for row in rows)
    expected = sma_truth(tv_simulator, rows, 9)
    # The first 8 history rows have no 9 bars before them on the chart: no value.
    assert [row.values[0] for row in history[:8]] == [None] * 8
    for row in rows[8:]:
        assert close_to(row.values[0], expected[row.timestamp]), row
    assert rows[-1].as_dict() == {"MA": rows[-1].values[0]}
    assert not forming[0].closed
    assert forming[0].timestamp > rows[-1].timestamp


async def test_reconnect_backfills_rows_closed_during_the_outage(tv_simulator):
    async with open_feed(tv_simulator, **FAST) as feed:
        stream = feed.stream_study(
            BTC, interval="1", study="STD;SMA", inputs={"length": 5}, history=20
        )
        async with contextlib.aclosing(stream):
            before = await take(stream, 19)
            await tv_simulator.clock.advance(3 * MINUTE)
            before += await take(stream, 3)
            assert tv_simulator.faults.drop_open() == 1
            await tv_simulator.clock.advance(30 * MINUTE)  # rows close while we are away
            after = await take(stream, 30)
            assert stream.subscription.reconnects == 1
            assert stream.subscription.gaps == 0
        assert feed.connections_opened == 2
    rows = before + after
    times = [row.timestamp for row in rows]
    assert times == list(range(times[0], times[0] + len(rows) * MINUTE, MINUTE))
    expected = sma_truth(tv_simulator, rows, 5)
    for row in rows[4:]:
        assert close_to(row.values[0], expected[row.timestamp]), row


async def test_rsi_history_rows_are_get_study_rows(tv_simulator):
    async with open_feed(tv_simulator) as feed:
        frame = await feed.get_study(BTC, interval="1", study="STD;RSI", n_bars=200)
        stream = feed.stream_study(BTC, interval="1", study="STD;RSI", history=201)
        async with contextlib.aclosing(stream):
            rows = await take(stream, 200)
    assert [int(t.timestamp()) for t in frame.get_column("time")] == [r.timestamp for r in rows]
    got = [row.values[0] for row in rows]
    assert got == frame.get_column("RSI").to_list()
    bars = truth_bars(tv_simulator, BTC, "1", rows[0].timestamp, rows[-1].timestamp + 1)
    want = wilder_rsi([bar[4] for bar in bars], 14)
    assert all(close_to(a, b) for a, b in zip(got, want, strict=True))


@pytest.mark.parametrize(
    ("study", "inputs", "error"),
    [
        ("STD;Nope", {}, InvalidRequest),
        ("STD;RSI", {"no_such_input": 3}, InvalidRequest),
        ("STD;RSI", {"length": "fourteen"}, InvalidRequest),
        ("PUB;simulated-invite-only", {}, EntitlementError),
    ],
)
async def test_typed_errors_end_the_stream(tv_simulator, study, inputs, error):
    async with open_feed(tv_simulator) as feed:
        stream = feed.stream_study(BTC, interval="1", study=study, inputs=inputs)
        with anyio.fail_after(20), pytest.raises(error):
            await anext(stream)
        # The feed goes on.
        assert (await feed.get_hist(BTC, interval="1", n_bars=3)).height == 3


async def test_unknown_symbol_and_bad_arguments(tv_simulator):
    async with open_feed(tv_simulator) as feed:
        stream = feed.stream_study("BINANCE:NOSUCHCOIN", interval="1", study="STD;RSI")
        with anyio.fail_after(20), pytest.raises(SymbolNotFound):
            await anext(stream)
        with pytest.raises(InvalidRequest):
            feed.stream_study(BTC, interval="1", study="STD;RSI", history=0)
        with pytest.raises(InvalidRequest):
            feed.stream_study(BTC, interval="1", study=["STD;RSI"])  # type: ignore[arg-type]
        with pytest.raises(InvalidRequest):
            feed.stream_study(BTC, interval="1", study="STD;RSI", inputs=[14])  # type: ignore[arg-type]


async def test_closing_the_stream_deletes_its_chart_session(tv_simulator):
    async with open_feed(tv_simulator) as feed:
        stream = feed.stream_study(BTC, interval="1", study="STD;EMA", history=30)
        rows = await take(stream, 29)
        assert len(rows) == 29
        deleted = tv_simulator.stats.methods["chart_delete_session"]
        await stream.aclose()
        with anyio.fail_after(10):
            while tv_simulator.stats.methods["chart_delete_session"] == deleted:  # noqa: ASYNC110 (a server counter has no event)
                await anyio.sleep(0.01)


async def test_the_stream_ends_when_the_feed_closes(tv_simulator):
    async with open_feed(tv_simulator) as feed:
        stream = feed.stream_study(BTC, interval="1", study="STD;RSI", history=20)
        assert len(await take(stream, 19)) == 19
    with anyio.fail_after(10):
        remaining = [row async for row in stream]
    assert remaining == []


async def test_a_history_longer_than_the_queue_is_delivered(tv_simulator):
    async with open_feed(tv_simulator) as feed:
        stream = feed.stream_study(BTC, interval="1", study="STD;SMA", history=60, queue_size=10)
        async with contextlib.aclosing(stream):
            rows = await take(stream, 59)
    assert len({row.timestamp for row in rows}) == 59


async def test_cli_stream_study_prints_rows_and_bad_options_are_one_line(tv_simulator, tmp_path):
    endpoints = tv_simulator.endpoints
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TV_", "TVFEED_"))}
    env["TVFEED_CACHE_DIR"] = str(tmp_path / "cache")
    env["TVFEED_PINE_FACADE_URL"] = endpoints.pine_facade_url
    base = [sys.executable, "-m", "tvfeed_async.cli", "--ws-url", endpoints.ws_url]
    base += ["--www-url", endpoints.www_url, "stream", BTC, "-i", "1"]
    command = [*base, "--study", "STD;SMA:length=3", "--history", "10", "--ndjson"]
    lines: list[dict] = []
    async with await anyio.open_process(command, env=env) as process:
        assert process.stdout is not None
        buffer = b""
        with anyio.fail_after(30):
            while len(lines) < 12:
                if len(lines) >= 9:
                    await tv_simulator.clock.advance(MINUTE)
                buffer += await process.stdout.receive()
                *complete, buffer = buffer.split(b"\n")
                lines += [json.loads(line) for line in complete if line.strip()]
        process.send_signal(signal.SIGINT)
        with anyio.fail_after(10):
            await process.wait()
    times = [line["time"] for line in lines]
    assert times == sorted(set(times))
    assert all(line["closed"] and line["study"] == "STD;SMA" for line in lines)
    assert all(set(line["values"]) == {"MA"} for line in lines)
    first = datetime.fromisoformat(times[0]).timestamp()
    bars = truth_bars(tv_simulator, BTC, "1", int(first) - 2 * MINUTE, int(first) + 12 * MINUTE)
    closes = {bar[0]: bar[4] for bar in bars}
    for line in lines[2:]:
        at = int(datetime.fromisoformat(line["time"]).timestamp())
        want = sum(closes[at - n * MINUTE] for n in range(3)) / 3
        assert close_to(line["values"]["MA"], want), line
    with anyio.fail_after(60):
        bad = await anyio.run_process([*base, "--study", "STD;RSI:length"], env=env, check=False)
    assert bad.returncode != 0
    err = bad.stderr.decode()
    assert "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert "name=value" in err
