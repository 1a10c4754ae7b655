"""The simulator in its own process, with a control channel for the streaming benchmark.

Started by ``stream_throughput.py``; not meant to be run by hand. It runs
``TvSimulator(config=ServerConfig(max_chart_sessions=5000, heartbeat_interval=...))`` on a virtual
clock that is never advanced (so the simulator's own live updates stay silent), prints one JSON
line with the WebSocket URL, a paid-plan token and a loopback control port, then takes JSON
commands, one per line, from stdin or from any connection to the control port (so that client
processes of different source trees can drive the same server), and answers each with one JSON
line on the same channel:

``{"cmd": "series"}``
    How many live series (chart sessions with a forming bar) the simulator holds.
``{"cmd": "run", "rate": R, "seconds": S, "per_message": P, "max_updates": M, "writer": W,
"compress": C}``
    Push forming-bar updates (``du`` packets templated from the simulator's own
    ``_Series._du`` and checked equal to it, so the wire format is the simulator's)
    round-robin over every live series, ``P`` packets per WebSocket message, at ``R``
    packets/s for ``S`` seconds (``R`` = 0: as fast as the socket takes them, for at most
    ``M`` packets). Each update carries the wall-clock send time (``time.time()``, seconds)
    in its volume field: the simulator's ``t_ms`` is virtual time, and ``Bar`` does not
    expose the envelope anyway. The stamp is taken when the packet is built, right before it
    is framed, so the latency figure includes the server's own framing, compression and
    queueing. ``W`` = ``"direct"`` (the default) frames and deflates the messages here and
    writes them to the socket's transport (:class:`Wire`); ``"simulator"`` queues them to the
    simulator's own writer task (``SimConnection.emit``): 12-18 us of server CPU per
    message, against about 5. ``C`` (default true) deflates each message when the client
    negotiated permessage-deflate, as TradingView does.
    The answer holds the packets and messages sent, wall time and this process's CPU time.
    One push runs at a time.
``{"cmd": "quit"}``
    Stop (on stdin: the process; on a control connection: that connection).

No library file is changed: the launcher only reads the simulator's connection state, calls
its packet builder and ``SimConnection.emit``, and writes frames on the sockets it accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import zlib
from typing import Any

from websockets.extensions.permessage_deflate import PerMessageDeflate

from tvfeed_async.testing import TvSimulator
from tvfeed_async.testing.ws_server import ServerConfig

OUTBOX_HIGH_WATER = 64
#: Bytes the transport may buffer before a direct push waits for the socket to drain.
WRITE_HIGH_WATER = 256 * 1024


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
        self.series = series  # kept: _EMITTERS is keyed by their id()s
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
        # The same templates as bytes, for Wire.push_one_each: (head, tail, their length).
        self.byte_items = [
            (connection, [(h.encode(), t.encode(), len(h) + len(t)) for h, t in variants])
            for connection, variants in self.items
        ]
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


class Wire:
    """Writes the benchmark's messages on one connection's WebSocket as finished frames.

    The simulator's own writer sends each message with ``websockets``' ``send()``, which
    builds frame objects, deflates and writes: about 12-18 us of this process's CPU per
    message here, most of a core at 1,000 streams, so at one ``du`` per message the server,
    not the client, set the figure (26.6-35.0k/s in issue 17). Here a message is one unmasked
    text frame, deflated (when the client negotiated permessage-deflate and ``compress`` is
    on) by the connection's own permessage-deflate encoder, the one ``websockets`` uses for
    anything else it sends on this socket (heartbeats, replies), so the compression context
    the client's decoder keeps stays right; the frames of a batch go to the transport in one
    write. The client's decoder sees what ``send()`` would have sent: one final frame per
    message, RSV1 set when deflated.

    (Deflating each message on its own, from pieces compressed once per series, saved the
    server 2-3 us per ``du``, but a message was about 200 bytes instead of about 25 without
    the context, and the client's inflate and reads cost it more than the server saved: 9.6-9.8
    instead of 6.5-7.3 us per ``du`` at 1,000 streams. TradingView deflates with context
    takeover too.)
    """

    def __init__(self, socket: Any, connection: Any, compress: bool) -> None:
        self.socket = socket
        self.connection = connection
        self.transport = socket.transport
        deflate = None
        for extension in socket.protocol.extensions:
            if isinstance(extension, PerMessageDeflate):
                deflate = extension
        self.deflate = deflate if compress else None

    def _deflate(self, data: bytes) -> bytes:
        """What PerMessageDeflate.encode makes of one whole message's data."""
        deflate = self.deflate
        assert deflate is not None
        if deflate.local_no_context_takeover:
            deflate.encoder = zlib.compressobj(
                wbits=-deflate.local_max_window_bits, **deflate.compress_settings
            )
        encoder = deflate.encoder
        return (encoder.compress(data) + encoder.flush(zlib.Z_SYNC_FLUSH))[:-4]

    def frames(self, packets: list[str], per_message: int) -> tuple[list[bytes], int]:
        """The frames of ``packets``, ``per_message`` packets per message; and how many."""
        out: list[bytes] = []
        append = out.append
        for offset in range(0, len(packets), per_message):
            data = "".join(packets[offset : offset + per_message]).encode()
            first = 0x81  # FIN, text
            if self.deflate is not None:
                data = self._deflate(data)
                first = 0xC1  # FIN, RSV1 (deflated), text
            append(frame_header(first, len(data)))
            append(data)
        return out, len(out) // 2

    def one_each(self, emitter: Emitter, count: int) -> list[bytes] | None:
        """``count`` packets of ``emitter``, one per message, framed (and deflated) in one
        pass: the saturated pushes' path. None when not every series is on this socket, or
        when the extension resets its context per message (then :meth:`frames` does it)."""
        deflate = self.deflate
        if deflate is not None and deflate.local_no_context_takeover:
            return None
        items = emitter.byte_items
        size = len(items)
        variants = emitter.VARIANTS
        position, sequence = emitter.position, emitter.sequence
        compress = flush = None
        if deflate is not None:
            compress, flush = deflate.encoder.compress, deflate.encoder.flush
        sync = zlib.Z_SYNC_FLUSH
        first = 0x81 if deflate is None else 0xC1  # FIN, text (RSV1: deflated)
        headers = [bytes((first, n)) for n in range(126)]
        clock = time.time
        out: list[bytes] = []
        append = out.append
        for _ in range(count):
            connection, templates = items[position]
            if connection is not self.connection:
                return None
            position += 1
            if position == size:
                position = 0
            sequence += 1
            head, tail, length = templates[sequence % variants]
            stamp = repr(clock()).encode()
            data = b"~m~%d~m~%b%b%b" % (length + len(stamp), head, stamp, tail)
            if compress is not None:
                data = (compress(data) + flush(sync))[:-4]
            n = len(data)
            append(headers[n] if n < 126 else frame_header(first, n))
            append(data)
        emitter.position, emitter.sequence = position, sequence
        return out

    async def write(self, frames: list[bytes]) -> None:
        self.transport.write(b"".join(frames))
        if self.transport.get_write_buffer_size() > WRITE_HIGH_WATER:
            await self.socket.drain()


