"""``ClientProtocol``: a WebSocket message in, server messages out, heartbeats echoed.

``receive_data`` has an inline path for the usual live message (one short packet, usually a
``du``) and the general one (``FrameDecoder`` then ``parse_message`` per packet); whatever the
message, both must give the same messages and echo the same heartbeats.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tvfeed_async.errors import FramingError
from tvfeed_async.protocol import ClientProtocol, LiveData, SeriesCompleted, SessionInfo
from tvfeed_async.protocol.framing import Heartbeat, decode_packets, encode_packet
from tvfeed_async.protocol.messages import parse_message

HELLO = '{"session_id":"<0.1.2>_x","timestamp":1709512185,"release":"r","protocol":"json"}'
COMPLETED = '{"m":"series_completed","p":["cs_a","sds_1","streaming","s1",{}]}'
# Non-ASCII text and a header lookalike inside a payload.
QSD = '{"m":"qsd","p":["qs_1",{"n":"KRX:005930","s":"ok","v":{"d":"삼성전자 ~m~1~m~"}}]}'


def du(minute: int, session: str = "cs_a") -> str:
    return (
        f'{{"m":"du","p":["{session}",{{"sds_1":{{"s":[{{"i":{minute},"v":'
        f"[{1_700_000_000 + 60 * minute}.0,1.5,2.25,1.0,1.75,{minute}.5]}}],"
        '"ns":{"d":"","indexes":"nochange"},"t":"s1","lbs":{"bar_close_time":1}}}]}'
    )


def reference(messages: list[str]) -> tuple[list[object], list[str]]:
    """What framing plus parse_message make of ``messages``: the messages and the echoes."""
    parsed: list[object] = []
    echoes: list[str] = []
    text = "".join(messages)
    for packet in decode_packets(text):
        if isinstance(packet, Heartbeat):
            echoes.append(encode_packet(packet.payload))
        else:
            parsed.append(parse_message(packet))
    return parsed, echoes


def test_one_du_packet() -> None:
    protocol = ClientProtocol()
    (message,) = protocol.receive_data(encode_packet(du(3)))
    assert isinstance(message, LiveData)
    assert message == parse_message(du(3))
    assert protocol.data_to_send() == []


def test_session_info_is_kept() -> None:
    protocol = ClientProtocol()
    (message,) = protocol.receive_data(encode_packet(HELLO))
    assert isinstance(message, SessionInfo)
    assert protocol.session_info == message


def test_heartbeat_alone_and_among_packets_is_echoed() -> None:
    protocol = ClientProtocol()
    assert protocol.receive_data("~m~4~m~~h~7") == []
    message = encode_packet(du(1)) + "~m~4~m~~h~8" + encode_packet(COMPLETED)
    first, second = protocol.receive_data(message)
    assert isinstance(first, LiveData)
    assert isinstance(second, SeriesCompleted)
    assert protocol.data_to_send() == ["~m~4~m~~h~7", "~m~4~m~~h~8"]
    assert protocol.heartbeats == 2


def test_a_packet_split_across_messages_is_decoded_once_complete() -> None:
    protocol = ClientProtocol()
    framed = encode_packet(du(2))
    assert protocol.receive_data(framed[:50]) == []
    # The rest arrives with a whole second packet: the pending text goes first.
    assert protocol.receive_data(framed[50:] + encode_packet(du(3))) == [
        parse_message(du(2)),
        parse_message(du(3)),
    ]


def test_an_unusual_du_goes_the_general_way() -> None:
    # A fractional open time is refused by the typed decoder; the general path reads it.
    text = du(4).replace(".0,1.5", ".5,1.5")
    (message,) = ClientProtocol().receive_data(encode_packet(text))
    assert message == parse_message(text)


def test_packets_of_a_burst_take_the_same_ways() -> None:
    # A message of several packets: an unusual du and a large packet among ordinary ones
    # decode as parse_message decodes each.
    unusual = du(6).replace(".0,1.5", ".5,1.5")
    rows = ",".join(
        f'{{"i":{i},"v":[{1_700_000_000 + 60 * i}.0,1.5,2.25,1.0,1.75,{i}.5]}}' for i in range(1000)
    )
    large = (
        f'{{"m":"timescale_update","p":["cs_a",{{"sds_1":{{"s":[{rows}],'
        '"ns":{"d":"","indexes":[]},"t":"s1","lbs":{"bar_close_time":1}}}]}'
    )
    assert len(large) >= 50_000  # the size of a history batch
    burst = [du(1), unusual, large, du(2), COMPLETED]
    received = ClientProtocol().receive_data("".join(encode_packet(p) for p in burst))
    assert received == [parse_message(packet) for packet in burst]
    assert len(received[2].p.series["sds_1"].rows) == 1000  # type: ignore[union-attr]


def test_header_with_leading_zeros_and_binary_messages() -> None:
    protocol = ClientProtocol()
    text = du(5)
    assert protocol.receive_data(f"~m~0{len(text)}~m~{text}") == [parse_message(text)]
    assert protocol.receive_data(encode_packet(text).encode()) == [parse_message(text)]


def test_garbage_raises_framing_error() -> None:
    with pytest.raises(FramingError):
        ClientProtocol().receive_data("~m~5~m~{not json")
    with pytest.raises(FramingError):
        ClientProtocol().receive_data("hello")


packets = st.lists(
    st.one_of(
        st.integers(0, 50).map(du),
        st.integers(0, 50).map(lambda n: du(n).replace(".0,1.5", ".5,1.5")),  # unusual du
        st.integers(0, 999).map(lambda n: f"~h~{n}"),
        st.just(COMPLETED),
        st.just(QSD),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(packets, st.data())
def test_any_split_of_a_stream_decodes_as_the_reference(
    stream: list[str], data: st.DataObject
) -> None:
    text = "".join(encode_packet(packet) for packet in stream)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=6)))
    bounds = zip([0, *cuts], [*cuts, len(text)], strict=True)
    messages = [text[start:stop] for start, stop in bounds]
    protocol = ClientProtocol()
    received: list[object] = []
    for message in messages:
        received.extend(protocol.receive_data(message))
    expected, echoes = reference([text])
    assert received == expected
    assert protocol.data_to_send() == echoes
    assert protocol._decoder.pending == ""  # every packet decoded: nothing left over
