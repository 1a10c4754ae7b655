"""The loopback chaos proxy: faithful forwarding, latency, chunking, blackhole, resets."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

import pytest

from tvfeed_async.testing.chaos import ChaosProxy

#: What the target sends first on every connection, so each direction has its own data.
GREETING = os.urandom(200_000)


class Target:
    """A TCP server that sends GREETING, then echoes; it records what it received."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.connections = 0
        self.closed_by_peer = asyncio.Event()
        self.reset_seen = asyncio.Event()
        self.server: asyncio.Server | None = None
        self.port = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in self._writers:
            writer.close()
        for writer in self._writers:
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            writer.write(GREETING)
            await writer.drain()
            while data := await reader.read(65_536):
                self.received.extend(data)
                writer.write(data)
                await writer.drain()
            self.closed_by_peer.set()
            writer.close()
        except ConnectionResetError:
            self.reset_seen.set()
            writer.close()


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    server = Target()
    await server.start()
    try:
        yield server
    finally:
        await server.close()


@pytest.fixture
async def proxy(target: Target) -> AsyncIterator[ChaosProxy]:
    async with ChaosProxy("127.0.0.1", target.port) as chaos:
        yield chaos


@contextlib.asynccontextmanager
async def connect(
    proxy: ChaosProxy,
) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, data: bytes) -> bytes:
    writer.write(data)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(data)), 10)


async def test_bytes_pass_unchanged_both_ways(proxy: ChaosProxy, target: Target) -> None:
    payload = os.urandom(1_000_000)
    async with connect(proxy) as (reader, writer):
        assert await asyncio.wait_for(reader.readexactly(len(GREETING)), 10) == GREETING
        assert await echo(reader, writer, payload) == payload

        # Half-close: the target sees EOF, closes, and the client sees EOF in turn.
        writer.write_eof()
        assert await asyncio.wait_for(reader.read(), 10) == b""
        await asyncio.wait_for(target.closed_by_peer.wait(), 10)

    assert bytes(target.received) == payload
    assert proxy.connections_accepted == 1
    assert proxy.bytes_upstream == len(payload)
    assert proxy.bytes_downstream == len(GREETING) + len(payload)
    assert proxy.bytes_dropped == 0


async def test_many_connections_at_once(proxy: ChaosProxy, target: Target) -> None:
    async def one(index: int) -> bytes:
        async with connect(proxy) as (reader, writer):
            await asyncio.wait_for(reader.readexactly(len(GREETING)), 10)
            return await echo(reader, writer, f"connection {index}".encode() * 100)

    results = await asyncio.gather(*(one(i) for i in range(20)))

    assert results == [f"connection {i}".encode() * 100 for i in range(20)]
    assert proxy.connections_accepted == 20
    assert target.connections == 20


async def test_latency_delays_each_direction_and_keeps_order(proxy: ChaosProxy) -> None:
    loop = asyncio.get_running_loop()
    proxy.latency = 0.1
    async with connect(proxy) as (reader, writer):
        await asyncio.wait_for(reader.readexactly(len(GREETING)), 10)
        messages = [f"<{i:04d}>".encode() for i in range(200)]
        started = loop.time()
        for message in messages:
            writer.write(message)
            await writer.drain()
            await asyncio.sleep(0)
        expected = b"".join(messages)
        received = await asyncio.wait_for(reader.readexactly(len(expected)), 10)
        elapsed = loop.time() - started

    assert received == expected
    # A round trip crosses the proxy twice; nothing can come back sooner than that.
    assert elapsed >= 2 * 0.1


async def test_lowering_latency_never_lets_later_bytes_overtake(proxy: ChaosProxy) -> None:
    loop = asyncio.get_running_loop()
    async with connect(proxy) as (reader, writer):
        await asyncio.wait_for(reader.readexactly(len(GREETING)), 10)
        proxy.upstream_latency = 0.3
        started = loop.time()
        writer.write(b"first")
        await writer.drain()
        await asyncio.sleep(0.05)  # let the proxy read "first" on its own
        proxy.upstream_latency = 0.0
        writer.write(b"second")
        await writer.drain()
        received = await asyncio.wait_for(reader.readexactly(len(b"firstsecond")), 10)
        assert loop.time() - started >= 0.3

    assert received == b"firstsecond"


async def test_per_direction_latency_overrides(proxy: ChaosProxy) -> None:
    loop = asyncio.get_running_loop()
    proxy.upstream_latency = 0.2
    proxy.downstream_latency = 0.0
    async with connect(proxy) as (reader, writer):
        await asyncio.wait_for(reader.readexactly(len(GREETING)), 10)
        started = loop.time()
        assert await echo(reader, writer, b"hello") == b"hello"
        assert loop.time() - started >= 0.2


