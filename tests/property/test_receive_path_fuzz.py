"""The whole receive path under fuzzed input (issue #15): decoding one WebSocket message
raises FramingError or nothing, and no decoded message makes a chart route raise.

A decoder error costs one reconnect (the supervisor turns FramingError into ConnectionLost);
any other exception used to escape the reader and kill the feed (a JSON packet nested
1,000 levels deep raised RecursionError)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tvfeed_async.errors import FramingError
from tvfeed_async.history import _ChartRoute
from tvfeed_async.protocol.client import ClientProtocol
from tvfeed_async.protocol.framing import encode_packet
from tvfeed_async.protocol.intervals import Interval
from tvfeed_async.protocol.symbols import parse_symbol
from tvfeed_async.stream import StreamKey, Subscription

SESSION = "cs_fuzzfuzzfuzz"
METHODS = [
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
    "protocol_switched",
]

numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e12, -1e12, 1e308, 5e-324, 0, -0.0, 2**63, 2**64 + 1]),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=20))
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=6),
        st.dictionaries(st.sampled_from(["s", "v", "i", "t", "lbs", "sds_1", "n"]), children),
    ),
    max_leaves=30,
)


def bar_rows() -> st.SearchStrategy[list[dict[str, Any]]]:
    row = st.fixed_dictionaries(
        {"i": numbers, "v": st.lists(st.one_of(numbers, scalars), min_size=0, max_size=8)}
    )
    return st.lists(row, max_size=5)


series_bodies = st.fixed_dictionaries(
    {"s": bar_rows(), "t": st.sampled_from(["s1", "s2", "", 5])},
    optional={"lbs": st.fixed_dictionaries({"bar_close_time": numbers})},
)
messages = st.one_of(
    st.builds(
        lambda method, params: {"m": method, "p": params},
        st.sampled_from(METHODS),
        st.lists(st.one_of(st.just(SESSION), json_values), max_size=6),
    ),
    st.builds(
        lambda method, body, t: {"m": method, "p": [SESSION, {"sds_1": body}], "t": t},
        st.sampled_from(["du", "timescale_update"]),
        series_bodies,
        numbers,
    ),
)


def deep(depth: int, opener: str, closer: str) -> str:
    return '{"m":"du","p":["' + SESSION + '",' + opener * depth + closer * depth + "]}"


def packets_text(payloads: list[str]) -> str:
    return "".join(encode_packet(payload) for payload in payloads)


def subscription() -> Subscription:
    manager = SimpleNamespace(close_grace=0.0)  # the attribute Subscription reads at start
    key = StreamKey(parse_symbol("BINANCE:BTCUSDT"), Interval("1"))
    return Subscription(manager, key, history=2)  # type: ignore[arg-type]


def feed_everything(text: str | bytes) -> None:
    """Decode ``text`` and hand every message to a history route and a live stream (inside
    an event loop: the routes hold anyio events)."""
    asyncio.run(_feed_everything(text))


async def _feed_everything(text: str | bytes) -> None:
    try:
        decoded = ClientProtocol().receive_data(text)
    except FramingError:
        return
    route = _ChartRoute("BINANCE:BTCUSDT", "fuzz")
    live = subscription()
    live._live = True
    for message in decoded:
        route.handle(message)
        live.handle(message)
        live._live = not live._live  # both the loading and the live path


@settings(max_examples=300, deadline=None)
@given(st.lists(messages, min_size=1, max_size=4))
def test_fuzzed_messages_decode_or_raise_framing_error(items: list[dict[str, Any]]) -> None:
    feed_everything(packets_text([json.dumps(item) for item in items]))


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=1, max_value=3000),
    st.sampled_from([("[", "]"), ("{", "}"), ('{"a":[', "]}")]),
)
def test_deep_nesting_is_a_framing_error_at_most(depth: int, brackets: tuple[str, str]) -> None:
    opener, closer = brackets
    if opener == '{"a":[':
        text = '{"m":"du","p":["' + SESSION + '",' + opener * depth + "1" + closer * depth + "]}"
    else:
        text = deep(depth, opener, closer)
    feed_everything(packets_text([text]))


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_arbitrary_text_and_bytes(data: str | bytes) -> None:
    feed_everything(data)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.one_of(st.text(max_size=40), st.sampled_from(["~h~1", "~h~x", "{}", "[]"]))),
    st.integers(min_value=0, max_value=10**12),
)
def test_wrong_lengths_and_headers(payloads: list[str], length: int) -> None:
    text = "".join(f"~m~{length if n % 2 else len(p)}~m~{p}" for n, p in enumerate(payloads))
    feed_everything(text)
