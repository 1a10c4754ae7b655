"""Fixtures: a simulator HTTP app with known accounts and symbols, on a loopback port."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import DummyCookieJar, web
from aiohttp.test_utils import TestClient, TestServer

from tvfeed_async.testing.http_app import HttpState, SearchEntry, build_http_app
from tvfeed_async.testing.tokens import TokenIssuer

from ..support.accounts import ALICE, BOB, CAROL, DAVE

START = 1_700_000_000.0
REFERER = {"Referer": "https://www.tradingview.com"}
ORIGIN = {"Origin": "https://www.tradingview.com"}

NAMED_ENTRIES = [
    SearchEntry("AAPL", "NASDAQ", "Apple Inc.", "stock", "USD", "US"),
    SearchEntry("AAPL", "BMV", "Apple Inc. (Mexico)", "stock", "MXN", "MX"),
    SearchEntry("PINEAPPLE", "OTC", "Pineapple Energy", "stock", "USD", "US"),
    SearchEntry("AAP", "NYSE", "Advance Auto Parts", "stock", "USD", "US"),
    SearchEntry("BTCUSD", "BITSTAMP", "Bitcoin / U.S. Dollar", "crypto", "USD"),
    SearchEntry("EURUSD", "FX_IDC", "Euro / U.S. Dollar", "forex", "USD", prefix="FX"),
    SearchEntry("ES1!", "CME_MINI", "E-mini S&P 500 Futures", "futures", "USD", "US"),
]
#: 120 numbered stocks that all match "ZZ", for paging.
PAGED_ENTRIES = [
    SearchEntry(f"ZZ{i:03d}", "NYSE", f"Zulu Zeta Holding {i}", "stock", "USD", "US")
    for i in range(120)
]


class Clock:
    """The simulator's clock, moved by hand."""

    def __init__(self) -> None:
        self.value = START

    def __call__(self) -> float:
        return self.value


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def issuer() -> TokenIssuer:
    return TokenIssuer(b"test-secret")


@pytest.fixture
def state(clock: Clock, issuer: TokenIssuer) -> HttpState:
    return HttpState(
        tokens=issuer,
        now=clock,
        accounts=[ALICE, BOB, CAROL, DAVE],
        search_entries=NAMED_ENTRIES + PAGED_ENTRIES,
    )


@pytest.fixture
async def client(state: HttpState) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    # A dummy jar: every test states exactly which cookies it sends.
    async with TestClient(
        TestServer(build_http_app(state), host="127.0.0.1", port=0),
        cookie_jar=DummyCookieJar(),
    ) as test_client:
        yield test_client