def frame_header(first: int, size: int) -> bytes:
    """An unmasked frame's header: ``first`` (FIN, RSV, opcode) and the payload length."""
    if size < 126:
        return bytes((first, size))
    if size < 65536:
        return bytes((first, 126)) + size.to_bytes(2, "big")
    return bytes((first, 127)) + size.to_bytes(8, "big")


#: The emitter of the last set of live series (building one templates every series: 0.6 s
#: for 1,000), keyed by the series' identities; the series objects are kept alive by it.
_EMITTERS: dict[tuple[int, ...], Emitter] = {}


async def run(sim: TvSimulator, command: dict[str, Any]) -> dict[str, Any]:
    sockets = sim._ws._sockets
    # Only sockets still open: a client that just left may linger in the hub for a moment.
    series = [entry for entry in live_series(sim) if entry.connection.id in sockets]
    if not series:
        return {"error": "no live series"}
    emitter = _EMITTERS.get(tuple(id(entry) for entry in series))
    if emitter is None:
        _EMITTERS.clear()
        emitter = Emitter(series)
        _EMITTERS[tuple(id(entry) for entry in series)] = emitter
    rate = float(command.get("rate", 0))
    seconds = float(command.get("seconds", 1.0))
    per_message = int(command.get("per_message", 1))
    max_updates = int(command.get("max_updates", 10**9))
    writer = command.get("writer", "direct")
    compress = bool(command.get("compress", True))
    wires = {}
    if writer == "direct":
        for connection in {entry.connection for entry in series}:
            wires[connection] = Wire(sockets[connection.id], connection, compress)
    single = next(iter(wires.values())) if len(wires) == 1 else None
    sent = messages = 0
    batch = max(per_message * 16, 128)
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
            due = min(batch, max_updates - sent)
        if single is not None and per_message == 1:
            # One socket (the benchmark's client has one): frame straight from the templates.
            frames_ = single.one_each(emitter, due)
            if frames_ is not None:
                messages += due
                sent += due
                await single.write(frames_)
                if rate <= 0:
                    await asyncio.sleep(0)
                continue
        for connection, packets in emitter.packets(due).items():
            wire = wires.get(connection)
            if wire is not None:
                frames, count = wire.frames(packets, per_message)
                messages += count
                await wire.write(frames)
                continue
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
    for wire in wires.values():
        await wire.socket.drain()
    end = time.perf_counter()
    return {
        "sent": sent,
        "messages": messages,
        "series": len(series),
        "writer": writer,
        "compressed": bool(wires) and all(w.deflate is not None for w in wires.values()),
        "emit_seconds": emitted - start,
        "seconds": end - start,
        "cpu_seconds": time.process_time() - cpu0,
        "send_rate": sent / (end - start),
    }


async def answer(sim: TvSimulator, command: dict[str, Any]) -> dict[str, Any]:
    name = command.get("cmd")
    if name == "series":
        return {"series": len(live_series(sim))}
    if name == "run":
        return await run(sim, command)
    return {"error": f"unknown command {name!r}"}


async def serve(heartbeat: float | None) -> None:
    config = ServerConfig(max_chart_sessions=5000, heartbeat_interval=heartbeat)
    async with TvSimulator(config=config, http_port=None) as sim:
        lock = asyncio.Lock()  # one push at a time, whoever asks

        async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while line := await reader.readline():
                    command = json.loads(line)
                    if command.get("cmd") == "quit":
                        break
                    async with lock:
                        reply = await answer(sim, command)
                    writer.write(json.dumps(reply).encode() + b"\n")
                    await writer.drain()
            finally:
                writer.close()

        channel = await asyncio.start_server(control, "127.0.0.1", 0)
        port = channel.sockets[0].getsockname()[1]
        hello = {
            "ws_url": sim.endpoints.ws_url,
            "token": sim.issue_token("pro_premium"),
            "control_port": port,
        }
        print(json.dumps(hello), flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                command = json.loads(line)
                if command.get("cmd") == "quit":
                    return
                async with lock:
                    reply = await answer(sim, command)
                print(json.dumps(reply), flush=True)
        finally:
            channel.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heartbeat", type=float, default=10.0, help="seconds (0: none)")
    arguments = parser.parse_args()
    asyncio.run(serve(arguments.heartbeat or None))


if __name__ == "__main__":
    main()
