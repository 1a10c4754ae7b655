"""Every genuine recorded WebSocket frame decodes and parses as expected.

Skipped on purpose: the Go ``%v`` dump of a timescale_update (not raw bytes), the DevTools
object-view copy from endenwer issue #8 (not raw bytes) and the two HTTP sign-in bodies (not
WebSocket frames). The recordings live in ``../shared/recordings``; these tests skip when it
is absent.
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from tvfeed_async.errors import FramingError
from tvfeed_async.frames import frame_from_wire_bars
from tvfeed_async.protocol.bars import Bar, BarMerger
from tvfeed_async.protocol.framing import Heartbeat, decode_packets, encode_packet
from tvfeed_async.protocol.messages import (
    ClientMessage,
    CriticalError,
    HistoryData,
    ProtocolErrorMessage,
    QuoteData,
    SeriesCompleted,
    SeriesData,
    SeriesLoading,
    ServerMessage,
    SessionInfo,
    SymbolResolved,
    UnknownMessage,
    chart_create_session,
    create_series,
    parse_client_message,
    parse_message,
    request_more_data,
    resolve_symbol,
    symbol_spec,
)

DEVTOOLS = "rolandolucio_tv-scraper__devtools_capture_2019.jsonl"


def frames(path: Path) -> list[str]:
    """The frame lines of a text recording (the first line is its # SOURCE header)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# SOURCE:")
    return [line for line in lines[1:] if line.strip()]


def only_message(recordings: Path, name: str) -> ServerMessage:
    (frame,) = frames(recordings / name)
    (packet,) = decode_packets(frame)
    assert isinstance(packet, str)
    return parse_message(packet)


# --------------------------------------------------------------------------- single recordings


def test_du_live_bar(recordings_dir: Path) -> None:
    message = only_message(recordings_dir, "unattributed_id47613504074__du_live_bar.txt")
    assert isinstance(message, SeriesData)
    assert message.method == "du"
    assert message.session == "cs_saydeutqehrd"
    assert list(message.series) == ["s1"]
    payload = message.series["s1"]
    assert payload.turnaround == "s1"
    assert payload.bar_close_time == 1663050600
    (bar,) = payload.bars("BINANCE:ETHUSDT", "1")
    assert bar == Bar(
        1663050540, 1721.18, 1721.75, 1721.17, 1721.74, 229.7826, "BINANCE:ETHUSDT", "1"
    )
    # lbs.bar_close_time is the open time plus one 1-minute interval.
    assert payload.bar_close_time - bar.timestamp == 60


def test_symbol_resolved(recordings_dir: Path) -> None:
    (frame,) = frames(recordings_dir / "HamedMolavi_finance-data-stream__symbol_resolved.txt")
    assert frame.startswith("~m~1428~m~")
    message = only_message(recordings_dir, "HamedMolavi_finance-data-stream__symbol_resolved.txt")
    assert isinstance(message, SymbolResolved)
    assert message.session == "cs_casjcotuguzl"
    assert message.symbol_ref == "sds_sym_1"
    assert message.info["full_name"] == "BITSTAMP:BTCUSD"
    assert message.info["timezone"] == "Etc/UTC"
    assert message.info["session"] == "24x7"
    assert message.info["type"] == "spot"


def test_series_loading(recordings_dir: Path) -> None:
    message = only_message(recordings_dir, "HamedMolavi_finance-data-stream__series_loading.txt")
    assert message == SeriesLoading("cs_casjcotuguzl", "sds_1", "s1")


def test_series_completed_payload(recordings_dir: Path) -> None:
    # This recording is the payload alone; framed it is ~m~157~m~ (its header says so).
    (payload,) = frames(
        recordings_dir / "HamedMolavi_finance-data-stream__series_completed_payload.txt"
    )
    assert encode_packet(payload).startswith("~m~157~m~")
    assert decode_packets(encode_packet(payload)) == [payload]
    message = parse_message(payload)
    assert message == SeriesCompleted("cs_DcCNfv1DTMH6", "sds_1", "streaming", "s2", "limit")


def test_protocol_error(recordings_dir: Path) -> None:
    message = only_message(
        recordings_dir, "HamedMolavi_finance-data-stream__protocol_error_bad_auth_token.txt"
    )
    assert message == ProtocolErrorMessage("bad auth token")


def test_critical_error(recordings_dir: Path) -> None:
    message = only_message(
        recordings_dir, "HamedMolavi_finance-data-stream__critical_error_invalid_parameters.txt"
    )
    assert isinstance(message, CriticalError)
    assert message.session == "cs_casjcotuguzl"
    assert message.message == "invalid parameters"
    assert message.method == "create_series"


def test_widgetdata_session_hello(recordings_dir: Path) -> None:
    (frame,) = frames(recordings_dir / "unattributed_id24628482502__widgetdata_session_hello.txt")
    assert frame.startswith("~m~346~m~")
    message = only_message(
        recordings_dir, "unattributed_id24628482502__widgetdata_session_hello.txt"
    )
    assert isinstance(message, SessionInfo)
    assert "wgt-webchart" in message.session_id
    assert message.timestamp == 1709512185
    assert message.protocol == "json"
    assert message.release.endswith("release_207-48")


def test_client_sample_messages(recordings_dir: Path) -> None:
    recorded = frames(
        recordings_dir / "HamedMolavi_finance-data-stream__client_sample-messages.log.txt"
    )
    messages = []
    for frame in recorded:
        (packet,) = decode_packets(frame)
        assert isinstance(packet, str)
        messages.append(parse_client_message(packet))
    assert [m.method for m in messages] == [
        "set_auth_token",
        "chart_create_session",
        "resolve_symbol",
        "create_series",
        "request_more_data",
    ]
    token = messages[0].params[0]
    assert token.count(".") == 2  # JWT-shaped (signature redacted in the recording)
    assert recorded[0].startswith("~m~920~m~")
    # Our builders produce the genuine client's frames byte for byte.
    session = "cs_casjcotuguzl"
    assert recorded[1:] == [
        chart_create_session(session).encode(),
        resolve_symbol(
            session, "sds_sym_1", symbol_spec("CBOT_MINI:YM1!", session="us_regular")
        ).encode(),
        create_series(session, "sds_1", "s1", "sds_sym_1", "1S", 2).encode(),
        request_more_data(session, "sds_1", 27000).encode(),
    ]


# --------------------------------------------------------------------------- 2019 DevTools capture


def devtools_events(recordings: Path) -> list[dict[str, Any]]:
    lines = (recordings / DEVTOOLS).read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# ")
    return [json.loads(line) for line in lines[1:] if line.strip()]


def chart_frames(recordings: Path, event: str, opcode: int) -> list[str]:
    """Payloads of the chart-protocol sockets (data/prodata, not pushstream)."""
    return [
        e["payload"]
        for e in devtools_events(recordings)
        if e.get("event") == event
        and e.get("opcode") == opcode
        and "/socket.io/websocket" in e.get("url", "")
    ]


def received_messages(recordings: Path) -> list[ServerMessage]:
    messages: list[ServerMessage] = []
    for frame in chart_frames(recordings, "received", 1):
        for packet in decode_packets(frame):
            assert not isinstance(packet, Heartbeat)
            messages.append(parse_message(packet))
    return messages


def test_devtools_every_received_text_frame_decodes_and_parses(recordings_dir: Path) -> None:
    received = chart_frames(recordings_dir, "received", 1)
    assert len(received) == 107
    messages = received_messages(recordings_dir)
    kinds = Counter(
        f"{type(m).__name__}:{m.method}"
        if isinstance(m, SeriesData | UnknownMessage)
        else type(m).__name__
        for m in messages
    )
    assert kinds == Counter(
        {
            "QuoteData": 119,
            "LiveData:du": 15,
            "UnknownMessage:study_loading": 10,
            "UnknownMessage:study_completed": 9,
            "HistoryData:timescale_update": 4,
            "SessionInfo": 3,
            "SeriesLoading": 2,
            "SymbolResolved": 2,
            "SeriesCompleted": 2,
            "UnknownMessage:protocol_switched": 2,
            "UnknownMessage:studies_metadata": 1,
            "UnknownMessage:study_error": 1,
            "UnknownMessage:depth_symbol_error": 1,
            "UnknownMessage:depth_symbol_cleared": 1,
        }
    )
    # Every bar in every data message converts; study rows ("st") never become bars.
    studies = 0
    for message in messages:
        if isinstance(message, SeriesData):
            for series_id, payload in message.series.items():
                if series_id != "s1":
                    studies += 1
                    assert payload.rows == []
                    assert payload.bars() == []
                for bar in payload.bars():
                    assert bar.high >= bar.low
                    assert bar.volume is not None
    assert studies == 12  # study and pointset entries: present, without rows


def test_devtools_history_and_completion(recordings_dir: Path) -> None:
    messages = received_messages(recordings_dir)
    resolved = [m for m in messages if isinstance(m, SymbolResolved)]
    assert [m.info["full_name"] for m in resolved] == ["BITSTAMP:BTCUSD", "BATS:AAPL"]
    completed = [m for m in messages if isinstance(m, SeriesCompleted)]
    # 2019 form: a trailing unix time instead of the extra object.
    assert completed == [
        SeriesCompleted("cs_xkd21F2c6xIU", "s1", "streaming", "s1", None),
        SeriesCompleted("cs_MWY8N9BKPkOk", "s1", "streaming", "s1", None),
    ]
    histories = [
        m
        for m in messages
        if isinstance(m, SeriesData) and m.method == "timescale_update" and m.series
    ]
    assert len(histories) == 2
    bitcoin = histories[0].series["s1"].bars()
    assert len(bitcoin) == 300
    assert bitcoin[0][:5] == (1558194300, 7382.88, 7382.88, 7352.66, 7360.42)
    assert bitcoin[0].volume == pytest.approx(33.79020585)
    # 15-minute bars, oldest first: steps are whole intervals (one real hour-long hole).
    steps = Counter(b.timestamp - a.timestamp for a, b in pairwise(bitcoin))
    assert steps == Counter({900: 298, 3600: 1})
    apple = histories[1].series["s1"].bars()
    assert len(apple) == 300
    assert apple[0].timestamp == 1520947800  # 13:30 UTC: daily bars stamp the session open
    assert apple[-1].volume == 20932219.0
    frame = frame_from_wire_bars(histories[1].series["s1"].values(), "BATS:AAPL")
    assert frame.height == 300
    assert frame["close"].to_list() == [b.close for b in apple]


def test_devtools_history_and_completion_share_one_frame(recordings_dir: Path) -> None:
    both = [
        frame
        for frame in chart_frames(recordings_dir, "received", 1)
        if '"timescale_update"' in frame and '"series_completed"' in frame
    ]
    assert len(both) == 1
    kinds = [type(parse_message(p)) for p in decode_packets(both[0]) if isinstance(p, str)]
    assert kinds == [HistoryData, SeriesCompleted]


def test_devtools_live_updates_merge_into_one_forming_bar(recordings_dir: Path) -> None:
    messages = received_messages(recordings_dir)
    apple = [
        m
        for m in messages
        if isinstance(m, SeriesData) and m.session == "cs_MWY8N9BKPkOk" and "s1" in m.series
    ]
    history, *live = apple
    merger = BarMerger()
    merger.apply_many(history.series["s1"].bars("BATS:AAPL", "1D"))
    closes = []
    for update in live:
        (bar,) = update.series["s1"].bars("BATS:AAPL", "1D")
        result = merger.apply(bar)
        assert result.closed == []  # same open time: revisions of the forming daily bar
        closes.append((bar.close, bar.volume))
    assert closes == [(187.35, 20932619.0), (187.36, 20932629.0)]
    assert merger.forming is not None
    assert merger.forming.close == 187.36
    assert merger.last_closed == 1558359000


def test_devtools_quote_deltas(recordings_dir: Path) -> None:
    quotes = [m for m in received_messages(recordings_dir) if isinstance(m, QuoteData)]
    assert {q.status for q in quotes} <= {"ok", "error"}
    bitcoin = [q for q in quotes if q.symbol == "BITSTAMP:BTCUSD" and "lp" in q.values]
    assert bitcoin
    assert all(isinstance(q.values["lp"], float) for q in bitcoin)


def test_devtools_sent_frames_parse_as_client_messages(recordings_dir: Path) -> None:
    methods: Counter[str] = Counter()
    for frame in chart_frames(recordings_dir, "sent", 1):
        for packet in decode_packets(frame):
            assert isinstance(packet, str)
            message = parse_client_message(packet)
            assert isinstance(message, ClientMessage)
            methods[message.method] += 1
    assert methods["set_auth_token"] == 3
    assert methods["chart_create_session"] == 2
    assert methods["resolve_symbol"] == 2
    assert methods["create_series"] == 2
    assert methods["switch_protocol"] == 2
    assert sum(methods.values()) == 51


def test_devtools_binary_frames_give_heartbeats_or_framing_errors(recordings_dir: Path) -> None:
    # After switch_protocol the sockets carry protobuf in binary frames; binary heartbeats are
    # the same ~m~4~m~~h~N text. Anything else must fail as a FramingError, never otherwise.
    heartbeats = []
    failures = 0
    for frame in chart_frames(recordings_dir, "received", 2):
        data = base64.b64decode(frame)
        try:
            packets = decode_packets(data)
        except FramingError:
            failures += 1
            continue
        heartbeats.extend(p for p in packets if isinstance(p, Heartbeat))
    assert len(heartbeats) >= 30
    assert failures > 0
    assert {h.number for h in heartbeats} >= {"1", "2", "3"}
