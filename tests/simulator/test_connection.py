"""Connection-level behaviour: hello, heartbeats, auth, incoming framing."""

from __future__ import annotations

import asyncio
import json

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tvfeed_async.protocol.framing import Heartbeat, encode_packet
from tvfeed_async.protocol.messages import (
    ProtocolErrorMessage,
    SeriesCompleted,
    SeriesData,
    SessionInfo,
    SymbolResolved,
    chart_create_session,
    create_series,
    resolve_symbol,
    set_auth_token,
    symbol_spec,
)
from tvfeed_async.testing.simulator import TvSimulator
from tvfeed_async.testing.ws_server import ServerConfig

from .helpers import RawClient


async def test_hello_comes_first_without_any_client_message(sim: TvSimulator) -> None:
    raw = await RawClient.open(sim)
    first = await raw.frame()
    await raw.close()
    assert len(first) == 1
    assert isinstance(first[0], SessionInfo)
    info = first[0].raw
    assert set(info) == {
        "session_id",
        "timestamp",
        "timestampMs",
        "release",
        "studies_metadata_hash",
        "auth_scheme_vsn",
        "protocol",
        "via",
        "javastudies",
    }
    assert info["auth_scheme_vsn"] == 2
    assert info["protocol"] == "json"
    assert info["javastudies"] == ["3.64"]
    assert info["timestamp"] == int(sim.clock.now())
    assert info["timestampMs"] == int(sim.clock.now() * 1000)
    assert len(info["studies_metadata_hash"]) == 40


async def test_query_string_is_accepted_and_recorded(sim: TvSimulator) -> None:
    url = sim.endpoints.ws_url + "?from=chart%2F&date=2024_04_22-11_32&type=chart"
    async with connect(url, origin=None) as socket:  # type: ignore[arg-type]
        assert "session_id" in await socket.recv()
    assert sim.stats.query_strings[-1] == "from=chart%2F&date=2024_04_22-11_32&type=chart"


async def test_other_paths_are_not_found(sim: TvSimulator) -> None:
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as caught:
        await connect(f"ws://127.0.0.1:{sim.port}/elsewhere")
    assert caught.value.response.status_code == 404


async def test_heartbeats_count_from_one_and_echoing_keeps_the_socket() -> None:
    config = ServerConfig(heartbeat_interval=0.02, max_missed_heartbeats=3)
    async with TvSimulator(http_port=None, config=config) as sim:
        raw = await RawClient.open(sim, echo=True)
        numbers: list[str] = []
        while len(numbers) < 6:
            item = await raw.next()
            if isinstance(item, Heartbeat):
                numbers.append(item.number)
        assert numbers == ["1", "2", "3", "4", "5", "6"]
        assert sim.stats.heartbeat_echoes >= 5
        await raw.close()


async def test_a_client_that_never_echoes_is_dropped_after_three_missed() -> None:
    config = ServerConfig(heartbeat_interval=0.02, max_missed_heartbeats=3)
    async with TvSimulator(http_port=None, config=config) as sim:
        raw = await RawClient.open(sim, echo=False)
        items, _ = await raw.read_until_closed()
        beats = sum(isinstance(item, Heartbeat) for item in items)
        assert beats == 3
        assert sim.stats.heartbeats_sent == 3


async def test_heartbeats_on_the_virtual_clock() -> None:
    config = ServerConfig(heartbeat_interval=10.0, heartbeat_clock="virtual")
    async with TvSimulator(http_port=None, config=config) as sim:
        raw = await RawClient.open(sim, echo=True)
        await raw.start()
        await sim.clock.advance(25)
        first, second = await raw.expect(Heartbeat), await raw.expect(Heartbeat)
        assert (first.number, second.number) == ("1", "2")
        await raw.close()


async def test_nothing_is_served_before_set_auth_token(sim: TvSimulator) -> None:
    raw = await RawClient.open(sim)
    await raw.next()
    await raw.send(
        chart_create_session("cs_x"), resolve_symbol("cs_x", "sym", symbol_spec("BINANCE:BTCUSDT"))
    )
    assert await raw.quiet(0.3) == []
    assert sim.stats.ignored_before_auth == 2
    await raw.send(
        set_auth_token("unauthorized_user_token"),
        chart_create_session("cs_x"),
        resolve_symbol("cs_x", "sym", symbol_spec("BINANCE:BTCUSDT")),
    )
    assert isinstance(await raw.next(), SymbolResolved)
    await raw.close()


