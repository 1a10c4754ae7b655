"""An aiohttp.web service whose lifetime owns one TvFeed.

GET /history?symbol=BINANCE:BTCUSDT&interval=60&bars=100  -> JSON rows
GET /live?symbol=BINANCE:BTCUSDT&interval=1                -> Server-Sent Events, one per closed bar

Run against the bundled simulator (no internet needed):

    tvfeed-async simulate --port 8765 &        # prints its endpoints
    TVFEED_WS_URL=ws://127.0.0.1:8765/socket.io/websocket python examples/aiohttp_service.py

or against TradingView by leaving TVFEED_WS_URL unset.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator

from aiohttp import web

from tvfeed_async import Endpoints, TvFeed, TvFeedError

FEED = web.AppKey("feed", TvFeed)


def create_app(endpoints: Endpoints | None = None) -> web.Application:
    """Build the app; the feed opens at start-up and closes at shutdown."""
    app = web.Application()

    async def feed_context(app: web.Application) -> AsyncIterator[None]:
        async with TvFeed(endpoints=endpoints or Endpoints.from_env()) as feed:
            app[FEED] = feed
            yield

    app.cleanup_ctx.append(feed_context)
    app.router.add_get("/history", history)
    app.router.add_get("/live", live)
    return app


async def history(request: web.Request) -> web.Response:
    feed = request.app[FEED]
    try:
        frame = await feed.get_hist(
            request.query.get("symbol", ""),
            interval=request.query.get("interval", "1D"),
            n_bars=int(request.query.get("bars", "100")),
        )
    except (TvFeedError, ValueError) as error:
        return web.json_response({"error": str(error)}, status=400)
    rows = [{**row, "time": row["time"].isoformat()} for row in frame.iter_rows(named=True)]
    return web.json_response(rows)


async def live(request: web.Request) -> web.StreamResponse:
    feed = request.app[FEED]
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    stream = feed.stream(
        request.query.get("symbol", ""), interval=request.query.get("interval", "1")
    )
    try:
        async with contextlib.aclosing(stream) as bars:
            async for bar in bars:
                event = {
                    "symbol": bar.symbol,
                    "time": bar.time.isoformat(),
                    "open": bar.open,
                    "high": bar.high,
                    "low": bar.low,
                    "close": bar.close,
                    "volume": bar.volume,
                }
                await response.write(f"data: {json.dumps(event)}\n\n".encode())
    except TvFeedError as error:
        await response.write(f"event: error\ndata: {json.dumps(str(error))}\n\n".encode())
    except ConnectionResetError:
        pass  # the client went away; leaving the loop removed its subscription
    return response


if __name__ == "__main__":
    web.run_app(create_app(), host="127.0.0.1", port=8080)
