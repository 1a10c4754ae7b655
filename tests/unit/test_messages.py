"""Typed server messages and client builders."""

from __future__ import annotations

import gc
import json
from typing import Any

import pytest

from tvfeed_async.errors import FramingError
from tvfeed_async.protocol.bars import Bar
from tvfeed_async.protocol.messages import (
    ANONYMOUS_TOKEN,
    BarCloseInfo,
    BarValues,
    ClientMessage,
    CriticalError,
    ProtocolErrorMessage,
    QuoteCompleted,
    QuoteData,
    Row,
    SeriesCompleted,
    SeriesData,
    SeriesError,
    SeriesLoading,
    SeriesPayload,
    SessionInfo,
    SymbolError,
    SymbolResolved,
    UnknownMessage,
    bar_from_values,
    chart_create_session,
    chart_delete_session,
    create_series,
    modify_series,
    parse_client_message,
    parse_message,
    quote_add_symbols,
    quote_create_session,
    quote_delete_session,
    quote_fast_symbols,
    quote_remove_symbols,
    quote_set_fields,
    range_param,
    remove_series,
    request_more_data,
    resolve_symbol,
    set_auth_token,
    set_locale,
    switch_timezone,
    symbol_spec,
    values_from_wire,
)


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def wire(message: ClientMessage) -> Any:
    """The JSON value a client message puts on the wire (after unframing)."""
    framed = message.encode()
    return json.loads(framed[framed.index("~m~", 3) + 3 :])


# --------------------------------------------------------------------------- server messages

HELLO_2024 = (
    '{"session_id":"<0.4949.2378>_dal-charts-5-wgt-webchart-4@dal-compute-5",'
    '"timestamp":1709512185,"timestampMs":1709512185140,'
    '"release":"registry.xtools.tv/tvbs_release/webchart:release_207-48",'
    '"studies_metadata_hash":"0f1da59be5cb3ebc5873b524e394cf0792c5339d","auth_scheme_vsn":2,'
    '"protocol":"json","via":"209.58.153.118:443","javastudies":["3.64"]}'
)


def test_session_info() -> None:
    info = parse_message(HELLO_2024)
    assert isinstance(info, SessionInfo)
    assert info.session_id == "<0.4949.2378>_dal-charts-5-wgt-webchart-4@dal-compute-5"
    assert info.timestamp == 1709512185
    assert info.release == "registry.xtools.tv/tvbs_release/webchart:release_207-48"
    assert info.protocol == "json"
    assert info.raw["javastudies"] == ["3.64"]


def test_session_info_2019_form() -> None:
    info = parse_message(
        '{"session_id":"<0.17287.567>_sfo2-charts-4-webchart-6@sfo2-compute-4_x",'
        '"timestamp":1558466886,"release":"registry:5000/tvbs_release/webchart:release_201-106",'
        '"protocol":"json","javastudies":"javastudies-3.44_955","auth_scheme_vsn":2}'
    )
    assert isinstance(info, SessionInfo)
    assert info.session_id.endswith("_x")
    assert info.raw["javastudies"] == "javastudies-3.44_955"


def test_object_without_m_or_session_id_is_an_error() -> None:
    with pytest.raises(FramingError, match="neither"):
        parse_message('{"p":[]}')


def test_symbol_resolved() -> None:
    info = {"full_name": "BITSTAMP:BTCUSD", "timezone": "Etc/UTC", "pricescale": 1}
    message = parse_message(
        dumps({"m": "symbol_resolved", "p": ["cs_a", "sds_sym_1", info], "t": 1, "t_ms": 1000})
    )
    assert message == SymbolResolved("cs_a", "sds_sym_1", info)
    assert message.info["timezone"] == "Etc/UTC"


def test_symbol_resolved_2019_with_trailing_time() -> None:
    message = parse_message(
        dumps({"m": "symbol_resolved", "p": ["cs_a", "symbol_1", {"name": "AAPL"}, 1558467166]})
    )
    assert isinstance(message, SymbolResolved)
    assert message.info == {"name": "AAPL"}


