"""Every scripted fault (tvfeed_async.testing.faults)."""

from __future__ import annotations

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, ConnectionClosedError, InvalidStatus

from tvfeed_async.errors import FramingError
from tvfeed_async.protocol.messages import (
    ProtocolErrorMessage,
    SeriesData,
    SessionInfo,
    SymbolResolved,
    chart_create_session,
    parse_message,
    resolve_symbol,
    set_auth_token,
)
from tvfeed_async.testing.simulator import TvSimulator

from .helpers import RawClient, rows_of, truth_tuples


async def test_drop_after_packets_aborts_the_connection(sim: TvSimulator) -> None:
    sim.faults.next_connection(drop_after_packets=3)
    raw = await RawClient.open(sim)
    await raw.start()
    await raw.send(
        chart_create_session("cs_1"),
        *(resolve_symbol("cs_1", f"r{n}", "BINANCE:BTCUSDT") for n in range(5)),
    )
    items, closed = await raw.read_until_closed()
    received = len(items)
    assert received == 2  # after the hello (read by start): two symbol_resolved, then the drop
    assert isinstance(closed, ConnectionClosedError)
    assert closed.rcvd is None  # no closing handshake: the TCP connection was dropped


async def test_drop_at_a_virtual_time(sim: TvSimulator) -> None:
    sim.faults.next_connection(drop_at=sim.clock.now() + 90)
    raw = await RawClient.open(sim)
    await raw.start()
    await raw.chart("BINANCE:BTCUSDT", "1", 5)
    await sim.clock.advance(60)
    assert [i for i in await raw.quiet(0.2) if isinstance(i, SeriesData)]
    await sim.clock.advance(60)
    with pytest.raises(ConnectionClosed):
        await raw.quiet(1.0)


async def test_stall_stops_everything_but_keeps_the_socket(sim: TvSimulator) -> None:
    raw = await RawClient.open(sim)
    await raw.start()
    await raw.chart("BINANCE:BTCUSDT", "1", 5)
    assert sim.faults.stall_open() == 1
    await sim.clock.advance(600)
    await raw.send(chart_create_session("cs_2"), resolve_symbol("cs_2", "r", "BINANCE:BTCUSDT"))
    assert await raw.quiet(0.3) == []
    pong = await raw.socket.ping()
    await pong  # the socket itself is alive
    assert sim.stats.active_connections == 1
    await raw.close()


async def test_stall_after_packets(sim: TvSimulator) -> None:
    sim.faults.next_connection(stall_after_packets=2)
    raw = await RawClient.open(sim)
    await raw.start()
    await raw.send(
        chart_create_session("cs_1"),
        *(resolve_symbol("cs_1", f"r{n}", "BINANCE:BTCUSDT") for n in range(3)),
    )
    items = await raw.quiet(0.3)
    # raw.start() read the hello (packet 1); one symbol_resolved (packet 2), then silence.
    assert len(items) == 1
    assert isinstance(items[0], SymbolResolved)
    await raw.close()


async def test_malformed_packet(sim: TvSimulator) -> None:
    script = sim.faults.next_connection(malformed_after_packets=1)
    raw = await RawClient.open(sim)
    assert isinstance(await raw.next(), SessionInfo)
    await raw.send(
        set_auth_token("unauthorized_user_token"),
        chart_create_session("cs_1"),
        resolve_symbol("cs_1", "r", "BINANCE:BTCUSDT"),
    )
    # The hello was packet 1; the malformed packet comes right after it.
    with pytest.raises(FramingError):
        await raw.next()
    assert script.malformed_text.startswith("~m~15~m~")
    with pytest.raises(FramingError):
        parse_message(script.malformed_text[8:])
    await raw.close()


