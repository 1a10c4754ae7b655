"""The simulator's fast history path: same text as the plain per-bar encoding, and
permessage-deflate negotiated exactly as ``websockets`` does by default."""

from __future__ import annotations

from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve

from tvfeed_async.protocol.messages import (
    ANONYMOUS_TOKEN,
    chart_create_session,
    create_series,
    modify_series,
    range_param,
    request_more_data,
    resolve_symbol,
    set_auth_token,
    symbol_spec,
)
from tvfeed_async.testing.simulator import TvSimulator
from tvfeed_async.testing.ws_server import DEFLATE_LEVEL, SimConnection, deflate_extension

CHART = "cs_speedtestxxxx"


def _replies(
    sim: TvSimulator, symbol: str, spec: dict[str, Any], interval: str, size: Any, *, dicts: bool
) -> list[str]:
    """What one connection gets for a request, two pages and a modify_series (hello left out).

    ``dicts``: a skip_bar_times fault that skips nothing, which sends the history through the
    plain path (one ``{"i": .., "v": [..]}`` dict per bar, encoded by msgspec)."""
    connection: SimConnection = sim.hub.open_connection()
    if dicts:
        connection.script.skip_bar_times = frozenset({-1})
    connection.outbox.clear()
    token = sim.issue_token() if interval in ("5S", "2D") else ANONYMOUS_TOKEN
    connection.receive(
        set_auth_token(token).encode()
        + chart_create_session(CHART).encode()
        + resolve_symbol(CHART, "sds_sym_1", symbol_spec(symbol, **spec)).encode()
        + create_series(CHART, "sds_1", "s1", "sds_sym_1", interval, size).encode()
    )
    for count in (300, 7):  # the second page re-sends a few bars (more_data_resend_every)
        connection.receive(request_more_data(CHART, "sds_1", count).encode())
    connection.receive(modify_series(CHART, "sds_1", "s2", "sds_sym_1", interval, 20).encode())
    replies = list(connection.outbox)
    sim.hub.close_connection(connection)
    return replies


CASES = [
    ("BINANCE:SIM001USDT", {}, "1", 5_001),
    ("BINANCE:BTCUSDT", {}, "1", 2_000),  # float times, float tails
    ("BINANCE:ETHUSDT", {}, "1D", 1_500),
    ("BINANCE:SIM002USDT", {}, "5S", 800),
    ("SP:SPX", {}, "60", 1_500),  # no volume
    ("TVC:ROCKET", {}, "1", 900),  # no volume, continuous
    ("NASDAQ:AAPL", {"adjustment": "dividends"}, "1D", 3_000),
    ("NASDAQ:AAPL", {"adjustment": "none"}, "60", 3_000),
    ("NASDAQ:AAPL", {"session": "extended"}, "5", 2_000),
    ("NASDAQ:AAPL", {}, "5", 2_000),  # regular hours on the extended walk
    ("CME_MINI:NQ1!", {"back_adjustment": True}, "15", 3_000),
    ("FX:EURUSD", {}, "1W", 500),
    ("KRX:005930", {}, "30", 1_000),
    ("NYSE:KO", {}, "2D", 200),
    ("NASDAQ:MSFT", {}, "5", range_param(1_767_000_000, 1_767_621_600)),
    ("BINANCE:SIM003USDT", {}, "1", range_param(1_767_500_000, 1_767_621_600)),
    ("BINANCE:SIM004USDT", {}, "15", ["bar_count", 1_767_600_000, 400]),
]


@pytest.mark.parametrize(("symbol", "spec", "interval", "size"), CASES)
async def test_history_text_equals_per_bar_dict_encoding(
    sim: TvSimulator, symbol: str, spec: dict[str, Any], interval: str, size: Any
) -> None:
    expected = _replies(sim, symbol, spec, interval, size, dicts=True)
    assert any('"timescale_update"' in reply for reply in expected)
    cold = _replies(sim, symbol, spec, interval, size, dicts=False)
    warm = _replies(sim, symbol, spec, interval, size, dicts=False)  # cached texts
    assert cold == expected
    assert warm == expected


async def test_history_text_equals_per_bar_dicts_with_a_forming_bar(sim: TvSimulator) -> None:
    await sim.clock.advance(95)  # 14:01:35: the 14:01 bar is forming
    for symbol in ("BINANCE:SIM005USDT", "BINANCE:BTCUSDT", "SP:SPX", "CME_MINI:ES1!"):
        expected = _replies(sim, symbol, {}, "1", 100, dicts=True)
        assert _replies(sim, symbol, {}, "1", 100, dicts=False) == expected


async def test_permessage_deflate_negotiated_as_websockets_default(sim: TvSimulator) -> None:
    async def handler(socket: ServerConnection) -> None:
        await socket.wait_closed()

    async with serve(handler, "127.0.0.1", 0, compression="deflate") as reference:
        port = next(iter(reference.sockets)).getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/") as socket:
            assert socket.response is not None
            expected = socket.response.headers["Sec-WebSocket-Extensions"]
    async with connect(sim.endpoints.ws_url) as socket:  # a default websockets client
        assert socket.response is not None
        negotiated = socket.response.headers["Sec-WebSocket-Extensions"]
        assert "session_id" in await socket.recv()
    assert negotiated.startswith("permessage-deflate")
    assert negotiated == expected


def test_deflate_extension_mirrors_websockets_defaults_but_the_level() -> None:
    extension = deflate_extension()
    assert DEFLATE_LEVEL == 1
    assert extension.server_max_window_bits == 12
    assert extension.client_max_window_bits == 12
    assert extension.compress_settings == {"level": 1, "memLevel": 5}
    assert deflate_extension(6).compress_settings == {"level": 6, "memLevel": 5}
