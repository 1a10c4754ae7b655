"""A loopback TCP proxy that injects transport faults: latency, tiny chunks, silence, resets.

``ChaosProxy`` listens on ``127.0.0.1:0`` and forwards every accepted connection to a target
(typically the simulator), in both directions. Its knobs can be changed while connections are
open:

* ``latency`` (or ``upstream_latency`` / ``downstream_latency``): each chunk read is delivered
  ``latency`` seconds after it arrived. Chunks are queued with their due time and one pump per
  direction writes them when due, so many chunks are in flight at once and throughput is not
  reduced (a 50 ms round trip is ``latency=0.025``). Order is always preserved: a due time never
  precedes the one of the chunk before it, even when the latency is lowered.
* ``bandwidth`` (bytes per second, None for unlimited): each direction of a connection is a
  link of that rate: a chunk is delivered ``len / bandwidth`` seconds after the one before
  it finished (or after it arrived, if the link was idle), plus ``latency``. Together with
  ``max_buffered`` the sender then feels the link's rate as back-pressure.
* ``handshake``: each new connection costs a TCP handshake, as on a real link: nothing it
  carries is delivered before one round trip (upstream plus downstream latency, as they
  were when it was accepted) after it was accepted, plus the direction's latency. Off by
  default: the client's connect itself is to the loopback listener, so without it opening
  a connection through the proxy costs no round trip at all.
* ``chunk_size``: writes are sliced into chunks of at most this many bytes, each written and
  drained separately (TCP_NODELAY is set on both sockets), with ``chunk_delay`` seconds between
  them, so the receiver sees small reads: frames split mid-packet, mid-UTF-8 sequence.
* ``blackhole()``: sockets stay open but everything read from then on is discarded, in both
  directions, for open and new connections, until ``restore()``. Data dropped meanwhile is lost
  for good, so a protocol stream that was cut is corrupt: clients must reconnect.
* ``reset_all()``: aborts every open connection with a TCP RST on both sides.
* ``refuse_new``: new connections are accepted by the kernel and immediately reset.

Counters: ``connections_accepted``, ``connections_refused``, ``active_connections``,
``bytes_upstream`` (client to target), ``bytes_downstream`` (target to client) and
``bytes_dropped`` (all count bytes read from the sender), ``writes`` (socket writes, both
directions) and ``largest_write`` (bytes in the largest one).

Buffered data in flight is bounded by ``max_buffered`` bytes per direction of a connection;
past it the proxy stops reading, so the sender feels back-pressure as over a real link.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections import deque
from types import TracebackType

__all__ = ["ChaosProxy"]

_READ_SIZE = 65_536
#: Bound on how long closing one connection may wait for the peer; cleanup must not hang.
_CLOSE_TIMEOUT = 2.0


def _abort_with_reset(writer: asyncio.StreamWriter) -> None:
    """Close ``writer``'s socket so that the peer gets an RST rather than a FIN."""
    transport = writer.transport
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # SO_LINGER on with a zero timeout turns close() into a reset.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _set_nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _Direction:
    """Chunks read from one side, waiting for their due time to be written to the other."""

    def __init__(self) -> None:
        self.queue: deque[tuple[float, bytes | None]] = deque()
        self.buffered = 0
        self.last_due = 0.0
        #: When the link (``ChaosProxy.bandwidth``) finishes sending what it was given.
        self.link_free = 0.0
        #: Nothing read is sent on before this (``ChaosProxy.handshake``).
        self.opens_at = 0.0
        self.changed = asyncio.Event()


class _Connection:
    def __init__(
        self,
        client_reader: asyncio.StreamReader,
        client_writer: asyncio.StreamWriter,
        upstream_reader: asyncio.StreamReader,
        upstream_writer: asyncio.StreamWriter,
    ) -> None:
        self.client_reader = client_reader
        self.client_writer = client_writer
        self.upstream_reader = upstream_reader
        self.upstream_writer = upstream_writer
        self.reset = False

    def abort(self) -> None:
        self.reset = True
        _abort_with_reset(self.client_writer)
        _abort_with_reset(self.upstream_writer)

    def close(self) -> None:
        # Stops forwarding like abort, but both peers get an orderly FIN.
        self.reset = True
        self.client_writer.close()
        self.upstream_writer.close()


