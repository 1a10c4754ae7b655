"""Read what a store holds, straight from the store (not through the sink under test)."""

from __future__ import annotations

import io
import urllib.parse
from pathlib import Path

import asyncpg
import polars as pl
import redis.asyncio as redis

from tvfeed_async.sinks import SeriesKey

Row = tuple[int, float, float, float, float, float | None]


async def postgres_rows(dsn: str, key: SeriesKey, table: str = "tv_bars") -> list[Row]:
    """Every stored bar of ``key``, in the table's physical order of time."""
    connection = await asyncpg.connect(dsn)
    try:
        records = await connection.fetch(
            f"SELECT extract(epoch FROM time)::bigint AS t, open, high, low, close, volume "
            f"FROM {table} WHERE symbol = $1 AND interval = $2 ORDER BY time",
            key.symbol,
            key.interval,
        )
    finally:
        await connection.close()
    return [(int(r["t"]), r["open"], r["high"], r["low"], r["close"], r["volume"]) for r in records]


async def redis_entries(url: str, key: SeriesKey) -> list[tuple[str, Row]]:
    """Every entry of ``key``'s stream in stream order: (id, row)."""
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        entries = await client.xrange(f"tv:bars:{key.symbol}:{key.interval}")
    finally:
        await client.aclose()
    result: list[tuple[str, Row]] = []
    for entry_id, fields in entries:
        volume = fields["volume"]
        result.append(
            (
                entry_id,
                (
                    int(entry_id.split("-")[0]) // 1000,
                    float(fields["open"]),
                    float(fields["high"]),
                    float(fields["low"]),
                    float(fields["close"]),
                    float(volume) if volume != "" else None,
                ),
            )
        )
    return result


async def redis_rows(url: str, key: SeriesKey) -> list[Row]:
    """The rows of :func:`redis_entries`, in stream order."""
    return [row for _, row in await redis_entries(url, key)]


def parquet_rows(root: Path, key: SeriesKey) -> list[Row]:
    """Every stored bar of ``key`` in the dataset, day files in date order."""
    series = (
        root
        / "bars"
        / f"symbol={urllib.parse.quote(key.symbol, safe='')}"
        / f"interval={urllib.parse.quote(key.interval, safe='')}"
    )
    files = sorted(series.glob("date=*/bars.parquet"))
    if not files:
        return []
    # The bytes of each file, read in one call: the recorder replaces files while we read.
    frame = pl.concat([pl.read_parquet(io.BytesIO(path.read_bytes())) for path in files])
    return [
        (int(t.timestamp()), o, h, low, c, v)
        for t, o, h, low, c, v in frame.select(
            "time", "open", "high", "low", "close", "volume"
        ).iter_rows()
    ]
