"""Live updates driven by the clock, and quote sessions."""

from __future__ import annotations

import asyncio

from tvfeed_async.protocol.messages import (
    QuoteCompleted,
    QuoteData,
    SeriesData,
    chart_create_session,
    create_series,
    quote_add_symbols,
    quote_create_session,
    quote_delete_session,
    quote_remove_symbols,
    quote_set_fields,
    remove_series,
    resolve_symbol,
    symbol_spec,
)
from tvfeed_async.testing.simulator import TvSimulator

from .helpers import Item, RawClient, rows_of, truth_tuples


def updates(items: list[Item], series: str = "s1") -> list[tuple[int, tuple[object, ...]]]:
    """``(index, bar)`` of every du row for ``series``, in arrival order."""
    found = []
    for item in items:
        if isinstance(item, SeriesData) and item.method == "du" and series in item.series:
            payload = item.series[series]
            for row, bar in zip(payload.rows, rows_of(item, series), strict=True):
                found.append((row.i, bar))
    return found


async def test_du_revisions_end_at_the_truth(sim: TvSimulator, client: RawClient) -> None:
    history, _ = await client.chart("BINANCE:BTCUSDT", "1", 100)
    last_index = history.series["s1"].rows[-1].i
    await sim.clock.advance(3_600)
    received = updates(await client.quiet(0.5))
    final: dict[int, tuple[object, ...]] = {}
    counts: dict[int, int] = {}
    indexes: dict[int, int] = {}
    for index, bar in received:
        time = int(bar[0])  # type: ignore[call-overload]
        final[time] = bar
        counts[time] = counts.get(time, 0) + 1
        assert indexes.setdefault(time, index) == index
    closed = truth_tuples(sim, "BINANCE:BTCUSDT", "1", n_bars=60)
    # The bar forming when history was sent and the 59 after it closed during the hour.
    assert [final[bar[0]] for bar in closed] == closed
    assert all(counts[bar[0]] == 5 for bar in closed[1:])  # opened + 3 revisions + final
    assert indexes[closed[0][0]] == last_index
    assert indexes[closed[-1][0]] == last_index + 59
    forming = sim.forming_bar("BINANCE:BTCUSDT", "1")
    assert forming is not None
    assert final[forming.timestamp] == tuple(forming[:6])
    # Closing a bar and opening the next travel in one WebSocket message.
    assert any(
        sum(isinstance(item, SeriesData) and item.method == "du" for item in items) == 2
        for _, items in client.frames
    )


async def test_stock_live_updates_wait_for_the_open(sim: TvSimulator, client: RawClient) -> None:
    history, _ = await client.chart("NASDAQ:AAPL", "5", 50)
    await sim.clock.advance(20 * 60)  # 09:00 -> 09:20 New York: still closed
    assert updates(await client.quiet(0.2)) == []
    await sim.clock.advance(40 * 60)  # until 10:00
    received = updates(await client.quiet(0.3))
    first_index = history.series["s1"].rows[-1].i + 1
    assert received[0][0] == first_index
    closed = truth_tuples(sim, "NASDAQ:AAPL", "5", n_bars=6)
    final = {bar[0]: bar for _, bar in received}
    assert [final[bar[0]] for bar in closed] == closed


async def test_many_series_on_one_socket_stream_independently(
    sim: TvSimulator, client: RawClient
) -> None:
    symbols = [f"BINANCE:SIM{n:03d}USDT" for n in range(1, 11)]
    for number, symbol in enumerate(symbols):
        await client.send(
            chart_create_session(f"cs_{number}"),
            resolve_symbol(f"cs_{number}", "sym", symbol_spec(symbol)),
            create_series(f"cs_{number}", "s1", "s1", "sym", "1", 5),
        )
    for _ in symbols:
        await client.expect(SeriesData)
    await sim.clock.advance(600)
    items = await client.quiet(0.5)
    for number, symbol in enumerate(symbols):
        mine = [
            item
            for item in items
            if isinstance(item, SeriesData) and item.session == f"cs_{number}"
        ]
        final = {int(bar[0]): bar for item in mine for bar in rows_of(item)}
        closed = truth_tuples(sim, symbol, "1", n_bars=10)
        assert [final[bar[0]] for bar in closed] == closed


async def test_remove_series_stops_updates(sim: TvSimulator, client: RawClient) -> None:
    await client.chart("BINANCE:BTCUSDT", "1", 5)
    await client.send(remove_series("cs_test", "s1"))
    await asyncio.sleep(0.05)
    await sim.clock.advance(600)
    assert updates(await client.quiet(0.2)) == []


async def test_quote_session_snapshot_deltas_and_removal(
    sim: TvSimulator, client: RawClient
) -> None:
    spec = '={"adjustment":"splits","session":"regular","symbol":"BINANCE:BTCUSDT"}'
    await client.send(
        quote_create_session("qs_a"),
        quote_set_fields(
            "qs_a",
            [
                "lp",
                "lp_time",
                "ch",
                "chp",
                "volume",
                "description",
                "local_description",
                "pro_name",
                "update_mode",
            ],
        ),
        quote_add_symbols("qs_a", [spec, "KRX:005930", "NASDAQ:NOPE"]),
    )
    snapshots: dict[str, QuoteData] = {}
    completed: set[str] = set()
    while len(completed) < 3:
        item = await client.next()
        if isinstance(item, QuoteData):
            snapshots.setdefault(item.symbol, item)
        elif isinstance(item, QuoteCompleted):
            completed.add(item.symbol)
    assert completed == {spec, "KRX:005930", "NASDAQ:NOPE"}
    assert snapshots[spec].status == "ok"
    assert snapshots[spec].values["pro_name"] == "BINANCE:BTCUSDT"
    assert set(snapshots[spec].values) <= {
        "lp",
        "lp_time",
        "ch",
        "chp",
        "volume",
        "description",
        "local_description",
        "pro_name",
        "update_mode",
    }
    forming = sim.forming_bar("BINANCE:BTCUSDT", "1")
    assert forming is not None
    assert snapshots[spec].values["lp"] == forming.close
    assert snapshots["KRX:005930"].values["local_description"] == "삼성전자"
    assert snapshots["NASDAQ:NOPE"].status == "error"

    await sim.clock.advance(60)
    deltas = [item for item in await client.quiet(0.3) if isinstance(item, QuoteData)]
    assert deltas
    assert all(item.symbol == spec for item in deltas)
    assert all("description" not in item.values for item in deltas)
    assert (
        deltas[-1].values.get("lp", snapshots[spec].values["lp"])
        == sim.forming_bar("BINANCE:BTCUSDT", "1").close
    )  # type: ignore[union-attr]

    await client.send(quote_remove_symbols("qs_a", [spec]))
    await asyncio.sleep(0.05)
    await sim.clock.advance(120)
    assert [item for item in await client.quiet(0.2) if isinstance(item, QuoteData)] == []
    await client.send(quote_add_symbols("qs_a", ["BINANCE:ETHUSDT"]), quote_delete_session("qs_a"))
    await client.expect(QuoteCompleted)
    await sim.clock.advance(120)
    assert [item for item in await client.quiet(0.2) if isinstance(item, QuoteData)] == []


async def test_realtime_clock_streams_without_advance() -> None:
    async with TvSimulator(http_port=None, realtime=True, speed=600.0) as sim:
        raw = await RawClient.open(sim)
        await raw.start()
        await raw.chart("BINANCE:BTCUSDT", "1", 5)
        update = await raw.expect(SeriesData)
        assert update.method == "du"
        assert sim.clock.now() > sim.clock.start
        await raw.close()