def test_symbol_error() -> None:
    message = parse_message('{"m":"symbol_error","p":["cs_a","sds_sym_1","invalid symbol"]}')
    assert message == SymbolError("cs_a", "sds_sym_1", "invalid symbol")


def test_series_loading_2026_and_2019() -> None:
    assert parse_message(
        '{"m":"series_loading","p":["cs_casjcotuguzl","sds_1","s1"],"t":1780851033,'
        '"t_ms":1780851033916}'
    ) == SeriesLoading("cs_casjcotuguzl", "sds_1", "s1")
    assert parse_message(
        '{"m":"series_loading","p":["cs_MWY8N9BKPkOk","s1","s1",1558467166],"t":1558467166}'
    ) == SeriesLoading("cs_MWY8N9BKPkOk", "s1", "s1")


TIMESCALE_UPDATE = {
    "m": "timescale_update",
    "p": [
        "cs_xkd21F2c6xIU",
        {
            "s1": {
                "node": "sfo-charts-3-pro-study-engine-3@sfo-compute-3",
                "s": [
                    {"i": 0, "v": [1558194300.0, 7382.88, 7382.88, 7352.66, 7360.42, 33.79]},
                    {"i": 1, "v": [1558195200.0, 7360.41, 7378.89, 7338.85, 7361.95, 38.78]},
                ],
                "ns": {"d": "", "indexes": []},
                "t": "s1",
                "lbs": {"bar_close_time": 1558196100},
            }
        },
        {
            "index": 2,
            "zoffset": 0,
            "changes": [1558194300.0, 1558195200.0],
            "marks": [[21, 1558194300, 0], [22, 1558195200, 1]],
            "index_diff": [],
        },
        1558466894,
    ],
    "t": 1558466894,
}


def test_timescale_update() -> None:
    message = parse_message(dumps(TIMESCALE_UPDATE))
    assert isinstance(message, SeriesData)
    assert message.method == "timescale_update"
    assert message.session == "cs_xkd21F2c6xIU"
    assert message.server_time == 1558466894.0
    assert list(message.series) == ["s1"]  # the key is the series id
    payload = message.series["s1"]
    assert payload.turnaround == "s1"
    assert payload.bar_close_time == 1558196100
    assert [row.i for row in payload.rows] == [0, 1]
    assert payload.values() == [
        BarValues(1558194300, 7382.88, 7382.88, 7352.66, 7360.42, 33.79),
        BarValues(1558195200, 7360.41, 7378.89, 7338.85, 7361.95, 38.78),
    ]
    assert [row.bar for row in payload.rows] == [
        Bar(1558194300, 7382.88, 7382.88, 7352.66, 7360.42, 33.79),
        Bar(1558195200, 7360.41, 7378.89, 7338.85, 7361.95, 38.78),
    ]
    assert all(isinstance(bar.timestamp, int) for bar in payload.values())
    assert payload.bars("BITSTAMP:BTCUSD", "15") == [
        Bar(1558194300, 7382.88, 7382.88, 7352.66, 7360.42, 33.79, "BITSTAMP:BTCUSD", "15"),
        Bar(1558195200, 7360.41, 7378.89, 7338.85, 7361.95, 38.78, "BITSTAMP:BTCUSD", "15"),
    ]


def test_timescale_update_with_empty_series_dict_is_tick_marks_only() -> None:
    message = parse_message(
        '{"m":"timescale_update","p":["cs_xkd21F2c6xIU",{},{"index":300,"zoffset":0,'
        '"changes":[1558467000.0],"marks":[[22,1558467000,300]],"index_diff":[]},1558466895]}'
    )
    assert isinstance(message, SeriesData)
    assert message.series == {}


def test_du_live_bar_recording() -> None:
    message = parse_message(
        '{"m":"du","p":["cs_saydeutqehrd",{"s1":{"s":[{"i":300,"v":[1663050540.0,1721.18,'
        '1721.75,1721.17,1721.74,229.7826]}],"ns":{"d":"","indexes":"nochange"},"t":"s1",'
        '"lbs":{"bar_close_time":1663050600}}}]}'
    )
    assert isinstance(message, SeriesData)
    assert message.method == "du"
    assert message.server_time is None
    (bar,) = message.series["s1"].bars("BINANCE:ETHUSDT", "1")
    assert bar == Bar(
        1663050540, 1721.18, 1721.75, 1721.17, 1721.74, 229.7826, "BINANCE:ETHUSDT", "1"
    )
    assert isinstance(bar.timestamp, int)
    assert bar.closed is False
    assert message.series["s1"].bar_close_time == 1663050600


