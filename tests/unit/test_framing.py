"""The ``~m~<length>~m~`` codec."""

from __future__ import annotations

import json

import pytest

from tvfeed_async.errors import FramingError, ProtocolError
from tvfeed_async.protocol.framing import (
    FrameDecoder,
    Heartbeat,
    decode_packets,
    encode_heartbeat,
    encode_json,
    encode_packet,
    utf16_len,
)
from tvfeed_async.protocol.messages import ClientMessage, quote_add_symbols, resolve_symbol

# Genuine frames, kept inline so these tests run without ../shared.
PROTOCOL_ERROR = '~m~45~m~{"m":"protocol_error","p":["bad auth token"]}'
SERIES_LOADING = (
    '~m~95~m~{"m":"series_loading","p":["cs_casjcotuguzl","sds_1","s1"],'
    '"t":1780851033,"t_ms":1780851033916}'
)
DU_PAYLOAD = (
    '{"m":"du","p":["cs_saydeutqehrd",{"s1":{"s":[{"i":300,"v":[1663050540.0,1721.18,1721.75,'
    '1721.17,1721.74,229.7826]}],"ns":{"d":"","indexes":"nochange"},"t":"s1",'
    '"lbs":{"bar_close_time":1663050600}}}]}'
)
DU_FRAME = "~m~199~m~" + DU_PAYLOAD
HELLO_PAYLOAD = (
    '{"session_id":"<0.4949.2378>_dal-charts-5-wgt-webchart-4@dal-compute-5",'
    '"timestamp":1709512185,"timestampMs":1709512185140,'
    '"release":"registry.xtools.tv/tvbs_release/webchart:release_207-48",'
    '"studies_metadata_hash":"0f1da59be5cb3ebc5873b524e394cf0792c5339d","auth_scheme_vsn":2,'
    '"protocol":"json","via":"209.58.153.118:443","javastudies":["3.64"]}'
)

KOREAN = "삼성전자"  # BMP: one UTF-16 unit per character, three UTF-8 bytes each
EMOJI = "🚀"  # astral: two UTF-16 units, one Python character, four UTF-8 bytes


def js_frame(payload: str) -> str:
    """Frame a payload the way TradingView's JavaScript server does: String.length units."""
    units = len(payload.encode("utf-16-le")) // 2
    return f"~m~{units}~m~{payload}"


def qsd_payload(description: str) -> str:
    return json.dumps(
        {
            "m": "qsd",
            "p": [
                "qs_vvg85v09ah13",
                {"n": "KRX:005930", "s": "ok", "v": {"local_description": description}},
            ],
        },
        ensure_ascii=False,
        separators=(",", ":"),
    )


# --------------------------------------------------------------------------- golden vectors


def test_golden_vectors_of_recorded_frames_have_the_recorded_prefix() -> None:
    assert encode_packet('{"m":"protocol_error","p":["bad auth token"]}') == PROTOCOL_ERROR
    assert encode_packet(DU_PAYLOAD) == DU_FRAME
    assert encode_packet(HELLO_PAYLOAD) == "~m~346~m~" + HELLO_PAYLOAD


def test_golden_vectors_decode_to_their_payloads() -> None:
    assert decode_packets(PROTOCOL_ERROR) == ['{"m":"protocol_error","p":["bad auth token"]}']
    assert decode_packets(SERIES_LOADING) == [SERIES_LOADING[8:]]
    assert decode_packets(DU_FRAME) == [DU_PAYLOAD]


def test_heartbeat_golden_vector_and_echo() -> None:
    assert encode_heartbeat(1) == "~m~4~m~~h~1"
    assert encode_heartbeat("12") == "~m~5~m~~h~12"
    (heartbeat,) = decode_packets("~m~5~m~~h~12")
    assert heartbeat == Heartbeat("12")
    assert heartbeat.payload == "~h~12"
    # The echo is byte-for-byte the packet received.
    assert encode_heartbeat(heartbeat) == "~m~5~m~~h~12"


def test_encode_json_is_compact_ascii_and_framed() -> None:
    framed = encode_json({"m": "set_auth_token", "p": ["unauthorized_user_token"]})
    assert framed == '~m~54~m~{"m":"set_auth_token","p":["unauthorized_user_token"]}'


