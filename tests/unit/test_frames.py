"""The Polars history frame: schema, builders, finalize."""

from __future__ import annotations

import gc
import json
from datetime import UTC, datetime
from typing import Any

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tvfeed_async.errors import FramingError, InvalidRequest
from tvfeed_async.frames import (
    FRAME_COLUMNS,
    FRAME_SCHEMA,
    empty_frame,
    finalize,
    frame_from_bars,
    frame_from_wire_bars,
)
from tvfeed_async.protocol.bars import Bar
from tvfeed_async.protocol.messages import (
    Row,
    SeriesData,
    SeriesPayload,
    bar_from_values,
    parse_message,
    values_from_wire,
)

T0 = 1663050540
SYMBOL = "BINANCE:ETHUSDT"


def rows(*minutes: int, volume: bool = True) -> list[list[Any]]:
    return [
        [float(T0 + 60 * m), 100.0 + m, 101.0 + m, 99.0 + m, 100.5 + m]
        + ([10.0 * (m + 1)] if volume else [])
        for m in minutes
    ]


def frame_of(values: list[list[Any]], symbol: str) -> pl.DataFrame:
    """The frame of raw wire bars, read as the parser reads a row it does not know."""
    return frame_from_wire_bars([values_from_wire(v) for v in values], symbol)


