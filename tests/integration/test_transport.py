"""The WebSocket transport (aiohttp's client) against the simulator and small loopback servers."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading  # noqa: TID251 (only counts threads, to show that none is started)
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from typing import Any

import aiohttp
import anyio
import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from tvfeed_async import transport as transport_module
from tvfeed_async.errors import ConnectionLost, InvalidRequest, RateLimited
from tvfeed_async.testing import TvSimulator
from tvfeed_async.testing.chaos import ChaosProxy
from tvfeed_async.websocket import (
    USER_AGENT,
    WebSocketTransport,
    offers_deflate,
    open_transport,
)

ORIGIN = "https://www.tradingview.com"
PROXY_VARIABLES = ("http", "https", "ws", "wss", "all", "no", "socks")

Handler = Callable[[ServerConnection], Awaitable[None]]


async def connect(url: str, **options: Any) -> WebSocketTransport:
    options.setdefault("open_timeout", 5.0)
    return await open_transport(url, origin=ORIGIN, **options)


@contextlib.asynccontextmanager
async def server(handler: Handler, **options: Any) -> AsyncIterator[str]:
    """A websockets server on 127.0.0.1; yields its URL."""
    async with serve(handler, "127.0.0.1", 0, ping_interval=None, **options) as running:
        port = next(iter(running.sockets)).getsockname()[1]
        yield f"ws://127.0.0.1:{port}/socket.io/websocket"


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[tuple[int, list[bytes]]]:
    """A TCP server that records the first line of each connection and never answers."""
    first_lines: list[bytes] = []
    writers: list[asyncio.StreamWriter] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.append(writer)
        first_lines.append(await reader.readline())

    listener = await asyncio.start_server(handle, "127.0.0.1", 0)
    try:
        yield listener.sockets[0].getsockname()[1], first_lines
    finally:
        for writer in writers:
            writer.close()
        listener.close()
        await listener.wait_closed()


async def hold_open(socket: ServerConnection) -> None:
    await socket.wait_closed()


@pytest.fixture
def sessions(monkeypatch: pytest.MonkeyPatch) -> list[aiohttp.ClientSession]:
    """Every aiohttp session the transport creates (each must be closed in the end)."""
    created: list[aiohttp.ClientSession] = []
    real = aiohttp.ClientSession

    def make(*args: Any, **kwargs: Any) -> aiohttp.ClientSession:
        session = real(*args, **kwargs)
        created.append(session)
        return session

    monkeypatch.setattr(transport_module.aiohttp, "ClientSession", make)
    return created


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(f"{name}_proxy", raising=False)
        monkeypatch.delenv(f"{name.upper()}_PROXY", raising=False)
    return monkeypatch


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ---------------------------------------------------------------------------------- opening


async def test_simulator_negotiates_permessage_deflate(
    tv_simulator: TvSimulator, sessions: list[aiohttp.ClientSession]
) -> None:
    sim = tv_simulator
    transport = await connect(sim.endpoints.ws_url, close_timeout=2.0, compression="on")
    try:
        assert transport.compressed
        hello = await transport.receive()
        assert isinstance(hello, str)
        assert "session_id" in hello
    finally:
        await transport.close()
    assert sim.stats.origins[-1] == ORIGIN
    assert len(sessions) == 1
    assert sessions[0].closed


async def test_upgrade_request_headers() -> None:
    requests: list[Headers] = []

    def record(connection: ServerConnection, request: Request) -> None:
        requests.append(request.headers)

    async with server(hold_open, process_request=record, compression="deflate") as url:
        transport = await connect(url, compression="on")
        assert transport.compressed
        await transport.close()
    [headers] = requests
    assert headers["User-Agent"] == USER_AGENT
    assert headers["Origin"] == ORIGIN
    assert headers["Accept-Language"] == "en-US,en;q=0.9"
    assert headers["Cache-Control"] == "no-cache"
    assert headers["Pragma"] == "no-cache"
    assert headers["Sec-WebSocket-Extensions"].startswith("permessage-deflate")
    # Nothing else is added: no aiohttp defaults, no credentials.
    for absent in ("Accept", "Accept-Encoding", "Authorization", "Cookie"):
        assert absent not in headers


@pytest.mark.parametrize(("policy", "offered"), [("auto", False), ("off", False), ("on", True)])
async def test_compression_policy_on_loopback(policy: str, offered: bool) -> None:
    """The upgrade offers permessage-deflate only when the policy asks for it: ``auto``
    does not on loopback, and the server (willing to deflate) then sends plain frames."""
    requests: list[Headers] = []

    def record(connection: ServerConnection, request: Request) -> None:
        requests.append(request.headers)

    async def handler(socket: ServerConnection) -> None:
        await socket.send("x" * 100_000)
        await socket.wait_closed()

    async with server(handler, process_request=record, compression="deflate") as url:
        transport = await connect(url, compression=policy)
        try:
            assert transport.compressed is offered
            assert await transport.receive() == "x" * 100_000
        finally:
            await transport.close()
    [headers] = requests
    assert ("Sec-WebSocket-Extensions" in headers) is offered


def test_auto_compression_offers_deflate_to_remote_hosts_only() -> None:
    remote = "wss://data.tradingview.com/socket.io/websocket"
    assert offers_deflate(remote, "auto")
    assert offers_deflate("ws://10.0.0.7:8080/socket.io/websocket", "auto")
    for loopback in ("ws://127.0.0.1:1/x", "ws://127.8.0.1/x", "ws://localhost/x", "ws://[::1]/x"):
        assert not offers_deflate(loopback, "auto")
        assert offers_deflate(loopback, "on")
    assert not offers_deflate(remote, "off")


async def test_feed_compression_follows_endpoints(tv_simulator: TvSimulator) -> None:
    """``Endpoints.compression`` reaches the socket a feed opens: the simulator deflates
    only when the policy is ``on`` (its URL is loopback, so ``auto`` means off)."""
    from dataclasses import replace

    from tvfeed_async import TvFeed

    stats = tv_simulator.stats
    for policy, expected in (("auto", 0), ("on", 1), ("off", 0)):
        endpoints = replace(tv_simulator.endpoints, compression=policy)
        before = stats.deflate_connections
        async with TvFeed(endpoints=endpoints, session_cache=False, use_env=False) as feed:
            frame = await feed.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=50)
            assert frame.height == 50
        assert stats.deflate_connections - before == expected, policy


def test_compression_policy_is_checked() -> None:
    from tvfeed_async import Endpoints

    with pytest.raises(InvalidRequest, match="compression"):
        Endpoints(compression="gzip")  # type: ignore[arg-type]
    assert Endpoints.from_env({"TVFEED_WS_COMPRESSION": "off"}).compression == "off"
    with pytest.raises(InvalidRequest):
        Endpoints.from_env({"TVFEED_WS_COMPRESSION": "yes"})


async def test_429_from_the_simulator_is_rate_limited(
    tv_simulator: TvSimulator, sessions: list[aiohttp.ClientSession]
) -> None:
    tv_simulator.faults.refuse_upgrades(1)
    with pytest.raises(RateLimited) as caught:
        await connect(tv_simulator.endpoints.ws_url)
    assert caught.value.retry_after == 1.0
    assert len(sessions) == 1
    assert sessions[0].closed
    transport = await connect(tv_simulator.endpoints.ws_url)  # only one upgrade was refused
    await transport.close()


@pytest.mark.parametrize(
    ("header", "retry_after"), [("7.5", 7.5), (None, None), ("soon", None), ("-3", 0.0)]
)
async def test_429_carries_retry_after(header: str | None, retry_after: float | None) -> None:
    def refuse(connection: ServerConnection, request: Request) -> Response:
        response = connection.respond(HTTPStatus.TOO_MANY_REQUESTS, "slow down\n")
        if header is not None:
            response.headers["Retry-After"] = header
        return response

    async with server(hold_open, process_request=refuse) as url:
        with pytest.raises(RateLimited) as caught:
            await connect(url)
    assert caught.value.retry_after == retry_after


@pytest.mark.parametrize("status", [503, 403])
async def test_other_refusals_are_connection_lost(
    tv_simulator: TvSimulator, sessions: list[aiohttp.ClientSession], status: int
) -> None:
    tv_simulator.faults.refuse_upgrades(1, status=status)
    with pytest.raises(ConnectionLost, match=f"HTTP {status}"):
        await connect(tv_simulator.endpoints.ws_url)
    with pytest.raises(ConnectionLost, match="HTTP 404"):
        await connect(tv_simulator.endpoints.ws_url.replace("/socket.io/", "/elsewhere/"))
    assert len(sessions) == 2
    assert all(session.closed for session in sessions)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/socket.io/websocket",
        "https://data.tradingview.com/socket.io/websocket",
        "127.0.0.1:8080",
        "",
        "ws://",
        "ws://127.0.0.1:99999/socket.io/websocket",
        "ws://127.0.0.1:port/",
    ],
)
async def test_not_a_websocket_url(url: str, sessions: list[aiohttp.ClientSession]) -> None:
    with pytest.raises(InvalidRequest, match="not a WebSocket URL"):
        await connect(url)
    assert sessions == []


async def test_refused_tcp_connection_is_connection_lost(
    sessions: list[aiohttp.ClientSession],
) -> None:
    with pytest.raises(ConnectionLost, match="could not open"):
        await connect(f"ws://127.0.0.1:{free_port()}/socket.io/websocket")
    assert len(sessions) == 1
    assert sessions[0].closed


async def test_open_timeout_bounds_the_upgrade(sessions: list[aiohttp.ClientSession]) -> None:
    async with silent_server() as (port, first_lines):
        started = anyio.current_time()
        with anyio.fail_after(5), pytest.raises(ConnectionLost, match=r"within 0\.3 s"):
            await connect(f"ws://127.0.0.1:{port}/socket.io/websocket", open_timeout=0.3)
        assert anyio.current_time() - started < 2.0
    assert first_lines == [b"GET /socket.io/websocket HTTP/1.1\r\n"]
    assert len(sessions) == 1
    assert sessions[0].closed


async def test_cancelled_open_closes_its_session(sessions: list[aiohttp.ClientSession]) -> None:
    async with silent_server() as (port, _):
        with anyio.move_on_after(0.2) as scope:
            await connect(f"ws://127.0.0.1:{port}/socket.io/websocket", open_timeout=30.0)
    assert scope.cancelled_caught
    assert len(sessions) == 1
    assert sessions[0].closed


# ---------------------------------------------------------------------------------- proxies


@pytest.mark.parametrize(
    "url", ["ws://127.0.0.1:1/x", "ws://127.9.9.9/x", "ws://localhost:1/x", "ws://[::1]:1/x"]
)
def test_loopback_never_uses_a_proxy(no_proxy_env: pytest.MonkeyPatch, url: str) -> None:
    for name in ("http_proxy", "https_proxy", "ws_proxy", "wss_proxy"):
        no_proxy_env.setenv(name, "http://proxy.invalid:3128")
    assert transport_module._proxy_for(url) is None
    assert transport_module._proxy_for(url.replace("ws://", "wss://")) is None


def test_proxy_choice_follows_the_environment(no_proxy_env: pytest.MonkeyPatch) -> None:
    proxy_for = transport_module._proxy_for
    remote = "data.tradingview.com/socket.io/websocket"
    assert proxy_for(f"wss://{remote}") is None
    no_proxy_env.setenv("http_proxy", "http://plain.invalid:3128")
    assert proxy_for(f"wss://{remote}") is None  # as websockets: no http proxy for wss://
    assert proxy_for(f"ws://{remote}") == "http://plain.invalid:3128"
    no_proxy_env.setenv("https_proxy", "http://secure.invalid:3128")
    assert proxy_for(f"wss://{remote}") == "http://secure.invalid:3128"
    assert proxy_for(f"ws://{remote}") == "http://secure.invalid:3128"
    no_proxy_env.setenv("wss_proxy", "http://user:pw@ws.invalid:3128")
    assert proxy_for(f"wss://{remote}") == "http://user:pw@ws.invalid:3128"
    no_proxy_env.setenv("no_proxy", ".tradingview.com")
    assert proxy_for(f"wss://{remote}") is None


async def test_socks_proxy_is_refused_clearly(
    no_proxy_env: pytest.MonkeyPatch, sessions: list[aiohttp.ClientSession]
) -> None:
    no_proxy_env.setenv("https_proxy", "socks5h://127.0.0.1:1080")
    with pytest.raises(ConnectionLost, match="only HTTP"):
        await connect("wss://data.tradingview.invalid/socket.io/websocket")
    assert sessions == []


@pytest.mark.parametrize(
    ("variable", "url", "request_line"),
    [
        (
            "HTTPS_PROXY",
            "wss://data.tradingview.invalid/socket.io/websocket",
            b"CONNECT data.tradingview.invalid:443 HTTP/1.1\r\n",
        ),
        (
            "WS_PROXY",
            "ws://data.tradingview.invalid:8080/socket.io/websocket",
            # aiohttp asks an HTTP proxy for a plain ws:// URL in absolute form, no CONNECT.
            b"GET ws://data.tradingview.invalid:8080/socket.io/websocket HTTP/1.1\r\n",
        ),
    ],
)
async def test_remote_hosts_go_through_the_environment_proxy(
    no_proxy_env: pytest.MonkeyPatch,
    sessions: list[aiohttp.ClientSession],
    variable: str,
    url: str,
    request_line: bytes,
) -> None:
    async with silent_server() as (port, first_lines):
        no_proxy_env.setenv(variable, f"http://127.0.0.1:{port}")
        with pytest.raises(ConnectionLost):
            await connect(url, open_timeout=0.5)
    assert first_lines
    assert first_lines[0] == request_line
    assert all(session.closed for session in sessions)


# ---------------------------------------------------------------------------------- messages


async def test_text_and_binary_messages() -> None:
    async def handler(socket: ServerConnection) -> None:
        await socket.send(b"\x00\x01binary")
        await socket.send("~m~4~m~text")
        await socket.send("ünïcödé")
        await socket.wait_closed()

    async with server(handler) as url:
        transport = await connect(url)
        try:
            first = await transport.receive()
            second = await transport.receive()
            third = await transport.receive()
        finally:
            await transport.close()
    assert type(first) is bytes
    assert first == b"\x00\x01binary"
    assert type(second) is str
    assert second == "~m~4~m~text"
    assert third == "ünïcödé"


async def test_large_compressed_message() -> None:
    text = "~m~" + "x" * (8 * 1024 * 1024)

    async def handler(socket: ServerConnection) -> None:
        await socket.send(text)
        await socket.wait_closed()

    async with server(handler, compression="deflate") as url:
        transport = await connect(url, compression="on")
        try:
            assert transport.compressed
            assert await transport.receive() == text
        finally:
            await transport.close()


async def test_pings_are_answered_and_never_returned() -> None:
    answered: list[float] = []

    async def handler(socket: ServerConnection) -> None:
        answered.append(await (await socket.ping(b"are you there")))
        await socket.pong(b"unsolicited")
        await socket.send("after the ping")
        await socket.wait_closed()

    async with server(handler) as url:
        transport = await connect(url)
        try:
            with anyio.fail_after(5):
                assert await transport.receive() == "after the ping"
        finally:
            await transport.close()
    assert len(answered) == 1


async def test_client_messages_reach_the_server() -> None:
    received: list[str | bytes] = []

    async def handler(socket: ServerConnection) -> None:
        async for message in socket:
            received.append(message)
            await socket.send(f"echo {message}")

    async with server(handler, compression="deflate") as url:
        transport = await connect(url, compression="on")
        try:
            for text in ("~m~5~m~hello", "é" * 100, "z" * 10_000):
                await transport.send(text)
                assert await transport.receive() == f"echo {text}"
        finally:
            await transport.close()
    assert received == ["~m~5~m~hello", "é" * 100, "z" * 10_000]


async def test_receive_is_safe_to_cancel() -> None:
    """Cancelling receive() at any moment (before, while, after data arrives) loses nothing."""
    rounds = 40

    async def handler(socket: ServerConnection) -> None:
        async for message in socket:
            await asyncio.sleep(0.001)
            for n in range(3):
                await socket.send(f"{message}.{n}")

    expected = [f"{r}.{n}" for r in range(rounds) for n in range(3)]
    received: list[str | bytes] = []
    cancelled = 0
    async with server(handler) as url:
        transport = await connect(url)
        try:
            with anyio.fail_after(20):
                for r in range(rounds):
                    await transport.send(str(r))
                    while len(received) < 3 * (r + 1):
                        with anyio.move_on_after((r % 5) * 0.0007) as scope:
                            received.append(await transport.receive())
                        cancelled += scope.cancelled_caught
        finally:
            await transport.close()
    assert received == expected
    assert cancelled > 0


# ---------------------------------------------------------------------------------- endings


async def test_server_close_is_connection_lost_for_receive_and_send() -> None:
    async def handler(socket: ServerConnection) -> None:
        await socket.close(1012, "service restart")

    async with server(handler) as url:
        transport = await connect(url)
        with pytest.raises(ConnectionLost, match="1012") as caught:
            await transport.receive()
        assert "service restart" in str(caught.value)
        with pytest.raises(ConnectionLost):
            await transport.receive()
        with pytest.raises(ConnectionLost):
            await transport.send("~m~1~m~x")
        await transport.close()
        await transport.close()


async def test_simulator_restart_and_drop_are_connection_lost(tv_simulator: TvSimulator) -> None:
    sim = tv_simulator
    transport = await connect(sim.endpoints.ws_url)
    await transport.receive()  # hello
    async with anyio.create_task_group() as group:
        group.start_soon(sim.restart)
        with anyio.fail_after(5), pytest.raises(ConnectionLost, match="1012"):
            await transport.receive()
    with pytest.raises(ConnectionLost):
        await transport.send("~m~1~m~x")
    await transport.close()

    transport = await connect(sim.endpoints.ws_url)
    await transport.receive()  # hello
    assert sim.faults.drop_open() == 1
    with anyio.fail_after(5), pytest.raises(ConnectionLost):
        await transport.receive()
    with pytest.raises(ConnectionLost):
        await transport.send("~m~1~m~x")
    await transport.close()


async def test_close_while_receiving_ends_the_receive(
    tv_simulator: TvSimulator, sessions: list[aiohttp.ClientSession]
) -> None:
    transport = await connect(tv_simulator.endpoints.ws_url, close_timeout=2.0)
    await transport.receive()  # hello
    errors: list[ConnectionLost] = []

    async def read() -> None:
        try:
            await transport.receive()
        except ConnectionLost as exc:
            errors.append(exc)

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(read)
            await anyio.sleep(0.05)
            group.start_soon(transport.close)  # two closes at once, as reconnect() can do
            await transport.close()
    assert len(errors) == 1
    assert sessions[0].closed
    with pytest.raises(ConnectionLost):
        await transport.send("~m~1~m~x")
    await transport.close()


async def test_close_after_a_cancelled_receive_is_bounded(tv_simulator: TvSimulator) -> None:
    transport = await connect(tv_simulator.endpoints.ws_url, close_timeout=2.0)
    await transport.receive()  # hello
    with anyio.move_on_after(0.05):
        await transport.receive()
    with anyio.fail_after(3):
        await transport.close()
    with anyio.fail_after(5):
        while tv_simulator.stats.active_connections:  # noqa: ASYNC110 (no event to wait on)
            await anyio.sleep(0.01)


async def test_no_thread_is_started(tv_simulator: TvSimulator) -> None:
    before = set(threading.enumerate())
    transport = await connect(tv_simulator.endpoints.ws_url)
    await transport.receive()
    await transport.send("~m~5~m~hello")
    await transport.close()
    assert set(threading.enumerate()) <= before


async def test_close_is_bounded_when_the_server_never_answers(
    tv_simulator: TvSimulator, sessions: list[aiohttp.ClientSession]
) -> None:
    async with ChaosProxy("127.0.0.1", tv_simulator.port) as proxy:
        url = f"ws://127.0.0.1:{proxy.port}/socket.io/websocket"
        transport = await connect(url, close_timeout=0.3)
        await transport.receive()  # hello
        proxy.blackhole()
        started = anyio.current_time()
        with anyio.fail_after(3):
            await transport.close()
        assert 0.2 < anyio.current_time() - started < 2.0
        assert sessions[0].closed
