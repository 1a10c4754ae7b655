"""The three sinks against real stores: the Sink contract, then what is specific to each."""

from __future__ import annotations

import json
import os
from pathlib import Path

import asyncpg
import polars as pl
import pytest
import redis.asyncio as redis

from tvfeed_async import Bar, Gap
from tvfeed_async.sinks import (
    ParquetSink,
    PostgresSink,
    RedisSink,
    SeriesKey,
    SinkError,
    sink_from_url,
)

from .conftest import Store
from .stores import Row, postgres_rows, redis_entries, redis_rows

BTC = SeriesKey("BINANCE:BTCUSDT", "1")
SPX = SeriesKey("SP:SPX", "1D")
DAY = 86_400
# 2026-01-05 23:58 UTC: a run of 1-minute bars that crosses midnight (two day partitions).
T0 = 1_767_657_480


def bars_of(key: SeriesKey, start: int, count: int, step: int, volume: bool = True) -> list[Bar]:
    """Distinct, reproducible bars (values that need every digit of a double)."""
    result = []
    for n in range(count):
        price = 100.0 + n / 3.0
        result.append(
            Bar(
                start + n * step,
                price,
                price + 0.1,
                price - 0.1,
                price + 1 / 7,
                (1000.0 + n / 9.0) if volume else None,
                key.symbol,
                key.interval,
                True,
            )
        )
    return result


def rows(bars: list[Bar]) -> list[Row]:
    return [tuple(bar[:6]) for bar in bars]  # type: ignore[misc]


# ---------------------------------------------------------------------- the contract


async def test_writes_are_stored_once_and_last_stored_is_the_newest(
    store: Store,
) -> None:
    sink, read = store.sink, store.read
    assert await sink.last_stored(BTC) is None
    btc = bars_of(BTC, T0, 10, 60)
    spx = bars_of(SPX, T0 - 10 * DAY, 3, DAY, volume=False)
    await sink.write([*btc[:6], *spx])
    assert await sink.last_stored(BTC) == btc[5].timestamp
    assert await sink.last_stored(SPX) == spx[-1].timestamp
    # A replay that overlaps what is stored (what a crash between write and checkpoint does).
    await sink.write(btc[3:])
    await sink.write(btc)
    assert await read(BTC) == rows(btc)
    assert await read(SPX) == rows(spx)
    assert await sink.last_stored(BTC) == btc[-1].timestamp


async def test_forming_bars_are_kept_apart_from_closed_bars(store: Store) -> None:
    sink, read = store.sink, store.read
    closed = bars_of(BTC, T0, 3, 60)
    await sink.write(closed)
    forming = bars_of(BTC, T0 + 3 * 60, 1, 60)[0]._replace(closed=False)
    assert sink.supports_latest
    await sink.write_latest([forming])
    await sink.write_latest([forming._replace(close=1.5)])
    assert await read(BTC) == rows(closed)
    assert await sink.last_stored(BTC) == closed[-1].timestamp


async def test_a_store_that_cannot_be_reached_raises_sink_error(tmp_path: Path) -> None:
    from .servers import free_port

    port = free_port()
    with pytest.raises(SinkError):
        async with PostgresSink(f"postgresql://postgres@127.0.0.1:{port}/x", connect_timeout=2):
            pass
    with pytest.raises(SinkError):
        async with RedisSink(f"redis://127.0.0.1:{port}/0", socket_timeout=2):
            pass
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(SinkError):
        async with ParquetSink(blocker / "dataset"):
            pass


def test_sink_from_url_picks_the_store() -> None:
    assert isinstance(sink_from_url("postgresql://u@h/db"), PostgresSink)
    assert isinstance(sink_from_url("postgres://u@h/db"), PostgresSink)
    assert isinstance(sink_from_url("redis://127.0.0.1:1/0"), RedisSink)
    assert isinstance(sink_from_url("some/dir"), ParquetSink)
    with pytest.raises(ValueError, match="--to"):
        sink_from_url("mysql://h/db")


# ---------------------------------------------------------------------- PostgreSQL


