"""A name lookup starts no thread (issue #15, "A name lookup starts a thread").

aiohttp's default resolver calls getaddrinfo in the loop's thread pool. The worker thread
stays alive until the loop closes, so comparing the live threads before and after a
connection shows whether one was started.
"""

from __future__ import annotations

import importlib.util
import socket
import threading  # noqa: TID251 (only counts threads, to show that none is started)
from dataclasses import replace

import aiohttp
import pytest

from tvfeed_async import TvFeed
from tvfeed_async.testing import TvSimulator
from tvfeed_async.testing.http_app import Account
from tvfeed_async.websocket import (
    LoopbackAwareResolver,
    _dns_resolver,
    http_connector,
    open_transport,
)


def _on_localhost(url: str) -> str:
    return url.replace("://127.0.0.1:", "://localhost:", 1)


async def test_a_feed_on_localhost_starts_no_thread() -> None:
    accounts = [Account("local", "local-pw-12", 7001, plan="pro")]
    async with TvSimulator(accounts=accounts) as sim:
        endpoints = sim.endpoints
        local = replace(
            endpoints,
            ws_url=_on_localhost(endpoints.ws_url),
            www_url=_on_localhost(endpoints.www_url),
            symbol_search_url=_on_localhost(endpoints.symbol_search_url),
        )
        assert "localhost" in local.ws_url
        assert "localhost" in local.www_url
        before = set(threading.enumerate())
        feed = TvFeed(
            endpoints=local,
            username="local",
            password="local-pw-12",
            session_cache=False,
            use_env=False,
        )
        async with feed:
            frame = await feed.get_hist("BINANCE:BTCUSDT", interval="5", n_bars=5)
            await feed.search_symbol("BTC", limit=1)
            during = set(threading.enumerate())
        assert frame.height == 5
        assert feed.plan == "pro"  # signed in over http://localhost
        assert sim.http is not None
        assert sim.http.search_requests == 1
    assert during <= before, during - before


async def test_the_websocket_to_localhost_starts_no_thread(tv_simulator: TvSimulator) -> None:
    before = set(threading.enumerate())
    transport = await open_transport(
        _on_localhost(tv_simulator.endpoints.ws_url),
        origin="https://www.tradingview.com",
        open_timeout=5.0,
    )
    try:
        assert await transport.receive()  # the hello packet
    finally:
        await transport.close()
    assert set(threading.enumerate()) <= before


@pytest.mark.parametrize(
    ("host", "family", "expected"),
    [
        ("localhost", socket.AF_UNSPEC, ["127.0.0.1", "::1"]),
        ("LocalHost.", socket.AF_INET, ["127.0.0.1"]),
        ("api.localhost", socket.AF_INET6, ["::1"]),
        ("127.0.0.1", socket.AF_UNSPEC, ["127.0.0.1"]),
        ("::1", socket.AF_UNSPEC, ["::1"]),
        ("10.1.2.3", socket.AF_INET, ["10.1.2.3"]),
    ],
)
async def test_literals_and_localhost_need_no_lookup(
    host: str, family: socket.AddressFamily, expected: list[str]
) -> None:
    before = set(threading.enumerate())
    results = await LoopbackAwareResolver().resolve(host, 8080, family)
    assert [result["host"] for result in results] == expected
    assert all(result["port"] == 8080 for result in results)
    assert set(threading.enumerate()) <= before


async def test_a_family_that_does_not_match_is_an_os_error() -> None:
    with pytest.raises(OSError, match="family"):
        await LoopbackAwareResolver().resolve("127.0.0.1", 80, socket.AF_INET6)


async def test_other_names_go_to_aiodns_when_it_is_installed() -> None:
    resolver = _dns_resolver()
    try:
        if importlib.util.find_spec("aiodns") is None:
            # The documented exception: without aiodns, aiohttp's threaded resolver.
            assert isinstance(resolver, aiohttp.ThreadedResolver)
        else:
            assert isinstance(resolver, aiohttp.AsyncResolver)
    finally:
        await resolver.close()


async def test_the_connector_uses_the_resolver() -> None:
    connector = http_connector()
    try:
        assert isinstance(connector._resolver, LoopbackAwareResolver)
    finally:
        await connector.close()