def test_empty_payload_is_a_packet() -> None:
    assert decode_packets("~m~0~m~") == [""]
    assert decode_packets("~m~0~m~~m~4~m~~h~1") == ["", Heartbeat("1")]


# --------------------------------------------------------------------------- several packets


def test_several_packets_in_one_message() -> None:
    message = PROTOCOL_ERROR + SERIES_LOADING + DU_FRAME
    assert decode_packets(message) == [
        '{"m":"protocol_error","p":["bad auth token"]}',
        SERIES_LOADING[8:],
        DU_PAYLOAD,
    ]


@pytest.mark.parametrize("where", ["first", "between", "last", "twice"])
def test_heartbeat_anywhere_in_a_message(where: str) -> None:
    heartbeat = "~m~4~m~~h~7"
    parts = {
        "first": [heartbeat, DU_FRAME, SERIES_LOADING],
        "between": [DU_FRAME, heartbeat, SERIES_LOADING],
        "last": [DU_FRAME, SERIES_LOADING, heartbeat],
        "twice": [heartbeat, DU_FRAME, heartbeat, SERIES_LOADING],
    }[where]
    packets = decode_packets("".join(parts))
    assert [p for p in packets if isinstance(p, Heartbeat)] == [Heartbeat("7")] * parts.count(
        heartbeat
    )
    assert [p for p in packets if not isinstance(p, Heartbeat)] == [DU_PAYLOAD, SERIES_LOADING[8:]]
    # Order is preserved: the heartbeat sits exactly where it was sent.
    assert packets[parts.index(heartbeat)] == Heartbeat("7")


def test_session_info_packet_without_m_is_passed_through() -> None:
    (packet,) = decode_packets("~m~346~m~" + HELLO_PAYLOAD)
    assert packet == HELLO_PAYLOAD
    assert "m" not in json.loads(packet)


def test_legacy_json_prefix_is_stripped() -> None:
    payload = '~j~{"m":"quote_completed","p":["qs_1","BITSTAMP:BTCUSD"]}'
    (packet,) = decode_packets(encode_packet(payload))
    assert packet == payload[3:]


def test_payload_containing_a_header_lookalike_is_not_split() -> None:
    payload = '{"m":"qsd","p":["qs_1",{"n":"X:Y","s":"ok","v":{"description":"~m~12~m~oops"}}]}'
    assert decode_packets(encode_packet(payload) + PROTOCOL_ERROR) == [
        payload,
        '{"m":"protocol_error","p":["bad auth token"]}',
    ]


@pytest.mark.parametrize("where", [0, 7, 29])
def test_long_message_with_a_header_lookalike_in_one_payload(where: int) -> None:
    # Thirty packets in one message (a burst of live updates), one of them carrying text that
    # looks like a header: every packet comes out whole, wherever the lookalike sits.
    payloads = [f'{{"m":"du","p":["cs_{n}",{{"v":[{n}]}}]}}' for n in range(30)]
    payloads[where] = '{"m":"qsd","p":["qs_1",{"v":{"description":"a~m~5~m~hello~m~"}}]}'
    message = "".join(encode_packet(payload) for payload in payloads)
    assert decode_packets(message) == payloads
    decoder = FrameDecoder()
    cut = len(message) - 7
    assert decoder.feed(message[:cut]) == payloads[:-1]  # the last packet is incomplete
    assert decoder.feed(message[cut:]) == payloads[-1:]


@pytest.mark.parametrize("packets", [1, 3])
def test_header_with_leading_zeros_is_read_by_its_value(packets: int) -> None:
    # The fast path compares each header with the decimal form of its payload's length, so
    # "~m~05~m~" fails that check; the position-driven parser then reads it as five.
    message = "~m~05~m~hello" + PROTOCOL_ERROR * (packets - 1)
    assert decode_packets(message) == ["hello"] + [PROTOCOL_ERROR[8:]] * (packets - 1)
    assert decode_packets(encode_packet("hi") + "~m~0002~m~yo") == ["hi", "yo"]