def test_du_study_and_pointset_entries_carry_no_bars() -> None:
    message = parse_message(
        dumps(
            {
                "m": "du",
                "p": [
                    "cs_a",
                    {
                        "st2": {
                            "st": [{"i": 299, "v": [1558445400.0, 20932619.0, 0.0, 1e100]}],
                            "ns": {"d": "", "indexes": "nochange"},
                            "t": "s1_st1",
                        },
                        "pointsetEstimates_1": {"plots": [], "t": "turnaround"},
                        "s1": {
                            "s": [{"i": 299, "v": [1558445400.0, 185.22, 188.0, 184.5, 187.35]}],
                            "ns": {"d": "", "indexes": []},
                            "t": "s1",
                        },
                    },
                ],
            }
        )
    )
    assert isinstance(message, SeriesData)
    assert list(message.series) == ["st2", "pointsetEstimates_1", "s1"]
    # Study and pointset entries are there, without rows: they never become bars.
    for study in ("st2", "pointsetEstimates_1"):
        assert message.series[study].rows == []
        assert message.series[study].bars() == []
        assert message.series[study].values() == []
    assert [sid for sid, payload in message.series.items() if payload.bars()] == ["s1"]
    (bar,) = message.series["s1"].bars()
    assert bar.volume is None
    assert message.series["s1"].bar_close_time is None


def test_du_with_only_a_study_has_no_bars() -> None:
    message = parse_message(
        '{"m":"du","p":["cs_MWY8N9BKPkOk",{"st2":{"st":[{"i":299,"v":[1558445400.0,20932619.0,'
        '0.0,33044525.449999999255]}],"ns":{"d":"","indexes":"nochange"},"t":"s1_st1"}}]}'
    )
    assert isinstance(message, SeriesData)
    assert list(message.series) == ["st2"]
    assert message.series["st2"].rows == []
    assert message.series["st2"].bars() == []
    assert message.series["st2"].values() == []


def test_envelope_time_prefers_milliseconds() -> None:
    message = parse_message(
        '{"m":"du","p":["cs_a",{}],"t":1767272908,"t_ms":1767272908585}',
    )
    assert isinstance(message, SeriesData)
    assert message.server_time == pytest.approx(1767272908.585)


def test_series_completed_2026_with_data_completed() -> None:
    message = parse_message(
        '{"m":"series_completed","p":["cs_DcCNfv1DTMH6","sds_1","streaming","s2",'
        '{"rt_update_period":0,"data_completed":"limit"}],"t":1767272908,"t_ms":1767272908585}'
    )
    assert message == SeriesCompleted("cs_DcCNfv1DTMH6", "sds_1", "streaming", "s2", "limit")


def test_series_completed_2026_without_data_completed() -> None:
    message = parse_message(
        '{"m":"series_completed","p":["cs_a","sds_1","streaming","s1",{"rt_update_period":0}]}'
    )
    assert message == SeriesCompleted("cs_a", "sds_1", "streaming", "s1", None)


def test_series_completed_2019_with_trailing_unix_time() -> None:
    message = parse_message(
        '{"m":"series_completed","p":["cs_MWY8N9BKPkOk","s1","streaming","s1",1558467166],'
        '"t":1558467166}'
    )
    assert message == SeriesCompleted("cs_MWY8N9BKPkOk", "s1", "streaming", "s1", None)


def test_series_error() -> None:
    message = parse_message(
        '{"m":"series_error","p":["cs_a","$prices","s1","study_not_auth:BarSetRenko@tv-prostudies-40"]}'
    )
    assert message == SeriesError(
        "cs_a", "$prices", "s1", "study_not_auth:BarSetRenko@tv-prostudies-40"
    )


