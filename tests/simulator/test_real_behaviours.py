"""What the real service does that trips clients (issues #14 and #15), frame by frame.

These tests drive the simulator with a bare WebSocket and the framing codec only (no typed
message parsing, no TvFeed), so that they show the exact packets and do not depend on the
client's own handling of them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tvfeed_async.protocol.framing import Heartbeat, decode_packets, encode_heartbeat, encode_json
from tvfeed_async.testing.faults import FaultScript
from tvfeed_async.testing.simulator import TvSimulator
from tvfeed_async.testing.ws_server import ServerConfig

BTC = "BINANCE:BTCUSDT"
TIMEOUT = 10.0
Packet = dict[str, Any] | Heartbeat


class Wire:
    """One raw WebSocket to the simulator: sends ``{"m", "p"}`` packets, keeps every message
    received as its decoded packets (JSON objects, or heartbeats, echoed when ``echo``)."""

    def __init__(self, socket: ClientConnection, *, echo: bool = True) -> None:
        self.socket = socket
        self.echo = echo
        self.messages: list[list[Packet]] = []
        self.raw: list[str] = []
        self._backlog: list[Packet] = []

    @classmethod
    async def open(cls, simulator: TvSimulator, *, echo: bool = True) -> Wire:
        socket = await connect(simulator.endpoints.ws_url, max_size=None)
        wire = cls(socket, echo=echo)
        hello = await wire.next()
        assert isinstance(hello, dict)
        assert "session_id" in hello
        return wire

    async def send(self, method: str, *params: Any) -> None:
        await self.socket.send(encode_json({"m": method, "p": list(params)}))

    async def login(self, token: str = "unauthorized_user_token") -> None:
        await self.send("set_auth_token", token)

    async def message(self, seconds: float = TIMEOUT) -> list[Packet]:
        """The packets of the next WebSocket message."""
        raw = await asyncio.wait_for(self.socket.recv(), seconds)
        text = raw if isinstance(raw, str) else raw.decode()
        self.raw.append(text)
        packets: list[Packet] = []
        for packet in decode_packets(text):
            if isinstance(packet, Heartbeat):
                if self.echo:
                    await self.socket.send(encode_heartbeat(packet))
                packets.append(packet)
            else:
                packets.append(json.loads(packet))
        self.messages.append(packets)
        return packets

    async def next(self, seconds: float = TIMEOUT) -> Packet:
        while not self._backlog:
            self._backlog.extend(await self.message(seconds))
        return self._backlog.pop(0)

    async def until(self, method: str, seconds: float = TIMEOUT) -> list[dict[str, Any]]:
        """Every JSON packet up to and including the first ``method`` one."""
        seen: list[dict[str, Any]] = []
        while True:
            packet = await self.next(seconds)
            if isinstance(packet, dict):
                seen.append(packet)
                if packet.get("m") == method:
                    return seen

    async def quiet(self, seconds: float = 0.3) -> list[Packet]:
        """Whatever arrives within ``seconds``."""
        packets = list(self._backlog)
        self._backlog.clear()
        try:
            while True:
                packets.extend(await self.message(seconds))
        except TimeoutError:
            return packets

    async def chart(
        self,
        size: Any,
        *,
        symbol: str = BTC,
        interval: str = "1",
        chart: str = "cs_1",
        turnaround: str = "s1",
    ) -> list[dict[str, Any]]:
        """Open a chart session and a series; every packet up to its series_completed."""
        await self.send("chart_create_session", chart, "")
        await self.send("resolve_symbol", chart, "sym_1", "=" + json.dumps({"symbol": symbol}))
        await self.send("create_series", chart, "s1", turnaround, "sym_1", interval, size)
        return await self.until("series_completed")


def methods(packets: list[dict[str, Any]]) -> list[str]:
    return [packet["m"] for packet in packets]


def bars(packets: list[dict[str, Any]], series: str = "s1") -> list[list[Any]]:
    """The ``v`` rows of every timescale_update / du of ``series`` among ``packets``."""
    rows: list[list[Any]] = []
    for packet in packets:
        if packet.get("m") in ("timescale_update", "du") and series in packet["p"][1]:
            rows += [row["v"] for row in packet["p"][1][series].get("s", [])]
    return rows


@pytest.fixture
async def sim() -> AsyncIterator[TvSimulator]:
    async with TvSimulator(
        http_port=None, config=ServerConfig(heartbeat_interval=None)
    ) as simulator:
        yield simulator


async def opened(sim: TvSimulator, script: FaultScript | None = None, **faults: Any) -> Wire:
    if script is not None or faults:
        sim.faults.next_connection(script, **faults)
    wire = await Wire.open(sim)
    await wire.login()
    return wire


# --------------------------------------------------------------------------- #14 faults


async def test_stale_series_completed_precedes_the_modify_batch(sim: TvSimulator) -> None:
    wire = await opened(sim, stale_completion=True)
    first = await wire.chart(5000)
    assert first[-1]["p"][3] == "s1"
    now = int(sim.clock.now())
    await wire.send("modify_series", "cs_1", "s1", "s2", "sym_1", "1", f"r,{now - 3600}:{now}")
    batch = await wire.until("series_completed")
    # The late completion of turnaround s1 comes first, on its own ...
    assert batch[0]["m"] == "series_completed"
    assert batch[0]["p"][:4] == ["cs_1", "s1", "streaming", "s1"]
    assert wire.messages[-1] == batch[:1]
    # ... then the real batch of turnaround s2.
    batch += await wire.until("series_completed")
    assert methods(batch[1:]) == ["series_loading", "timescale_update", "series_completed"]
    assert batch[-1]["p"][3] == "s2"
    assert batch[2]["p"][1]["s1"]["t"] == "s2"
    # Both range ends are inclusive; the clock stands on a minute, where a bar opens.
    assert [row[0] for row in bars(batch)] == list(range(now - 3600, now + 1, 60))


async def test_without_the_fault_modify_series_has_no_stale_completion(sim: TvSimulator) -> None:
    wire = await opened(sim)
    await wire.chart(10)
    await wire.send("modify_series", "cs_1", "s1", "s2", "sym_1", "1", 20)
    batch = await wire.until("series_completed")
    assert methods(batch) == ["series_loading", "timescale_update", "series_completed"]
    assert batch[-1]["p"][3] == "s2"


async def test_request_more_data_answered_by_silence(sim: TvSimulator) -> None:
    wire = await opened(sim, more_data_silent_after_bars=50)
    history = await wire.chart(100)
    times = [row[0] for row in bars(history)]
    assert len(times) == 50  # 50 of the 100 asked for, the newest ones: 49 closed bars
    assert times[:-1] == [row[0] for row in sim.truth_rows(BTC, "1", n_bars=49)]
    assert times[-1] == sim.clock.now()  # and the one forming
    assert "data_completed" not in history[-1]["p"][4]
    await wire.send("request_more_data", "cs_1", "s1", 50)
    assert await wire.quiet(0.5) == []
    assert sim.stats.unanswered["request_more_data"] == 1
    # The connection itself lives on: the forming bar keeps updating.
    await sim.clock.advance(60)
    live = [p for p in await wire.quiet(0.3) if isinstance(p, dict)]
    assert methods(live)
    assert set(methods(live)) == {"du"}


async def test_request_more_data_answered_up_to_the_cap_then_silent(sim: TvSimulator) -> None:
    wire = await opened(sim, more_data_silent_after_bars=30)
    assert len(bars(await wire.chart(20))) == 20
    await wire.send("request_more_data", "cs_1", "s1", 100)
    assert len(bars(await wire.until("series_completed"))) == 10
    await wire.send("request_more_data", "cs_1", "s1", 100)
    assert await wire.quiet(0.3) == []


async def test_permission_denied_symbol_error_with_group(sim: TvSimulator) -> None:
    wire = await opened(sim, denied_symbols={"NASDAQ:AAPL": "economics_paid"})
    await wire.send("chart_create_session", "cs_1", "")
    await wire.send("resolve_symbol", "cs_1", "sym_1", '={"symbol":"NASDAQ:AAPL"}')
    error = (await wire.until("symbol_error"))[-1]
    assert error["p"] == ["cs_1", "sym_1", "permission denied", "group", "economics_paid"]
    # Other symbols resolve as usual.
    await wire.send("resolve_symbol", "cs_1", "sym_2", '={"symbol":"BINANCE:BTCUSDT"}')
    assert (await wire.until("symbol_resolved"))[-1]["p"][1] == "sym_2"


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (BTC, "custom_resolution"),
        (f"{BTC}/1", "study_not_auth:Volume@tv-basicstudies-246"),
        (f"{BTC}/1", "seconds_not_entitled"),
        (BTC, "unsupported resolution"),
    ],
)
async def test_scripted_series_errors(sim: TvSimulator, key: str, reason: str) -> None:
    wire = await opened(sim, series_errors={key: reason})
    await wire.send("chart_create_session", "cs_1", "")
    await wire.send("resolve_symbol", "cs_1", "sym_1", '={"symbol":"BINANCE:BTCUSDT"}')
    await wire.send("create_series", "cs_1", "s1", "s1", "sym_1", "1", 10)
    packets = await wire.until("series_error")
    assert packets[-1]["p"] == ["cs_1", "s1", "s1", reason]
    assert "timescale_update" not in methods(packets)
    # A series error keyed by interval spares the other intervals.
    await wire.send("create_series", "cs_1", "s2", "s1", "sym_1", "5", 10)
    answer = await wire.until("series_completed" if "/" in key else "series_error")
    assert answer[-1]["p"][1] == "s2"


async def test_legacy_2019_symbol_resolved(sim: TvSimulator) -> None:
    wire = await opened(sim, legacy_resolved_symbols=frozenset({BTC}))
    packets = await wire.chart(5)
    resolved = next(p for p in packets if p["m"] == "symbol_resolved")
    chart, ref, info, stamp = resolved["p"]
    assert (chart, ref, stamp) == ("cs_1", "sym_1", int(sim.clock.now()))
    assert "visible_plots_set" not in info
    assert "volume_type" not in info
    assert "t_ms" not in resolved
    assert info["full_name"] == BTC
    assert all(len(row) == 6 for row in bars(packets))  # the bars still carry volume


async def test_late_final_revision_after_the_next_bar_opened(sim: TvSimulator) -> None:
    now = int(sim.clock.now())
    forming = now - now % 60
    wire = await opened(sim, late_final_bar_times=frozenset({forming}))
    history = await wire.chart(5)
    assert bars(history)[-1][0] == forming
    await sim.clock.advance(forming + 60 - now)
    live = [p for p in await wire.quiet(0.3) if isinstance(p, dict)]
    times = [row[0] for row in bars(live)]
    # The next bar's first update, then the final revision of the bar before it.
    assert times[-2:] == [forming + 60, forming]
    final = bars(live)[-1]
    assert tuple(final) == tuple(sim.truth_rows(BTC, "1", n_bars=1)[-1])
    assert bars(live)[-3] != final  # the revision the client had before was different


async def test_critical_error_with_an_object_param(sim: TvSimulator) -> None:
    wire = await opened(sim)
    await wire.chart(5)
    sent = sim.faults.critical_error({"error_code": "unauthorized_access"})
    assert sent == 1
    error = (await wire.until("critical_error"))[-1]
    assert error["p"] == ["cs_1", {"error_code": "unauthorized_access"}]
    # The chart session is dead: no more updates.
    await sim.clock.advance(120)
    assert [p for p in await wire.quiet(0.3) if isinstance(p, dict)] == []


@pytest.mark.parametrize("session", ["", "cs_never_created"])
async def test_critical_error_with_an_empty_or_unknown_session(
    sim: TvSimulator, session: str
) -> None:
    wire = await opened(sim)
    await wire.chart(5)
    assert sim.faults.critical_error("invalid parameters", "method: x", session=session) == 1
    error = (await wire.until("critical_error"))[-1]
    assert error["p"] == [session, "invalid parameters", "method: x"]
    # cs_1 was not named: it streams on.
    await sim.clock.advance(60)
    assert "du" in methods([p for p in await wire.quiet(0.3) if isinstance(p, dict)])


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("study", ["study_loading", "du", "study_completed"]),
        ("pointset", ["du"]),
        ("depth", ["depth_symbol_error", "depth_symbol_cleared"]),
        ("protocol_switched", ["protocol_switched"]),
    ],
)
async def test_inject_chart_packets(sim: TvSimulator, kind: str, expected: list[str]) -> None:
    wire = await opened(sim)
    await wire.chart(5)
    assert sim.faults.inject_chart_packets(kind) == 1
    message = await wire.message()
    assert methods([p for p in message if isinstance(p, dict)]) == expected
    if kind == "study":
        loading, update, completed = message
        assert isinstance(loading, dict)
        assert isinstance(update, dict)
        assert isinstance(completed, dict)
        assert loading["p"] == ["cs_1", "st_sim1", "s1_st_sim1"]
        assert update["p"][1]["st_sim1"]["st"][0]["v"][0] == sim.clock.now()
        assert "s1" not in update["p"][1]
        assert completed["p"] == loading["p"]
    if kind == "pointset":
        update = message[0]
        assert isinstance(update, dict)
        assert update["p"][1] == {
            "pointsetEstimates_1": {
                "plots": [{"index": 0, "value": [351, int(sim.clock.now())]}],
                "t": "turnaround",
            }
        }
    if kind == "depth":
        error = message[0]
        assert isinstance(error, dict)
        assert error["p"] == ["ds_simdepth01", BTC, "unsupported_symbol"]
    # The series streams on.
    await sim.clock.advance(60)
    assert "du" in methods([p for p in await wire.quiet(0.3) if isinstance(p, dict)])


async def test_inject_raw_sends_the_text_unchanged(sim: TvSimulator) -> None:
    wire = await opened(sim)
    await wire.chart(5)
    nested = "[" * 1000 + "]" * 1000
    poison = f'~m~{len(nested) + 20}~m~{{"m":"du","p":{nested}}}'
    huge = "~m~9999999999~m~" + '{"m":"du","p":[]}'
    assert sim.faults.inject_raw(poison) == 1
    assert sim.faults.inject_raw(huge) == 1
    assert await wire.socket.recv() == poison
    assert await wire.socket.recv() == huge
    # The connection is unharmed; the series goes on.
    await sim.clock.advance(60)
    assert "du" in methods([p for p in await wire.quiet(0.3) if isinstance(p, dict)])


async def test_bad_du_with_an_absurd_time(sim: TvSimulator) -> None:
    wire = await opened(sim)
    history = await wire.chart(5)
    forming = bars(history)[-1]
    assert sim.faults.bad_du() == 1
    (update,) = await wire.message()
    assert isinstance(update, dict)
    assert update["m"] == "du"
    (row,) = update["p"][1]["s1"]["s"]
    assert row["i"] == 4  # the forming bar's index ...
    assert row["v"] == [1e12, *forming[1:]]  # ... its values, an impossible time
    await sim.clock.advance(60)
    live = [p for p in await wire.quiet(0.3) if isinstance(p, dict)]
    assert [row[0] for row in bars(live)][-1] == forming[0] + 60  # then as before


async def test_bad_du_with_out_of_range_values(sim: TvSimulator) -> None:
    wire = await opened(sim)
    forming = bars(await wire.chart(5))[-1]
    assert sim.faults.bad_du(None, (-1.0, 1e308, -1e308, 0.0, -5.0)) == 1
    (update,) = await wire.message()
    assert isinstance(update, dict)
    assert update["p"][1]["s1"]["s"][0]["v"] == [forming[0], -1.0, 1e308, -1e308, 0.0, -5.0]


@pytest.mark.parametrize("kind", ["critical_error", "symbol_error", "series_error"])
async def test_chart_error_on_a_live_stream(sim: TvSimulator, kind: str) -> None:
    wire = await opened(sim)
    await wire.chart(5)
    await sim.clock.advance(60)
    assert "du" in methods([p for p in await wire.quiet(0.3) if isinstance(p, dict)])
    if kind == "critical_error":
        assert sim.faults.critical_error("invalid parameters", "method: x") == 1
        expected = ["cs_1", "invalid parameters", "method: x"]
    elif kind == "symbol_error":
        assert sim.faults.symbol_error("invalid symbol") == 1
        expected = ["cs_1", "sym_1", "invalid symbol"]
    else:
        assert sim.faults.series_error("unsupported resolution") == 1
        expected = ["cs_1", "s1", "s1", "unsupported resolution"]
    error = (await wire.until(kind))[-1]
    assert error["p"] == expected
    await sim.clock.advance(120)
    assert [p for p in await wire.quiet(0.3) if isinstance(p, dict)] == []


async def test_bad_auth_token_twice_on_one_connection(sim: TvSimulator) -> None:
    wire = await opened(sim, bad_token_offsets=(3.0, 30.0))
    await wire.chart(5)
    await sim.clock.advance(3)
    first = (await wire.until("protocol_error"))[-1]
    assert first["p"] == ["bad auth token"]
    # The socket stays open; a fresh token is accepted on it.
    await wire.login(sim.issue_token())
    await sim.clock.advance(27)
    second = (await wire.until("protocol_error"))[-1]
    assert second["p"] == ["bad auth token"]
    assert sim.stats.protocol_errors == 2
    assert sim.stats.active_connections == 1


async def test_bad_auth_token_offsets_on_the_wall_clock_can_close(sim: TvSimulator) -> None:
    wire = await opened(
        sim, bad_token_offsets=(0.05,), bad_token_wall_clock=True, bad_token_closes=True
    )
    packets = await wire.until("protocol_error")
    assert packets[-1]["p"] == ["bad auth token"]
    with pytest.raises(ConnectionClosed):
        await wire.message(2.0)


# --------------------------------------------------------------------------- hard defaults


async def test_series_loading_comes_before_symbol_resolved(sim: TvSimulator) -> None:
    wire = await opened(sim)
    packets = await wire.chart(10)
    assert methods(packets) == [
        "series_loading",
        "symbol_resolved",
        "timescale_update",
        "series_completed",
    ]
    # Without a series on it, symbol_resolved still comes, a moment later.
    await wire.send("resolve_symbol", "cs_1", "sym_2", '={"symbol":"NASDAQ:AAPL"}')
    resolved = (await wire.until("symbol_resolved"))[-1]
    assert resolved["p"][1] == "sym_2"


async def test_resolve_hold_none_answers_at_once() -> None:
    config = ServerConfig(heartbeat_interval=None, resolve_hold=None)
    async with TvSimulator(http_port=None, config=config) as sim:
        wire = await opened(sim)
        packets = await wire.chart(10)
        assert methods(packets)[:2] == ["symbol_resolved", "series_loading"]


async def test_history_is_split_over_several_timescale_updates() -> None:
    config = ServerConfig(heartbeat_interval=None, history_chunk_bars=1000)
    async with TvSimulator(http_port=None, config=config) as sim:
        await check_history_split(sim)


async def check_history_split(sim: TvSimulator) -> None:
    wire = await opened(sim)
    packets = await wire.chart(2500)
    updates = [p for p in packets if p["m"] == "timescale_update"]
    assert [len(p["p"][1]["s1"]["s"]) for p in updates] == [1000, 1000, 500]
    # Oldest first, indexes continuing from chunk to chunk, each chunk's meta index its first.
    assert [p["p"][2]["index"] for p in updates] == [0, 1000, 2000]
    indexes = [row["i"] for p in updates for row in p["p"][1]["s1"]["s"]]
    assert indexes == list(range(2500))
    times = [row[0] for row in bars(packets)]
    assert times[:-1] == [row[0] for row in sim.truth_rows(BTC, "1", n_bars=2499)]
    # One WebSocket message per chunk; the last one carries series_completed too.
    kinds = [[p.get("m") for p in message if isinstance(p, dict)] for message in wire.messages]
    assert kinds[-3:] == [
        ["timescale_update"],
        ["timescale_update"],
        ["timescale_update", "series_completed"],
    ]


async def test_history_in_one_packet_by_default(sim: TvSimulator) -> None:
    wire = await opened(sim)
    packets = await wire.chart(2500)
    assert methods(packets)[-2:] == ["timescale_update", "series_completed"]
    assert len(bars(packets)) == 2500


async def test_heartbeats_are_packed_into_data_messages() -> None:
    config = ServerConfig(heartbeat_interval=10.0, heartbeat_clock="virtual")
    async with TvSimulator(http_port=None, config=config) as sim:
        wire = await opened(sim)
        await wire.chart(5)
        for _ in range(6):  # heartbeats every 10 s, echoed; live bars at the minute
            await sim.clock.advance(10)
            await wire.quiet(0.1)
        packed = [
            message
            for message in wire.messages
            if any(isinstance(p, Heartbeat) for p in message) and len(message) > 1
        ]
        assert packed, wire.raw
        # Inside a message: after the first data packet.
        assert isinstance(packed[0][0], dict)
        assert isinstance(packed[0][1], Heartbeat)
        assert sim.stats.heartbeat_echoes == sim.stats.heartbeats_sent
        assert sim.stats.heartbeats_packed == len(packed)


async def test_a_held_heartbeat_goes_alone_when_no_data_follows() -> None:
    config = ServerConfig(heartbeat_interval=0.2, heartbeat_pack_wait=0.05)
    async with TvSimulator(http_port=None, config=config) as sim:
        wire = await opened(sim)
        beat = await wire.message(2.0)
        assert len(beat) == 1
        assert isinstance(beat[0], Heartbeat)
        assert beat[0].number == "1"


async def test_the_heartbeat_echo_is_enforced() -> None:
    config = ServerConfig(heartbeat_interval=0.1, max_missed_heartbeats=2)
    async with TvSimulator(http_port=None, config=config) as sim:
        socket = await connect(sim.endpoints.ws_url)
        await socket.recv()  # hello
        await socket.send(encode_json({"m": "set_auth_token", "p": ["unauthorized_user_token"]}))
        with pytest.raises(ConnectionClosed):
            await read_forever(socket)
        assert sim.stats.heartbeats_sent == 2
        assert sim.stats.heartbeat_echoes == 0


async def read_forever(socket: ClientConnection) -> None:
    """Read (never echoing) until the server closes the socket."""
    while True:
        await asyncio.wait_for(socket.recv(), 5.0)


# --------------------------------------------------------------------------- where data starts


@pytest.fixture
async def short_history() -> AsyncIterator[TvSimulator]:
    """3,000 bars of history per series: less than an anonymous request may ask for."""
    config = ServerConfig(heartbeat_interval=None)
    async with TvSimulator(http_port=None, history_bars=3_000, config=config) as simulator:
        yield simulator


async def test_a_count_request_beyond_the_history_finds_its_start(
    short_history: TvSimulator,
) -> None:
    sim = short_history
    start = sim.truth_rows(BTC, "1")[0][0]
    wire = await opened(sim)
    packets = await wire.chart(5000)
    rows = bars(packets)
    # Fewer bars than asked and no data_completed "limit": the history is exhausted, and the
    # first bar is where the data starts.
    assert len(rows) < 5000
    assert rows[0][0] == start
    assert packets[-1]["p"][4] == {"rt_update_period": 0}
    # Paging from there adds nothing: an empty timescale_update, then series_completed.
    await wire.send("request_more_data", "cs_1", "s1", 5000)
    more = await wire.until("series_completed")
    assert methods(more) == ["timescale_update", "series_completed"]
    assert more[0]["p"][1]["s1"]["s"] == []


async def test_a_range_before_the_data_start_is_empty(short_history: TvSimulator) -> None:
    sim = short_history
    start = sim.truth_rows(BTC, "1")[0][0]
    wire = await opened(sim)
    packets = await wire.chart(f"r,0:{start - 60}")
    assert methods(packets) == [
        "series_loading",
        "symbol_resolved",
        "timescale_update",
        "series_completed",
    ]
    assert bars(packets) == []
    assert "data_completed" not in packets[-1]["p"][4]
    # A range reaching past the start begins at the first bar.
    await wire.send("modify_series", "cs_1", "s1", "s2", "sym_1", "1", f"r,0:{start + 600}")
    rows = bars(await wire.until("series_completed"))
    assert [row[0] for row in rows] == list(range(start, start + 601, 60))


async def test_bar_count_ending_before_the_data_start_is_empty(
    short_history: TvSimulator,
) -> None:
    sim = short_history
    start = sim.truth_rows(BTC, "1")[0][0]
    wire = await opened(sim)
    assert bars(await wire.chart(["bar_count", start - 60, 100])) == []
    await wire.send(
        "modify_series", "cs_1", "s1", "s2", "sym_1", "1", ["bar_count", start + 60, 100]
    )
    assert [row[0] for row in bars(await wire.until("series_completed"))] == [start, start + 60]


# --------------------------------------------------------------------------- requests answered


@pytest.mark.parametrize(
    "chart_type",
    [
        "BarSetRenko@tv-prostudies-40!",
        "BarSetPriceBreak@tv-prostudies-34!",
        "BarSetKagi@tv-prostudies-34!",
        "BarSetPnF@tv-prostudies-34!",
        "BarSetRange@tv-basicstudies-72!",
    ],
)
async def test_non_standard_chart_types_get_study_not_auth(
    sim: TvSimulator, chart_type: str
) -> None:
    wire = await opened(sim)
    spec = {"symbol": {"symbol": BTC, "adjustment": "splits"}, "type": chart_type, "inputs": {}}
    await wire.send("chart_create_session", "cs_1", "")
    await wire.send("resolve_symbol", "cs_1", "ser_1", "=" + json.dumps(spec))
    await wire.send("create_series", "cs_1", "$prices", "s1", "ser_1", "15", 100)
    packets = await wire.until("series_error")
    assert packets[-1]["p"] == ["cs_1", "$prices", "s1", f"study_not_auth:{chart_type[:-1]}"]
    assert "timescale_update" not in methods(packets)
    resolved = next(p for p in packets if p["m"] == "symbol_resolved")
    assert resolved["p"][2]["full_name"] == BTC


async def test_create_study_is_answered_with_study_error(sim: TvSimulator) -> None:
    wire = await opened(sim)
    await wire.chart(10)
    volume = ["cs_1", "st2", "st1", "s1", "Volume@tv-basicstudies-88", {"length": 20}]
    await wire.send("create_study", *volume)
    loading, error = await wire.until("study_error")
    assert loading["p"] == ["cs_1", "st2", "s1_st1"]
    assert error["p"] == ["cs_1", "st2", "s1_st1", "unsupported study: Volume@tv-basicstudies-88"]
    await wire.send("create_study", "cs_1", "st3", "st1", "s1", "ZigZag@tv-prostudies-10!", {})
    assert (await wire.until("study_error"))[-1]["p"][3] == "study_not_auth:ZigZag@tv-prostudies-10"
    await wire.send("modify_study", "cs_1", "st2", "st4", {"length": 10})
    assert (await wire.until("study_error"))[-1]["p"][:3] == ["cs_1", "st2", "s1_st4"]
    # A study on a series that does not exist is invalid.
    await wire.send("create_study", "cs_1", "st5", "st1", "nope", "Volume@tv-basicstudies-88", {})
    critical = (await wire.until("critical_error"))[-1]
    assert critical["p"][:2] == ["cs_1", "invalid parameters"]


async def test_pointset_tickmarks_metadata_and_depth_are_answered(sim: TvSimulator) -> None:
    wire = await opened(sim)
    await wire.chart(10)
    now = int(sim.clock.now())
    await wire.send("create_pointset", "cs_1", "ps_1", "turnaround", "sym_1", "1", [now, 0])
    assert (await wire.until("du"))[-1]["p"] == ["cs_1", {"ps_1": {"plots": [], "t": "turnaround"}}]
    await wire.send("request_more_tickmarks", "cs_1", "s1", 10)
    ticks = (await wire.until("timescale_update"))[-1]
    assert ticks["p"][1] == {}
    assert ticks["p"][2]["index"] == 10
    assert [mark[1] for mark in ticks["p"][2]["marks"]] == list(range(now + 60, now + 660, 60))
    await wire.send("request_studies_metadata", "cs_1", "metadata_1")
    meta = (await wire.until("studies_metadata"))[-1]
    assert meta["p"] == ["cs_1", "metadata_1", {"metainfo": []}]
    await wire.send("depth_create_session", "ds_1", 50, 267)
    await wire.send("depth_set_symbol", "ds_1", "NASDAQ:AAPL")
    await wire.send("depth_clear_symbol", "ds_1")
    assert (await wire.until("depth_symbol_error"))[-1]["p"] == [
        "ds_1",
        "NASDAQ:AAPL",
        "unsupported_symbol",
    ]
    assert (await wire.until("depth_symbol_cleared"))[-1]["p"] == ["ds_1", "NASDAQ:AAPL"]


async def test_unsupported_methods_get_a_critical_error(sim: TvSimulator) -> None:
    wire = await opened(sim)
    await wire.chart(10)
    await wire.send("switch_protocol", "protobuf")
    error = (await wire.until("critical_error"))[-1]
    assert error["p"] == ["", "unsupported method", 'method: switch_protocol. args: "[protobuf]"']
    await wire.send("no_such_method", "cs_1", 5)
    error = (await wire.until("critical_error"))[-1]
    assert error["p"] == ["cs_1", "unsupported method", 'method: no_such_method. args: "[5]"']
    # Methods the real service never answers stay silent.
    await wire.send("set_locale", "en", "US")
    await wire.send("quote_hibernate_all", "qs_1")
    assert [p for p in await wire.quiet(0.3) if isinstance(p, dict)] == []
    assert sim.stats.ignored_methods["set_locale"] == 1


async def replay_chart(wire: Wire, start: int, *, count: int = 5) -> list[dict[str, Any]]:
    """TVAPI's replay set-up: a replay session at ``start``, then a chart reading it."""
    spec = "=" + json.dumps({"symbol": BTC, "adjustment": "splits"})
    await wire.send("replay_create_session", "rs_1")
    await wire.send("replay_add_series", "rs_1", "req_replay_addseries", spec, "1")
    await wire.send("replay_reset", "rs_1", "req_replay_reset", start)
    packets = await wire.until("replay_point")
    await wire.send("chart_create_session", "cs_1", "")
    chart_spec = {"replay": "rs_1", "symbol": {"symbol": BTC, "adjustment": "splits"}}
    await wire.send("resolve_symbol", "cs_1", "ser_1", "=" + json.dumps(chart_spec))
    await wire.send("create_series", "cs_1", "s1", "s1", "ser_1", "1", count)
    return packets + await wire.until("series_completed")