async def test_skip_and_duplicate_bars_in_history_and_du(sim: TvSimulator) -> None:
    truth = truth_tuples(sim, "BINANCE:ETHUSDT", "1", n_bars=10)
    skipped, doubled = truth[3][0], truth[5][0]
    now = int(sim.clock.now())
    sim.faults.next_connection(
        skip_bar_times=frozenset({skipped, now + 120}),
        duplicate_bar_times=frozenset({doubled, now + 180}),
    )
    raw = await RawClient.open(sim)
    await raw.start()
    history, _ = await raw.chart("BINANCE:ETHUSDT", "1", 11)
    times = [row[0] for row in rows_of(history)]
    assert skipped not in times
    assert times.count(doubled) == 2
    await sim.clock.advance(300)
    live = [
        bar
        for item in await raw.quiet(0.3)
        if isinstance(item, SeriesData)
        for bar in rows_of(item)
    ]
    live_times = [bar[0] for bar in live]
    assert now + 120 not in live_times
    final = truth_tuples(sim, "BINANCE:ETHUSDT", "1", start=now + 180, end=now + 181)[0]
    assert live.count(final) == 2
    await raw.close()


async def test_refused_upgrades_then_success(sim: TvSimulator) -> None:
    sim.faults.refuse_upgrades(2)
    for _ in range(2):
        with pytest.raises(InvalidStatus) as caught:
            await connect(sim.endpoints.ws_url)
        assert caught.value.response.status_code == 429
    async with connect(sim.endpoints.ws_url) as socket:
        assert "session_id" in await socket.recv()
    assert sim.stats.upgrades_refused == 2
    assert sim.stats.connections_opened == 1


async def test_max_sessions_rate_reached(sim: TvSimulator) -> None:
    sim.faults.next_connection(max_sessions_rate_after=2)
    raw = await RawClient.open(sim)
    await raw.start()
    await raw.send(*(chart_create_session(f"cs_{n}") for n in range(3)))
    assert await raw.next() == ProtocolErrorMessage("max sessions rate reached")
    with pytest.raises(ConnectionClosed):
        await raw.next()


async def test_max_sessions_rate_on_open_connections(sim: TvSimulator, client: RawClient) -> None:
    assert sim.faults.max_sessions_rate_open() == 1
    assert await client.expect(ProtocolErrorMessage) == ProtocolErrorMessage(
        "max sessions rate reached"
    )
    with pytest.raises(ConnectionClosed):
        await client.next()


async def test_token_expiring_mid_stream(sim: TvSimulator) -> None:
    sim.faults.next_connection(expire_token_at=sim.clock.now() + 300)
    raw = await RawClient.open(sim)
    await raw.start(sim.issue_token("pro"))
    await raw.chart("BINANCE:BTCUSDT", "1", 5)
    await sim.clock.advance(600)
    seen, error = await raw.collect_until(ProtocolErrorMessage)
    assert error.message == "bad auth token"
    assert any(isinstance(item, SeriesData) for item in seen)
    with pytest.raises(ConnectionClosed):
        await raw.next()


async def test_expire_tokens_now(sim: TvSimulator, client: RawClient) -> None:
    assert sim.faults.expire_tokens() == 1
    assert await client.expect(ProtocolErrorMessage) == ProtocolErrorMessage("bad auth token")


async def test_restart_drops_connections_and_keeps_truth(sim: TvSimulator) -> None:
    raw = await RawClient.open(sim)
    await raw.start()
    before, _ = await raw.chart("BINANCE:BTCUSDT", "60", 50)
    assert await sim.restart() == 1
    with pytest.raises(ConnectionClosed) as caught:
        await raw.quiet(1.0)
    assert caught.value.rcvd is not None
    assert caught.value.rcvd.code == 1012
    again = await RawClient.open(sim)
    await again.start()
    after, _ = await again.chart("BINANCE:BTCUSDT", "60", 50)
    assert rows_of(after) == rows_of(before)
    assert sim.stats.connections_opened == 2
    await again.close()


async def test_send_latency_still_delivers(sim: TvSimulator) -> None:
    sim.faults.next_connection(send_latency=0.01)
    raw = await RawClient.open(sim)
    await raw.start()
    history, _ = await raw.chart("BINANCE:BTCUSDT", "1", 5)
    assert rows_of(history)[:-1] == truth_tuples(sim, "BINANCE:BTCUSDT", "1", n_bars=4)
    await raw.close()


async def test_drop_open(sim: TvSimulator, client: RawClient) -> None:
    assert sim.faults.drop_open() == 1
    with pytest.raises(ConnectionClosedError):
        await client.quiet(1.0)