class ChaosProxy:
    """A fault-injecting TCP proxy on ``127.0.0.1:0`` in front of ``target_host:target_port``.

    Use it as an async context manager::

        async with ChaosProxy("127.0.0.1", simulator_port, latency=0.025) as proxy:
            url = f"ws://127.0.0.1:{proxy.port}/socket.io/websocket"
            ...
            proxy.reset_all()

    Args:
        target_host: where connections are forwarded.
        target_port: the target's port.
        latency: seconds added to each direction (changeable at run time).
        chunk_size: largest write, in bytes; None forwards chunks as read.
        chunk_delay: seconds between two slices of one chunk when ``chunk_size`` is set.
        max_buffered: bytes held per direction of a connection before reading pauses.
        host: the address to listen on.
        bandwidth: bytes per second per direction of a connection; None: unlimited.
        handshake: charge each new connection one round trip before it carries data.
    """

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        latency: float = 0.0,
        chunk_size: int | None = None,
        chunk_delay: float = 0.0,
        max_buffered: int = 16 * 1024 * 1024,
        host: str = "127.0.0.1",
        bandwidth: float | None = None,
        handshake: bool = False,
    ) -> None:
        if chunk_size is not None and chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        if bandwidth is not None and bandwidth <= 0:
            raise ValueError("bandwidth must be positive (bytes per second) or None")
        self.target_host = target_host
        self.target_port = target_port
        self.latency = latency
        #: Per-direction overrides of ``latency`` (None: use ``latency``).
        self.upstream_latency: float | None = None
        self.downstream_latency: float | None = None
        self.bandwidth = bandwidth
        self.handshake = handshake
        self.chunk_size = chunk_size
        self.chunk_delay = chunk_delay
        self.max_buffered = max_buffered
        self.refuse_new = False
        self.host = host

        self.connections_accepted = 0
        self.connections_refused = 0
        self.bytes_upstream = 0
        self.bytes_downstream = 0
        self.bytes_dropped = 0
        self.writes = 0
        self.largest_write = 0

        self._blackholed = False
        self._server: asyncio.Server | None = None
        self._connections: set[_Connection] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._port = 0

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening. Raises OSError if the port cannot be bound."""
        if self._server is not None:
            raise RuntimeError("ChaosProxy already started")
        self._server = await asyncio.start_server(self._accept, self.host, 0)
        self._port = self._server.sockets[0].getsockname()[1]

    async def aclose(self) -> None:
        """Stop listening and close every connection (FIN, not RST; data still delayed by
        ``latency`` is not delivered); returns when all the proxy's tasks are done."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for connection in list(self._connections):
            connection.close()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        if handlers:
            await asyncio.gather(*handlers, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> ChaosProxy:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- knobs and state ------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The listening port (0 before ``start``)."""
        return self._port

    @property
    def active_connections(self) -> int:
        """Connections currently forwarded."""
        return len(self._connections)

    @property
    def blackholed(self) -> bool:
        """True between ``blackhole()`` and ``restore()``."""
        return self._blackholed

    def blackhole(self) -> None:
        """Forward nothing from now on (data read is dropped); sockets stay open."""
        self._blackholed = True

    def restore(self) -> None:
        """Forward again after ``blackhole()``; what was dropped stays lost."""
        self._blackholed = False

    def reset_all(self) -> int:
        """Abort every open connection with an RST on both sides; returns how many."""
        connections = list(self._connections)
        for connection in connections:
            connection.abort()
        return len(connections)

    # -- forwarding -----------------------------------------------------------------------------

    def _accept(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        # A plain callback that starts a task of our own: on Python 3.11 the task that
        # start_server makes from a coroutine callback logs an error when it is cancelled.
        task = asyncio.get_running_loop().create_task(self._serve(client_reader, client_writer))
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)

    async def _serve(
        self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        if self.refuse_new or self._server is None:
            self.connections_refused += 1
            _abort_with_reset(client_writer)
            return
        self.connections_accepted += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(
                self.target_host, self.target_port
            )
        except OSError:
            _abort_with_reset(client_writer)
            return
        _set_nodelay(client_writer)
        _set_nodelay(upstream_writer)
        connection = _Connection(client_reader, client_writer, upstream_reader, upstream_writer)
        self._connections.add(connection)
        opens_at = 0.0
        if self.handshake:
            round_trip = self._latency(upstream=True) + self._latency(upstream=False)
            opens_at = asyncio.get_running_loop().time() + round_trip
        forward = self._forward
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(
                    forward(connection, client_reader, upstream_writer, True, opens_at)
                )
                group.create_task(
                    forward(connection, upstream_reader, client_writer, False, opens_at)
                )
        finally:
            self._connections.discard(connection)
            # Close both before awaiting either: aclose() may cancel this task while it waits
            # for the first one, and the second socket must not be left open.
            client_writer.close()
            upstream_writer.close()
            await _close(client_writer)
            await _close(upstream_writer)

    async def _forward(
        self,
        connection: _Connection,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        upstream: bool,
        opens_at: float,
    ) -> None:
        direction = _Direction()
        direction.opens_at = opens_at
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._read(connection, reader, direction, upstream=upstream))
                group.create_task(self._write(connection, writer, direction))
        except* OSError:
            # A reset or broken pipe on either side ends the whole connection the same way.
            connection.abort()

    def _latency(self, *, upstream: bool) -> float:
        override = self.upstream_latency if upstream else self.downstream_latency
        return self.latency if override is None else override

    async def _read(
        self,
        connection: _Connection,
        reader: asyncio.StreamReader,
        direction: _Direction,
        *,
        upstream: bool,
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not connection.reset:
                while direction.buffered >= self.max_buffered:
                    direction.changed.clear()
                    await direction.changed.wait()
                data = await reader.read(_READ_SIZE)
                if not data:
                    break
                if upstream:
                    self.bytes_upstream += len(data)
                else:
                    self.bytes_downstream += len(data)
                if self._blackholed:
                    self.bytes_dropped += len(data)
                    continue
                now = max(loop.time(), direction.opens_at)
                if self.bandwidth is not None:
                    start = max(now, direction.link_free)
                    direction.link_free = start + len(data) / self.bandwidth
                    now = direction.link_free
                due = max(now + self._latency(upstream=upstream), direction.last_due)
                direction.last_due = due
                direction.queue.append((due, data))
                direction.buffered += len(data)
                direction.changed.set()
        finally:
            # End of stream (or failure): the writer forwards the EOF once the queue drains.
            direction.queue.append((direction.last_due, None))
            direction.changed.set()

    async def _write(
        self, connection: _Connection, writer: asyncio.StreamWriter, direction: _Direction
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not direction.queue:
                direction.changed.clear()
                await direction.changed.wait()
            due, data = direction.queue.popleft()
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if connection.reset:
                return
            if data is None:
                if writer.can_write_eof() and not writer.transport.is_closing():
                    writer.write_eof()
                return
            direction.buffered -= len(data)
            direction.changed.set()
            await self._write_chunked(writer, data)

    async def _write_chunked(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        size = self.chunk_size
        if size is None or size >= len(data):
            self._count_write(len(data))
            writer.write(data)
            await writer.drain()
            return
        view = memoryview(data)
        for offset in range(0, len(data), size):
            if offset and self.chunk_delay > 0:
                await asyncio.sleep(self.chunk_delay)
            piece = bytes(view[offset : offset + size])
            self._count_write(len(piece))
            writer.write(piece)
            await writer.drain()

    def _count_write(self, size: int) -> None:
        self.writes += 1
        self.largest_write = max(self.largest_write, size)


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(OSError, TimeoutError):
        # Shielded so a cancelled proxy still finishes closing; bounded so it cannot hang.
        await asyncio.wait_for(asyncio.shield(writer.wait_closed()), _CLOSE_TIMEOUT)
