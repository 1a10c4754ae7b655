"""The simulator in its own process, with a control channel for the streaming benchmark.

Started by ``stream_throughput.py``; not meant to be run by hand. It runs
``TvSimulator(config=ServerConfig(max_chart_sessions=5000, heartbeat_interval=...))`` on a virtual
clock that is never advanced (so the simulator's own live updates stay silent), prints one JSON
line with the WebSocket URL and a paid-plan token, then reads JSON commands from stdin, one per
line, and answers each with one JSON line on stdout:

``{"cmd": "series"}``
    How many live series (chart sessions with a forming bar) the simulator holds.
``{"cmd": "run", "rate": R, "seconds": S, "per_message": P, "max_updates": M}``
    Push forming-bar updates (``du`` packets built by the simulator's own ``_Series._du``, so
    the wire format is the simulator's) round-robin over every live series, ``P`` packets per
    WebSocket message, at ``R`` packets/s for ``S`` seconds (``R`` = 0: as fast as the socket
    takes them, for at most ``M`` packets). Each update carries the wall-clock send time
    (``time.time()``, seconds) in its volume field: the simulator's ``t_ms`` is virtual time,
    and ``Bar`` does not expose the envelope anyway. The stamp is taken when the packet is
    built, right before it is queued to the simulator's writer task, so the latency figure
    includes the server's own queueing, WebSocket framing and compression.
    The answer holds the packets and messages sent, wall time and this process's CPU time.
``{"cmd": "quit"}``
    Stop.

No library file is changed: the launcher only reads the simulator's connection state and calls
its packet builder and ``SimConnection.emit``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

from tvfeed_async.testing import TvSimulator
from tvfeed_async.testing.ws_server import ServerConfig

OUTBOX_HIGH_WATER = 64


def live_series(sim: TvSimulator) -> list[Any]:
    """Every live series of every open connection (they have a forming slot)."""
    found = []
    for connection in sim.hub.connections.values():
        if connection.closing:
            continue
        for chart in connection._charts.values():
            for series in chart.series.values():
                if series.live_slot is not None and not series.cancelled:
                    found.append(series)
    return found


class Emitter:
    """Builds stamped forming updates round-robin over the live series."""

    def __init__(self, series: list[Any]) -> None:
        self.items = []
        for entry in series:
            slot = entry.live_slot
            row = entry.truth.revision(slot, 0)
            self.items.append((entry, entry.live_index, slot[1], slot[2], row))
        self.position = 0
        self.sequence = 0

    def packets(self, count: int) -> dict[Any, list[str]]:
        """``count`` packets grouped by connection, in round-robin order."""
        items = self.items
        size = len(items)
        by_connection: dict[Any, list[str]] = {}
        for _ in range(count):
            series, index, open_time, close_time, row = items[self.position]
            self.position = (self.position + 1) % size
            self.sequence += 1
            wiggle = (self.sequence % 17) * 0.01
            close = round(row[4] + wiggle, 2)
            stamped = (
                open_time,
                row[1],
                max(row[2], close),
                min(row[3], close),
                close,
                time.time(),
            )
            packet = series._du(index, stamped, close_time)
            by_connection.setdefault(series.connection, []).append(packet)
        return by_connection


async def run(sim: TvSimulator, command: dict[str, Any]) -> dict[str, Any]:
    series = live_series(sim)
    if not series:
        return {"error": "no live series"}
    emitter = Emitter(series)
    rate = float(command.get("rate", 0))
    seconds = float(command.get("seconds", 1.0))
    per_message = int(command.get("per_message", 1))
    max_updates = int(command.get("max_updates", 10**9))
    sent = messages = 0
    cpu0 = time.process_time()
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        now = time.perf_counter()
        if now >= deadline or sent >= max_updates:
            break
        if rate > 0:
            due = min(int((now - start) * rate), max_updates) - sent
            if due <= 0:
                await asyncio.sleep(max(0.0, (sent + 1) / rate - (now - start)))
                continue
        else:
            due = min(per_message * 16, max_updates - sent)
        for connection, packets in emitter.packets(due).items():
            for offset in range(0, len(packets), per_message):
                connection.emit(packets[offset : offset + per_message])
                messages += 1
            if len(connection.outbox) > OUTBOX_HIGH_WATER:
                await connection.drained.wait()
        sent += due
        if rate <= 0:
            await asyncio.sleep(0)
    emitted = time.perf_counter()
    for connection in {entry.connection for entry in series}:
        await connection.drained.wait()
    end = time.perf_counter()
    return {
        "sent": sent,
        "messages": messages,
        "series": len(series),
        "emit_seconds": emitted - start,
        "seconds": end - start,
        "cpu_seconds": time.process_time() - cpu0,
        "send_rate": sent / (end - start),
    }


async def serve(heartbeat: float | None) -> None:
    config = ServerConfig(max_chart_sessions=5000, heartbeat_interval=heartbeat)
    async with TvSimulator(config=config, http_port=None) as sim:
        hello = {"ws_url": sim.endpoints.ws_url, "token": sim.issue_token("pro_premium")}
        print(json.dumps(hello), flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                return
            command = json.loads(line)
            name = command.get("cmd")
            if name == "quit":
                return
            if name == "series":
                answer: dict[str, Any] = {"series": len(live_series(sim))}
            elif name == "run":
                answer = await run(sim, command)
            else:
                answer = {"error": f"unknown command {name!r}"}
            print(json.dumps(answer), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heartbeat", type=float, default=10.0, help="seconds (0: none)")
    arguments = parser.parse_args()
    asyncio.run(serve(arguments.heartbeat or None))


if __name__ == "__main__":
    main()