async def test_postgres_table_has_the_documented_shape(postgres_dsn: str) -> None:
    async with PostgresSink(postgres_dsn) as sink:
        assert sink.hypertable is False  # no timescaledb on this server
    connection = await asyncpg.connect(postgres_dsn)
    try:
        columns = await connection.fetch(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'tv_bars' ORDER BY ordinal_position"
        )
        key = await connection.fetch(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
            "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'tv_bars'::regclass "
            "AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)"
        )
    finally:
        await connection.close()
    assert [(c["column_name"], c["data_type"]) for c in columns] == [
        ("symbol", "text"),
        ("interval", "text"),
        ("time", "timestamp with time zone"),
        ("open", "double precision"),
        ("high", "double precision"),
        ("low", "double precision"),
        ("close", "double precision"),
        ("volume", "double precision"),
    ]
    assert [k["attname"] for k in key] == ["symbol", "interval", "time"]


async def test_postgres_on_conflict_update_or_nothing(postgres_dsn: str) -> None:
    first = bars_of(BTC, T0, 2, 60)
    revised = [bar._replace(close=bar.close + 1) for bar in first]
    async with PostgresSink(postgres_dsn, on_conflict="nothing") as sink:
        await sink.write(first)
        await sink.write(revised)
    assert await postgres_rows(postgres_dsn, BTC) == rows(first)
    async with PostgresSink(postgres_dsn) as sink:
        await sink.write(revised)
    assert await postgres_rows(postgres_dsn, BTC) == rows(revised)


async def test_postgres_latest_and_gaps_tables(postgres_dsn: str) -> None:
    forming = bars_of(BTC, T0, 2, 60)
    async with PostgresSink(postgres_dsn) as sink:
        await sink.write_latest([forming[1]._replace(closed=False)])
        await sink.write_latest([forming[0]._replace(closed=False)])  # older: ignored
        await sink.record_gap(BTC, Gap(T0, T0 + 600))
        await sink.record_gap(BTC, Gap(T0, T0 + 600))
    connection = await asyncpg.connect(postgres_dsn)
    try:
        latest = await connection.fetch(
            "SELECT extract(epoch FROM time)::bigint AS t, close FROM tv_bars_latest"
        )
        gaps = await connection.fetch(
            "SELECT extract(epoch FROM after_time)::bigint AS a, "
            "extract(epoch FROM before_time)::bigint AS b FROM tv_gaps"
        )
    finally:
        await connection.close()
    assert [(r["t"], r["close"]) for r in latest] == [(forming[1].timestamp, forming[1].close)]
    assert [(r["a"], r["b"]) for r in gaps] == [(T0, T0 + 600)]


async def test_postgres_sink_reconnects_after_a_server_restart(
    postgres_server: object, postgres_dsn: str
) -> None:
    from .servers import PostgresServer

    assert isinstance(postgres_server, PostgresServer)
    bars = bars_of(BTC, T0, 4, 60)
    async with PostgresSink(postgres_dsn, connect_timeout=2) as sink:
        await sink.write(bars[:2])
        postgres_server.stop()
        with pytest.raises(SinkError):
            await sink.write(bars[2:])
        postgres_server.start()
        await sink.write(bars[2:])
        assert await sink.last_stored(BTC) == bars[-1].timestamp
    assert await postgres_rows(postgres_dsn, BTC) == rows(bars)


def test_postgres_sink_rejects_table_names_that_are_not_identifiers() -> None:
    with pytest.raises(ValueError, match="table"):
        PostgresSink("postgresql://h/db", table="tv_bars; DROP TABLE x")


# ---------------------------------------------------------------------- Redis


async def test_redis_entry_ids_are_open_times_and_fields_are_ohlcv(redis_url: str) -> None:
    spx = bars_of(SPX, T0, 2, DAY, volume=False)
    async with RedisSink(redis_url) as sink:
        await sink.write(spx)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        entries = await client.xrange("tv:bars:SP:SPX:1D")
    finally:
        await client.aclose()
    assert [entry_id for entry_id, _ in entries] == [f"{bar.timestamp * 1000}-0" for bar in spx]
    assert entries[0][1] == {
        "open": repr(spx[0].open),
        "high": repr(spx[0].high),
        "low": repr(spx[0].low),
        "close": repr(spx[0].close),
        "volume": "",
    }