async def test_replay_serves_bars_up_to_the_point_then_steps(sim: TvSimulator) -> None:
    wire = await opened(sim)
    now = int(sim.clock.now())
    start = now - 600
    packets = await replay_chart(wire, start)
    assert [p["p"] for p in packets[:4]] == [
        ["rs_1", "req_replay_addseries"],
        ["rs_1", packets[1]["p"][1]],
        ["rs_1", "req_replay_reset"],
        ["rs_1", start],
    ]
    assert methods(packets[:4]) == ["replay_ok", "replay_instance_id", "replay_ok", "replay_point"]
    truth = sim.truth_rows(BTC, "1", n_bars=14)  # opening now - 840 ... now - 60
    history = bars(packets[4:])
    assert [tuple(row) for row in history] == [tuple(row) for row in truth[:5]]
    assert history[-1][0] == start
    await wire.send("replay_step", "rs_1", "req_step_1", 2)
    step = await wire.until("replay_ok")
    assert methods(step) == ["du", "du", "replay_point", "replay_ok"]
    assert [tuple(row) for row in bars(step)] == [tuple(row) for row in truth[5:7]]
    assert [row["i"] for p in step[:2] for row in p["p"][1]["s1"]["s"]] == [5, 6]
    assert step[2]["p"] == ["rs_1", start + 120]
    # No live updates in replay: the clock moving does not add bars.
    await sim.clock.advance(120)
    assert [p for p in await wire.quiet(0.3) if isinstance(p, dict)] == []


