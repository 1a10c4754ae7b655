"""Live quotes (#18) against the simulator, value for value with its bar truth."""

from __future__ import annotations

import gc
import math
from datetime import UTC, datetime
from typing import Any

import anyio
import pytest

from tvfeed_async import Quote, RetryPolicy, SymbolNotFound, Timeouts, TvFeed
from tvfeed_async.protocol.quotes import ALL_QUOTE_FIELDS, DEFAULT_QUOTE_FIELDS, quote_key
from tvfeed_async.quotes import QUOTE_SCHEMA
from tvfeed_async.testing import TvSimulator

from ..support.feeds import open_feed

BTC = "BINANCE:BTCUSDT"
ETH = "BINANCE:ETHUSDT"
FAST = {
    "timeouts": Timeouts(request=30.0, idle=30.0),
    "retry": RetryPolicy(initial=0.01, maximum=0.05, max_attempts=50),
}


def expected(
    sim: TvSimulator, symbol: str, *, delay: int = 0, session: str = "regular"
) -> dict[str, Any]:
    """What the quote of ``symbol`` must say now, from the simulator's truth alone."""
    at = sim.clock.now() - delay
    minute = sim.truth_series(symbol, "1", session=session)
    daily = sim.truth_series(symbol, "1D")
    slot = minute.slots_before(math.floor(at) + 1, 1)[-1]
    days = daily.slots_before(math.floor(at) + 1, 2)
    last = minute.at(slot, at)[4]
    previous_close = daily.final(days[0])[4]
    return {
        "last": last,
        "volume": daily.at(days[-1], at)[5],
        "change": round(last - previous_close, 8),
        "change_percent": round((last - previous_close) / previous_close * 100, 2),
        "time": datetime.fromtimestamp(int(min(at, slot[2])), UTC),
    }


def check(quote: Quote, sim: TvSimulator, **options: Any) -> None:
    want = expected(sim, quote.symbol, **options)
    got = {name: getattr(quote, name) for name in want}
    assert got == want
    assert quote.bid is not None
    assert quote.ask is not None
    assert quote.last is not None
    assert quote.bid < quote.last < quote.ask


async def eventually(predicate: Any, limit: float = 10.0) -> None:
    with anyio.fail_after(limit):
        while not predicate():  # noqa: ASYNC110 (polling what the socket reader fills)
            await anyio.sleep(0.01)


async def test_get_quote_agrees_with_the_truth(tv_simulator: TvSimulator) -> None:
    async with open_feed(tv_simulator) as feed:
        quote = await feed.get_quote(BTC)
    check(quote, tv_simulator)
    assert quote.symbol == BTC
    assert quote.currency == "USDT"
    assert quote.update_mode == "streaming"
    assert quote.delayed is False
    assert quote.delay == 0
    assert quote.error is None
    assert set(DEFAULT_QUOTE_FIELDS) <= set(quote.raw)
    assert quote.raw["pro_name"] == BTC
    forming = tv_simulator.forming_bar(BTC, "1")
    assert forming is not None
    assert quote.last == forming.close


async def test_unknown_symbol_raises_symbol_not_found(tv_simulator: TvSimulator) -> None:
    async with open_feed(tv_simulator) as feed:
        with pytest.raises(SymbolNotFound) as caught:
            await feed.get_quote("NASDAQ:NOPE")
        assert caught.value.symbol == "NASDAQ:NOPE"
        # The socket is fine afterwards.
        check(await feed.get_quote(ETH), tv_simulator)


async def test_get_quotes_frame_one_row_per_symbol_errors_isolated(
    tv_simulator: TvSimulator,
) -> None:
    async with open_feed(tv_simulator) as feed:
        frame = await feed.get_quotes([BTC, "NASDAQ:NOPE", ETH])
    assert dict(frame.schema) == QUOTE_SCHEMA
    assert frame["symbol"].to_list() == [BTC, "NASDAQ:NOPE", ETH]
    rows = frame.to_dicts()
    assert rows[1]["error"] is not None
    assert rows[1]["last"] is None
    for row in (rows[0], rows[2]):
        assert row["error"] is None
        want = expected(tv_simulator, row["symbol"])
        assert {name: row[name] for name in want} == want