def test_critical_error_and_its_method() -> None:
    message = parse_message(
        '{"m":"critical_error","p":["cs_casjcotuguzl","invalid parameters",'
        '"method: create_series. args: \\"[sds_1, s1, sds_sym_1, s1, 1, ]\\""]}'
    )
    assert isinstance(message, CriticalError)
    assert message.session == "cs_casjcotuguzl"
    assert message.message == "invalid parameters"
    assert message.method == "create_series"
    assert message.detail == 'method: create_series. args: "[sds_1, s1, sds_sym_1, s1, 1, ]"'


def test_critical_error_timezone_and_without_detail() -> None:
    timezone = parse_message(
        '{"m":"critical_error","p":["cs","invalid timezone",'
        '"method: switch_timezone. args: \\"[Nowhere/Nowhere]\\""]}'
    )
    assert isinstance(timezone, CriticalError)
    assert timezone.method == "switch_timezone"
    bare = parse_message('{"m":"critical_error","p":["cs","unsupported method"]}')
    assert bare == CriticalError("cs", "unsupported method", "")
    assert isinstance(bare, CriticalError)
    assert bare.method == ""


def test_protocol_error() -> None:
    assert parse_message('{"m":"protocol_error","p":["bad auth token"]}') == (
        ProtocolErrorMessage("bad auth token")
    )
    assert parse_message('{"m":"protocol_error","p":[]}') == ProtocolErrorMessage("")


def test_quote_data_snapshot_delta_and_error() -> None:
    snapshot = parse_message(
        '{"m":"qsd","p":["qs_cC2wPCt1dRcI",{"n":"BITSTAMP:BTCUSD","s":"ok","v":{"ch":-0.87,'
        '"lp":8004.7700000000004366,"volume":6219.922135210000306}}]}'
    )
    assert snapshot == QuoteData(
        "qs_cC2wPCt1dRcI",
        "BITSTAMP:BTCUSD",
        "ok",
        {"ch": -0.87, "lp": 8004.77, "volume": 6219.922135210000306},
    )
    delta = parse_message('{"m":"qsd","p":["qs_1",{"n":"X:Y","s":"ok","v":{"lp_time":1}}]}')
    assert isinstance(delta, QuoteData)
    assert delta.values == {"lp_time": 1}
    error = parse_message('{"m":"qsd","p":["qs_1",{"n":"=\\"X\\"","s":"error"}]}')
    assert error == QuoteData("qs_1", '="X"', "error", {})


def test_quote_completed() -> None:
    assert parse_message('{"m":"quote_completed","p":["qs_1","BITSTAMP:BTCUSD"]}') == (
        QuoteCompleted("qs_1", "BITSTAMP:BTCUSD")
    )


@pytest.mark.parametrize(
    "method", ["study_loading", "study_completed", "protocol_switched", "replay_ok", "new_thing"]
)
def test_unknown_methods(method: str) -> None:
    message = parse_message(dumps({"m": method, "p": ["cs_a", "st1", 5]}))
    assert message == UnknownMessage(method, ["cs_a", "st1", 5])


# --------------------------------------------------------------------------- bar values


def test_bar_with_long_float_tails_and_float_time() -> None:
    message = parse_message(
        '{"m":"du","p":["cs_x",{"s1":{"s":[{"i":0,"v":[1558194300.0,7382.8800000000001091,'
        "7382.8800000000001091,7352.6599999999998545,7360.4200000000000728,"
        '33.79020585000002086]}],"t":"s1"}}]}'
    )
    assert isinstance(message, SeriesData)
    (bar,) = message.series["s1"].bars()
    assert bar.timestamp == 1558194300
    assert bar.open == 7382.88
    assert bar.low == 7352.66
    assert bar.close == 7360.42
    assert bar.volume == pytest.approx(33.79020585)


def test_bar_from_values_shapes() -> None:
    assert bar_from_values([1, 2, 3, 1, 2]) == Bar(1, 2.0, 3.0, 1.0, 2.0, None)
    assert bar_from_values([1.0, 2, 3, 1, 2, None]).volume is None
    six = bar_from_values([1663050540.0, 1, 2, 0, 1, 7], "A:B", "5")
    assert six == Bar(1663050540, 1.0, 2.0, 0.0, 1.0, 7.0, "A:B", "5", False)
    assert all(isinstance(value, float) for value in six[1:6])
    assert isinstance(six.timestamp, int)


