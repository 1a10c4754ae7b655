"""Adversarial cases of issue #15: a poison packet, chart errors on live streams, impossible
values, requests right after a socket death, servers that stay away, far-back ranges, and
timeouts around a stream step. Simulator cases use its fault API; the rest scripted
servers (tests/scripted.py)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from tvfeed_async import (
    ConnectionLost,
    EntitlementError,
    RequestTimeout,
    RetryPolicy,
    SymbolNotFound,
    Timeouts,
    TvFeed,
)
from tvfeed_async.config import RetryPolicy as DefaultRetry
from tvfeed_async.protocol.framing import MAX_PACKET_LENGTH, FrameDecoder

from ..scripted import (
    T0,
    Conn,
    ScriptedServer,
    completed,
    packet,
    resolved,
    series_update,
    wait_for,
)
from ..support.feeds import open_feed

pytestmark = pytest.mark.timeout(90)
MINUTE = 60
FAST = {
    "timeouts": Timeouts(request=30.0, page=2.0, idle=30.0),
    "retry": RetryPolicy(initial=0.01, maximum=0.05),
}
#: ~2 KB of JSON nested 1,000 levels deep: Python's json raises RecursionError on it.
POISON = '{"m":"du","p":["cs_x",' + "[" * 1000 + "]" * 1000 + "]}"


def plain_feed(server: ScriptedServer, **options: Any) -> TvFeed:
    return TvFeed(endpoints=server.endpoints, session_cache=False, use_env=False, **options)


async def drain(stream: Any) -> None:
    async for _ in stream:
        pass


def framed(payload: str) -> str:
    return f"~m~{len(payload)}~m~{payload}"


# --------------------------------------------------------------------------- the poison packet


@pytest.mark.parametrize(
    "poison",
    [
        framed(POISON),
        framed(
            '{"m":"du","p":["cs_x",{"sds_1":{"s":[{"i":1,"v":[' + "9" * 5000 + ",1,1,1,1]}]}}]}"
        ),
        framed('{"m":"series_completed","p":[' + "{" * 1000 + "}" * 1000 + "]}"),
        "~m~9999999999~m~" + "x" * 100,
    ],
    ids=["nested-1000", "huge-number", "nested-objects", "huge-length"],
)
async def test_one_poison_packet_costs_a_reconnect_not_the_feed(tv_simulator, poison) -> None:
    """The feed reconnects, the stream goes on with every bar (backfilled), and history
    still works; before, the reader died and every stream hung."""
    tv_simulator.faults.next_connection(malformed_after_packets=6, malformed_text=poison)
    async with open_feed(tv_simulator, **FAST) as feed:
        stream = feed.stream("BINANCE:BTCUSDT", interval="1")
        start = int(tv_simulator.clock.now()) // MINUTE * MINUTE
        bars = []
        while len(bars) < 5:
            await tv_simulator.clock.advance(MINUTE)
            try:
                bars.append(await asyncio.wait_for(anext(stream), 0.5))
            except TimeoutError:
                continue
        frame = await feed.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=5)
        assert feed.connections_opened == 2
        assert feed.stats.malformed_messages == 1
        await stream.aclose()
    times = [bar.timestamp for bar in bars]
    assert times == sorted(set(times))
    assert times[0] >= start - MINUTE
    assert frame.height == 5


def test_the_decoder_refuses_a_huge_declared_length_at_once() -> None:
    decoder = FrameDecoder()
    with pytest.raises(Exception, match="declares"):
        decoder.feed(f"~m~{MAX_PACKET_LENGTH + 1}~m~" + "x" * 10)


# --------------------------------------------------------------------------- chart errors, live


def live_server(error_packet: Any, *, reopen_ok: bool = True) -> ScriptedServer:
    """Streams one bar a tick; on the first series, once live, sends ``error_packet(cs)``."""
    state = {"series": 0}

    async def handler(conn: Conn, method: str, params: list[Any]) -> None:
        if method == "resolve_symbol":
            await conn.send(resolved(params[0]))
        elif method == "create_series":
            state["series"] += 1
            cs, turnaround = params[0], params[2]
            base = T0 + 1000 * MINUTE
            history = [(base + MINUTE * k, 10.0 + k) for k in range(3)]
            await conn.send(
                series_update("timescale_update", cs, history, turnaround),
                completed(cs, turnaround),
            )
            if state["series"] == 1:
                await asyncio.sleep(0.05)
                await conn.send(series_update("du", cs, [(base + 3 * MINUTE, 13.0)], "s1", 3))
                await conn.send(error_packet(cs))
            elif reopen_ok:
                await asyncio.sleep(0.05)  # live by then: the updates are new bars
                bars = [(base + MINUTE * k, 10.0 + k) for k in range(3, 6)]
                for n, bar in enumerate(bars):
                    await conn.send(series_update("du", cs, [bar], "s1", 3 + n))

    return ScriptedServer(handler)


@pytest.mark.parametrize(
    ("error_packet", "error"),
    [
        (lambda cs: packet("symbol_error", [cs, "sds_sym_1", "invalid symbol"]), SymbolNotFound),
        (
            lambda cs: packet("series_error", [cs, "sds_1", "s1", "custom_resolution"]),
            EntitlementError,
        ),
        (
            lambda cs: packet("symbol_error", [cs, "sds_sym_1", "permission denied"]),
            EntitlementError,
        ),
    ],
    ids=["symbol_error", "series_error", "permission"],
)
async def test_a_final_chart_error_ends_every_consumer_and_resubscribing_works(
    error_packet, error
) -> None:
    async with live_server(error_packet) as server, plain_feed(server) as feed:
        first = feed.stream("BINANCE:BTCUSDT", interval="1")
        second = feed.stream("BINANCE:BTCUSDT", interval="1")
        for stream in (first, second):
            with pytest.raises(error):
                await asyncio.wait_for(drain(stream), 10)
        assert feed.stream_count == 0
        again = feed.stream("BINANCE:BTCUSDT", interval="1")
        bar = await asyncio.wait_for(anext(again), 10)  # a new series, not the dead one
        await again.aclose()
    assert bar.closed


async def test_a_critical_error_on_a_live_stream_reopens_the_series_without_a_gap() -> None:
    def critical(cs: str) -> str:
        return packet("critical_error", [cs, "unexpected error", "method: none"])

    async with live_server(critical) as server, plain_feed(server) as feed:
        stream = feed.stream("BINANCE:BTCUSDT", interval="1")
        bars = [await asyncio.wait_for(anext(stream), 10) for _ in range(3)]
        await stream.aclose()
        assert feed.stats.critical_errors == 1
    base = T0 + 1000 * MINUTE
    assert [bar.timestamp for bar in bars] == [base + MINUTE * k for k in (2, 3, 4)]
    assert len(server.all_sent("chart_create_session")) == 2


# --------------------------------------------------------------------------- impossible values


async def test_a_bar_from_the_far_future_is_dropped_and_counted() -> None:
    base = T0 + 1000 * MINUTE

    async def handler(conn: Conn, method: str, params: list[Any]) -> None:
        if method == "resolve_symbol":
            await conn.send(resolved(params[0]))
        elif method == "create_series":
            cs = params[0]
            history = [(base + MINUTE * k, 10.0 + k) for k in range(3)]
            await conn.send(
                series_update("timescale_update", cs, history, "s1"), completed(cs, "s1")
            )
            await asyncio.sleep(0.05)
            await conn.send(series_update("du", cs, [(10**12, 5.0)], "s1", 99))
            await conn.send(series_update("du", cs, [(base + 150, 5.0)], "s1", 3))  # off-grid
            for k in range(3, 6):
                await conn.send(series_update("du", cs, [(base + MINUTE * k, 1.0 * k)], "s1", k))

    async with ScriptedServer(handler) as server, plain_feed(server) as feed:
        stream = feed.stream("BINANCE:BTCUSDT", interval="1")
        bars = [await asyncio.wait_for(anext(stream), 10) for _ in range(3)]
        await stream.aclose()
        assert feed.stats.rejected_bars == 2
    assert [bar.timestamp for bar in bars] == [base + MINUTE * k for k in (2, 3, 4)]
    assert bars[0].close == 12.0  # the forming bar kept its real values


# --------------------------------------------------------------------------- socket death


async def test_a_request_right_after_a_socket_death_waits_for_the_next_socket(
    tv_simulator,
) -> None:
    async with open_feed(tv_simulator, **FAST) as feed:
        await feed.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=5)
        for _ in range(5):
            assert tv_simulator.faults.drop_open() == 1
            frame = await feed.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=5)
            assert frame.height == 5


def test_the_default_retry_policy_never_gives_up() -> None:
    assert DefaultRetry().max_attempts is None


async def test_the_feed_comes_back_after_a_long_outage(tv_simulator) -> None:
    """20 refused reconnections in a row (more than the old default of 8 allowed)."""
    retry = RetryPolicy(initial=0.01, maximum=0.02)
    async with open_feed(tv_simulator, retry=retry) as feed:
        tv_simulator.faults.refuse_upgrades(20)
        tv_simulator.faults.drop_open()
        frame = await feed.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=5)
        assert frame.height == 5
        assert feed.connections_opened == 2


async def test_each_history_attempt_gets_a_socket_of_its_own() -> None:
    """Every socket dies at the first request: each attempt goes to a new socket (none is
    spent on the dead one), and the request ends with a typed error."""

    async def handler(conn: Conn, method: str, params: list[Any]) -> None:
        if method == "chart_create_session":
            await conn.close()

    async with ScriptedServer(handler) as server:
        timeouts = Timeouts(request=1.0)
        retry = RetryPolicy(initial=0.01, maximum=0.02)
        async with plain_feed(server, timeouts=timeouts, retry=retry) as feed:
            with pytest.raises((RequestTimeout, ConnectionLost)):
                await feed.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=5)
    asked = [len(conn.sent("chart_create_session")) for conn in server.connections]
    assert sum(asked) == 3  # three attempts
    assert max(asked) == 1  # each on its own socket


# --------------------------------------------------------------------------- far-back ranges


@pytest.mark.parametrize(
    "start",
    [datetime(1970, 1, 1, tzinfo=UTC), datetime(1900, 1, 1, tzinfo=UTC), datetime.min],
    ids=["1970", "1900", "min"],
)
async def test_far_back_ranges_page_only_over_real_data(tv_simulator, start) -> None:
    end = datetime.max if start == datetime.min else None
    async with open_feed(tv_simulator, **FAST) as feed:
        started = time.monotonic()
        frame = await feed.get_hist("BINANCE:BTCUSDT", interval="1", start=start, end=end)
        elapsed = time.monotonic() - started
    truth = tv_simulator.truth("BINANCE:BTCUSDT", "1", start=0)
    modifies = tv_simulator.stats.methods["modify_series"]
    assert frame.height == truth.height
    assert frame["time"].to_list() == truth["time"].to_list()
    assert modifies <= 60, modifies  # before: 5,894 (1970), 13,258 (1900), 63,257 (min)
    assert elapsed < 20


# --------------------------------------------------------------------------- timeouts of anext


async def test_a_timeout_around_anext_does_not_end_the_stream(tv_simulator) -> None:
    async with open_feed(tv_simulator, **FAST) as feed:
        stream = feed.stream("BINANCE:BTCUSDT", interval="1")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(anext(stream), 0.02)
        got = None
        for _ in range(10):
            await tv_simulator.clock.advance(MINUTE)
            try:
                got = await asyncio.wait_for(anext(stream), 0.5)
                break
            except TimeoutError:
                continue
        await stream.aclose()
    assert got is not None
    assert got.closed


async def test_a_stream_can_be_used_with_async_with(tv_simulator) -> None:
    async with open_feed(tv_simulator, **FAST) as feed:
        async with feed.stream("BINANCE:BTCUSDT", interval="1") as stream:
            await wait_for(lambda: feed.stream_count == 1)
            assert stream is not None
        await wait_for(lambda: feed.stream_count == 0)


# --------------------------------------------------------------------------- session limit


async def test_the_feed_stays_under_the_servers_chart_session_limit() -> None:
    """4 streams and 8 concurrent history requests on a server that allows 5 chart sessions
    per socket: every request succeeds (before, the 6th session was refused and the
    socket's later requests failed)."""
    from tvfeed_async import Limits
    from tvfeed_async.testing.simulator import TvSimulator
    from tvfeed_async.testing.ws_server import ServerConfig

    config = ServerConfig(heartbeat_interval=None, max_chart_sessions=5)
    async with TvSimulator(http_port=None, config=config) as sim:
        limits = Limits(max_chart_sessions=5)
        async with open_feed(sim, limits=limits, **FAST) as feed:
            symbols = ["BINANCE:BTCUSDT", "BINANCE:ETHUSDT", "NASDAQ:AAPL", "NASDAQ:MSFT"]
            streams = [feed.stream(symbol, interval="1") for symbol in symbols]
            await wait_for(lambda: sim.stats.methods["create_series"] == 4)
            frames = await asyncio.gather(
                *(feed.get_hist(symbols[n % 4], interval="5", n_bars=10) for n in range(8))
            )
            for stream in streams:
                await stream.aclose()
    assert all(frame.height == 10 for frame in frames)
    assert sim.stats.critical_errors == 0


async def test_an_unforeseen_error_in_a_route_costs_a_reconnect_not_the_feed(
    tv_simulator, monkeypatch
) -> None:
    """The supervisor's last line of defence: whatever a route raises (here a RuntimeError
    planted in the stream's message handler, once) drops the socket and the feed goes on."""
    from tvfeed_async.stream import Subscription

    original = Subscription.handle
    planted = {"left": 1}

    def handle(self, message):  # type: ignore[no-untyped-def]
        if planted["left"] and self._live:
            planted["left"] -= 1
            raise RuntimeError("a bug nobody foresaw")
        return original(self, message)

    monkeypatch.setattr(Subscription, "handle", handle)
    async with open_feed(tv_simulator, **FAST) as feed:
        stream = feed.stream("BINANCE:BTCUSDT", interval="1")
        bars = []
        while len(bars) < 3:
            await tv_simulator.clock.advance(MINUTE)
            try:
                bars.append(await asyncio.wait_for(anext(stream), 0.5))
            except TimeoutError:
                continue
        await stream.aclose()
        assert feed.stats.unexpected_errors == 1
        assert feed.connections_opened == 2
    times = [bar.timestamp for bar in bars]
    assert times == sorted(set(times))
