"""Studies against the simulator: pine-facade metadata, ``create_study`` rows, errors.

The expected values are computed here from the bars the same chart session received, with
formulas written out independently of :mod:`tvfeed_async.testing.studies`.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import anyio
import polars as pl
import pytest

from tests.simulator.helpers import RawClient, rows_of
from tests.support.feeds import open_feed
from tvfeed_async.errors import EntitlementError, InvalidRequest, SymbolNotFound
from tvfeed_async.protocol.framing import decode_packets, encode_json
from tvfeed_async.protocol.messages import UnknownMessage
from tvfeed_async.testing.simulator import TvSimulator
from tvfeed_async.testing.ws_server import ServerConfig

BTC = "BINANCE:BTCUSDT"
NO_VALUE = 1e100
Expected = list[tuple[float | None, ...]]


@pytest.fixture
async def sim() -> AsyncIterator[TvSimulator]:
    async with TvSimulator(config=ServerConfig(heartbeat_interval=None)) as simulator:
        yield simulator


async def translate(sim: TvSimulator, script: str, version: str = "last") -> tuple[int, Any]:
    url = f"{sim.endpoints.pine_facade_url}/translate/{script}/{version}"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.json()


# ----------------------------------------------------------------- independent formulas


def sma(values: list[float], length: int) -> list[float | None]:
    return [
        None if n + 1 < length else sum(values[n + 1 - length : n + 1]) / length
        for n in range(len(values))
    ]


def ema(values: list[float], length: int) -> list[float]:
    out = [values[0]]
    for value in values[1:]:
        out.append(out[-1] + 2 / (length + 1) * (value - out[-1]))
    return out


def wilder_rsi(closes: list[float], length: int) -> list[float | None]:
    out: list[float | None] = [None] * len(closes)
    gains = [max(b - a, 0.0) for a, b in itertools.pairwise(closes)]
    losses = [max(a - b, 0.0) for a, b in itertools.pairwise(closes)]
    if len(gains) < length:
        return out
    gain, loss = sum(gains[:length]) / length, sum(losses[:length]) / length
    for n in range(length, len(closes)):
        if n > length:
            gain = (gain * (length - 1) + gains[n - 1]) / length
            loss = (loss * (length - 1) + losses[n - 1]) / length
        out[n] = 100.0 if loss == 0 else 100 * gain / (gain + loss)
    return out


def macd(closes: list[float], fast: int, slow: int, signal: int) -> Expected:
    line = [a - b for a, b in zip(ema(closes, fast), ema(closes, slow), strict=True)]
    smooth = ema(line, signal)
    return [(m, s, m - s) for m, s in zip(line, smooth, strict=True)]


def bollinger(closes: list[float], length: int, mult: float) -> Expected:
    out: Expected = []
    for n in range(len(closes)):
        if n + 1 < length:
            out.append((None, None, None))
            continue
        window = closes[n + 1 - length : n + 1]
        mean, deviation = statistics.fmean(window), statistics.pstdev(window)
        out.append((mean, mean + mult * deviation, mean - mult * deviation))
    return out


def expected_plots(pine_id: str, bars: list[tuple[Any, ...]], values: dict[str, Any]) -> Expected:
    closes = [float(bar[4]) for bar in bars]
    if pine_id == "STD;RSI":
        return [(v,) for v in wilder_rsi(closes, values.get("in_0", 14))]
    if pine_id == "STD;SMA":
        return [(v,) for v in sma(closes, values.get("in_0", 9))]
    if pine_id == "STD;EMA":
        return [(v,) for v in ema(closes, values.get("in_0", 9))]
    if pine_id == "STD;MACD":
        return macd(closes, values.get("in_0", 12), values.get("in_1", 26), values.get("in_2", 9))
    if pine_id == "STD;Bollinger_Bands":
        return bollinger(closes, values.get("in_0", 20), values.get("in_1", 2.0))
    assert pine_id == "STD;Volume"
    return [(bar[5],) for bar in bars]


def close_to(actual: float, expected: float | None) -> bool:
    if expected is None:
        return actual == NO_VALUE
    return abs(actual - expected) <= 1e-9 * max(1.0, abs(expected))


# ----------------------------------------------------------------- the simulator, on the wire


async def run_study(
    client: RawClient, pine_id: str, inputs: dict[str, Any], *, text: str | None, study: str
) -> tuple[list[str], list[list[Any]], list[Any]]:
    """Send ``create_study`` for ``pine_id``: the study messages' methods up to study_completed
    or study_error, the ``st`` rows' ``v`` arrays, and the last message's params."""
    body = {"text": text, "pineId": pine_id, "pineVersion": "1.0"} | {
        key: {"v": value, "f": True, "t": "integer" if isinstance(value, int) else "float"}
        for key, value in inputs.items()
    }
    first_frame = len(client.frames)
    create = ["cs_test", study, "st1", "s1", "Script@tv-scripting-101!", body]
    await client.send(encode_json({"m": "create_study", "p": create}))
    methods: list[str] = []
    while True:
        item = await client.next()
        if isinstance(item, UnknownMessage) and item.method.startswith("study_"):
            methods.append(item.method)
            if item.method in ("study_completed", "study_error"):
                break
    rows: list[list[Any]] = []
    for text_frame, _ in client.frames[first_frame:]:
        for packet in decode_packets(text_frame):
            if isinstance(packet, str):
                message = json.loads(packet)
                if message.get("m") == "du" and study in message["p"][1]:
                    assert message["p"][1][study]["t"] == "s1_st1"
                    rows += [row["v"] for row in message["p"][1][study]["st"]]
    return methods, rows, item.params


SCRIPT_INPUTS = [
    ("STD;RSI", {}),
    ("STD;RSI", {"in_0": 5}),
    ("STD;SMA", {"in_0": 20}),
    ("STD;EMA", {"in_0": 12}),
    ("STD;MACD", {}),
    ("STD;MACD", {"in_0": 5, "in_1": 35, "in_2": 4}),
    ("STD;Bollinger_Bands", {}),
    ("STD;Bollinger_Bands", {"in_0": 10, "in_1": 1.5}),
    ("STD;Volume", {}),
]


@pytest.mark.parametrize(("pine_id", "inputs"), SCRIPT_INPUTS)
async def test_study_rows_match_independent_formulas(
    sim: TvSimulator, pine_id: str, inputs: dict[str, Any]
) -> None:
    status, meta = await translate(sim, pine_id)
    assert status == 200
    assert meta["success"] is True
    client = await RawClient.open(sim)
    try:
        await client.start()
        history, _ = await client.chart(BTC, "60", 300)
        bars = rows_of(history)
        methods, rows, _ = await run_study(
            client, pine_id, inputs, text=meta["result"]["ilTemplate"], study="st_a"
        )
    finally:
        await client.close()
    assert methods == ["study_loading", "study_completed"]
    assert [row[0] for row in rows] == [bar[0] for bar in bars]
    plots = meta["result"]["metaInfo"]["plots"]
    expected = expected_plots(pine_id, bars, inputs)
    assert len(rows) == len(expected) == 300
    for row, want in zip(rows, expected, strict=True):
        assert len(row) == 1 + len(plots)
        assert all(close_to(a, b) for a, b in zip(row[1:], want, strict=True)), (row, want)
    # Warm-up bars carry no value; later ones do.
    assert any(value == NO_VALUE for value in rows[0][1:]) == (
        pine_id in ("STD;RSI", "STD;SMA", "STD;Bollinger_Bands")
    )
    assert all(value != NO_VALUE for value in rows[-1][1:])


async def test_translate_metadata_shape(sim: TvSimulator) -> None:
    status, body = await translate(sim, "STD;MACD", "1.0")
    assert status == 200
    meta = body["result"]["metaInfo"]
    assert meta["scriptIdPart"] == "STD;MACD"
    assert [item["id"] for item in meta["inputs"]] == [
        "text", "pineId", "pineVersion", "in_0", "in_1", "in_2"
    ]  # fmt: skip
    assert [item["name"] for item in meta["inputs"][3:]] == [
        "Fast Length", "Slow Length", "Signal Smoothing"
    ]  # fmt: skip
    assert meta["defaults"]["inputs"] == {"in_0": 12, "in_1": 26, "in_2": 9}
    assert {plot: style["title"] for plot, style in meta["styles"].items()} == {
        "plot_0": "MACD",
        "plot_1": "Signal",
        "plot_2": "Histogram",
    }
    assert body["result"]["ilTemplate"] == meta["inputs"][0]["defval"]


@pytest.mark.parametrize(
    ("script", "version", "status"),
    [
        ("STD;Nope", "last", 404),
        ("STD;RSI", "99.0", 404),
        ("PUB;simulated-invite-only", "last", 403),
    ],
)
async def test_translate_refuses(sim: TvSimulator, script: str, version: str, status: int) -> None:
    answer_status, body = await translate(sim, script, version)
    assert answer_status == status
    assert body["success"] is False
    assert body["reason"]
    assert "result" not in body


@pytest.mark.parametrize(
    ("pine_id", "inputs", "text", "reason"),
    [
        ("STD;RSI", {"in_7": 3}, "il", "invalid input: unknown input in_7"),
        ("STD;RSI", {"in_0": 2.5}, "il", "invalid input: input in_0 (Length) must be of type"),
        ("STD;RSI", {"in_0": 0}, "il", "invalid input: input in_0 (Length) must be in"),
        ("STD;RSI", {}, "not the IL", "invalid script: STD;RSI"),
        ("STD;Nope", {}, "il", "invalid script: STD;Nope"),
        ("PUB;simulated-invite-only", {}, "il", "study_not_auth:PUB;simulated-invite-only"),
        # A user's own script on an anonymous connection (RawClient signs in anonymously).
        ("USER;6f1d2c3b4a5e4d3c2b1a", {}, "il", "study_not_auth:USER;6f1d2c3b4a5e4d3c2b1a"),
    ],
)
async def test_create_study_errors(
    sim: TvSimulator, pine_id: str, inputs: dict[str, Any], text: str, reason: str
) -> None:
    from tvfeed_async.testing.studies import SCRIPTS

    spec = SCRIPTS.get(pine_id)
    il = spec.text if spec is not None and text == "il" else text
    client = await RawClient.open(sim)
    try:
        await client.start()
        await client.chart(BTC, "60", 50)
        methods, rows, params = await run_study(client, pine_id, inputs, text=il, study="st_e")
    finally:
        await client.close()
    assert methods == ["study_loading", "study_error"]
    assert params[:3] == ["cs_test", "st_e", "s1_st1"]
    assert params[3].startswith(reason)
    assert rows == []


# ----------------------------------------------------------------- TvFeed.get_study


def frame_expected(pine_id: str, bars: pl.DataFrame, values: dict[str, Any]) -> Expected:
    rows = list(bars.select("time", "open", "high", "low", "close", "volume").iter_rows())
    return expected_plots(pine_id, rows, values)


FEED_CASES = [
    ("STD;RSI", {"length": 14}, {"in_0": 14}, ["RSI"]),
    ("STD;RSI", {"Length": 7}, {"in_0": 7}, ["RSI"]),
    ("STD;SMA", {"in_0": 30}, {"in_0": 30}, ["MA"]),
    ("STD;EMA", {}, {"in_0": 9}, ["EMA"]),
    (
        "STD;MACD",
        {"fast_length": 8, "Slow Length": 21, "signal_smoothing": 5},
        {"in_0": 8, "in_1": 21, "in_2": 5},
        ["MACD", "Signal", "Histogram"],
    ),
    (
        "STD;Bollinger_Bands",
        {"stddev": 2.5},
        {"in_0": 20, "in_1": 2.5},
        ["Basis", "Upper", "Lower"],
    ),
    ("STD;Bollinger_Bands", {"stddev": 3}, {"in_0": 20, "in_1": 3.0}, ["Basis", "Upper", "Lower"]),
    ("STD;Volume", {}, {}, ["Volume"]),
]


@pytest.mark.parametrize(("pine_id", "inputs", "wire_inputs", "columns"), FEED_CASES)
async def test_get_study_matches_independent_formulas_over_get_hist(
    sim: TvSimulator,
    pine_id: str,
    inputs: dict[str, object],
    wire_inputs: dict[str, Any],
    columns: list[str],
) -> None:
    async with open_feed(sim) as feed:
        bars = await feed.get_hist(BTC, interval="60", n_bars=400)
        frame = await feed.get_study(BTC, interval="60", study=pine_id, inputs=inputs, n_bars=400)
    assert frame.columns == ["time", *columns]
    assert frame.schema["time"] == bars.schema["time"]
    assert all(frame.schema[name] == pl.Float64 for name in columns)
    assert frame.get_column("time").to_list() == bars.get_column("time").to_list()
    expected = frame_expected(pine_id, bars, wire_inputs)
    for got, want in zip(frame.select(columns).iter_rows(), expected, strict=True):
        for a, b in zip(got, want, strict=True):
            assert (a is None) if b is None else (a is not None and close_to(a, b)), (got, want)


async def test_get_study_pages_past_the_bar_limit(sim: TvSimulator) -> None:
    async with open_feed(sim) as feed:
        assert feed.bar_limit < 5200
        bars = await feed.get_hist(BTC, interval="60", n_bars=5200)
        frame = await feed.get_study(BTC, interval="60", study="STD;RSI", n_bars=5200)
    assert frame.height == bars.height == 5200
    assert frame.get_column("time").to_list() == bars.get_column("time").to_list()
    expected = [plots[0] for plots in frame_expected("STD;RSI", bars, {"in_0": 14})]
    got = frame.get_column("RSI").to_list()
    assert got[:14] == expected[:14] == [None] * 14
    assert all(
        a is not None and b is not None and close_to(a, b)
        for a, b in zip(got[14:], expected[14:], strict=True)
    )


async def test_get_study_timezone_and_partial(sim: TvSimulator) -> None:
    async with open_feed(sim) as feed:
        paris = await feed.get_study(
            BTC, interval="60", study="STD;SMA", n_bars=50, timezone="Europe/Paris"
        )
        partial = await feed.get_study(
            BTC, interval="60", study="STD;SMA", n_bars=50, include_partial=True
        )
        bars = await feed.get_hist(BTC, interval="60", n_bars=50, include_partial=True)
    assert paris.schema["time"] == pl.Datetime("us", "Europe/Paris")
    assert partial.get_column("time").to_list() == bars.get_column("time").to_list()
    # The forming bar is the last one; its SMA is the mean of the last 9 closes as sent.
    closes = bars.get_column("close").to_list()
    assert close_to(partial.get_column("MA")[-1], sum(closes[-9:]) / 9)


@pytest.mark.parametrize(
    ("study", "inputs", "error", "text"),
    [
        ("STD;RSI", {"period": 14}, InvalidRequest, "has no input 'period'"),
        ("STD;RSI", {"length": 14.5}, InvalidRequest, "must be an int"),
        ("STD;RSI", {"length": True}, InvalidRequest, "must be an int"),
        ("STD;RSI", {"length": 0}, InvalidRequest, "must be >= 1"),
        ("STD;Bollinger_Bands", {"stddev": "2"}, InvalidRequest, "must be a number"),
        ("STD;NoSuchScript", {}, InvalidRequest, "unknown script"),
        ("PUB;simulated-invite-only", {}, EntitlementError, "invite-only"),
    ],
)
async def test_get_study_typed_errors(
    sim: TvSimulator,
    study: str,
    inputs: dict[str, object],
    error: type[Exception],
    text: str,
) -> None:
    async with open_feed(sim) as feed:
        before = sim.stats.study_errors
        with pytest.raises(error, match=text):
            await feed.get_study(BTC, interval="60", study=study, inputs=inputs, n_bars=20)
    # Refused before anything reached the socket.
    assert sim.stats.study_errors == before


async def test_get_study_unknown_symbol(sim: TvSimulator) -> None:
    async with open_feed(sim) as feed:
        with pytest.raises(SymbolNotFound):
            await feed.get_study("BINANCE:NOPENOPE", interval="60", study="STD;RSI", n_bars=20)


# ----------------------------------------------------------------- get_hist(studies=...)


async def test_get_hist_joins_studies_on_one_chart_session(sim: TvSimulator) -> None:
    async with open_feed(sim) as feed:
        plain = await feed.get_hist(BTC, interval="60", n_bars=200)
        before = sim.stats.methods["chart_create_session"]
        frame = await feed.get_hist(
            BTC,
            interval="60",
            n_bars=200,
            studies=["STD;SMA", ("STD;SMA", {"length": 50}), ("STD;MACD", {"fast_length": 6})],
        )
        sessions = sim.stats.methods["chart_create_session"] - before
    assert sessions == 1
    assert sim.stats.methods["create_study"] == 3
    assert frame.columns == [*plain.columns, "MA", "MA_2", "MACD", "Signal", "Histogram"]
    assert frame.select(plain.columns).equals(plain)
    closes = plain.get_column("close").to_list()
    for column, length in (("MA", 9), ("MA_2", 50)):
        got = frame.get_column(column).to_list()
        for a, b in zip(got, sma(closes, length), strict=True):
            assert (a is None) if b is None else (a is not None and close_to(a, b))
    want = macd(closes, 6, 26, 9)
    for got_row, want_row in zip(
        frame.select("MACD", "Signal", "Histogram").iter_rows(), want, strict=True
    ):
        assert all(close_to(a, b) for a, b in zip(got_row, want_row, strict=True))


async def test_more_studies_than_a_chart_allows_use_more_chart_sessions(sim: TvSimulator) -> None:
    from tvfeed_async.studies import MAX_STUDIES_PER_CHART

    lengths = list(range(2, MAX_STUDIES_PER_CHART + 4))
    async with open_feed(sim) as feed:
        before = sim.stats.methods["chart_create_session"]
        frame = await feed.get_hist(
            BTC,
            interval="60",
            n_bars=60,
            studies=[("STD;EMA", {"length": n}) for n in lengths],
        )
        sessions = sim.stats.methods["chart_create_session"] - before
    assert sessions == 2
    closes = frame.get_column("close").to_list()
    names = ["EMA", *(f"EMA_{n}" for n in range(2, len(lengths) + 1))]
    assert frame.columns[-len(lengths) :] == names
    for name, length in zip(names, lengths, strict=True):
        got = frame.get_column(name).to_list()
        assert all(close_to(a, b) for a, b in zip(got, ema(closes, length), strict=True))


@pytest.mark.parametrize(
    ("studies", "text"),
    [
        ([("STD;RSI", {"length": "x"})], "must be an int"),
        ([42], "a study is"),
        ([("STD;RSI",)], "a study is"),
    ],
)
async def test_get_hist_studies_refused(sim: TvSimulator, studies: list[Any], text: str) -> None:
    async with open_feed(sim) as feed:
        with pytest.raises(InvalidRequest, match=text):
            await feed.get_hist(BTC, interval="60", n_bars=10, studies=studies)


async def test_cli_hist_with_study(sim: TvSimulator, tmp_path: Path) -> None:
    endpoints = sim.endpoints
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TV_", "TVFEED_"))}
    env["TVFEED_CACHE_DIR"] = str(tmp_path / "cache")
    env["TVFEED_PINE_FACADE_URL"] = endpoints.pine_facade_url
    path = tmp_path / "out.parquet"
    command = [
        *(sys.executable, "-m", "tvfeed_async.cli"),
        *("--ws-url", endpoints.ws_url, "--www-url", endpoints.www_url),
        *("hist", BTC, "-i", "60", "-n", "40", "-o", str(path)),
        *("--study", "STD;RSI:length=5", "--study", "STD;SMA"),
    ]
    with anyio.fail_after(60):
        done = await anyio.run_process(command, env=env, check=False)
    assert done.returncode == 0, done.stderr.decode()
    frame = pl.read_parquet(path)
    async with open_feed(sim) as feed:
        bars = await feed.get_hist(BTC, interval="60", n_bars=40)
    assert frame.select(bars.columns).equals(bars)
    closes = bars.get_column("close").to_list()
    for got, want in zip(frame.get_column("RSI").to_list(), wilder_rsi(closes, 5), strict=True):
        assert (got is None) if want is None else (got is not None and close_to(got, want))
    for got, want in zip(frame.get_column("MA").to_list(), sma(closes, 9), strict=True):
        assert (got is None) if want is None else (got is not None and close_to(got, want))


# ----------------------------------------------------------------- listing and searching


async def test_pine_facade_list_route(sim: TvSimulator) -> None:
    url = f"{sim.endpoints.pine_facade_url}/list"
    async with aiohttp.ClientSession() as session:
        async with session.get(url, params={"filter": "standard"}) as response:
            assert response.status == 200
            standard = await response.json()
        async with session.get(url, params={"filter": "candlestick"}) as response:
            assert await response.json() == []
        async with session.get(url, params={"filter": "nope"}) as response:
            assert response.status == 400
    ids = {item["scriptIdPart"] for item in standard}
    assert ids == {
        "STD;RSI", "STD;SMA", "STD;EMA", "STD;MACD", "STD;Bollinger_Bands", "STD;Volume"
    }  # fmt: skip
    assert all(item["extra"]["kind"] == "study" for item in standard)


async def test_search_studies_then_get_one(sim: TvSimulator) -> None:
    async with open_feed(sim) as feed:
        everything = await feed.search_studies()
        found = await feed.search_studies("relative strength")
        by_short = await feed.search_studies("bb")
        assert await feed.search_studies("candles", filter="candlestick") == []
        with pytest.raises(InvalidRequest, match="filter"):
            await feed.search_studies(filter="saved")
        frame = await feed.get_study(BTC, interval="60", study=found[0].id, n_bars=30)
    assert len(everything) == 6
    assert [script.id for script in found] == ["STD;RSI"]
    assert found[0].name == "Relative Strength Index"
    assert [script.id for script in by_short] == ["STD;Bollinger_Bands"]
    assert frame.columns == ["time", "RSI"]


async def test_simulator_refuses_a_study_past_the_per_chart_limit(sim: TvSimulator) -> None:
    from tvfeed_async.testing.studies import MAX_STUDIES_PER_CHART, SCRIPTS

    client = await RawClient.open(sim)
    try:
        await client.start()
        await client.chart(BTC, "60", 30)
        text = SCRIPTS["STD;SMA"].text
        for n in range(MAX_STUDIES_PER_CHART):
            methods, rows, _ = await run_study(client, "STD;SMA", {}, text=text, study=f"st{n}")
            assert methods[-1] == "study_completed"
        methods, rows, params = await run_study(client, "STD;SMA", {}, text=text, study="stx")
        assert methods == ["study_loading", "study_error"]
        assert params[3] == "maximum number of studies per chart"
        assert rows == []
        # Removing one makes room again.
        await client.send(encode_json({"m": "remove_study", "p": ["cs_test", "st0"]}))
        methods, rows, _ = await run_study(client, "STD;SMA", {}, text=text, study="sty")
        assert methods[-1] == "study_completed"
        assert len(rows) == 30
    finally:
        await client.close()


# ----------------------------------------------------------------- live and paged study rows


def _bars_and_studies(client: RawClient, study: str) -> tuple[dict[int, float], dict[int, Any]]:
    """Closes by open time (the latest of each bar) and study values by time, from every
    frame the client received, in order."""
    closes: dict[int, float] = {}
    values: dict[int, Any] = {}
    for text, _ in client.frames:
        for packet in decode_packets(text):
            if not isinstance(packet, str):
                continue
            message = json.loads(packet)
            if message.get("m") not in ("du", "timescale_update"):
                continue
            for key, body in message["p"][1].items():
                if key == "s1":
                    for row in body.get("s", []):
                        closes[int(row["v"][0])] = row["v"][4]
                elif key == study:
                    for row in body.get("st", []):
                        values[int(row["v"][0])] = row["v"][1]
    return closes, values


async def test_simulator_sends_live_study_rows_and_recomputes_after_more_data(
    sim: TvSimulator,
) -> None:
    from tvfeed_async.testing.studies import SCRIPTS

    client = await RawClient.open(sim)
    try:
        await client.start()
        await client.chart(BTC, "1", 20)
        methods, rows, _ = await run_study(
            client, "STD;SMA", {"in_0": 3}, text=SCRIPTS["STD;SMA"].text, study="st_live"
        )
        assert methods[-1] == "study_completed"
        assert len(rows) == 20
        live_from = len(client.frames)
        await sim.clock.advance(150)  # 14:00 closes, 14:01 opens and closes, 14:02 forms
        await client.quiet(0.3)
        live_rows = [
            row
            for text, _ in client.frames[live_from:]
            for packet in decode_packets(text)
            if isinstance(packet, str) and '"st_live"' in packet
            for row in json.loads(packet)["p"][1]["st_live"]["st"]
        ]
        assert live_rows
        assert all(len(row["v"]) == 2 for row in live_rows)
        closes, values = _bars_and_studies(client, "st_live")
        times = sorted(closes)
        assert len(times) == 22
        # Every study value, as last sent, is the SMA(3) of the closes as last sent.
        for n, stamp in enumerate(times):
            want = None if n < 2 else sum(closes[t] for t in times[n - 2 : n + 1]) / 3
            assert close_to(values[stamp], want), (n, values[stamp], want)
        # Older bars: the study comes again over the whole history.
        paged_from = len(client.frames)
        await client.send(encode_json({"m": "request_more_data", "p": ["cs_test", "s1", 10]}))
        while not any("series_completed" in text for text, _ in client.frames[paged_from:]):
            await client.frame()
        recomputed = [
            row
            for text, _ in client.frames[paged_from:]
            for packet in decode_packets(text)
            if isinstance(packet, str) and '"st_live"' in packet
            for row in json.loads(packet)["p"][1]["st_live"]["st"]
        ]
        assert len(recomputed) == 32
        assert [row["i"] for row in recomputed] == list(range(32))
        closes, values = _bars_and_studies(client, "st_live")
        times = sorted(closes)
        assert len(times) == 32
        for n, stamp in enumerate(times):
            want = None if n < 2 else sum(closes[t] for t in times[n - 2 : n + 1]) / 3
            assert close_to(values[stamp], want), (n, values[stamp], want)
    finally:
        await client.close()


async def test_modify_study_recomputes_with_the_new_inputs(sim: TvSimulator) -> None:
    from tvfeed_async.testing.studies import SCRIPTS

    text = SCRIPTS["STD;SMA"].text
    client = await RawClient.open(sim)
    try:
        await client.start()
        history, _ = await client.chart(BTC, "60", 40)
        closes = [float(bar[4]) for bar in rows_of(history)]
        methods, rows, _ = await run_study(client, "STD;SMA", {"in_0": 3}, text=text, study="stm")
        assert methods[-1] == "study_completed"
        first_frame = len(client.frames)
        body = {"text": text, "pineId": "STD;SMA", "pineVersion": "1.0"}
        body["in_0"] = {"v": 10, "f": False, "t": "integer"}
        await client.send(encode_json({"m": "modify_study", "p": ["cs_test", "stm", "st9", body]}))
        while True:
            item = await client.next()
            if isinstance(item, UnknownMessage) and item.method == "study_completed":
                assert item.params[:3] == ["cs_test", "stm", "s1_st9"]
                break
        modified = [
            json.loads(packet)["p"][1]["stm"]
            for text_frame, _ in client.frames[first_frame:]
            for packet in decode_packets(text_frame)
            if isinstance(packet, str) and '"stm"' in packet and '"st"' in packet
        ]
    finally:
        await client.close()
    assert [body["t"] for body in modified] == ["s1_st9"]
    values = [row["v"][1] for row in modified[0]["st"]]
    assert len(values) == 40
    assert all(close_to(a, b) for a, b in zip(values, sma(closes, 10), strict=True))
    # Before the modification the same study was SMA(3).
    assert [row[1] for row in rows] != values
    assert all(close_to(row[1], b) for row, b in zip(rows, sma(closes, 3), strict=True))


async def test_get_study_over_a_date_range(sim: TvSimulator) -> None:
    async with open_feed(sim) as feed:
        recent = await feed.get_hist(BTC, interval="60", n_bars=300)
        times = recent.get_column("time")
        start, end = times[50], times[250]
        bars = await feed.get_hist(BTC, interval="60", start=start, end=end)
        frame = await feed.get_study(
            BTC, interval="60", study="STD;SMA", inputs={"length": 10}, start=start, end=end
        )
        joined = await feed.get_hist(
            BTC, interval="60", start=start, end=end, studies=[("STD;RSI", {"length": 7})]
        )
    assert bars.height == 200
    assert frame.get_column("time").to_list() == bars.get_column("time").to_list()
    closes = bars.get_column("close").to_list()
    for got, want in zip(frame.get_column("MA").to_list(), sma(closes, 10), strict=True):
        assert (got is None) if want is None else (got is not None and close_to(got, want))
    assert joined.select(bars.columns).equals(bars)
    for got, want in zip(joined.get_column("RSI").to_list(), wilder_rsi(closes, 7), strict=True):
        assert (got is None) if want is None else (got is not None and close_to(got, want))
