"""The pure quote-session state machine (protocol/quotes.py), synchronously."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tvfeed_async.protocol.messages import QuoteCompleted, QuoteData, parse_message
from tvfeed_async.protocol.quotes import (
    ALL_QUOTE_FIELDS,
    DEFAULT_QUOTE_FIELDS,
    QuoteSession,
    delay_seconds,
    quote_fields,
    quote_key,
)

BTC = quote_key("BINANCE:BTCUSDT")
ETH = quote_key("BINANCE:ETHUSDT")


def qsd(session: str, key: str, values: dict[str, object], status: str = "ok") -> QuoteData:
    """A qsd as the parser builds it from the wire text."""
    text = json.dumps({"m": "qsd", "p": [session, {"n": key, "s": status, "v": values}]})
    message = parse_message(text)
    assert isinstance(message, QuoteData)
    return message


def test_key_is_a_sorted_json_spec_with_the_session() -> None:
    assert BTC == '={"adjustment":"splits","session":"regular","symbol":"BINANCE:BTCUSDT"}'
    extended = quote_key("NASDAQ:AAPL", "extended")
    assert json.loads(extended[1:]) == {
        "adjustment": "splits",
        "session": "extended",
        "symbol": "NASDAQ:AAPL",
    }


def test_field_sets() -> None:
    assert len(ALL_QUOTE_FIELDS) == 48
    assert len(set(ALL_QUOTE_FIELDS)) == 48
    assert quote_fields() == DEFAULT_QUOTE_FIELDS
    more = quote_fields(["market_cap_basic", "lp", "sector"])
    assert more[: len(DEFAULT_QUOTE_FIELDS)] == DEFAULT_QUOTE_FIELDS
    assert more[len(DEFAULT_QUOTE_FIELDS) :] == ("market_cap_basic", "sector")
    assert set(quote_fields(["all"])) == set(ALL_QUOTE_FIELDS) | set(DEFAULT_QUOTE_FIELDS)
    with pytest.raises(ValueError, match="non-empty"):
        quote_fields([""])


def test_open_sends_create_fields_and_symbols_in_order() -> None:
    session = QuoteSession("qs_a", ("lp", "ch"))
    assert session.add([BTC, ETH, BTC])[0].params == [
        "qs_a",
        BTC,
        ETH,
        {"flags": ["force_permission"]},
    ]
    methods = [(m.method, m.params) for m in session.open()]
    assert methods == [
        ("quote_create_session", ["qs_a"]),
        ("quote_set_fields", ["qs_a", "lp", "ch"]),
        ("quote_add_symbols", ["qs_a", BTC, ETH, {"flags": ["force_permission"]}]),
    ]
    assert session.add([BTC]) == []  # already watched: nothing to send


def test_deltas_merge_into_the_complete_state() -> None:
    session = QuoteSession("qs_a")
    session.add([BTC])
    state = session.receive(qsd("qs_a", BTC, {"lp": 100.0, "bid": 99.5, "ask": 100.5}))
    assert state is not None
    assert state.values == {"lp": 100.0, "bid": 99.5, "ask": 100.5}
    assert not state.completed
    assert session.receive(QuoteCompleted("qs_a", BTC)) is state
    assert state.completed
    assert session.all_completed()
    assert session.receive(QuoteCompleted("qs_a", BTC)) is None  # nothing new
    session.receive(qsd("qs_a", BTC, {"bid": 99.75}))
    assert state.values == {"lp": 100.0, "bid": 99.75, "ask": 100.5}
    assert state.updates == 2


def test_the_key_must_match_exactly() -> None:
    session = QuoteSession("qs_a")
    session.add([BTC])
    # The plain name is not the key it was subscribed with.
    assert session.receive(qsd("qs_a", "BINANCE:BTCUSDT", {"lp": 1.0})) is None
    assert session.stray_messages == 1
    assert session.states[BTC].values == {}


def test_error_status_marks_the_symbol_and_spares_the_others() -> None:
    session = QuoteSession("qs_a")
    bad = quote_key("NASDAQ:NOPE")
    session.add([BTC, bad])
    state = session.receive(qsd("qs_a", bad, {}, status="error"))
    assert state is not None
    assert state.completed
    assert state.error is not None
    assert "NASDAQ:NOPE" in state.error
    assert not session.all_completed()
    assert session.all_completed([bad])
    session.receive(qsd("qs_a", BTC, {"lp": 5.0}))
    session.receive(QuoteCompleted("qs_a", BTC))
    assert session.all_completed()
    assert session.states[BTC].error is None


def test_remove_stops_merging() -> None:
    session = QuoteSession("qs_a")
    session.add([BTC, ETH])
    assert [m.params for m in session.remove([ETH, "never-added"])] == [["qs_a", ETH]]
    assert session.remove([ETH]) == []
    assert session.receive(qsd("qs_a", ETH, {"lp": 1.0})) is None
    assert session.keys == [BTC]


def test_reopen_replaces_the_state_with_the_new_snapshot() -> None:
    session = QuoteSession("qs_a")
    session.add([BTC])
    session.receive(qsd("qs_a", BTC, {"lp": 1.0, "rtc": 2.0}))
    session.receive(QuoteCompleted("qs_a", BTC))
    messages = session.reopen("qs_b")
    assert [m.method for m in messages] == [
        "quote_create_session",
        "quote_set_fields",
        "quote_add_symbols",
    ]
    assert all(m.params[0] == "qs_b" for m in messages)
    assert not session.all_completed()
    state = session.states[BTC]
    session.receive(qsd("qs_b", BTC, {"lp": 3.0}))
    assert state.values == {"lp": 3.0}  # rtc was not in the new snapshot: gone
    session.receive(qsd("qs_b", BTC, {"bid": 2.5}))
    assert state.values == {"lp": 3.0, "bid": 2.5}


def test_close_deletes_the_session() -> None:
    session = QuoteSession("qs_a")
    assert [(m.method, m.params) for m in session.close()] == [("quote_delete_session", ["qs_a"])]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        ("streaming", 0),
        ("delayed_streaming_900", 900),
        ("delayed_streaming_600", 600),
        ("endofday", None),
        (None, None),
        ("delayed_streaming_x", None),
    ],
)
def test_delay_from_update_mode(mode: object, expected: int | None) -> None:
    assert delay_seconds(mode) == expected


KEYS = [quote_key(f"BINANCE:SIM00{n}USDT") for n in range(1, 4)]
FIELD_VALUES = st.dictionaries(
    st.sampled_from(["lp", "bid", "ask", "volume", "ch", "lp_time"]),
    st.floats(allow_nan=False, allow_infinity=False),
    max_size=4,
)


@given(
    st.lists(st.tuples(st.sampled_from([*KEYS, "stray"]), FIELD_VALUES), max_size=40),
    st.integers(min_value=0, max_value=40),
)
def test_any_sequence_of_deltas_merges_to_the_latest_value_of_each_field(
    deltas: list[tuple[str, dict[str, float]]], reconnect_at: int
) -> None:
    session = QuoteSession("qs_a")
    session.add(KEYS)
    reference: dict[str, dict[str, float]] = {key: {} for key in KEYS}
    for position, (key, values) in enumerate(deltas):
        if position == reconnect_at:
            session.reopen("qs_b")  # the last known values stay until the new snapshot
            fresh = set(KEYS)
        state = session.receive(qsd(session.session_id, key, values))
        if key == "stray":
            assert state is None
            continue
        if position >= reconnect_at and key in fresh:
            fresh.discard(key)  # the first qsd after a reopen is a snapshot: it replaces
            reference[key] = dict(values)
        else:
            reference[key].update(values)
    assert {key: session.states[key].values for key in KEYS} == reference
