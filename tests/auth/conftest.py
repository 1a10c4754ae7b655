"""Fixtures for the auth and search tests: the simulator's HTTP app on a loopback port."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from tvfeed_async.auth import SessionCache
from tvfeed_async.config import Endpoints
from tvfeed_async.testing.http_app import HttpState, SearchEntry, build_http_app
from tvfeed_async.testing.tokens import TokenIssuer

from ..support.accounts import ALICE, BOB, CAROL, DAVE

SEARCH_ENTRIES = [
    SearchEntry("BTCUSDT", "BINANCE", "Bitcoin / TetherUS", "crypto", "USDT", ""),
    SearchEntry("BTCUSD", "COINBASE", "Bitcoin / U.S. Dollar", "crypto", "USD", ""),
    SearchEntry("BTCUSD", "BITSTAMP", "Bitcoin / U.S. Dollar", "crypto", "USD", ""),
    SearchEntry("BTCEUR", "KRAKEN", "Bitcoin / Euro", "crypto", "EUR", ""),
    SearchEntry("BTC1!", "CME", "Bitcoin Futures", "futures", "USD", "US"),
    SearchEntry("BTCUSDT.P", "BYBIT", "BTCUSDT Perpetual Contract", "crypto", "USDT", ""),
    SearchEntry("GBTC", "AMEX", "Grayscale Bitcoin Trust", "fund", "USD", "US"),
    SearchEntry("AAPL", "NASDAQ", "Apple Inc.", "stock", "USD", "US"),
    SearchEntry("BTC", "CRYPTOCAP", "Market Cap BTC", "index", "USD", "", prefix="CRYPTOCAP"),
    SearchEntry("XBTUSD", "BITMEX", "Bitcoin Perp", "crypto", "USD", "", prefix="BITMEX_DLY"),
]


def make_state() -> HttpState:
    return HttpState(
        tokens=TokenIssuer(b"secret"),
        now=time.time,
        accounts=[ALICE, BOB, CAROL, DAVE],
        search_entries=SEARCH_ENTRIES,
    )


@pytest.fixture
def http_state() -> HttpState:
    return make_state()


@pytest.fixture
async def server(http_state: HttpState) -> AsyncIterator[TestServer]:
    test_server = TestServer(build_http_app(http_state), host="127.0.0.1", port=0)
    await test_server.start_server()
    try:
        yield test_server
    finally:
        await test_server.close()


@pytest.fixture
def endpoints(server: TestServer) -> Endpoints:
    base = str(server.make_url("")).rstrip("/")
    return Endpoints(
        ws_url="ws://127.0.0.1:9/socket.io/websocket",
        www_url=base,
        symbol_search_url=f"{base}/symbol_search/v3/",
        origin="https://www.tradingview.com",
    )


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def cache(tmp_path: Path) -> SessionCache:
    return SessionCache(tmp_path / "cache" / "sessions.json")
