"""The simulator of the scale soak (``scale_soak.py``), in its own process or in the caller's.

Started by ``scale_soak.py`` (``python benchmarks/_scale_server.py --series-symbols N
--quote-symbols M --session-rate R --session-burst B``); not meant to be run by hand. It runs a
``TvSimulator`` on a virtual clock with a catalogue of its own (:func:`build_catalogue`), the
service's limits on (``ServerConfig(session_rate=R, session_burst=B,
enforce_max_connections=True)``, the default 200 chart sessions per socket), prints one JSON
line with the WebSocket URL and a paid-plan token, then answers JSON commands, one per line on
stdin, with one JSON line on stdout (:func:`answer`; ``{"cmd": "quit"}`` stops it). Before it
listens it builds the truth of every symbol (:func:`prime`).

``{"cmd": "advance", "seconds": S}``
    ``sim.clock.advance(S)``; answers the new virtual time.
``{"cmd": "fault", "name": F}``
    ``drop`` (``faults.drop_open()``), ``stall`` (``faults.stall_open()``), ``restart``
    (``await sim.restart()``) or ``refuse`` (``faults.refuse_upgrades(3)`` then
    ``drop_open()``: the next three upgrades are refused with HTTP ``refuse_status``, 503 unless
    the command says otherwise; the client treats a 429 as a rate limit and halves its session
    rates, see ``scale_soak.py``).
``{"cmd": "live"}``
    Live series (chart series with a forming bar) and quote symbols the simulator holds on
    open connections, in all and per connection, and the connections opened so far.
``{"cmd": "truth", "keys": [[symbol, interval, start, end], ...]}``
    Per key, the closed truth bars opening in ``[start, end)`` as
    ``[time, open, high, low, close, volume]`` lists.
``{"cmd": "stats"}``
    The simulator's counters (``sim.stats``).

The same :func:`answer` serves an in-process simulator (``scale_soak.LocalSim``, used by the
small test), so both modes run the same code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from tvfeed_async.testing import TvSimulator
from tvfeed_async.testing.catalogue import Catalogue, _crypto, default_catalogue
from tvfeed_async.testing.clock import DEFAULT_START
from tvfeed_async.testing.ws_server import ServerConfig, quote_values

#: Virtual start: the simulator's default, Monday 2026-01-05 14:00 UTC.
START = DEFAULT_START


def series_symbol(index: int) -> str:
    return f"BINANCE:SC{index:04d}USDT"


def quote_symbol(index: int) -> str:
    return f"BINANCE:QT{index:05d}USDT"


def build_catalogue(series_symbols: int, quote_symbols: int) -> Catalogue:
    """The default catalogue plus ``series_symbols`` and ``quote_symbols`` generated crypto
    pairs (prices spread between 1 and ~1,000, so every symbol's truth differs)."""
    extra = [
        _crypto(series_symbol(n).split(":")[1], f"Series {n}", 1.0 + (n * 7919) % 997)
        for n in range(series_symbols)
    ]
    extra += [
        _crypto(quote_symbol(n).split(":")[1], f"Quote {n}", 1.0 + (n * 104729) % 991)
        for n in range(quote_symbols)
    ]
    return Catalogue([*default_catalogue(), *extra])


def make_simulator(
    series_symbols: int,
    quote_symbols: int,
    session_rate: float,
    session_burst: int,
    heartbeat: float,
) -> TvSimulator:
    config = ServerConfig(
        session_rate=session_rate,
        session_burst=session_burst,
        enforce_max_connections=True,
        heartbeat_interval=heartbeat,
    )
    return TvSimulator(
        start=START,
        realtime=False,
        catalogue=build_catalogue(series_symbols, quote_symbols),
        config=config,
        http_port=None,
        # The soak reads at most a few hours of 1-minute bars per series; the default 50,000
        # bars of history per series would only cost the server time and memory.
        history_bars=2_000,
    )


def prime(sim: TvSimulator, series_symbols: int, quote_symbols: int) -> float:
    """Build the truth every series and quote will read, before any client connects; the
    seconds it took. Built on first use instead, 10,000 quote symbols cost the server about
    4 ms each inside its event loop (a watchlist of 500 blocks it for some 2 s), and with
    every watchlist on one socket the loop stopped long enough for every other socket's idle
    timeout to fire: the figures would be the simulator's, not the client's."""
    started = time.perf_counter()
    now = sim.clock.now()
    truth = sim.ground_truth
    for n in range(series_symbols):
        for interval in ("1", "5", "15", "60"):
            truth.series(series_symbol(n), interval)
    for n in range(quote_symbols):
        info = sim.catalogue.get(quote_symbol(n))
        assert info is not None
        quote_values(truth, info, now, None)
    return time.perf_counter() - started


def live_counts(sim: TvSimulator) -> dict[str, Any]:
    """Live series and quote symbols on open connections, in all and per connection."""
    per_connection_series: list[int] = []
    per_connection_quotes: list[int] = []
    for connection in sim.hub.connections.values():
        if connection.closing:
            continue
        live = 0
        for chart in connection._charts.values():
            for entry in chart.series.values():
                if entry.live_slot is not None and not entry.cancelled:
                    live += 1
        per_connection_series.append(live)
        per_connection_quotes.append(
            sum(
                sum(1 for symbol in session.symbols.values() if symbol is not None)
                for session in connection._quotes.values()
            )
        )
    series, quotes = sum(per_connection_series), sum(per_connection_quotes)
    return {
        "series": series,
        "quotes": quotes,
        "connections_opened": sim.stats.connections_opened,
        "series_per_connection": per_connection_series,
        "quotes_per_connection": per_connection_quotes,
    }


async def fault(sim: TvSimulator, name: str, refuse_status: int = 503) -> int:
    faults = sim.faults
    if name == "drop":
        return faults.drop_open()
    if name == "stall":
        return faults.stall_open()
    if name == "restart":
        return await sim.restart()
    if name == "refuse":
        faults.refuse_upgrades(3, status=refuse_status)
        return faults.drop_open()
    raise ValueError(f"unknown fault {name!r}")


def stats(sim: TvSimulator) -> dict[str, Any]:
    s = sim.stats
    return {
        "connections_opened": s.connections_opened,
        "connections_closed": s.connections_closed,
        "upgrades_refused": s.upgrades_refused,
        "chart_sessions_created": s.chart_sessions_created,
        "quote_sessions_created": s.quote_sessions_created,
        "sessions_rate_limited": s.sessions_rate_limited,
        "protocol_errors": s.protocol_errors,
        "critical_errors": s.critical_errors,
        "du_sent": s.du_sent,
        "messages_sent": s.messages_sent,
        "methods": dict(s.methods),
    }


async def answer(sim: TvSimulator, command: dict[str, Any]) -> dict[str, Any]:
    name = command.get("cmd")
    if name == "advance":
        await sim.clock.advance(float(command["seconds"]))
        return {"now": sim.clock.now()}
    if name == "fault":
        status = int(command.get("refuse_status", 503))
        return {"affected": await fault(sim, str(command["name"]), status)}
    if name == "live":
        return live_counts(sim)
    if name == "truth":
        bars = []
        for symbol, interval, start, end in command["keys"]:
            frame = sim.truth(symbol, interval, start=start, end=end)
            bars.append(
                [
                    [int(row["time"].timestamp())]
                    + [row[name] for name in ("open", "high", "low", "close", "volume")]
                    for row in frame.iter_rows(named=True)
                ]
            )
        return {"bars": bars}
    if name == "stats":
        return stats(sim)
    if name == "now":
        return {"now": sim.clock.now()}
    return {"error": f"unknown command {name!r}"}


async def serve(arguments: argparse.Namespace) -> None:
    sim = make_simulator(
        arguments.series_symbols,
        arguments.quote_symbols,
        arguments.session_rate,
        arguments.session_burst,
        arguments.heartbeat,
    )
    primed = prime(sim, arguments.series_symbols, arguments.quote_symbols)
    async with sim:
        hello = {
            "ws_url": sim.endpoints.ws_url,
            "token": sim.issue_token("pro_premium"),
            "primed_seconds": primed,
        }
        print(json.dumps(hello), flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**26)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            command = json.loads(line)
            if command.get("cmd") == "quit":
                return
            try:
                reply = await answer(sim, command)
            except Exception as error:
                reply = {"error": repr(error)}
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series-symbols", type=int, required=True)
    parser.add_argument("--quote-symbols", type=int, required=True)
    parser.add_argument("--session-rate", type=float, required=True)
    parser.add_argument("--session-burst", type=int, required=True)
    parser.add_argument("--heartbeat", type=float, default=2.0)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