async def test_chunking_slices_every_write(proxy: ChaosProxy, target: Target) -> None:
    proxy.chunk_size = 7
    payload = os.urandom(10_000)
    async with connect(proxy) as (reader, writer):
        assert await asyncio.wait_for(reader.readexactly(len(GREETING)), 10) == GREETING
        assert await echo(reader, writer, payload) == payload

    assert bytes(target.received) == payload
    assert proxy.largest_write == 7
    total = len(GREETING) + 2 * len(payload)
    assert proxy.writes >= -(-total // 7)


async def test_chunk_delay_spreads_the_slices(proxy: ChaosProxy) -> None:
    loop = asyncio.get_running_loop()
    async with connect(proxy) as (reader, writer):
        await asyncio.wait_for(reader.readexactly(len(GREETING)), 10)
        proxy.chunk_size = 1
        proxy.chunk_delay = 0.05
        started = loop.time()
        assert await echo(reader, writer, b"abcd") == b"abcd"
        # Four one-byte slices, three gaps of 50 ms, on the way up (the target echoes each
        # byte as it comes, so the way down has nothing left to slice).
        assert loop.time() - started >= 3 * 0.05


async def test_blackhole_keeps_sockets_open_and_forwards_nothing(
    proxy: ChaosProxy, target: Target
) -> None:
    async with connect(proxy) as (reader, writer):
        await asyncio.wait_for(reader.readexactly(len(GREETING)), 10)
        assert await echo(reader, writer, b"before") == b"before"

        proxy.blackhole()
        assert proxy.blackholed
        writer.write(b"into the void")
        await writer.drain()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(1), 0.3)
        assert proxy.bytes_dropped == len(b"into the void")
        assert bytes(target.received) == b"before"
        assert proxy.active_connections == 1
        assert not reader.at_eof()

        proxy.restore()
        assert await echo(reader, writer, b"after") == b"after"

    assert bytes(target.received) == b"beforeafter"


async def test_blackhole_also_swallows_new_connections(proxy: ChaosProxy) -> None:
    proxy.blackhole()
    async with connect(proxy) as (reader, _writer):
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(reader.read(1), 0.3)
        assert proxy.connections_accepted == 1
        assert proxy.bytes_dropped > 0  # the greeting was read from the target and dropped


async def test_reset_all_aborts_both_sides(proxy: ChaosProxy, target: Target) -> None:
    async with connect(proxy) as (reader, writer):
        await asyncio.wait_for(reader.readexactly(len(GREETING)), 10)
        assert await echo(reader, writer, b"ping") == b"ping"

        assert proxy.reset_all() == 1
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(100), 10)
        await asyncio.wait_for(target.reset_seen.wait(), 10)

    for _ in range(100):
        if proxy.active_connections == 0:
            break
        await asyncio.sleep(0.01)
    assert proxy.active_connections == 0

    # The proxy still accepts new connections afterwards.
    async with connect(proxy) as (reader, writer):
        await asyncio.wait_for(reader.readexactly(len(GREETING)), 10)
        assert await echo(reader, writer, b"again") == b"again"


async def test_refuse_new_resets_new_connections_only(proxy: ChaosProxy) -> None:
    async with connect(proxy) as (old_reader, old_writer):
        await asyncio.wait_for(old_reader.readexactly(len(GREETING)), 10)
        proxy.refuse_new = True
        async with connect(proxy) as (reader, _writer):
            with pytest.raises(ConnectionResetError):
                await asyncio.wait_for(reader.read(100), 10)
        assert proxy.connections_refused == 1
        assert proxy.connections_accepted == 1
        # The connection opened before keeps working.
        assert await echo(old_reader, old_writer, b"still here") == b"still here"


async def test_unreachable_target_resets_the_client() -> None:
    # Bind then close a listener: nothing accepts on that port any more.
    placeholder = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = placeholder.sockets[0].getsockname()[1]
    placeholder.close()
    await placeholder.wait_closed()

    async with ChaosProxy("127.0.0.1", port) as proxy, connect(proxy) as (reader, _writer):
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(100), 10)


async def test_close_with_open_connections_is_clean(target: Target) -> None:
    proxy = ChaosProxy("127.0.0.1", target.port, latency=5.0)
    await proxy.start()
    async with connect(proxy) as (reader, writer):
        writer.write(b"in flight")
        await writer.drain()
        await asyncio.sleep(0.05)
        await proxy.aclose()
        # An orderly close: the client sees EOF, and the delayed bytes never arrive.
        assert await asyncio.wait_for(reader.read(), 10) == b""
        await asyncio.wait_for(target.closed_by_peer.wait(), 10)
    assert bytes(target.received) == b""
    assert proxy.active_connections == 0
    # Nothing left running: only this test's own task remains.
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_invalid_chunk_size() -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        ChaosProxy("127.0.0.1", 1, chunk_size=0)


async def test_bandwidth_paces_each_direction(proxy: ChaosProxy) -> None:
    """At 1 MB/s the 200 KB greeting cannot arrive in less than 0.2 s; bytes stay intact."""
    loop = asyncio.get_running_loop()
    proxy.bandwidth = 1_000_000
    started = loop.time()
    async with connect(proxy) as (reader, writer):
        greeting = await asyncio.wait_for(reader.readexactly(len(GREETING)), 10)
        elapsed = loop.time() - started
        assert await echo(reader, writer, b"after") == b"after"
    assert greeting == GREETING
    assert elapsed >= len(GREETING) / 1_000_000


def test_bandwidth_must_be_positive() -> None:
    with pytest.raises(ValueError, match="bandwidth"):
        ChaosProxy("127.0.0.1", 1, bandwidth=0)


async def test_handshake_charges_a_new_connection_one_round_trip(target: Target) -> None:
    """With ``handshake`` the first echo on a new connection takes two round trips (the TCP
    handshake, then the echo); without it, one."""
    loop = asyncio.get_running_loop()
    for handshake, round_trips in ((False, 1), (True, 2)):
        async with ChaosProxy("127.0.0.1", target.port, latency=0.1, handshake=handshake) as chaos:
            started = loop.time()
            async with connect(chaos) as (reader, writer):
                writer.write(b"hello")
                await writer.drain()
                received = await asyncio.wait_for(
                    reader.readexactly(len(GREETING) + len(b"hello")), 10
                )
                elapsed = loop.time() - started
            assert received == GREETING + b"hello"
            assert elapsed >= round_trips * 2 * 0.1, (handshake, elapsed)
            assert chaos.handshake is handshake