async def test_replay_reaches_its_end(sim: TvSimulator) -> None:
    wire = await opened(sim)
    now = int(sim.clock.now())
    await replay_chart(wire, now - 180)
    await wire.send("replay_step", "rs_1", "req_step_1", 10)
    step = await wire.until("replay_ok")
    assert methods(step) == ["du", "du", "replay_point", "replay_data_end", "replay_ok"]
    assert [row[0] for row in bars(step)] == [now - 120, now - 60]


async def test_replay_start_steps_on_its_own_until_stopped(sim: TvSimulator) -> None:
    wire = await opened(sim)
    now = int(sim.clock.now())
    await replay_chart(wire, now - 3000)
    await wire.send("replay_start", "rs_1", "req_start", 20)
    assert (await wire.until("replay_ok"))[-1]["p"] == ["rs_1", "req_start"]
    points = [(await wire.until("replay_point"))[-1]["p"][1] for _ in range(3)]
    assert points == [now - 2940, now - 2880, now - 2820]
    await wire.send("replay_stop", "rs_1", "req_stop")
    await wire.until("replay_ok")
    await wire.quiet(0.1)
    assert [p for p in await wire.quiet(0.2) if isinstance(p, dict)] == []


async def test_replay_errors_are_answered(sim: TvSimulator) -> None:
    wire = await opened(sim)
    await wire.send("replay_step", "rs_unknown", "req_1", 1)
    error = (await wire.until("critical_error"))[-1]
    assert error["p"] == [
        "rs_unknown",
        "invalid parameters",
        'method: replay_step. args: "[req_1, 1]"',
    ]
    await wire.send("replay_create_session", "rs_1")
    await wire.send(
        "replay_add_series", "rs_1", "req_add", "=" + json.dumps({"symbol": "X:NOPE"}), "1"
    )
    assert (await wire.until("critical_error"))[-1]["p"][:2] == ["rs_1", "invalid parameters"]
    # A chart on a replay session that has no point yet is invalid.
    await wire.send("chart_create_session", "cs_1", "")
    chart_spec = {"replay": "rs_1", "symbol": {"symbol": BTC}}
    await wire.send("resolve_symbol", "cs_1", "ser_1", "=" + json.dumps(chart_spec))
    await wire.send("create_series", "cs_1", "s1", "s1", "ser_1", "1", 5)
    assert (await wire.until("critical_error"))[-1]["p"][:2] == ["cs_1", "invalid parameters"]