async def test_all_fields_of_the_real_service_arrive(tv_simulator: TvSimulator) -> None:
    async with open_feed(tv_simulator) as feed:
        quote = await feed.get_quote("NASDAQ:AAPL", fields=["all"])
        default = await feed.get_quote("NASDAQ:AAPL")
        one_more = await feed.get_quote("NASDAQ:AAPL", fields=["sector"])
    assert set(ALL_QUOTE_FIELDS) <= set(quote.raw)
    assert set(default.raw) <= set(DEFAULT_QUOTE_FIELDS)  # the server sends what was asked
    assert "sector" not in default.raw
    assert set(one_more.raw) - set(default.raw) == {"sector"}
    assert quote.raw["market_cap_basic"] is not None
    assert quote.raw["sector"] is not None


async def test_anonymous_stock_and_futures_quotes_are_delayed(tv_simulator: TvSimulator) -> None:
    sim = tv_simulator
    await sim.clock.advance(3600)  # 10:00 New York: the regular session is open
    async with open_feed(sim) as feed:
        stock = await feed.get_quote("NASDAQ:AAPL")
        future = await feed.get_quote("CME_MINI:NQ1!")
        coin = await feed.get_quote(BTC)
    assert stock.update_mode == "delayed_streaming_900"
    assert stock.delayed is True
    assert stock.delay == 900
    # The values are those of 15 minutes ago, which are not today's latest.
    assert expected(sim, "NASDAQ:AAPL", delay=900) != expected(sim, "NASDAQ:AAPL")
    check(stock, sim, delay=900)
    assert future.update_mode == "delayed_streaming_600"
    assert expected(sim, "CME_MINI:NQ1!", delay=600) != expected(sim, "CME_MINI:NQ1!")
    check(future, sim, delay=600)
    assert coin.delayed is False
    check(coin, sim)


async def test_signed_in_quotes_are_real_time_and_extended_hours_honoured(
    tv_simulator: TvSimulator,
) -> None:
    sim = tv_simulator
    token = sim.issue_token()
    # 09:00 New York: pre-market, the regular session has not opened yet.
    async with open_feed(sim, auth_token=token) as feed:
        regular = await feed.get_quote("NASDAQ:AAPL")
        extended = await feed.get_quote("NASDAQ:AAPL", extended_session=True)
    assert regular.update_mode == "streaming"
    check(regular, sim)
    assert extended.session == "extended"
    check(extended, sim, session="extended")
    assert extended.last != regular.last  # pre-market trades move the extended price only
    assert regular.raw["rtc"] == extended.last  # ... which the regular quote shows as rtc
    assert regular.raw["current_session"] == "pre_market"
    await sim.clock.advance(7.5 * 3600)  # 16:30 New York: after the close
    async with open_feed(sim, auth_token=token) as feed:
        late = await feed.get_quote("NASDAQ:AAPL")
        late_extended = await feed.get_quote("NASDAQ:AAPL", extended_session=True)
    check(late, sim)
    assert late.raw["current_session"] == "post_market"
    assert late.raw["rtc"] == late_extended.last


async def test_stream_yields_complete_quotes_from_deltas(tv_simulator: TvSimulator) -> None:
    sim = tv_simulator
    async with open_feed(sim) as feed, feed.stream_quotes([BTC, ETH]) as stream:
        with anyio.fail_after(10):
            first = [await anext(stream), await anext(stream)]
        assert {quote.symbol for quote in first} == {BTC, ETH}
        for quote in first:
            check(quote, sim)
        await sim.clock.advance(45)  # three deltas per symbol (quote_update_period 15 s)
        await eventually(lambda: stream.updates >= 8)
        latest: dict[str, Quote] = {}
        with anyio.fail_after(10):
            while len(latest) < 2 or stream.pending:
                quote = await anext(stream)
                latest[quote.symbol] = quote
        for quote in latest.values():
            check(quote, sim)
            # Deltas carry only changed fields; the merged quote still has the snapshot's.
            assert quote.raw["description"]
            assert quote.raw["currency_code"] == "USDT"


