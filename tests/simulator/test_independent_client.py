"""A second, independent client, written from the protocol description alone, gets the truth.

Nothing from tvfeed_async's protocol core is used here: framing, heartbeats and message
handling are re-implemented in a few lines, the way another project would write them against
the real service (framing, heartbeats, auth, chart sessions and their messages).
"""

from __future__ import annotations

import asyncio
import json
import random
import string

from websockets.asyncio.client import connect

from tvfeed_async.testing.simulator import TvSimulator


def frame(payload: str) -> str:
    # Client JSON is ASCII-only, so the length in characters is the length in UTF-16 units.
    return f"~m~{len(payload)}~m~{payload}"


def unframe(text: str) -> list[str]:
    """Length-driven split; lengths are UTF-16 code units."""
    units = text.encode("utf-16-le")
    packets, position = [], 0
    while position < len(units):
        header = units[position:].decode("utf-16-le")
        assert header.startswith("~m~")
        digits = header[3 : header.index("~m~", 3)]
        start = position + 2 * (3 + len(digits) + 3)
        stop = start + 2 * int(digits)
        packets.append(units[start:stop].decode("utf-16-le"))
        position = stop
    return packets


def session_id(prefix: str) -> str:
    return prefix + "_" + "".join(random.choice(string.ascii_lowercase) for _ in range(12))


async def fetch_bars(url: str, symbol: str, interval: str, count: int) -> list[list[float]]:
    chart = session_id("cs")
    bars: list[list[float]] = []
    async with connect(url, origin="https://www.tradingview.com") as socket:  # type: ignore[arg-type]

        async def send(method: str, *params: object) -> None:
            await socket.send(frame(json.dumps({"m": method, "p": list(params)})))

        await send("set_auth_token", "unauthorized_user_token")
        await send("chart_create_session", chart, "")
        await send(
            "resolve_symbol",
            chart,
            "symbol_1",
            "=" + json.dumps({"symbol": symbol, "adjustment": "splits"}),
        )
        await send("create_series", chart, "s1", "s1", "symbol_1", interval, count)
        while True:
            message = await asyncio.wait_for(socket.recv(), 10)
            for packet in unframe(str(message)):
                if packet.startswith("~h~"):
                    await socket.send(frame(packet))
                    continue
                data = json.loads(packet)
                method = data.get("m")
                if method == "timescale_update":
                    bars.extend(row["v"] for row in data["p"][1]["s1"]["s"])
                elif method == "series_completed":
                    return bars
                elif method in ("symbol_error", "series_error", "critical_error"):
                    raise AssertionError(data)


async def test_an_independent_client_gets_the_truth() -> None:
    async with TvSimulator(http_port=None) as sim:
        bars = await fetch_bars(sim.endpoints.ws_url, "NASDAQ:AAPL", "60", 200)
        # 09:00 New York: every bar is closed, so all 200 are ground truth.
        truth = sim.truth("NASDAQ:AAPL", "60", n_bars=200)
        assert len(bars) == 200
        assert [int(bar[0]) for bar in bars] == [int(t.timestamp()) for t in truth["time"]]
        expected = truth.select("open", "high", "low", "close", "volume").rows()
        assert [tuple(bar[1:6]) for bar in bars] == expected


async def test_an_independent_client_reads_non_ascii_and_volumeless_symbols() -> None:
    async with TvSimulator(http_port=None) as sim:
        await sim.clock.advance(86_400 * 2)
        for symbol in ("TVC:ROCKET", "KRX:005930"):
            bars = await fetch_bars(sim.endpoints.ws_url, symbol, "1D", 50)
            truth = sim.truth(symbol, "1D", n_bars=50)
            last_closed = int(truth["time"][-1].timestamp())
            closed = [bar for bar in bars if int(bar[0]) <= last_closed]
            assert len(closed) >= 49
            assert [bar[4] for bar in closed] == truth["close"].to_list()[-len(closed) :]
            assert all(len(bar) == (5 if symbol == "TVC:ROCKET" else 6) for bar in bars)