async def test_redis_replay_after_the_top_entry_was_deleted_is_not_an_error(
    redis_url: str,
) -> None:
    bars = bars_of(BTC, T0, 5, 60)
    async with RedisSink(redis_url) as sink:
        await sink.write(bars)
        client = redis.Redis.from_url(redis_url)
        try:
            await client.xdel("tv:bars:BINANCE:BTCUSDT:1", f"{bars[-1].timestamp * 1000}-0")
        finally:
            await client.aclose()
        # XREVRANGE now says bars[3] is the top, but XADD refuses bars[4]'s id ("equal or
        # smaller"): the bar counts as already stored and the rest of the batch goes on.
        await sink.write([*bars[3:], *bars_of(BTC, T0 + 5 * 60, 1, 60)])
    assert [row[0] for row in await redis_rows(redis_url, BTC)] == [
        *(bar.timestamp for bar in bars[:4]),
        T0 + 5 * 60,
    ]


async def test_redis_maxlen_trims_each_stream(redis_url: str) -> None:
    async with RedisSink(redis_url, maxlen=10, approximate=False) as sink:
        bars = bars_of(BTC, T0, 25, 60)
        await sink.write(bars[:15])
        await sink.write(bars[15:])
        assert await sink.last_stored(BTC) == bars[-1].timestamp
    entries = await redis_entries(redis_url, BTC)
    assert [row for _, row in entries] == rows(bars[-10:])


async def test_redis_latest_hash_and_gap_stream(redis_url: str) -> None:
    forming = bars_of(BTC, T0, 2, 60)
    async with RedisSink(redis_url) as sink:
        await sink.write_latest([forming[1]._replace(closed=False)])
        await sink.write_latest([forming[0]._replace(closed=False)])  # older: ignored
        await sink.record_gap(BTC, Gap(T0, T0 + 600))
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        latest = await client.hgetall("tv:latest:BINANCE:BTCUSDT:1")
        gaps = await client.xrange("tv:gaps:BINANCE:BTCUSDT:1")
    finally:
        await client.aclose()
    assert latest["time"] == str(forming[1].timestamp * 1000)
    assert float(latest["close"]) == forming[1].close
    assert [fields for _, fields in gaps] == [{"after": str(T0), "before": str(T0 + 600)}]


# ---------------------------------------------------------------------- Parquet


async def test_parquet_layout_is_partitioned_by_symbol_interval_and_date(tmp_path: Path) -> None:
    bars = bars_of(BTC, T0, 4, 60)  # 23:58, 23:59, 00:00, 00:01
    async with ParquetSink(tmp_path) as sink:
        await sink.write(bars)
        await sink.record_gap(BTC, Gap(T0, T0 + 600))
    series = tmp_path / "bars" / "symbol=BINANCE%3ABTCUSDT" / "interval=1"
    days = sorted(path.name for path in series.iterdir())
    assert days == ["date=2026-01-05", "date=2026-01-06"]
    first_day = pl.read_parquet(series / "date=2026-01-05" / "bars.parquet")
    assert first_day.schema["time"] == pl.Datetime("us", "UTC")
    assert first_day.height == 2
    # Nothing but the day files is left behind (the temporary files were renamed over them).
    leftovers = [name for _, _, names in os.walk(tmp_path / "bars") for name in names]
    assert sorted(leftovers) == ["bars.parquet", "bars.parquet"]
    gap_lines = (tmp_path / "gaps.ndjson").read_text().splitlines()
    assert [json.loads(line) for line in gap_lines] == [
        {"symbol": BTC.symbol, "interval": "1", "after": T0, "before": T0 + 600}
    ]


async def test_postgres_sink_can_be_shared_by_concurrent_callers(postgres_dsn: str) -> None:
    import anyio

    bars = bars_of(BTC, T0, 40, 60)
    async with PostgresSink(postgres_dsn) as sink, anyio.create_task_group() as tasks:
        for n in range(0, 40, 4):
            tasks.start_soon(sink.write, bars[n : n + 4])
            tasks.start_soon(sink.last_stored, BTC)
    assert await postgres_rows(postgres_dsn, BTC) == rows(bars)


async def test_postgres_write_cancelled_half_way_leaves_the_sink_usable(postgres_dsn: str) -> None:
    import anyio

    many = bars_of(BTC, T0, 20_000, 60)
    async with PostgresSink(postgres_dsn) as sink:
        with anyio.move_on_after(0.005):
            await sink.write(many)
        # All or nothing was stored; the next calls work and store exactly once.
        await sink.write(many[:10])
        assert await sink.last_stored(BTC) in (many[9].timestamp, many[-1].timestamp)
        await sink.write(many)
    assert await postgres_rows(postgres_dsn, BTC) == rows(many)
