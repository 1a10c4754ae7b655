"""A watchlist over Server-Sent Events: an aiohttp.web service whose lifetime owns one TvFeed.

GET /quotes?symbols=BINANCE:BTCUSDT,NASDAQ:AAPL        -> JSON, one object per symbol
GET /watch?symbols=BINANCE:BTCUSDT,NASDAQ:AAPL         -> Server-Sent Events: one ``quote``
                                                          event per changed symbol

Every ``/watch`` client gets its own quote stream on the feed's one socket. A slow client
(a phone on a bad network) only ever has the latest quote of each symbol waiting for it, so it
cannot make the service buffer without bound; a symbol the server does not know gets one
``quote`` event with ``error`` set and the others go on.

Run against the bundled simulator (no internet needed):

    tvfeed-async simulate --port 8765 &
    TVFEED_WS_URL=ws://127.0.0.1:8765/socket.io/websocket python examples/quotes_sse.py
    curl -N 'http://127.0.0.1:8080/watch?symbols=BINANCE:BTCUSDT,BINANCE:ETHUSDT'

or against TradingView by leaving TVFEED_WS_URL unset (anonymous quotes of stocks are 15
minutes late there: each event says so in ``update_mode``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from tvfeed_async import Endpoints, Quote, TvFeed, TvFeedError

FEED = web.AppKey("feed", TvFeed)


def create_app(endpoints: Endpoints | None = None) -> web.Application:
    """Build the app; the feed opens at start-up and closes at shutdown."""
    app = web.Application()

    async def feed_context(app: web.Application) -> AsyncIterator[None]:
        async with TvFeed(endpoints=endpoints or Endpoints.from_env()) as feed:
            app[FEED] = feed
            yield

    app.cleanup_ctx.append(feed_context)
    app.router.add_get("/quotes", quotes)
    app.router.add_get("/watch", watch)
    return app


def _symbols(request: web.Request) -> list[str]:
    return [name.strip() for name in request.query.get("symbols", "").split(",") if name.strip()]


def quote_event(quote: Quote) -> dict[str, Any]:
    """What a client is sent for one quote."""
    return {
        "symbol": quote.symbol,
        "last": quote.last,
        "bid": quote.bid,
        "ask": quote.ask,
        "volume": quote.volume,
        "change": quote.change,
        "change_percent": quote.change_percent,
        "currency": quote.currency,
        "time": quote.time.isoformat() if quote.time is not None else None,
        "update_mode": quote.update_mode,
        "error": quote.error,
    }


async def quotes(request: web.Request) -> web.Response:
    try:
        frame = await request.app[FEED].get_quotes(_symbols(request))
    except (TvFeedError, ValueError) as error:
        return web.json_response({"error": str(error)}, status=400)
    rows = [
        {**row, "time": row["time"].isoformat() if row["time"] is not None else None}
        for row in frame.iter_rows(named=True)
    ]
    return web.json_response(rows)


async def watch(request: web.Request) -> web.StreamResponse:
    feed = request.app[FEED]
    try:
        stream = feed.stream_quotes(_symbols(request))
    except (TvFeedError, ValueError) as error:
        return web.json_response({"error": str(error)}, status=400)
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    try:
        await response.prepare(request)
        async with stream:
            async for quote in stream:
                text = json.dumps(quote_event(quote))
                await response.write(f"event: quote\ndata: {text}\n\n".encode())
    except TvFeedError as error:
        await response.write(f"event: error\ndata: {json.dumps(str(error))}\n\n".encode())
    except ConnectionResetError:
        pass  # the client went away; leaving `async with` deleted its quote session
    return response


if __name__ == "__main__":
    web.run_app(create_app(), host="127.0.0.1", port=8080)
