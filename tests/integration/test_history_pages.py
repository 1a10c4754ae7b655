"""How many answers a count request costs: one whenever the bars asked for fit one request
and nothing is really missing (the newest bar is closed, or it is kept)."""

from __future__ import annotations

import polars as pl

from tvfeed_async.frames import FRAME_SCHEMA

from ..support.feeds import open_feed

COLUMNS = ["time", "symbol", "open", "high", "low", "close", "volume"]
CAP = 5_000  # bars per request, anonymously


def assert_same(frame: pl.DataFrame, truth: pl.DataFrame) -> None:
    assert frame.schema == FRAME_SCHEMA
    assert frame.select(COLUMNS).equals(truth.select(COLUMNS))


async def test_a_full_request_of_a_closed_market_needs_one_answer(tv_simulator) -> None:
    # Monday 14:00 UTC: the US session opens at 14:30, so the newest minute bar (Friday's
    # last) is closed and the cap's worth of bars is everything asked for.
    async with open_feed(tv_simulator) as feed:
        result = await feed.fetch_history("NASDAQ:AAPL", interval="1", n_bars=CAP)
    assert result.requests == 1
    assert result.chunks == 1
    assert_same(result.frame, tv_simulator.truth("NASDAQ:AAPL", "1", n_bars=CAP))


async def test_a_full_request_with_the_forming_bar_needs_one_answer(tv_simulator) -> None:
    async with open_feed(tv_simulator) as feed:
        result = await feed.fetch_history(
            "BINANCE:BTCUSDT", interval="1", n_bars=CAP, include_partial=True
        )
    assert result.requests == 1
    assert result.frame.height == CAP
    closed = result.frame.head(CAP - 1)
    assert_same(closed, tv_simulator.truth("BINANCE:BTCUSDT", "1", n_bars=CAP - 1))
    forming = tv_simulator.forming_bar("BINANCE:BTCUSDT", "1")
    assert forming is not None
    assert result.frame["time"][-1].timestamp() == forming.timestamp


async def test_a_forming_newest_bar_still_costs_the_page_for_the_bar_it_displaces(
    tv_simulator,
) -> None:
    # The forming bar is one of the cap's bars: one older closed bar is really missing.
    async with open_feed(tv_simulator) as feed:
        result = await feed.fetch_history("BINANCE:BTCUSDT", interval="1", n_bars=CAP)
    assert result.requests == 2
    assert_same(result.frame, tv_simulator.truth("BINANCE:BTCUSDT", "1", n_bars=CAP))
