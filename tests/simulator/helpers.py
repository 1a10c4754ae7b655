"""A raw protocol client for simulator tests: websockets + the sans-I/O protocol core only."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import msgspec
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tvfeed_async.protocol.framing import FrameDecoder, Heartbeat, encode_heartbeat
from tvfeed_async.protocol.messages import (
    ANONYMOUS_TOKEN,
    ClientMessage,
    SeriesCompleted,
    SeriesData,
    ServerMessage,
    chart_create_session,
    create_series,
    parse_message,
    resolve_symbol,
    set_auth_token,
    symbol_spec,
)
from tvfeed_async.testing.simulator import TvSimulator

T = TypeVar("T")
Item = ServerMessage | Heartbeat
TIMEOUT = 10.0


class RawClient:
    """One WebSocket to the simulator; decodes every message into typed packets.

    Attributes:
        frames: every WebSocket message received, as (raw text, decoded packets).
        echo: echo heartbeats back (as real clients do).
    """

    def __init__(self, socket: ClientConnection, *, echo: bool = True) -> None:
        self.socket = socket
        self.echo = echo
        self.decoder = FrameDecoder()
        self.frames: list[tuple[str, list[Item]]] = []
        self._backlog: list[Item] = []

    @classmethod
    async def open(cls, simulator: TvSimulator, *, echo: bool = True, **kwargs: Any) -> RawClient:
        socket = await connect(simulator.endpoints.ws_url, max_size=None, **kwargs)
        return cls(socket, echo=echo)

    async def close(self) -> None:
        await self.socket.close()

    async def send(self, *messages: ClientMessage | str) -> None:
        for message in messages:
            await self.socket.send(message if isinstance(message, str) else message.encode())

    async def frame(self, seconds: float = TIMEOUT) -> list[Item]:
        """The packets of the next WebSocket message (heartbeats echoed when asked)."""
        raw = await asyncio.wait_for(self.socket.recv(), seconds)
        text = raw if isinstance(raw, str) else raw.decode()
        items: list[Item] = []
        for packet in self.decoder.feed(text):
            if isinstance(packet, Heartbeat):
                if self.echo:
                    await self.socket.send(encode_heartbeat(packet))
                items.append(packet)
            else:
                items.append(parse_message(packet))
        self.frames.append((text, items))
        return items

    async def next(self, seconds: float = TIMEOUT) -> Item:
        while not self._backlog:
            self._backlog.extend(await self.frame(seconds))
        return self._backlog.pop(0)

    async def expect(self, kind: type[T], seconds: float = TIMEOUT) -> T:
        """Skip heartbeats and other messages until one of ``kind`` arrives."""
        while True:
            item = await self.next(seconds)
            if isinstance(item, kind):
                return item

    async def collect_until(self, kind: type[T], seconds: float = TIMEOUT) -> tuple[list[Item], T]:
        """Every packet before the first of ``kind``, and that one."""
        seen: list[Item] = []
        while True:
            item = await self.next(seconds)
            if isinstance(item, kind):
                return seen, item
            seen.append(item)

    async def quiet(self, seconds: float = 0.3) -> list[Item]:
        """Whatever arrives within ``seconds`` (used to check that nothing does)."""
        items = list(self._backlog)
        self._backlog.clear()
        try:
            while True:
                items.extend(await self.frame(seconds))
        except TimeoutError:
            return items

    async def read_until_closed(self) -> tuple[list[Item], ConnectionClosed]:
        """Everything received until the server closes the socket, and how it closed."""
        items = list(self._backlog)
        self._backlog.clear()
        while True:
            try:
                items.extend(await self.frame())
            except ConnectionClosed as closed:
                return items, closed

    async def start(self, token: str = ANONYMOUS_TOKEN) -> None:
        """Read the hello and authenticate."""
        await self.next()
        await self.send(set_auth_token(token))

    async def chart(
        self,
        symbol: str,
        interval: str,
        size: Any,
        *,
        chart: str = "cs_test",
        series: str = "s1",
        **spec: Any,
    ) -> tuple[SeriesData, SeriesCompleted]:
        """Create a chart session and a series; return its history and completion."""
        await self.send(
            chart_create_session(chart),
            resolve_symbol(chart, "sym_1", symbol_spec(symbol, **spec)),
            create_series(chart, series, "s1", "sym_1", interval, size),
        )
        return await self.history(series)

    async def history(self, series: str = "s1") -> tuple[SeriesData, SeriesCompleted]:
        """The next history of ``series`` up to its ``series_completed``; a history split over
        several ``timescale_update`` packets (the simulator's default beyond
        ``ServerConfig.history_chunk_bars``) is joined into one, rows in order."""
        first = await self.expect(SeriesData)
        rows = list(first.series[series].rows) if series in first.series else []
        while True:
            item = await self.next()
            if isinstance(item, SeriesCompleted):
                break
            if isinstance(item, SeriesData) and series in item.series:
                rows += item.series[series].rows
        if series in first.series:
            payload = msgspec.structs.replace(first.series[series], rows=rows)
            params = msgspec.structs.replace(first.p, series={**first.series, series: payload})
            first = msgspec.structs.replace(first, p=params)
        return first, item


def rows_of(data: SeriesData, series: str = "s1") -> list[tuple[Any, ...]]:
    """Wire bars as ``(time, o, h, l, c, v)`` tuples (volume None when absent)."""
    return [msgspec.structs.astuple(row.v) for row in data.series[series].rows]


def truth_tuples(
    simulator: TvSimulator, symbol: str, interval: str, **kwargs: Any
) -> list[tuple[Any, ...]]:
    """The simulator's ground truth as the same tuples."""
    return [tuple(row) for row in simulator.truth_rows(symbol, interval, **kwargs)]