def test_values_from_wire_reads_as_bar_from_values_reads() -> None:
    for values in ([1, 2, 3, 1, 2], [1.0, 2, 3, 1, 2, None], [1663050540.0, 1, 2, 0, 1, 7]):
        parsed = values_from_wire(values)
        assert parsed.bar() == bar_from_values(values)
        assert parsed.bar("A:B", "5") == bar_from_values(values, "A:B", "5")
        assert Row(parsed, 3).bar == bar_from_values(values)


@pytest.mark.parametrize("method", ["timescale_update", "du"])
def test_parsed_rows_are_not_tracked_by_the_garbage_collector(method: str) -> None:
    # A history batch must add nothing per row for collections to walk: that is what lets the
    # parser decode it without pausing collection (the process-wide switch is the user's).
    rows = [{"i": i, "v": [1_600_000_000 + 60 * i, 1.5, 2, 1, 1.75, i]} for i in range(700)]
    text = dumps({"m": method, "p": ["cs_x", {"s1": {"s": rows, "t": "s1"}}]})
    unusual = text.replace('"v":[1600000000,', '"v":[1600000000.5,', 1)  # the general path
    for packet in (text, unusual):
        message = parse_message(packet)
        assert isinstance(message, SeriesData)
        parsed = message.series["s1"].rows
        assert len(parsed) == 700
        assert not any(gc.is_tracked(row) or gc.is_tracked(row.v) for row in parsed)
    assert parse_message(unusual).series["s1"].rows == parse_message(text).series["s1"].rows  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "rows",
    [
        [{"i": 0}],
        [{"i": 0, "v": [1, 2, 3]}],
        [{"i": 0, "v": [1, "x", 3, 4, 5]}],
        [{"i": 0, "v": None}],
        [{"i": 0, "v": {"a": 1}}],
        ["not a row"],
        [None],
        [{"i": 0, "v": [1e300, 1, 1, 1, 1]}, {"i": 1, "v": [None, 1, 1, 1, 1]}],
    ],
)
def test_malformed_bar_rows_raise_framing_error(rows: list[Any]) -> None:
    text = dumps({"m": "timescale_update", "p": ["cs", {"s1": {"s": rows}}]})
    with pytest.raises(FramingError, match="malformed bar row"):
        parse_message(text)


def test_values_of_malformed_rows_raise_framing_error() -> None:
    # A du of the usual full shape (t, lbs) whose row has no values: no message comes out.
    text = dumps(
        {
            "m": "du",
            "p": ["cs", {"s1": {"s": [{"i": 0}], "t": "s1", "lbs": {"bar_close_time": 60}}}],
        }
    )
    with pytest.raises(FramingError):
        parse_message(text)


# --------------------------------------------------------------------------- malformed shapes


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not json",
        "[1,2,3]",
        '"a string"',
        "42",
        '{"m":"du"}',
        '{"m":5,"p":[]}',
        '{"m":"du","p":{}}',
        '{"m":"du","p":[]}',
        '{"m":"du","p":["cs"]}',
        '{"m":"du","p":["cs",[1,2]]}',
        '{"m":"du","p":["cs",{"s1":{"s":{"i":0}}}]}',
        '{"m":"timescale_update","p":["cs",{"s1":{"s":"bars"}}]}',
        '{"m":"timescale_update","p":["cs",null]}',
        '{"m":"series_completed","p":["cs"]}',
        '{"m":"series_loading","p":["cs","s1"]}',
        '{"m":"symbol_resolved","p":["cs","sym"]}',
        '{"m":"series_error","p":[]}',
        '{"m":"critical_error","p":[]}',
        '{"m":"qsd","p":["qs"]}',
        '{"m":"qsd","p":["qs","not an object"]}',
        '{"m":"quote_completed","p":[]}',
        '{"m":"symbol_error","p":["cs"]}',
    ],
)
def test_malformed_messages_raise_framing_error_only(text: str) -> None:
    with pytest.raises(FramingError):
        parse_message(text)


