"""A FastAPI service that records bars into PostgreSQL and serves them, stored and live.

GET /candles?symbol=BINANCE:BTCUSDT&interval=1&limit=500  -> JSON, newest last, from PostgreSQL
GET /latest?symbol=BINANCE:BTCUSDT&interval=1             -> the forming bar (tv_bars_latest)
GET /live?symbol=BINANCE:BTCUSDT&interval=1               -> Server-Sent Events, one per closed bar

The service's lifetime owns one TvFeed, one PostgresSink and one Recorder (a task started at
start-up and cancelled at shutdown): the table is kept complete across restarts and crashes,
and the handlers read it with their own connection pool.

    pip install "tvfeed-async[postgres]" fastapi uvicorn
    export DATABASE_URL=postgresql://postgres@127.0.0.1:5432/market
    export RECORD_SYMBOLS=BINANCE:BTCUSDT,BINANCE:ETHUSDT RECORD_INTERVAL=1
    tvfeed-async simulate --port 8765 &      # or leave TVFEED_WS_URL unset for TradingView
    TVFEED_WS_URL=ws://127.0.0.1:8765/socket.io/websocket uvicorn record_fastapi_service:app
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import StreamingResponse

from tvfeed_async import Endpoints, TvFeed, TvFeedError
from tvfeed_async.recorder import Recorder
from tvfeed_async.sinks import PostgresSink

DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
SYMBOLS = os.environ.get("RECORD_SYMBOLS", "BINANCE:BTCUSDT,BINANCE:ETHUSDT").split(",")
INTERVAL = os.environ.get("RECORD_INTERVAL", "1")


@dataclass
class Services:
    """What the handlers share (``app.state.services``)."""

    feed: TvFeed
    pool: asyncpg.Pool
    recorder: Recorder


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with (
        TvFeed(endpoints=Endpoints.from_env()) as feed,
        PostgresSink(DATABASE_URL) as sink,  # creates tv_bars and tv_bars_latest if missing
    ):
        recorder = Recorder(feed, [(symbol, INTERVAL) for symbol in SYMBOLS], sink, forming=True)
        pool = await asyncpg.create_pool(DATABASE_URL, min_size=1, max_size=4)
        # One task, owned here: cancelled and awaited before the feed and the sink close.
        recording = asyncio.create_task(recorder.run(), name="recorder")
        app.state.services = Services(feed, pool, recorder)
        try:
            yield
        finally:
            recording.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await recording
            await pool.close()


app = FastAPI(lifespan=lifespan)


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


def _row(record: asyncpg.Record) -> dict[str, Any]:
    return {
        "time": record["time"].isoformat(),
        "open": record["open"],
        "high": record["high"],
        "low": record["low"],
        "close": record["close"],
        "volume": record["volume"],
    }


@app.get("/candles")
async def candles(
    request: Request,
    symbol: str,
    interval: str = INTERVAL,
    limit: int = Query(500, ge=1, le=50_000),
) -> list[dict[str, Any]]:
    """The newest ``limit`` stored closed bars, oldest first."""
    records = await services(request).pool.fetch(
        "SELECT time, open, high, low, close, volume FROM "
        "(SELECT * FROM tv_bars WHERE symbol = $1 AND interval = $2 "
        "ORDER BY time DESC LIMIT $3) newest ORDER BY time",
        symbol,
        interval,
        limit,
    )
    return [_row(record) for record in records]


@app.get("/latest")
async def latest(request: Request, symbol: str, interval: str = INTERVAL) -> dict[str, Any]:
    """The forming bar as last recorded."""
    record = await services(request).pool.fetchrow(
        "SELECT time, open, high, low, close, volume FROM tv_bars_latest "
        "WHERE symbol = $1 AND interval = $2",
        symbol,
        interval,
    )
    if record is None:
        raise HTTPException(404, f"no forming bar recorded for {symbol} {interval}")
    return _row(record)


@app.get("/live")
async def live(request: Request, symbol: str, interval: str = INTERVAL) -> StreamingResponse:
    """Closed bars as they close, from the feed's shared socket (not through the database:
    a client that needs what it missed asks /candles first)."""
    feed = services(request).feed

    async def events() -> AsyncIterator[bytes]:
        stream = feed.stream(symbol, interval=interval)
        try:
            async with contextlib.aclosing(stream) as bars:
                async for bar in bars:
                    event = {
                        "symbol": bar.symbol,
                        "interval": bar.interval,
                        "time": bar.time.isoformat(),
                        "open": bar.open,
                        "high": bar.high,
                        "low": bar.low,
                        "close": bar.close,
                        "volume": bar.volume,
                    }
                    yield f"data: {json.dumps(event)}\n\n".encode()
        except TvFeedError as error:
            yield f"event: error\ndata: {json.dumps(str(error))}\n\n".encode()

    return StreamingResponse(events(), media_type="text/event-stream")


@app.get("/metrics")
async def metrics(request: Request) -> list[dict[str, object]]:
    """The recorder's counters (resynchronisations, gaps, lag) per sink."""
    return [sink.as_dict() for sink in services(request).recorder.metrics]
