"""Quote (quotes.py): named values read from the raw copy, immutability, the frame."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from types import MappingProxyType

import pytest

from tvfeed_async import Quote
from tvfeed_async.protocol.quotes import QuoteSession, quote_key
from tvfeed_async.quotes import QUOTE_SCHEMA, quote_from_state, quotes_frame

from .test_quote_session import qsd

KEY = quote_key("BINANCE:BTCUSDT")


def merged_quote(values: dict[str, object]) -> tuple[Quote, QuoteSession]:
    session = QuoteSession("qs_a")
    session.add([KEY])
    state = session.receive(qsd("qs_a", KEY, values))
    assert state is not None
    return quote_from_state("BINANCE:BTCUSDT", "regular", state), session


def test_named_values_come_from_the_fields() -> None:
    quote, _ = merged_quote(
        {
            "lp": 100,
            "bid": 99.5,
            "ask": 100.5,
            "volume": 12,
            "ch": -1.5,
            "chp": -1.48,
            "currency_code": "USDT",
            "lp_time": 1_767_621_600,
            "update_mode": "delayed_streaming_900",
        }
    )
    assert (quote.last, quote.bid, quote.ask, quote.volume) == (100.0, 99.5, 100.5, 12.0)
    assert isinstance(quote.last, float)
    assert (quote.change, quote.change_percent, quote.currency) == (-1.5, -1.48, "USDT")
    assert quote.time == datetime(2026, 1, 5, 14, 0, tzinfo=UTC)
    assert quote.delayed is True
    assert quote.delay == 900


def test_missing_or_odd_values_are_none() -> None:
    quote, _ = merged_quote({"lp": "n/a", "bid": True, "lp_time": 10**12})
    assert quote.last is None
    assert quote.bid is None
    assert quote.time is None
    assert quote.update_mode is None
    assert quote.delayed is True  # the server did not say it is real time
    assert quote.delay is None


def test_a_quote_is_a_frozen_copy() -> None:
    quote, session = merged_quote({"lp": 1.0})
    session.receive(qsd("qs_a", KEY, {"lp": 2.0}))
    assert quote.last == 1.0  # later deltas do not change a quote already built
    with pytest.raises(dataclasses.FrozenInstanceError):
        quote.symbol = "X:Y"  # type: ignore[misc]
    with pytest.raises(TypeError):
        quote.raw["lp"] = 3.0  # type: ignore[index]
    same = Quote("BINANCE:BTCUSDT", "regular", None, MappingProxyType({"lp": 1.0}))
    assert quote == same
    assert hash(quote) == hash(same)


def test_frame_has_the_fixed_schema_even_when_empty() -> None:
    assert dict(quotes_frame([]).schema) == QUOTE_SCHEMA
    good, _ = merged_quote({"lp": 1.0, "update_mode": "streaming"})
    bad = Quote("NASDAQ:NOPE", "regular", "unknown", MappingProxyType({}))
    frame = quotes_frame([good, bad])
    assert frame.to_dicts()[0]["delayed"] is False
    assert frame.to_dicts()[1]["delayed"] is None
    assert frame.to_dicts()[1]["error"] == "unknown"
