"""Studies against the simulator: pine-facade metadata, ``create_study`` rows, errors.

The expected values are computed here from the bars the same chart session received, with
formulas written out independently of :mod:`tvfeed_async.testing.studies`.
"""

from __future__ import annotations

import itertools
import json
import statistics
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.simulator.helpers import RawClient, rows_of
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