async def test_heikin_ashi_chart_type_is_served(sim: TvSimulator) -> None:
    wire = await opened(sim)
    kind = "BarSetHeikenAshi@tv-basicstudies-60!"
    spec = {"symbol": {"symbol": BTC, "adjustment": "splits"}, "type": kind, "inputs": {}}
    await wire.send("chart_create_session", "cs_1", "")
    await wire.send("resolve_symbol", "cs_1", "ser_1", "=" + json.dumps(spec))
    await wire.send("create_series", "cs_1", "$prices", "s1", "ser_1", "1", 50)
    packets = await wire.until("series_completed")
    rows = bars(packets, "$prices")
    plain = sim.truth_rows(BTC, "1", n_bars=49)
    expected = sim.heikin_ashi_rows(BTC, "1", n_bars=49)
    assert [tuple(row) for row in rows[:-1]] == [tuple(row) for row in expected]
    # The transform, checked on two neighbours against the plain bars.
    previous, bar = expected[-2], expected[-1]
    _, o, h, low, c, v = plain[-1]
    assert bar[4] == pytest.approx((o + h + low + c) / 4)
    assert bar[1] == pytest.approx((previous[1] + previous[4]) / 2)
    assert bar[2] == max(h, bar[1], bar[4])
    assert bar[3] == min(low, bar[1], bar[4])
    assert bar[5] == v
    # Live: the bar that closes gets its Heikin-Ashi final values.
    forming_open = rows[-1][0]
    await sim.clock.advance(60)
    live = bars([p for p in await wire.quiet(0.3) if isinstance(p, dict)], "$prices")
    final = [row for row in live if row[0] == forming_open][-1]
    assert tuple(final) == tuple(sim.heikin_ashi_rows(BTC, "1", n_bars=1)[-1])


async def test_series_error_resolve_error_after_symbol_error() -> None:
    config = ServerConfig(heartbeat_interval=None, series_error_after_symbol_error=True)
    async with TvSimulator(http_port=None, config=config) as sim:
        wire = await opened(sim)
        await wire.send("chart_create_session", "cs_1", "")
        await wire.send("resolve_symbol", "cs_1", "symbol_1", '={"symbol":"NASDAQ:NOPE"}')
        await wire.send("create_series", "cs_1", "s1", "s1", "symbol_1", "1", 10)
        packets = await wire.until("series_error")
        assert methods(packets) == ["series_loading", "symbol_error", "series_error"]
        assert wire.messages[-1] == packets  # one WebSocket message, as in the 2025 frame
        assert packets[1]["p"] == ["cs_1", "symbol_1", "invalid symbol"]
        assert packets[2]["p"][:4] == ["cs_1", "s1", "s1", "resolve error"]


async def test_quote_symbols_added_to_a_missing_session(sim: TvSimulator) -> None:
    wire = await opened(sim)
    await wire.send("quote_add_symbols", "qs_missing", BTC)
    error = (await wire.until("critical_error"))[-1]
    assert error["p"] == ["qs_missing", "invalid_parameters", "quote_add_symbols"]
