"""Record live 1-minute bars of a few symbols to a Parquet file, flushing every N bars.

    python examples/record_parquet.py bars.parquet BINANCE:BTCUSDT BINANCE:ETHUSDT

Point it at the bundled simulator with TVFEED_WS_URL (see `tvfeed-async simulate`).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys

import polars as pl

from tvfeed_async import Bar, Endpoints, TvFeed


async def record(path: str, symbols: list[str], flush_every: int = 100) -> None:
    rows: list[Bar] = []
    frames: list[pl.DataFrame] = []

    def flush() -> None:
        if rows:
            frames.append(
                pl.DataFrame(
                    {
                        "time": [bar.time for bar in rows],
                        "symbol": [bar.symbol for bar in rows],
                        "open": [bar.open for bar in rows],
                        "high": [bar.high for bar in rows],
                        "low": [bar.low for bar in rows],
                        "close": [bar.close for bar in rows],
                        "volume": [bar.volume for bar in rows],
                    },
                    schema_overrides={"volume": pl.Float64},
                )
            )
            rows.clear()
            pl.concat(frames).write_parquet(path)

    async with TvFeed(endpoints=Endpoints.from_env()) as feed:
        stream = feed.stream_many([(symbol, "1") for symbol in symbols])
        try:
            async with contextlib.aclosing(stream) as bars:
                async for bar in bars:
                    rows.append(bar)
                    if len(rows) >= flush_every:
                        flush()
        finally:
            flush()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(record(sys.argv[1], sys.argv[2:]))