@pytest.mark.parametrize("token", ["garbage", "a.b.c", ""])
async def test_a_bad_token_gets_protocol_error_then_close(sim: TvSimulator, token: str) -> None:
    raw = await RawClient.open(sim)
    await raw.start(token)
    error = await raw.next()
    assert error == ProtocolErrorMessage("bad auth token")
    assert raw.frames[-1][0].startswith("~m~")
    with pytest.raises(ConnectionClosed):
        await raw.next()


async def test_an_expired_token_is_a_bad_token(sim: TvSimulator) -> None:
    token = sim.issue_token("pro_premium", issued_at=sim.clock.now() - 5 * 3600)
    raw = await RawClient.open(sim)
    await raw.start(token)
    assert await raw.next() == ProtocolErrorMessage("bad auth token")
    with pytest.raises(ConnectionClosed):
        await raw.next()


async def test_a_token_of_another_simulator_is_rejected(sim: TvSimulator) -> None:
    other = TvSimulator(http_port=None)
    raw = await RawClient.open(sim)
    await raw.start(other.issue_token("pro_premium"))
    assert await raw.next() == ProtocolErrorMessage("bad auth token")
    await raw.close()


async def test_an_issued_token_gets_its_plan_bar_limit(sim: TvSimulator) -> None:
    raw = await RawClient.open(sim)
    await raw.start(sim.issue_token("pro_premium"))
    history, completed = await raw.chart("BINANCE:BTCUSDT", "1", 25_000)
    assert len(history.series["s1"].rows) == 20_000
    assert completed.data_completed == "limit"
    await raw.close()


async def test_several_packets_in_one_incoming_message_and_binary_frames(sim: TvSimulator) -> None:
    raw = await RawClient.open(sim)
    await raw.next()
    batch = "".join(
        message.encode()
        for message in (
            set_auth_token("unauthorized_user_token"),
            chart_create_session("cs_b"),
            resolve_symbol("cs_b", "sym", symbol_spec("BINANCE:ETHUSDT")),
        )
    )
    await raw.socket.send(batch.encode())  # one binary frame carrying three packets
    resolved = await raw.expect(SymbolResolved)
    assert resolved.info["pro_name"] == "BINANCE:ETHUSDT"
    await raw.send(create_series("cs_b", "s1", "s1", "sym", "1", 10))
    history = await raw.expect(SeriesData)
    assert len(history.series["s1"].rows) == 10
    await raw.close()


async def test_client_prefixes_counted_in_bytes_are_accepted(sim: TvSimulator) -> None:
    raw = await RawClient.open(sim)
    await raw.start()
    await raw.send(chart_create_session("cs_c"))
    payload = json.dumps(
        {"m": "resolve_symbol", "p": ["cs_c", "sym", '={"symbol":"KRX:005930","x":"삼성"}']},
        ensure_ascii=False,
        separators=(",", ":"),
    )
    # A Go-style client: the prefix counts UTF-8 bytes, not UTF-16 units.
    await raw.send(f"~m~{len(payload.encode())}~m~{payload}")
    resolved = await raw.expect(SymbolResolved)
    assert resolved.info["description"] == "삼성전자"
    await raw.close()


async def test_heartbeat_echo_inside_a_batch_counts(sim: TvSimulator) -> None:
    raw = await RawClient.open(sim)
    await raw.next()
    await raw.send(encode_packet("~h~1") + set_auth_token("unauthorized_user_token").encode())
    await asyncio.sleep(0)
    await raw.send(chart_create_session("cs_d"), resolve_symbol("cs_d", "r", "BINANCE:BTCUSDT"))
    assert isinstance(await raw.next(), SymbolResolved)
    assert sim.stats.heartbeat_echoes == 1
    await raw.close()


async def test_history_and_completion_share_one_websocket_message(client: RawClient) -> None:
    await client.chart("BINANCE:BTCUSDT", "5", 50)
    kinds = [[type(item).__name__ for item in items] for _, items in client.frames]
    assert ["SeriesLoading"] in kinds
    assert ["HistoryData", "SeriesCompleted"] in kinds
    assert kinds.index(["SeriesLoading"]) < kinds.index(["HistoryData", "SeriesCompleted"])
    completed = client.frames[-1][1][1]
    assert isinstance(completed, SeriesCompleted)
    assert completed.update_mode == "streaming"
