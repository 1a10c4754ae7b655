"""``modify_series`` that switches an existing series to another symbol reference, interval,
count or range (the Go client ENDENWER moves one series from symbol to symbol with a new
``sds_sym_k`` and turnaround; TVKIT applies ranges with it; tvfeed_async.history reuses idle
sessions this way): the answer is the new symbol's history under the new turnaround, paging
and live updates follow the new symbol, and nothing more comes for the previous one."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from tvfeed_async.protocol.messages import (
    SeriesCompleted,
    SeriesData,
    SeriesLoading,
    SymbolError,
    SymbolResolved,
    chart_create_session,
    create_series,
    modify_series,
    range_param,
    request_more_data,
    resolve_symbol,
    symbol_spec,
)
from tvfeed_async.testing.simulator import TvSimulator

from .helpers import RawClient, rows_of, truth_tuples

CS = "cs_switch"


def rows_of_row(row: object) -> tuple[object, ...]:
    return tuple(msgspec.structs.astuple(row.v))  # type: ignore[attr-defined]


async def _open(client: RawClient, symbol: str, interval: str, size: int) -> None:
    await client.send(
        chart_create_session(CS),
        resolve_symbol(CS, "sds_sym_1", symbol_spec(symbol)),
        create_series(CS, "sds_1", "s1", "sds_sym_1", interval, size),
    )
    await client.history("sds_1")


async def _switch(
    client: RawClient, ref: str, symbol: str, turnaround: str, interval: str, size: object
) -> tuple[list[object], SeriesData, SeriesCompleted]:
    await client.send(
        resolve_symbol(CS, ref, symbol_spec(symbol)),
        modify_series(CS, "sds_1", turnaround, ref, interval, size),  # type: ignore[arg-type]
    )
    before, first = await client.collect_until(SeriesData)
    rows = list(first.series["sds_1"].rows)
    while True:
        item = await client.next()
        if isinstance(item, SeriesCompleted):
            break
        if isinstance(item, SeriesData) and "sds_1" in item.series:
            rows += item.series["sds_1"].rows
    assert len(rows) == len(first.series["sds_1"].rows)  # one batch, as sent today
    return before, first, item


async def test_switch_to_another_symbol_and_interval(sim: TvSimulator, client: RawClient) -> None:
    await _open(client, "BINANCE:BTCUSDT", "1", 100)
    before, batch, completed = await _switch(client, "sds_sym_2", "BINANCE:ETHUSDT", "s2", "60", 50)
    assert SeriesLoading(CS, "sds_1", "s2") in before
    resolved = [item for item in before if isinstance(item, SymbolResolved)]
    assert [(r.symbol_ref, r.info["full_name"]) for r in resolved] == [
        ("sds_sym_2", "BINANCE:ETHUSDT")
    ]
    assert batch.series["sds_1"].turnaround == "s2"
    assert completed.turnaround == "s2"
    rows = rows_of(batch, "sds_1")
    assert len(rows) == 50
    # The newest bar is still forming; the closed ones are the new symbol's truth.
    assert rows[:-1] == truth_tuples(sim, "BINANCE:ETHUSDT", "60", n_bars=49)


async def test_paging_after_a_switch_walks_the_new_symbol(
    sim: TvSimulator, client: RawClient
) -> None:
    await _open(client, "BINANCE:BTCUSDT", "5", 300)
    _, batch, _ = await _switch(client, "sds_sym_2", "BINANCE:ETHUSDT", "s2", "1", 200)
    await client.send(request_more_data(CS, "sds_1", 300))
    older, completed = await client.history("sds_1")
    assert completed.turnaround == "s2"
    assert older.series["sds_1"].turnaround == "s2"
    rows = rows_of(older, "sds_1") + rows_of(batch, "sds_1")
    assert len(rows) == 500
    assert rows[:-1] == truth_tuples(sim, "BINANCE:ETHUSDT", "1", n_bars=499)


async def test_switch_to_a_range_and_back_to_a_count(sim: TvSimulator, client: RawClient) -> None:
    start = int(datetime(2025, 11, 3, tzinfo=UTC).timestamp())
    end = int(datetime(2025, 11, 5, tzinfo=UTC).timestamp())
    await _open(client, "BINANCE:BTCUSDT", "1", 10)
    _, batch, completed = await _switch(
        client, "sds_sym_2", "NASDAQ:AAPL", "s2", "15", range_param(start, end)
    )
    assert completed.turnaround == "s2"
    assert rows_of(batch, "sds_1") == truth_tuples(
        sim, "NASDAQ:AAPL", "15", start=start, end=end + 1
    )
    _, batch, completed = await _switch(client, "sds_sym_3", "BINANCE:BTCUSDT", "s3", "1D", 20)
    assert completed.turnaround == "s3"
    assert rows_of(batch, "sds_1")[:-1] == truth_tuples(sim, "BINANCE:BTCUSDT", "1D", n_bars=19)


async def test_live_updates_follow_the_new_symbol_only(sim: TvSimulator, client: RawClient) -> None:
    await _open(client, "BINANCE:BTCUSDT", "1", 10)
    _, batch, _ = await _switch(client, "sds_sym_2", "BINANCE:ETHUSDT", "s2", "1", 10)
    await sim.clock.advance(180)
    updates = [
        item.series["sds_1"]
        for item in await client.quiet(0.3)
        if isinstance(item, SeriesData) and "sds_1" in item.series
    ]
    assert updates
    assert {update.turnaround for update in updates} == {"s2"}
    newest = rows_of(batch, "sds_1")[-1][0]
    closed = {row[0]: row for row in truth_tuples(sim, "BINANCE:ETHUSDT", "1", start=newest)}
    # The last update of each bar that closed meanwhile is its final: the new symbol's truth.
    last: dict[object, tuple[object, ...]] = {}
    for update in updates:
        for row in update.rows:
            assert row.v.timestamp >= newest
            last[row.v.timestamp] = rows_of_row(row)
    assert any(t in closed for t in last)
    for open_time, final in last.items():
        if open_time in closed:
            assert final == closed[open_time]


async def test_a_failed_switch_leaves_the_session_usable(
    sim: TvSimulator, client: RawClient
) -> None:
    await _open(client, "BINANCE:BTCUSDT", "1", 10)
    await client.send(
        resolve_symbol(CS, "sds_sym_2", symbol_spec("NOWHERE:NOTHING")),
        modify_series(CS, "sds_1", "s2", "sds_sym_2", "1", 10),
    )
    error = await client.expect(SymbolError)
    assert error.symbol_ref == "sds_sym_2"
    assert not [
        item
        for item in await client.quiet(0.2)
        if isinstance(item, SeriesData | SeriesCompleted)
        and getattr(item, "turnaround", "s2") == "s2"
    ]
    _, batch, completed = await _switch(client, "sds_sym_3", "BINANCE:ETHUSDT", "s3", "1", 30)
    assert completed.turnaround == "s3"
    assert rows_of(batch, "sds_1")[:-1] == truth_tuples(sim, "BINANCE:ETHUSDT", "1", n_bars=29)