async def test_add_and_remove_on_a_running_stream(tv_simulator: TvSimulator) -> None:
    sim = tv_simulator
    async with open_feed(sim) as feed, feed.stream_quotes(BTC) as stream:
        with anyio.fail_after(10):
            assert (await anext(stream)).symbol == BTC
        await stream.add(["BINANCE:SIM001USDT", BTC])
        with anyio.fail_after(10):
            added = await anext(stream)
        assert added.symbol == "BINANCE:SIM001USDT"
        check(added, sim)
        await stream.remove([BTC])
        assert stream.symbols == ["BINANCE:SIM001USDT"]
        await sim.clock.advance(60)
        seen: set[str] = set()
        with anyio.fail_after(10):
            while "BINANCE:SIM001USDT" not in seen:
                seen.add((await anext(stream)).symbol)
        assert seen == {"BINANCE:SIM001USDT"}


def server_keys(sim: TvSimulator) -> list[list[str]]:
    """The symbol keys of every quote session the server holds, as the client sent them."""
    return [
        list(quote.symbols)
        for connection in sim.hub.connections.values()
        if not connection.closing
        for quote in connection._quotes.values()
    ]


async def test_reconnect_resubscribes(tv_simulator: TvSimulator) -> None:
    sim = tv_simulator
    async with open_feed(sim, **FAST) as feed, feed.stream_quotes([BTC, ETH]) as stream:
        with anyio.fail_after(10):
            await anext(stream)
            await anext(stream)
        keys = stream.session.keys
        # n is matched on exactly the JSON spec the client sent.
        assert keys == [quote_key(BTC), quote_key(ETH)]
        assert server_keys(sim) == [keys]
        assert sim.faults.drop_open() == 1
        await eventually(lambda: feed.connections_opened == 2)
        await eventually(lambda: stream.session.all_completed() and stream.connected)
        assert server_keys(sim) == [keys]  # the new socket's session has both again
        await sim.clock.advance(30)
        latest: dict[str, Quote] = {}
        with anyio.fail_after(10):
            while len(latest) < 2 or stream.pending:
                quote = await anext(stream)
                latest[quote.symbol] = quote
        for quote in latest.values():
            check(quote, sim)


async def test_slow_consumer_gets_latest_values_bounded(tv_simulator: TvSimulator) -> None:
    sim = tv_simulator
    symbols = [f"BINANCE:SIM{number:03d}USDT" for number in range(1, 21)]
    async with open_feed(sim) as feed, feed.stream_quotes(symbols) as stream:
        await eventually(lambda: stream.session.all_completed())
        await sim.clock.advance(30 * 60)  # 120 deltas per symbol, none consumed
        await eventually(lambda: stream.updates >= 20 + 20 * 120)  # snapshots + deltas
        assert stream.pending <= len(symbols)
        quotes = []
        while stream.pending:
            quotes.append(await anext(stream))
    assert sorted(quote.symbol for quote in quotes) == sorted(symbols)
    for quote in quotes:
        check(quote, sim)


async def test_feed_close_ends_the_stream(tv_simulator: TvSimulator) -> None:
    feed = TvFeed(endpoints=tv_simulator.endpoints, session_cache=False, use_env=False)
    async with feed:
        stream = feed.stream_quotes(BTC)
        with anyio.fail_after(10):
            await anext(stream)
    with anyio.fail_after(5):
        rest = [quote async for quote in stream]
    assert rest == []


def server_quote_sessions(sim: TvSimulator) -> int:
    return sum(len(connection._quotes) for connection in sim.hub.connections.values())


async def test_closed_or_abandoned_streams_delete_their_session(tv_simulator: TvSimulator) -> None:
    sim = tv_simulator
    async with open_feed(sim) as feed:
        async with feed.stream_quotes(BTC) as stream:
            with anyio.fail_after(10):
                await anext(stream)
            assert server_quote_sessions(sim) == 1
        await eventually(lambda: server_quote_sessions(sim) == 0)
        async for quote in feed.stream_quotes(ETH):  # left by break, never closed
            assert quote.symbol == ETH
            break
        gc.collect()
        await eventually(lambda: server_quote_sessions(sim) == 0)
        assert feed._supervisor.stats.unrouted_messages == 0
