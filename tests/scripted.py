"""A TradingView-like WebSocket server whose answers each test writes.

The bundled simulator answers as it was written to; the real service (and the independent
servers our client is checked against) also do things it does not. A test here gives
:class:`ScriptedServer` a handler that sees every client packet of every connection and
answers with whatever frames it likes, so that each such behaviour can be reproduced on
loopback in a few lines. Framing is the project's own (``protocol.framing``), the socket is
``websockets``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from tvfeed_async import Endpoints
from tvfeed_async.protocol.framing import FrameDecoder, Heartbeat, encode_packet

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
NOW = T0 + 10 * 86_400  # the server's clock in these tests ("t" of its envelopes)

Handler = Callable[["Conn", str, list[Any]], Awaitable[None]]


def packet(method: str, params: list[Any], now: float = NOW) -> str:
    """One framed server packet with the envelope times real servers add."""
    return encode_packet(
        json.dumps({"m": method, "p": params, "t": int(now), "t_ms": int(now * 1000)})
    )


def rows(bars: list[tuple[int, float]], first_index: int = 0) -> list[dict[str, Any]]:
    """Wire rows of ``(open time, close)`` pairs (open/high/low derived, volume 10)."""
    return [
        {"i": first_index + n, "v": [t, close, close + 1, close - 1, close, 10.0]}
        for n, (t, close) in enumerate(bars)
    ]


def series_update(
    method: str, session: str, bars: list[tuple[int, float]], turnaround: str, first: int = 0
) -> str:
    """A ``timescale_update`` or ``du`` for series ``sds_1``."""
    body = {"s": rows(bars, first), "ns": {"d": "", "indexes": []}, "t": turnaround}
    return packet(method, [session, {"sds_1": body}])


def completed(session: str, turnaround: str, limit: bool = False) -> str:
    extra: dict[str, Any] = {"rt_update_period": 0}
    if limit:
        extra["data_completed"] = "limit"
    return packet("series_completed", [session, "sds_1", "streaming", turnaround, extra])


def resolved(session: str, info: dict[str, Any] | None = None) -> str:
    base = {
        "name": "BTCUSDT",
        "full_name": "BINANCE:BTCUSDT",
        "type": "spot",
        "timezone": "Etc/UTC",
        "session": "24x7",
        "pricescale": 100,
        "visible_plots_set": "ohlcv",
    }
    return packet("symbol_resolved", [session, "sds_sym_1", base if info is None else info])


@dataclass
class Conn:
    """One client connection, as the handler sees it."""

    socket: ServerConnection
    number: int
    received: list[tuple[str, list[Any]]] = field(default_factory=list)

    async def send(self, *texts: str) -> None:
        """Send the packets in one WebSocket message."""
        await self.socket.send("".join(texts))

    async def close(self) -> None:
        await self.socket.close()

    def sent(self, method: str) -> list[list[Any]]:
        """Params of every client packet of ``method`` on this connection."""
        return [params for name, params in self.received if name == method]


class ScriptedServer:
    """Answers each client packet with ``await handler(conn, method, params)``."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections: list[Conn] = []
        self._server: Server | None = None

    async def __aenter__(self) -> ScriptedServer:
        self._server = await serve(self._serve, "127.0.0.1", 0, max_size=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def endpoints(self) -> Endpoints:
        assert self._server is not None
        port = self._server.sockets[0].getsockname()[1]
        return Endpoints(ws_url=f"ws://127.0.0.1:{port}/socket.io/websocket")

    def all_sent(self, method: str) -> list[list[Any]]:
        return [params for conn in self.connections for params in conn.sent(method)]

    async def _serve(self, socket: ServerConnection) -> None:
        conn = Conn(socket, len(self.connections) + 1)
        self.connections.append(conn)
        decoder = FrameDecoder()
        hello = {"session_id": f"scripted_{conn.number}", "timestamp": NOW, "release": "x"}
        try:
            await socket.send(encode_packet(json.dumps(hello)))
            async for message in socket:
                for item in decoder.feed(message):
                    if isinstance(item, Heartbeat):
                        continue
                    decoded = json.loads(item)
                    method, params = decoded["m"], decoded["p"]
                    conn.received.append((method, params))
                    await self.handler(conn, method, params)
        except ConnectionClosed:
            pass


async def answer_history(
    conn: Conn,
    method: str,
    params: list[Any],
    bars: list[tuple[int, float]],
) -> None:
    """The ordinary answers: symbol_resolved, then the bars and series_completed."""
    if method == "resolve_symbol":
        await conn.send(resolved(params[0]))
    elif method == "create_series":
        await conn.send(
            series_update("timescale_update", params[0], bars, params[2]),
            completed(params[0], params[2]),
        )


async def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    """Poll until ``condition()`` holds (AssertionError after ``seconds``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not condition():
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)