@pytest.mark.parametrize("count", [1, 2, 40])
def test_long_messages_are_cut_like_short_ones(count: int) -> None:
    # Past a few kilobytes the decoder reads the first header before searching the whole
    # text (a history batch is one long packet); every shape must still come out whole,
    # lookalikes and a trailing incomplete packet included.
    payloads = [
        f'{{"m":"timescale_update","p":["cs_{n}",{{"v":[{"1.5," * 3_000}{n}]}}]}}'
        for n in range(count)
    ]
    payloads[count // 2] = payloads[count // 2].replace("1.5,", '"~m~12~m~",', 3)
    message = "".join(encode_packet(payload) for payload in payloads)
    assert len(message) > 8192
    assert decode_packets(message) == payloads
    decoder = FrameDecoder()
    cut = len(message) - 5
    assert decoder.feed(message[:cut]) == payloads[:-1]
    assert decoder.feed(message[cut:] + PROTOCOL_ERROR) == [
        payloads[-1],
        PROTOCOL_ERROR[8:],
    ]
    with pytest.raises(FramingError):
        decode_packets(message + "~m~x~m~garbage")


def test_header_digits_must_be_ascii_in_a_non_ascii_message() -> None:
    # "٣" (Arabic-Indic three) is a Unicode digit, and int() reads it: the header is still bad.
    message = encode_packet(qsd_payload(KOREAN)) + "~m~٣~m~abc"
    with pytest.raises(FramingError):
        decode_packets(message)


# --------------------------------------------------------------------------- length units


def test_utf16_len_counts_javascript_units() -> None:
    assert utf16_len("abc") == 3
    assert utf16_len(KOREAN) == len(KOREAN) == 4
    assert utf16_len(EMOJI) == 2
    assert utf16_len("a" + EMOJI + KOREAN) == 1 + 2 + 4
    assert len(KOREAN.encode()) == 12  # a byte-counting peer would say 12


def test_korean_description_does_not_desync_the_decoder() -> None:
    payload = qsd_payload(KOREAN)
    frame = js_frame(payload)
    # BMP only: the server's unit count is Python's len(), but not the UTF-8 byte count.
    assert f"~m~{len(payload)}~m~" in frame
    assert len(payload.encode()) != len(payload)
    assert decode_packets(frame + DU_FRAME + "~m~4~m~~h~2") == [payload, DU_PAYLOAD, Heartbeat("2")]


def test_emoji_counts_two_units_and_does_not_desync_the_decoder() -> None:
    payload = qsd_payload(f"rocket {EMOJI} {KOREAN}")
    frame = js_frame(payload)
    assert frame.startswith(f"~m~{len(payload) + 1}~m~")
    assert decode_packets(frame + DU_FRAME) == [payload, DU_PAYLOAD]
    assert encode_packet(payload) == frame


def test_emoji_frames_decode_incrementally_at_every_split() -> None:
    stream = js_frame(qsd_payload(EMOJI * 3)) + DU_FRAME + js_frame(qsd_payload(KOREAN))
    expected = decode_packets(stream)
    for cut in range(len(stream) + 1):
        decoder = FrameDecoder()
        packets = decoder.feed(stream[:cut]) + decoder.feed(stream[cut:])
        assert packets == expected, cut
        assert decoder.pending == ""


def test_byte_counted_prefix_is_detected_not_silently_misread() -> None:
    payload = qsd_payload(KOREAN)
    byte_counted = f"~m~{len(payload.encode())}~m~{payload}"
    with pytest.raises(FramingError):
        decode_packets(byte_counted)
    with pytest.raises(FramingError):
        decode_packets(byte_counted + DU_FRAME)


def test_python_len_prefix_for_an_emoji_is_detected() -> None:
    # A peer that counts code points sends one unit too few; the next header is then garbage.
    payload = qsd_payload(EMOJI)
    with pytest.raises(FramingError):
        decode_packets(f"~m~{len(payload)}~m~{payload}" + DU_FRAME)


def test_length_that_splits_a_surrogate_pair_is_a_framing_error() -> None:
    payload = "a" + EMOJI
    with pytest.raises(FramingError, match="splits a character"):
        decode_packets(f"~m~2~m~{payload}")


# --------------------------------------------------------------------------- client side


@pytest.mark.parametrize(
    "message",
    [
        quote_add_symbols("qs_abcdefghijkl", [f"KRX:{KOREAN}", f"X:{EMOJI}"]),
        resolve_symbol("cs_abcdefghijkl", "sds_sym_1", '={"symbol":"KRX:삼성"}'),
        ClientMessage("set_locale", ["ko", "KR", {"note": EMOJI + "é"}]),
    ],
)
def test_client_messages_are_ascii_so_every_length_convention_agrees(
    message: ClientMessage,
) -> None:
    framed = message.encode()
    assert framed.isascii()
    (payload,) = decode_packets(framed)
    prefix = int(framed[3 : framed.index("~m~", 3)])
    assert prefix == len(payload) == len(payload.encode()) == utf16_len(payload)
    # Escaping changes nothing about the value carried.
    assert json.loads(payload) == {"m": message.method, "p": message.params}


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "garbage",
    [
        "hello",
        "{}",
        '{"m":"du"}',
        "~m~abc~m~xyz",
        "~m~-1~m~x",
        "~m~~m~x",
        "~x~3~m~abc",
        "~m~12345678901~m~x",
        "~m~\u0663~m~abc",  # an Arabic-Indic digit three: int() would take it, the protocol not
        "~m~3~m~abc~m~x~m~",
        "~m~3~m~abcdef",
        "~m~1~m~a ~m~1~m~b",
        "\x00\x01\x02",
    ],
)
def test_garbage_raises_framing_error(garbage: str) -> None:
    with pytest.raises(FramingError):
        decode_packets(garbage)
    with pytest.raises(FramingError):
        FrameDecoder().feed(garbage + "~m~1~m~x" * 3 + "~")


