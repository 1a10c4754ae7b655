"""Hypothesis properties of the codec: round trip, any split, garbage."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import astuple

from tvfeed_async.errors import FramingError
from tvfeed_async.protocol.framing import (
    FrameDecoder,
    Heartbeat,
    Packet,
    decode_packets,
    encode_heartbeat,
    encode_json,
    encode_packet,
    utf16_len,
)
from tvfeed_async.protocol.messages import SeriesData, parse_message

SETTINGS = settings(max_examples=150, deadline=None)

# Text with the characters that matter: header look-alikes, BMP non-ASCII, astral emoji.
TRICKY = st.sampled_from(["~m~12~m~", "~m~", "~h~", "~j~", "~", "삼성", "🚀", "𝄞", "é", '"', "\\"])
PAYLOAD = st.lists(st.one_of(st.text(), TRICKY), max_size=8).map("".join)


def expected_packet(payload: str) -> Packet:
    """What the decoder must yield for a payload: heartbeats typed, ``~j~`` stripped."""
    if payload.startswith("~h~"):
        return Heartbeat(payload[3:])
    if payload.startswith("~j~"):
        return payload[3:]
    return payload


def js_length(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@SETTINGS
@given(PAYLOAD)
def test_encode_decode_round_trip(payload: str) -> None:
    framed = encode_packet(payload)
    assert framed.startswith(f"~m~{js_length(payload)}~m~")
    assert utf16_len(payload) == js_length(payload)
    assert decode_packets(framed) == [expected_packet(payload)]


@SETTINGS
@given(st.lists(PAYLOAD, max_size=6))
def test_round_trip_of_several_packets_in_one_message(payloads: list[str]) -> None:
    message = "".join(encode_packet(payload) for payload in payloads)
    assert decode_packets(message) == [expected_packet(payload) for payload in payloads]


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)


@SETTINGS
@given(st.text(min_size=1), st.lists(JSON_VALUES, max_size=4))
def test_client_json_is_ascii_and_round_trips(method: str, params: list[Any]) -> None:
    framed = encode_json({"m": method, "p": params})
    assert framed.isascii()
    (payload,) = decode_packets(framed)
    assert isinstance(payload, str)
    assert len(payload) == len(payload.encode()) == utf16_len(payload)
    assert json.loads(payload) == {"m": method, "p": params}


STREAM_PACKETS = st.lists(
    st.one_of(
        PAYLOAD.map(encode_packet),
        st.integers(min_value=0, max_value=10**6).map(encode_heartbeat),
    ),
    min_size=1,
    max_size=8,
)


@SETTINGS
@given(STREAM_PACKETS, st.data())
def test_any_split_decodes_identically(packets: list[str], data: st.DataObject) -> None:
    stream = "".join(packets)
    whole = decode_packets(stream)
    assert len(whole) == len(packets)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    decoder = FrameDecoder()
    decoded: list[Packet] = []
    previous = 0
    for cut in [*cuts, len(stream)]:
        decoded.extend(decoder.feed(stream[previous:cut]))
        previous = cut
    assert decoded == whole
    assert decoder.pending == ""


@SETTINGS
@given(STREAM_PACKETS, st.data())
def test_any_split_of_utf8_bytes_at_character_boundaries(
    packets: list[str], data: st.DataObject
) -> None:
    stream = "".join(packets)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    decoder = FrameDecoder()
    decoded: list[Packet] = []
    previous = 0
    for cut in [*cuts, len(stream)]:
        decoded.extend(decoder.feed(stream[previous:cut].encode()))
        previous = cut
    assert decoded == decode_packets(stream)


PROTOCOLISH = st.text(alphabet='~mhj0123456789{}"[],:du ', max_size=80)


@SETTINGS
@given(st.one_of(st.text(), PROTOCOLISH, STREAM_PACKETS.map("".join).map(lambda s: s[:-1])))
def test_arbitrary_text_raises_only_framing_error(text: str) -> None:
    try:
        packets = decode_packets(text)
    except FramingError:
        return
    assert all(isinstance(packet, str | Heartbeat) for packet in packets)


@SETTINGS
@given(st.lists(st.one_of(st.text(), PROTOCOLISH), max_size=5))
def test_arbitrary_text_fed_incrementally_raises_only_framing_error(chunks: list[str]) -> None:
    decoder = FrameDecoder()
    try:
        for chunk in chunks:
            for packet in decoder.feed(chunk):
                assert isinstance(packet, str | Heartbeat)
    except FramingError:
        return


@SETTINGS
@given(st.binary(max_size=200))
def test_arbitrary_bytes_raise_only_framing_error(data: bytes) -> None:
    with contextlib.suppress(FramingError):
        decode_packets(data)
    with contextlib.suppress(FramingError):
        decode_packets(b"~m~4~m~~h~1" + data)


METHODS = st.sampled_from(
    [
        "du",
        "timescale_update",
        "series_completed",
        "series_loading",
        "symbol_resolved",
        "symbol_error",
        "series_error",
        "critical_error",
        "protocol_error",
        "qsd",
        "quote_completed",
        "study_loading",
    ]
)
SERIES_BODY = st.fixed_dictionaries(
    {},
    optional={
        "s": st.one_of(
            JSON_VALUES,
            st.lists(
                st.fixed_dictionaries({"i": st.integers(), "v": st.lists(JSON_VALUES, max_size=7)}),
                max_size=3,
            ),
        ),
        "t": JSON_VALUES,
        "lbs": st.one_of(JSON_VALUES, st.fixed_dictionaries({"bar_close_time": JSON_VALUES})),
    },
)
PARAMS = st.one_of(
    JSON_VALUES,
    st.lists(
        st.one_of(JSON_VALUES, st.dictionaries(st.text(max_size=3), SERIES_BODY, max_size=2)),
        max_size=5,
    ),
)


@SETTINGS
@given(
    st.one_of(
        st.text(),
        JSON_VALUES.map(json.dumps),
        st.fixed_dictionaries(
            {"m": st.one_of(METHODS, JSON_VALUES), "p": PARAMS},
            optional={"t": JSON_VALUES, "t_ms": JSON_VALUES, "session_id": JSON_VALUES},
        ).map(json.dumps),
    )
)
def test_parse_message_raises_only_framing_error(text: str) -> None:
    try:
        message = parse_message(text)
    except FramingError:
        return
    if isinstance(message, SeriesData):
        # The parser validated every row: reading the bars cannot fail any more.
        for payload in message.series.values():
            bars = payload.bars("X:Y", "1")
            assert all(isinstance(bar.timestamp, int) for bar in bars)
            assert [bar[:6] for bar in bars] == [astuple(v) for v in payload.values()]
