"""The simulator in its own process, with a control channel for the streaming benchmark.

Started by ``stream_throughput.py``; not meant to be run by hand. It runs
``TvSimulator(config=ServerConfig(max_chart_sessions=5000, heartbeat_interval=...))`` on a virtual
clock that is never advanced (so the simulator's own live updates stay silent), prints one JSON
line with the WebSocket URL and a paid-plan token, then reads JSON commands from stdin, one per
line, and answers each with one JSON line on stdout:

``{"cmd": "series"}``
    How many live series (chart sessions with a forming bar) the simulator holds.
``{"cmd": "run", "rate": R, "seconds": S, "per_message": P, "max_updates": M}``
    Push forming-bar updates (``du`` packets templated from the simulator's own
    ``_Series._du`` and checked equal to it, so the wire format is the simulator's)
    round-robin over every live series, ``P`` packets per WebSocket message, at ``R``
    packets/s for ``S`` seconds (``R`` = 0: as fast as the socket takes them, for at most
    ``M`` packets). Each update carries the wall-clock send time (``time.time()``, seconds)
    in its volume field: the simulator's ``t_ms`` is virtual time, and ``Bar`` does not
    expose the envelope anyway. The stamp is taken when the packet is built, right before it
    is queued to the simulator's writer task, so the latency figure includes the server's
    own queueing, WebSocket framing and compression.
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
    """Builds stamped forming updates round-robin over the live series.

    Each packet is the simulator's own ``_Series._du`` output. Building one through ``_du``
    (a dict, msgspec, framing) cost this process about as much CPU as the client spends on
    it, so the server, not the client, set the saturated figure. Instead, every series'
    packet is pre-rendered by ``_du`` once per close variant with a sentinel in the stamp's
    place and cut around it; a packet is then ``head + repr(stamp) + tail`` in a fresh
    ``~m~<len>~m~`` frame. The constructor checks that this gives exactly what ``_du`` gives
    for every series, so the wire format stays the simulator's.
    """

    VARIANTS = 17  # close = revision close + 0.00 .. 0.16, cycling with the sequence number
    SENTINEL = 1234567890.0625  # exactly representable; a stand-in for the send stamp

    def __init__(self, series: list[Any]) -> None:
        # Per series: its connection and, per close variant, (head, tail) of the payload.
        self.items: list[tuple[Any, list[tuple[str, str]]]] = []
        marker = repr(self.SENTINEL)
        for entry in series:
            variants = []
            for k in range(self.VARIANTS):
                payload = self._payload(entry, k, self.SENTINEL)
                head, found, tail = payload.partition(marker)
                if not found or marker in tail or not payload.isascii():
                    raise RuntimeError(f"cannot template this du: {payload}")
                variants.append((head, tail))
            self.items.append((entry.connection, variants))
            # The check: the template gives byte for byte what the simulator gives.
            stamp = time.time()
            expected = self._payload(entry, 3, stamp)
            head, tail = variants[3]
            if head + repr(stamp) + tail != expected:
                raise RuntimeError(f"template mismatch: {expected}")
        self.position = 0
        self.sequence = 0

    @classmethod
    def _payload(cls, entry: Any, variant: int, stamp: float) -> str:
        slot = entry.live_slot
        row = entry.truth.revision(slot, 0)
        close = round(row[4] + variant * 0.01, 2)
        stamped = (slot[1], row[1], max(row[2], close), min(row[3], close), close, stamp)
        packet: str = entry._du(entry.live_index, stamped, slot[2])
        return packet[packet.index("~m~", 3) + 3 :]  # drop the ~m~<len>~m~ header

    def packets(self, count: int) -> dict[Any, list[str]]:
        """``count`` packets grouped by connection, in round-robin order."""
        items = self.items
        size = len(items)
        variants = self.VARIANTS
        clock = time.time
        by_connection: dict[Any, list[str]] = {}
        position, sequence = self.position, self.sequence
        for _ in range(count):
            connection, templates = items[position]
            position += 1
            if position == size:
                position = 0
            sequence += 1
            head, tail = templates[sequence % variants]
            payload = head + repr(clock()) + tail
            packet = f"~m~{len(payload)}~m~{payload}"  # ASCII: len() is the UTF-16 length
            found = by_connection.get(connection)
            if found is None:
                by_connection[connection] = [packet]
            else:
                found.append(packet)
        self.position, self.sequence = position, sequence
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
