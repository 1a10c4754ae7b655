"""The typed fast path of ``parse_message`` and its general path build the same messages.

``parse_message`` decodes bar messages (``du``, ``timescale_update``) with a typed msgspec
decoder and hands anything that decoder refuses to a general path over plain JSON. Whatever
the shape, both must agree, and the fast path must never accept what the general one rejects.
"""

from __future__ import annotations

import gc
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tvfeed_async.errors import FramingError
from tvfeed_async.protocol import ClientProtocol, messages
from tvfeed_async.protocol.framing import encode_packet
from tvfeed_async.protocol.messages import SeriesData, parse_message

numbers = st.one_of(
    st.integers(min_value=-(2**40), max_value=2**40),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
)
values = st.lists(st.one_of(numbers, st.none(), st.text(max_size=3)), min_size=0, max_size=8)
rows = st.lists(
    st.one_of(
        st.fixed_dictionaries({"i": st.integers(0, 10_000), "v": values}),
        st.fixed_dictionaries({"v": values}),
        st.just({"i": 1}),
        st.none(),
    ),
    max_size=4,
)
bodies = st.one_of(
    st.fixed_dictionaries(
        {"s": rows},
        optional={
            "t": st.one_of(st.text(max_size=4), st.integers(0, 9), st.none()),
            "lbs": st.one_of(
                st.fixed_dictionaries({"bar_close_time": st.integers(0, 2**40)}),
                st.just({}),
                st.none(),
            ),
            "ns": st.just({"d": "", "indexes": "nochange"}),
        },
    ),
    st.fixed_dictionaries({"st": rows, "t": st.text(max_size=4)}),  # a study entry
    st.none(),
)
envelopes = st.fixed_dictionaries(
    {
        "m": st.sampled_from(["du", "timescale_update"]),
        "p": st.tuples(
            st.one_of(st.text(max_size=6), st.integers(0, 9)),
            st.dictionaries(st.text(min_size=1, max_size=5), bodies, max_size=3),
        ).map(list),
    },
    optional={
        "t": st.one_of(st.integers(0, 2**40), st.floats(0, 2e9)),
        "t_ms": st.one_of(st.integers(0, 2**50), st.floats(0, 2e12)),
    },
)


def general(text: str) -> SeriesData | None:
    """What the general path alone makes of ``text`` (None: it raises FramingError)."""
    try:
        parsed = messages._parse_general(json.loads(text), text)
    except FramingError:
        return None
    assert isinstance(parsed, SeriesData)
    return parsed


def fast(text: str) -> SeriesData | None:
    try:
        parsed = parse_message(text)
    except FramingError:
        return None
    assert isinstance(parsed, SeriesData)
    return parsed


def same(first: SeriesData | None, second: SeriesData | None) -> bool:
    if first is None or second is None:
        return first is second
    return (
        first.method == second.method
        and first.session == second.session
        and first.server_time == second.server_time
        and list(first.series) == list(second.series)
        and all(
            payload.bars() == second.series[key].bars()
            and payload.turnaround == second.series[key].turnaround
            and payload.bar_close_time == second.series[key].bar_close_time
            and [row.i for row in payload.rows] == [row.i for row in second.series[key].rows]
            for key, payload in first.series.items()
        )
    )


@settings(max_examples=400, deadline=None)
@given(envelopes)
def test_fast_and_general_paths_agree(envelope: dict[str, Any]) -> None:
    ordered = {"m": envelope["m"], **envelope}  # "m" first, as servers send it
    text = json.dumps(ordered, separators=(",", ":"))
    assert text.startswith(messages._BARS_PREFIXES)  # the fast path is tried
    assert same(fast(text), general(text))


def test_large_packets_parse_the_same_and_never_touch_collection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bars = [
        {"i": index, "v": [1_600_000_000.0 + 60 * index, 1.5, 2, 1, 1.75, index]}
        for index in range(2_000)
    ]
    envelope = {"m": "timescale_update", "p": ["cs_x", {"s1": {"s": bars, "t": "s1"}}]}
    text = json.dumps(envelope, separators=(",", ":"))
    switched: list[str] = []
    monkeypatch.setattr(gc, "disable", lambda: switched.append("disable"))
    monkeypatch.setattr(gc, "enable", lambda: switched.append("enable"))
    parsed = fast(text)
    assert same(parsed, general(text))
    assert parsed is not None
    assert len(parsed.series["s1"].rows) == 2_000
    # The process-wide switch belongs to the library's user.
    assert switched == []


@settings(max_examples=300, deadline=None)
@given(envelopes)
def test_client_protocol_decodes_a_one_packet_message_as_parse_message_does(
    envelope: dict[str, Any],
) -> None:
    # ClientProtocol.receive_data cuts and decodes a short one-packet message inline; it must
    # give what framing plus parse_message give, errors included.
    ordered = {"m": envelope["m"], **envelope}
    text = json.dumps(ordered, separators=(",", ":"))
    expected = fast(text)
    try:
        (received,) = ClientProtocol().receive_data(encode_packet(text))
    except FramingError:
        assert expected is None
        return
    assert isinstance(received, SeriesData)
    assert same(received, expected)
