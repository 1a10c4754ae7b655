"""An independently written TradingView-protocol history server, for the history benchmark.

It imports nothing from ``tvfeed_async`` (not even its framing) and shares no code with the
bundled simulator, so the client is measured against a server whose habits are those the
real service is documented to have, not those of the simulator it was developed with.
Started by ``history_throughput.py --server independent`` in its own process; by hand::

    python benchmarks/_history_server.py [--port 0] [--symbols 50] [--depth 20000]
        [--tls-cert CERT.pem --tls-key KEY.pem]

prints ``ws_url=ws://127.0.0.1:<port>/socket.io/websocket`` once it listens. With a
certificate and key it also serves ``wss://`` (TLS, as the real service only does) on a
second port of the same process, printed as ``wss_url=`` on the same line.

What it does (the habits of the real service that open clients and captured traffic show):

* the hello packet (a JSON object without ``m``) first, then a heartbeat ``~h~<n>`` every
  10 s;
* packets ``~m~<len>~m~<payload>`` with the length in UTF-16 code units (JavaScript's
  ``String.length``); several packets per incoming message are accepted, and so are binary
  frames;
* ``set_auth_token`` (any token: no signature check), ``chart_create_session``,
  ``chart_delete_session``, ``switch_timezone``, ``set_locale``, ``set_data_quality``
  silently: the service acknowledges no successful command;
* ``resolve_symbol`` with ``=``JSON or a bare symbol: ``symbol_resolved`` with the fields of
  a 2026 reply, or ``symbol_error`` ``invalid symbol``;
* ``create_series`` / ``modify_series`` with a count or ``r,<from>:<to>`` (unix seconds):
  ``series_loading``, then **one** ``timescale_update`` with at most the per-request cap
  (5,000, the anonymous and free-plan cap) of the newest bars, with the per-bar ``changes``
  and ``marks`` tick-mark meta, and ``series_completed`` in the same WebSocket message;
  ``data_completed: "limit"`` when the count asked for more than the cap;
* the newest bar is forming (its minute contains the moment of the answer: the tables grow
  by a bar as the clock enters the next one, as a live market's do), and a ``du`` revising
  it follows ``series_completed``, as live updates do after history;
* ``request_more_data``: the older bars, **plus the 3 oldest bars already sent**, re-sent
  with new indices (the service "sometimes sends already received candles" after paging,
  and re-bases indices when it prepends older bars), then ``series_completed``; a page
  with nothing older adds 0 bars;
* ``critical_error`` ``invalid parameters`` for a malformed series request, and
  ``unsupported method`` for quote, study and replay methods (it serves history only);
* permessage-deflate when the client offers it, with the ``websockets`` defaults
  (``compression="deflate"``), none when it does not.

No server-side caching: the bars are kept as a table per symbol (the service's store), and
every answer's JSON, framing and compression are built when it is asked for.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import ssl
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

CAP = 5_000
RESEND = 3
HEARTBEAT_SECONDS = 10.0
MAX_MESSAGE = 64 * 1024 * 1024
PATH = "/socket.io/websocket"


def packet(payload: str) -> str:
    """``~m~<len>~m~<payload>``, the length counted in UTF-16 code units."""
    units = len(payload.encode("utf-16-le")) // 2 if not payload.isascii() else len(payload)
    return f"~m~{units}~m~{payload}"


def split_packets(data: str) -> list[str]:
    """The payloads of one incoming message, read by their lengths."""
    payloads = []
    position = 0
    while data.startswith("~m~", position):
        end = data.index("~m~", position + 3)
        length = int(data[position + 3 : end])
        start = end + 3
        payloads.append(data[start : start + length])
        position = start + length
    return payloads


def _envelope(method: str, params: list[Any]) -> str:
    now = time.time()
    message = {"m": method, "p": params, "t": int(now), "t_ms": int(now * 1000)}
    return json.dumps(message, separators=(",", ":"))


@dataclass
class BarTable:
    """One symbol's bars for one interval, oldest first: open times and the encoded
    ``[time, open, high, low, close, volume]`` arrays."""

    times: list[int]
    values: list[str]
    weights: list[int]


def _price(seed: int, t: int) -> float:
    phase = (seed % 997) / 97.0
    return 100.0 + seed % 50 + 4.0 * math.sin(t / 5400.0 + phase) + 0.7 * math.sin(t / 310.0)


def make_table(symbol: str, step: int, newest: int, depth: int) -> BarTable:
    """``depth`` bars of ``step`` seconds ending with the bar that opens at ``newest``."""
    table = BarTable([], [], [])
    extend_table(table, symbol, step, [newest - step * k for k in range(depth - 1, -1, -1)])
    return table


def extend_table(table: BarTable, symbol: str, step: int, times: list[int]) -> None:
    """Append the bars opening at ``times`` (ascending, after the table's newest)."""
    seed = zlib.crc32(symbol.encode())
    for t in times:
        open_ = _price(seed, t)
        close = _price(seed, t + step)
        wiggle = 0.05 + ((seed ^ t) % 13) / 100.0
        high = max(open_, close) + wiggle
        low = min(open_, close) - wiggle
        volume = 10.0 + (seed * 31 + t) % 997
        table.times.append(t)
        table.values.append(
            f"[{t},{round(open_, 2)},{round(high, 2)},{round(low, 2)},{round(close, 2)},{volume}]"
        )
        # Tick-mark weights as the 2019 capture shows them (21/22/30 intraday, 40 for a day).
        table.weights.append(
            40 if t % 86_400 == 0 else 30 if t % 3600 == 0 else 22 if t % 1800 == 0 else 21
        )


def interval_seconds(interval: str) -> int | None:
    """Seconds per bar for minute counts and ``nH``; None for anything else."""
    if interval.isdigit() and int(interval) > 0:
        return int(interval) * 60
    if interval.endswith("H") and interval[:-1].isdigit() and int(interval[:-1]) > 0:
        return int(interval[:-1]) * 3600
    return None


@dataclass
class Series:
    """What one series of a chart session has loaded: the index range of the table."""

    symbol: str
    interval: str
    turnaround: str
    first: int = 0  # index (in the table) of the oldest bar sent
    end: int = 0  # one past the newest bar sent


@dataclass
class Chart:
    symbols: dict[str, str] = field(default_factory=dict)  # symbolRef -> symbol
    series: dict[str, Series] = field(default_factory=dict)


class HistoryServer:
    def __init__(self, symbols: list[str], depth: int) -> None:
        self.symbols = set(symbols)
        self.depth = depth
        self.tables: dict[tuple[str, int], BarTable] = {}
        for symbol in symbols:
            self.table(symbol, 60)

    def table(self, symbol: str, step: int) -> BarTable:
        """The symbol's bars up to the one that contains this moment, which is forming: as
        the clock enters a new bar, the table grows by it (a run longer than one bar must
        not turn the newest bar into a closed one, as a frozen table would)."""
        now = int(time.time())
        newest = now - now % step
        key = (symbol, step)
        table = self.tables.get(key)
        if table is None:
            table = self.tables[key] = make_table(symbol, step, newest, self.depth)
        elif table.times[-1] < newest:
            extend_table(table, symbol, step, list(range(table.times[-1] + step, newest + 1, step)))
        return table

    def hello(self) -> str:
        now = time.time()
        info = {
            "session_id": "<0.1234.5678>_bench-charts-1-webchart-1@bench-compute-1",
            "timestamp": int(now),
            "timestampMs": int(now * 1000),
            "release": "registry.xtools.tv/tvbs_release/webchart:release_209-10",
            "studies_metadata_hash": "0" * 40,
            "auth_scheme_vsn": 2,
            "protocol": "json",
            "via": "127.0.0.1:443",
            "javastudies": ["3.64"],
        }
        return packet(json.dumps(info, separators=(",", ":")))

    async def handle(self, socket: ServerConnection) -> None:
        await socket.send(self.hello())
        charts: dict[str, Chart] = {}
        beats = asyncio.create_task(self.heartbeats(socket))
        try:
            async for data in socket:
                text = data if isinstance(data, str) else data.decode()
                for payload in split_packets(text):
                    if payload.startswith("~h~"):
                        continue
                    message = json.loads(payload)
                    await self.dispatch(socket, charts, message.get("m"), message.get("p", []))
        finally:
            beats.cancel()

    async def heartbeats(self, socket: ServerConnection) -> None:
        count = 0
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            count += 1
            await socket.send(packet(f"~h~{count}"))

    async def dispatch(
        self, socket: ServerConnection, charts: dict[str, Chart], method: str, p: list[Any]
    ) -> None:
        if method in ("set_auth_token", "set_locale", "set_data_quality", "switch_timezone"):
            return
        if method == "chart_create_session":
            charts[p[0]] = Chart()
        elif method == "chart_delete_session":
            charts.pop(p[0], None)
        elif method == "resolve_symbol" and p and p[0] in charts:
            await self.resolve(socket, charts[p[0]], p)
        elif method in ("create_series", "modify_series") and p and p[0] in charts:
            await self.series_request(socket, charts[p[0]], method, p)
        elif method == "request_more_data" and p and p[0] in charts:
            await self.more(socket, charts[p[0]], p)
        elif method == "remove_series" and len(p) >= 2 and p[0] in charts:
            charts[p[0]].series.pop(p[1], None)
        else:
            session = p[0] if p and isinstance(p[0], str) else ""
            await self.critical(socket, session, "unsupported method", method, p)

    async def critical(
        self, socket: ServerConnection, session: str, text: str, method: str, p: list[Any]
    ) -> None:
        # The echo omits the session id and prints strings unquoted.
        args = ", ".join(str(item) for item in p[1:])
        await socket.send(
            packet(
                _envelope("critical_error", [session, text, f'method: {method}. args: "[{args}]"'])
            )
        )

    async def resolve(self, socket: ServerConnection, chart: Chart, p: list[Any]) -> None:
        session, ref, spec = p[0], p[1], p[2]
        symbol = json.loads(spec[1:]).get("symbol") if spec.startswith("=") else spec
        if symbol not in self.symbols:
            await socket.send(packet(_envelope("symbol_error", [session, ref, "invalid symbol"])))
            return
        chart.symbols[ref] = symbol
        exchange, ticker = symbol.split(":", 1)
        info = {
            "name": ticker,
            "full_name": symbol,
            "pro_name": symbol,
            "base_name": [symbol],
            "description": f"{ticker} benchmark symbol",
            "exchange": exchange,
            "listed_exchange": exchange,
            "type": "spot",
            "typespecs": ["crypto"],
            "currency_code": "USDT",
            "pricescale": 100,
            "minmov": 1,
            "minmove2": 0,
            "fractional": False,
            "session": "24x7",
            "session_display": "24x7",
            "timezone": "Etc/UTC",
            "has_intraday": True,
            "is_tradable": True,
            "visible_plots_set": "ohlcv",
            "pro_perm": "",
            "provider_id": "bench",
        }
        await socket.send(packet(_envelope("symbol_resolved", [session, ref, info])))

    async def series_request(
        self, socket: ServerConnection, chart: Chart, method: str, p: list[Any]
    ) -> None:
        session = p[0]
        try:
            series_id, turnaround, ref, interval = p[1], p[2], p[3], str(p[4])
            span = p[5] if len(p) > 5 else ""
            step = interval_seconds(interval)
            if method == "modify_series" and series_id not in chart.series:
                raise ValueError(series_id)
            if method == "modify_series" and span == "":
                span = chart.series[series_id].end - chart.series[series_id].first
            if ref not in chart.symbols or step is None:
                raise ValueError(ref)
            table = self.table(chart.symbols[ref], step)
            if isinstance(span, int) and span > 0:
                end = len(table.times)
                first = max(0, end - min(span, CAP))
                limited = span > CAP
            elif isinstance(span, str) and span.startswith("r,"):
                start_s, stop_s = (int(float(x)) for x in span[2:].split(":"))
                first = next(
                    (i for i, t in enumerate(table.times) if t >= start_s), len(table.times)
                )
                end = next((i for i, t in enumerate(table.times) if t > stop_s), len(table.times))
                limited = end - first > CAP
                first = max(first, end - CAP)
            else:
                raise ValueError(span)
        except (IndexError, ValueError, TypeError, KeyError):
            await self.critical(socket, session, "invalid parameters", method, p)
            return
        series = Series(chart.symbols[ref], interval, turnaround, first, end)
        chart.series[series_id] = series
        await socket.send(packet(_envelope("series_loading", [session, series_id, turnaround])))
        update = self.timescale_update(
            session, series_id, series, table, first, end, with_meta=True
        )
        done = self.completed(session, series_id, turnaround, limited)
        await socket.send(update + done)
        if end == len(table.times) and end > first:
            await socket.send(self.forming_update(session, series_id, series, table))

    async def more(self, socket: ServerConnection, chart: Chart, p: list[Any]) -> None:
        session = p[0]
        try:
            series_id, count = p[1], int(p[2])
            series = chart.series[series_id]
        except (IndexError, ValueError, TypeError, KeyError):
            await self.critical(socket, session, "invalid parameters", "request_more_data", p)
            return
        table = self.table(series.symbol, interval_seconds(series.interval) or 60)
        older = max(0, series.first - min(max(count, 0), CAP))
        # The page carries the older bars and re-sends the oldest ones already delivered.
        stop = min(series.end, series.first + RESEND) if older < series.first else series.first
        limited = count > CAP
        series.first = older
        update = self.timescale_update(
            session, series_id, series, table, older, stop, with_meta=False
        )
        await socket.send(update + self.completed(session, series_id, series.turnaround, limited))

    def timescale_update(
        self,
        session: str,
        series_id: str,
        series: Series,
        table: BarTable,
        first: int,
        stop: int,
        *,
        with_meta: bool,
    ) -> str:
        # Indices count from the oldest bar the series holds (re-based after a page).
        base = series.first
        values = table.values
        rows = ",".join([f'{{"i":{k - base},"v":{values[k]}}}' for k in range(first, stop)])
        close_time = (
            table.times[stop - 1] + (interval_seconds(series.interval) or 60) if stop > first else 0
        )
        body = (
            f'{{"node":"bench-charts-1-series-1","s":[{rows}],"ns":{{"d":"","indexes":[]}},'
            f'"t":"{series.turnaround}","lbs":{{"bar_close_time":{close_time}}}}}'
        )
        if with_meta:
            times = table.times
            weights = table.weights
            changes = ",".join([str(times[k]) for k in range(first, stop)])
            marks = ",".join([f"[{weights[k]},{times[k]},{k - base}]" for k in range(first, stop)])
            meta = (
                f'{{"index":{stop - base},"zoffset":0,"changes":[{changes}],'
                f'"marks":[{marks}],"index_diff":[]}}'
            )
        else:
            meta = '{"index":0,"zoffset":0,"changes":[],"marks":[],"index_diff":[]}'
        now = time.time()
        payload = (
            f'{{"m":"timescale_update","p":["{session}",{{"{series_id}":{body}}},{meta}],'
            f'"t":{int(now)},"t_ms":{int(now * 1000)}}}'
        )
        return packet(payload)

    def completed(self, session: str, series_id: str, turnaround: str, limited: bool) -> str:
        extra: dict[str, Any] = {"rt_update_period": 0}
        if limited:
            extra["data_completed"] = "limit"
        return packet(
            _envelope("series_completed", [session, series_id, "streaming", turnaround, extra])
        )

    def forming_update(self, session: str, series_id: str, series: Series, table: BarTable) -> str:
        """A ``du`` revising the forming (newest) bar, as follows history on the service."""
        newest = len(table.times) - 1
        bar = json.loads(table.values[newest])
        bar[4] = round(bar[4] + 0.01, 2)
        bar[2] = max(bar[2], bar[4])
        bar[5] = bar[5] + 1.0
        row = {"i": newest - series.first, "v": bar}
        body = {"s": [row], "ns": {"d": "", "indexes": "nochange"}, "t": series.turnaround}
        return packet(_envelope("du", [session, {series_id: body}]))


async def main(
    port: int, symbols: list[str], depth: int, tls: tuple[str, str] | None = None
) -> None:
    server = HistoryServer(symbols, depth)
    options: dict[str, Any] = {
        "max_size": MAX_MESSAGE,
        "compression": "deflate",
        "ping_interval": None,
    }
    async with contextlib.AsyncExitStack() as stack:
        listening = await stack.enter_async_context(
            serve(server.handle, "127.0.0.1", port, **options)
        )
        line = f"ws_url=ws://127.0.0.1:{next(iter(listening.sockets)).getsockname()[1]}{PATH}"
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            # The same tables behind both ports: one store, reached with or without TLS.
            secure = await stack.enter_async_context(
                serve(server.handle, "127.0.0.1", 0, ssl=context, **options)
            )
            secure_port = next(iter(secure.sockets)).getsockname()[1]
            line += f" wss_url=wss://127.0.0.1:{secure_port}{PATH}"
        print(line, flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--symbols", type=int, default=50)
    parser.add_argument("--depth", type=int, default=20_000, help="bars kept per symbol")
    parser.add_argument("--tls-cert", help="PEM certificate: also serve wss:// on a second port")
    parser.add_argument("--tls-key", help="PEM private key of --tls-cert")
    arguments = parser.parse_args()
    names = [f"BINANCE:SIM{index:03d}USDT" for index in range(1, arguments.symbols + 1)]
    tls = (arguments.tls_cert, arguments.tls_key) if arguments.tls_cert else None
    asyncio.run(main(arguments.port, names, arguments.depth, tls))