def test_framing_error_is_a_protocol_error() -> None:
    assert issubclass(FramingError, ProtocolError)


@pytest.mark.parametrize("partial", ["~", "~m", "~m~", "~m~4", "~m~4~", "~m~4~m", "~m~4~m~~h"])
def test_trailing_partial_packet(partial: str) -> None:
    with pytest.raises(FramingError, match="ends inside a packet"):
        decode_packets(PROTOCOL_ERROR + partial)
    decoder = FrameDecoder()
    assert decoder.feed(PROTOCOL_ERROR + partial) == [
        '{"m":"protocol_error","p":["bad auth token"]}'
    ]
    assert decoder.pending == partial
    # The rest of the packet completes it.
    assert decoder.feed("~m~4~m~~h~1"[len(partial) :]) == [Heartbeat("1")]
    assert decoder.pending == ""


def test_incremental_feed_of_one_character_at_a_time() -> None:
    stream = PROTOCOL_ERROR + "~m~4~m~~h~3" + DU_FRAME + "~m~346~m~" + HELLO_PAYLOAD
    decoder = FrameDecoder()
    packets = []
    for character in stream:
        packets.extend(decoder.feed(character))
    assert packets == decode_packets(stream)
    assert len(packets) == 4


# --------------------------------------------------------------------------- binary messages


def test_binary_messages_decode_as_utf8() -> None:
    assert decode_packets(b"~m~4~m~~h~1") == [Heartbeat("1")]
    payload = qsd_payload(KOREAN + EMOJI)
    frame = js_frame(payload)
    assert decode_packets(frame.encode()) == [payload]
    assert decode_packets(bytearray(frame.encode())) == [payload]
    assert decode_packets(memoryview(DU_FRAME.encode())) == [DU_PAYLOAD]


def test_binary_message_that_is_not_utf8_is_a_framing_error() -> None:
    with pytest.raises(FramingError, match="UTF-8"):
        decode_packets(b"~m~4~m~\xff\xfe\xfd\xfc")


def test_binary_and_text_messages_mix_in_one_decoder() -> None:
    decoder = FrameDecoder()
    assert decoder.feed(DU_FRAME[:50].encode()) == []
    assert decoder.feed(DU_FRAME[50:]) == [DU_PAYLOAD]
