"""Download daily history of many symbols at once on one socket and save one Parquet file.

python examples/download_many.py out.parquet NASDAQ:AAPL NASDAQ:MSFT BINANCE:BTCUSDT
"""

from __future__ import annotations

import asyncio
import sys

import polars as pl

from tvfeed_async import Endpoints, TvFeed


async def download(path: str, symbols: list[str]) -> None:
    async with TvFeed(endpoints=Endpoints.from_env()) as feed:
        results = await feed.get_hist_many(symbols, interval="1D", n_bars=5_000)
    frames = []
    for symbol, result in results.items():
        if isinstance(result, pl.DataFrame):
            print(f"{symbol:<24} {result.height:>6} bars")
            frames.append(result)
        else:
            print(f"{symbol:<24} failed: {result}")
    if frames:
        pl.concat(frames).write_parquet(path)


if __name__ == "__main__":
    asyncio.run(download(sys.argv[1], sys.argv[2:]))