def utc(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


def test_schema() -> None:
    assert dict(FRAME_SCHEMA) == {
        "time": pl.Datetime("us", "UTC"),
        "symbol": pl.String,
        "open": pl.Float64,
        "high": pl.Float64,
        "low": pl.Float64,
        "close": pl.Float64,
        "volume": pl.Float64,
    }
    assert tuple(FRAME_SCHEMA) == FRAME_COLUMNS
    assert empty_frame().schema == FRAME_SCHEMA
    assert empty_frame().height == 0


def test_frame_from_six_element_rows() -> None:
    frame = frame_of(rows(0, 1, 2), SYMBOL)
    assert frame.schema == FRAME_SCHEMA
    assert frame.to_dicts()[1] == {
        "time": utc(T0 + 60),
        "symbol": SYMBOL,
        "open": 101.0,
        "high": 102.0,
        "low": 100.0,
        "close": 101.5,
        "volume": 20.0,
    }
    assert frame["symbol"].to_list() == [SYMBOL] * 3
    assert frame["time"].to_list() == [utc(T0), utc(T0 + 60), utc(T0 + 120)]


def test_five_element_rows_have_null_volume() -> None:
    frame = frame_of(rows(0, 1, volume=False), "TVC:SPX")
    assert frame.schema == FRAME_SCHEMA
    assert frame["volume"].to_list() == [None, None]
    assert frame["close"].to_list() == [100.5, 101.5]


def test_mixed_five_and_six_element_rows() -> None:
    mixed = [rows(0, volume=False)[0], rows(1)[0], rows(2, volume=False)[0]]
    frame = frame_of(mixed, SYMBOL)
    assert frame["volume"].to_list() == [None, 20.0, None]
    assert frame["time"].to_list() == [utc(T0), utc(T0 + 60), utc(T0 + 120)]


def test_null_volume_ints_and_extra_elements() -> None:
    frame = frame_of([[T0, 1, 2, 0, 1, None], [float(T0 + 60), 1, 2, 0, 1, 5, "extra"]], SYMBOL)
    assert frame.schema == FRAME_SCHEMA
    assert frame["volume"].to_list() == [None, 5.0]
    assert frame["open"].to_list() == [1.0, 1.0]


def test_float_times_truncate_like_bars() -> None:
    values = [[1558194300.0, 1, 1, 1, 1, 1], [1558195200.75, 1, 1, 1, 1, 1]]
    frame = frame_of(values, SYMBOL)
    bars = [Bar(int(v[0]), 1.0, 1.0, 1.0, 1.0, 1.0) for v in values]
    assert frame["time"].to_list() == [bar.time for bar in bars]


def test_rows_with_long_float_tails_match_bar_values() -> None:
    text = (
        '{"m":"timescale_update","p":["cs_x",{"s1":{"s":['
        '{"i":0,"v":[1558194300.0,7382.8800000000001091,7382.8800000000001091,'
        "7352.6599999999998545,7360.4200000000000728,33.79020585000002086]},"
        '{"i":1,"v":[1558195200.0,7360.4099999999998545,7378.8900000000003274,'
        '7338.8500000000003638,7361.9499999999998181,38.780757140000005734]}],"t":"s1"}}]}'
    )
    message = parse_message(text)
    assert isinstance(message, SeriesData)
    payload = message.series["s1"]
    raw_values = [row["v"] for row in json.loads(text)["p"][1]["s1"]["s"]]
    from_rows = frame_of(raw_values, "BITSTAMP:BTCUSD")
    from_wire_bars = frame_from_wire_bars(payload.values(), "BITSTAMP:BTCUSD")
    from_bars = frame_from_bars(payload.bars("BITSTAMP:BTCUSD", "15"))
    assert_frame_equal(from_rows, from_bars)
    assert_frame_equal(from_wire_bars, from_bars)
    assert from_rows["open"].to_list() == [7382.88, 7360.41]
    assert from_wire_bars["open"].to_list() == [7382.88, 7360.41]


def test_empty_inputs_give_the_empty_frame() -> None:
    assert_frame_equal(frame_of([], SYMBOL), empty_frame())
    assert_frame_equal(frame_from_bars([]), empty_frame())


def test_frame_from_bars_keeps_each_bars_symbol() -> None:
    bars = [
        Bar(T0, 1.0, 2.0, 0.5, 1.5, None, "TVC:SPX", "1"),
        Bar(T0, 10.0, 20.0, 5.0, 15.0, 7.0, "NASDAQ:AAPL", "1", True),
    ]
    frame = frame_from_bars(bars)
    assert frame.schema == FRAME_SCHEMA
    assert frame["symbol"].to_list() == ["TVC:SPX", "NASDAQ:AAPL"]
    assert frame["volume"].to_list() == [None, 7.0]
    assert frame["time"].to_list() == [bars[0].time, bars[1].time]


def test_finalize_sorts_and_keeps_the_last_duplicate() -> None:
    revised = rows(1)[0]
    revised[4] = 555.0
    frame = frame_of([*rows(2, 0, 1), revised, *rows(0)], SYMBOL)
    final = finalize(frame)
    assert final.schema == FRAME_SCHEMA
    assert final["time"].to_list() == [utc(T0), utc(T0 + 60), utc(T0 + 120)]
    assert final["close"].to_list() == [100.5, 555.0, 102.5]


def test_finalize_of_clean_history_is_unchanged() -> None:
    frame = frame_of(rows(0, 1, 2, 3), SYMBOL)
    assert_frame_equal(finalize(frame), frame)
    assert_frame_equal(finalize(empty_frame()), empty_frame())
    single = frame_of(rows(5), SYMBOL)
    assert_frame_equal(finalize(single), single)


def test_finalize_keeps_different_symbols_at_the_same_time() -> None:
    frame = pl.concat([frame_of(rows(1, 0), "B:B"), frame_of(rows(0), "A:A")])
    final = finalize(frame)
    assert list(zip(final["time"].to_list(), final["symbol"].to_list(), strict=True)) == [
        (utc(T0), "A:A"),
        (utc(T0), "B:B"),
        (utc(T0 + 60), "B:B"),
    ]


def test_finalize_timezone_converts_display_only() -> None:
    frame = frame_of(rows(0, 1), SYMBOL)
    shown = finalize(frame, timezone="America/New_York")
    assert shown.schema["time"] == pl.Datetime("us", "America/New_York")
    assert shown["time"].to_list()[0].isoformat() == "2022-09-13T02:29:00-04:00"
    # Same instants, same data.
    back = shown.with_columns(pl.col("time").dt.convert_time_zone("UTC"))
    assert_frame_equal(back, frame)


@pytest.mark.parametrize("timezone", ["Mars/Olympus_Mons", "", "../etc/passwd", "EST5EDT,M3"])
def test_finalize_rejects_unknown_timezones(timezone: str) -> None:
    with pytest.raises(InvalidRequest, match="time zone"):
        finalize(frame_of(rows(0), SYMBOL), timezone=timezone)


def test_realistic_history_packet() -> None:
    values = [
        [float(T0 + 60 * i), 1.0 + i, 2.0 + i, 0.5 + i, 1.5 + i, None if i % 7 == 0 else float(i)]
        for i in range(5000)
    ]
    message = parse_message(
        json.dumps(
            {
                "m": "timescale_update",
                "p": [
                    "cs",
                    {"s1": {"s": [{"i": i, "v": v} for i, v in enumerate(values)], "t": "s1"}},
                ],
            }
        )
    )
    assert isinstance(message, SeriesData)
    frame = finalize(frame_from_wire_bars(message.series["s1"].values(), SYMBOL))
    assert frame.height == 5000
    assert frame["volume"].null_count() == len(range(0, 5000, 7))
    assert frame["close"].sum() == sum(v[4] for v in values)
    assert frame["time"].is_sorted()
    assert frame.row(4999) == (utc(T0 + 60 * 4999), SYMBOL, 5000.0, 5001.0, 4999.5, 5000.5, 4999.0)


def payload(values: list[list[Any]]) -> SeriesPayload:
    return SeriesPayload([Row(values_from_wire(v), i) for i, v in enumerate(values)], "s1")


def wire_bars(payloads: list[SeriesPayload]) -> list[Bar]:
    """The parser's bars of history chunks, in order, as the history layer collects them."""
    return [row.v for chunk in payloads for row in chunk.rows]


def test_frame_from_wire_bars_equals_frame_of() -> None:
    first, second = rows(0, 1, 2), rows(3, 4)
    assert_frame_equal(
        frame_from_wire_bars(wire_bars([payload(first)]), SYMBOL), frame_of(first, SYMBOL)
    )
    assert_frame_equal(
        frame_from_wire_bars(wire_bars([payload(first), payload([]), payload(second)]), SYMBOL),
        frame_of(first + second, SYMBOL),
    )
    no_volume = rows(0, 1, volume=False)
    mixed = [*no_volume, *rows(2)]
    assert_frame_equal(
        frame_from_wire_bars(wire_bars([payload(no_volume), payload(rows(2))]), SYMBOL),
        frame_of(mixed, SYMBOL),
    )
    assert frame_from_wire_bars(wire_bars([payload(mixed)]), SYMBOL)["volume"].to_list() == [
        None,
        None,
        30.0,
    ]


def test_frame_from_wire_bars_of_nothing() -> None:
    assert_frame_equal(frame_from_wire_bars(wire_bars([]), SYMBOL), empty_frame())
    assert_frame_equal(frame_from_wire_bars(wire_bars([payload([])]), SYMBOL), empty_frame())


@pytest.mark.parametrize(
    "rows_",
    [[{"i": 0}], [None], ["text"], [{"i": 0, "v": [1, 2]}], [{"i": 0, "v": ["a", 1, 2, 3, 4]}]],
)
def test_malformed_rows_never_become_payloads(rows_: list[Any]) -> None:
    # Malformed rows never become payloads: the parser rejects the message.
    text = json.dumps({"m": "timescale_update", "p": ["cs", {"s1": {"s": rows_, "t": "s1"}}]})
    with pytest.raises(FramingError):
        parse_message(text)


def test_building_frames_never_touches_collection(monkeypatch: pytest.MonkeyPatch) -> None:
    # The process-wide switch belongs to the library's user.
    switched: list[str] = []
    monkeypatch.setattr(gc, "disable", lambda: switched.append("disable"))
    monkeypatch.setattr(gc, "enable", lambda: switched.append("enable"))
    values = rows(*range(2_000))
    from_wire = frame_of(values, SYMBOL)
    from_bars = frame_from_bars([bar_from_values(v, SYMBOL, "1") for v in values])
    assert_frame_equal(from_wire, from_bars)
    assert switched == []