def test_du_with_lbs_of_wrong_type_is_tolerated() -> None:
    message = parse_message('{"m":"du","p":["cs",{"s1":{"s":[],"lbs":[1],"t":null}}]}')
    assert isinstance(message, SeriesData)
    assert message.series["s1"].bar_close_time is None
    assert message.series["s1"].turnaround == ""
    assert message.series["s1"].bars() == []


def test_parsed_series_objects_are_frozen() -> None:
    message = parse_message(dumps(TIMESCALE_UPDATE))
    assert isinstance(message, SeriesData)
    with pytest.raises(AttributeError):
        message.session = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        message.p = message.p  # type: ignore[misc]
    with pytest.raises(AttributeError):
        message.p.session = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        message.series["s1"].turnaround = "other"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        message.series["s1"].rows[0].i = 5  # type: ignore[misc]
    assert message.series["s1"] == SeriesPayload(
        [Row(values_from_wire(row["v"]), row["i"]) for row in TIMESCALE_UPDATE["p"][1]["s1"]["s"]],
        "s1",
        BarCloseInfo(1558196100),
    )


# --------------------------------------------------------------------------- client builders


def test_set_auth_token() -> None:
    assert wire(set_auth_token(ANONYMOUS_TOKEN)) == {
        "m": "set_auth_token",
        "p": ["unauthorized_user_token"],
    }
    assert set_auth_token(ANONYMOUS_TOKEN).encode() == (
        '~m~54~m~{"m":"set_auth_token","p":["unauthorized_user_token"]}'
    )


def test_session_builders() -> None:
    assert wire(set_locale()) == {"m": "set_locale", "p": ["en", "US"]}
    # The recorded browser / tvkit / HAMED form, byte for byte (HAMED recording: prefix 55).
    assert chart_create_session("cs_casjcotuguzl").encode() == (
        '~m~55~m~{"m":"chart_create_session","p":["cs_casjcotuguzl",""]}'
    )
    assert wire(chart_delete_session("cs_a")) == {"m": "chart_delete_session", "p": ["cs_a"]}
    assert wire(switch_timezone("cs_a", "Etc/UTC")) == {
        "m": "switch_timezone",
        "p": ["cs_a", "Etc/UTC"],
    }
    assert wire(switch_timezone("cs_a", "exchange"))["p"][1] == "exchange"


def test_symbol_spec_and_resolve_symbol() -> None:
    spec = symbol_spec("CBOT_MINI:YM1!", session="us_regular")
    assert spec == '={"adjustment":"splits","session":"us_regular","symbol":"CBOT_MINI:YM1!"}'
    # Byte for byte what the genuine HAMED client sent (prefix 146).
    assert resolve_symbol("cs_casjcotuguzl", "sds_sym_1", spec).encode() == (
        '~m~146~m~{"m":"resolve_symbol","p":["cs_casjcotuguzl","sds_sym_1",'
        '"={\\"adjustment\\":\\"splits\\",\\"session\\":\\"us_regular\\",'
        '\\"symbol\\":\\"CBOT_MINI:YM1!\\"}"]}'
    )
    full = symbol_spec(
        "NQ1!", adjustment="dividends", session="extended", back_adjustment=True, currency="EUR"
    )
    assert full.startswith("=")
    assert json.loads(full[1:]) == {
        "adjustment": "dividends",
        "backadjustment": "default",
        "currency-id": "EUR",
        "session": "extended",
        "symbol": "NQ1!",
    }
    assert json.loads(symbol_spec("BINANCE:BTCUSDT")[1:]) == {
        "adjustment": "splits",
        "symbol": "BINANCE:BTCUSDT",
    }


