"""A Django Channels WebSocket consumer fed from the Redis stream the recorder writes.

The recorder (``tvfeed-async record BINANCE:BTCUSDT --to redis://127.0.0.1:6379/0``) appends
each closed bar to ``tv:bars:{symbol}:{interval}`` with the bar's open time in milliseconds as
the entry id. This consumer reads that stream with ``XREAD BLOCK`` and sends every bar to its
browser as JSON. Because ids are open times, a client that reconnects with ``?after=<ms>`` (the
``id`` of the last bar it got) resumes exactly where it left off: nothing lost, nothing twice,
however often the recorder, Redis or the browser restarted.

Wire it into a Channels project::

    # routing.py
    from django.urls import path
    from record_django_channels import BarConsumer
    websocket_urlpatterns = [path("ws/bars/<str:symbol>/<str:interval>/", BarConsumer.as_asgi())]

    pip install channels "redis>=5"
    export REDIS_URL=redis://127.0.0.1:6379/0

Messages sent to the browser: ``{"id": "1767621600000-0", "time": 1767621600, "open": ...,
"high": ..., "low": ..., "close": ..., "volume": ...}`` (``volume`` null for symbols without).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from typing import Any
from urllib.parse import parse_qs

import redis.asyncio as redis
from channels.generic.websocket import AsyncWebsocketConsumer

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
STREAM_KEY = "tv:bars:{symbol}:{interval}"
BLOCK_MS = 5_000
BATCH = 500


def bar_message(entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    """One stream entry as the JSON object sent to the browser."""
    volume = fields.get("volume", "")
    return {
        "id": entry_id,
        "time": int(entry_id.split("-", 1)[0]) // 1000,
        "open": float(fields["open"]),
        "high": float(fields["high"]),
        "low": float(fields["low"]),
        "close": float(fields["close"]),
        "volume": float(volume) if volume else None,
    }


class BarConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    """Sends ``tv:bars:{symbol}:{interval}`` to one browser, from ``?after=<ms>`` (default:
    only new bars; ``?after=0`` replays the whole stream)."""

    redis_client: redis.Redis
    reader: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        route = self.scope["url_route"]["kwargs"]
        self.stream_name = STREAM_KEY.format(symbol=route["symbol"], interval=route["interval"])
        query = parse_qs(self.scope.get("query_string", b"").decode())
        after = query.get("after", ["$"])[0]
        # "$" means "entries added from now on"; an open time resumes after that bar.
        self.last_id = after if after == "$" else f"{int(after)}-0"
        self.redis_client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
        await self.accept()
        # Owned by this consumer: cancelled and awaited in disconnect().
        self.reader = asyncio.create_task(self.forward())

    async def disconnect(self, code: int) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader
        await self.redis_client.aclose()

    async def forward(self) -> None:
        """XREAD BLOCK in a loop; each entry goes to the browser in id (= time) order."""
        while True:
            try:
                replies = await self.redis_client.xread(
                    {self.stream_name: self.last_id}, count=BATCH, block=BLOCK_MS
                )
            except (redis.ConnectionError, redis.TimeoutError):
                await asyncio.sleep(1.0)  # Redis restarting: resume from the same id
                continue
            for _stream, entries in replies:
                for entry_id, fields in entries:
                    await self.send(text_data=json.dumps(bar_message(entry_id, fields)))
                    self.last_id = entry_id