def test_create_series_forms() -> None:
    # Count form, byte for byte the genuine HAMED frame (prefix 80), trailing "" included.
    assert create_series("cs_casjcotuguzl", "sds_1", "s1", "sds_sym_1", "1S", 2).encode() == (
        '~m~80~m~{"m":"create_series","p":["cs_casjcotuguzl","sds_1","s1","sds_sym_1","1S",2,""]}'
    )
    bar_count = create_series(
        "cs_a", "sds_1", "s1", "sds_sym_1", "D", ["bar_count", 1700000000, 300]
    )
    assert wire(bar_count)["p"] == [
        "cs_a",
        "sds_1",
        "s1",
        "sds_sym_1",
        "D",
        ["bar_count", 1700000000, 300],
        "",
    ]
    ranged = create_series(
        "cs_a", "sds_1", "s1", "sds_sym_1", "60", range_param(1704067200, 1735603200)
    )
    assert wire(ranged)["p"][5:] == ["r,1704067200:1735603200", ""]


def test_range_param_is_whole_unix_seconds() -> None:
    assert range_param(1704067200, 1735603200) == "r,1704067200:1735603200"
    assert range_param(1704067200.9, 1735603200.2) == "r,1704067200:1735603200"  # type: ignore[arg-type]


def test_modify_series_request_more_data_remove_series() -> None:
    assert wire(modify_series("cs_a", "sds_1", "s2", "sds_sym_2", "240")) == {
        "m": "modify_series",
        "p": ["cs_a", "sds_1", "s2", "sds_sym_2", "240", ""],
    }
    assert wire(modify_series("cs_a", "sds_1", "s2", "sds_sym_1", "60", "r,1:2"))["p"][5] == "r,1:2"
    # The genuine HAMED frame (prefix 63).
    assert request_more_data("cs_casjcotuguzl", "sds_1", 27000).encode() == (
        '~m~63~m~{"m":"request_more_data","p":["cs_casjcotuguzl","sds_1",27000]}'
    )
    assert wire(remove_series("cs_a", "sds_1")) == {"m": "remove_series", "p": ["cs_a", "sds_1"]}


def test_quote_builders() -> None:
    assert wire(quote_create_session("qs_a")) == {"m": "quote_create_session", "p": ["qs_a"]}
    assert wire(quote_delete_session("qs_a")) == {"m": "quote_delete_session", "p": ["qs_a"]}
    assert wire(quote_set_fields("qs_a", ["lp", "ch", "volume"])) == {
        "m": "quote_set_fields",
        "p": ["qs_a", "lp", "ch", "volume"],
    }
    assert wire(quote_add_symbols("qs_a", ["BINANCE:BTCUSDT", "NASDAQ:AAPL"])) == {
        "m": "quote_add_symbols",
        "p": ["qs_a", "BINANCE:BTCUSDT", "NASDAQ:AAPL", {"flags": ["force_permission"]}],
    }
    assert wire(quote_remove_symbols("qs_a", ["NASDAQ:AAPL"])) == {
        "m": "quote_remove_symbols",
        "p": ["qs_a", "NASDAQ:AAPL"],
    }
    assert wire(quote_fast_symbols("qs_a", ["X:Y"])) == {
        "m": "quote_fast_symbols",
        "p": ["qs_a", "X:Y"],
    }


def test_parse_client_message_round_trips_every_builder() -> None:
    built = [
        set_auth_token("token"),
        set_locale("de", "DE"),
        chart_create_session("cs_a"),
        switch_timezone("cs_a", "America/New_York"),
        resolve_symbol("cs_a", "sds_sym_1", symbol_spec("BINANCE:BTCUSDT")),
        create_series("cs_a", "sds_1", "s1", "sds_sym_1", "15", 300),
        modify_series("cs_a", "sds_1", "s2", "sds_sym_1", "15", range_param(1, 2)),
        request_more_data("cs_a", "sds_1", 5000),
        quote_add_symbols("qs_a", ["X:Y"]),
    ]
    for message in built:
        framed = message.encode()
        assert parse_client_message(framed[framed.index("~m~", 3) + 3 :]) == message


def test_parse_client_message_errors() -> None:
    assert parse_client_message('{"m":"chart_delete_session"}') == ClientMessage(
        "chart_delete_session", []
    )
    for text in ("nope", "[]", '{"p":[]}', '{"m":1,"p":[]}', '{"m":"x","p":"y"}'):
        with pytest.raises(FramingError):
            parse_client_message(text)
