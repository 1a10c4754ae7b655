"""Symbol search v3 against the simulator."""

from __future__ import annotations

import dataclasses
import socket

import aiohttp
import pytest

from tvfeed_async.config import Endpoints
from tvfeed_async.errors import ConnectionLost, InvalidRequest, RateLimited, TvFeedError
from tvfeed_async.search import SearchResult, search_symbols
from tvfeed_async.testing.http_app import HttpState


def _searches(state: HttpState) -> list[dict[str, str]]:
    return [r.query for r in state.requests if r.path == "/symbol_search/v3/"]


async def test_results_are_typed_and_unhighlighted(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    results = await search_symbols(http, endpoints, "BTCUSDT", exchange="BINANCE")
    assert results == [
        SearchResult(
            symbol="BTCUSDT",
            full_name="BINANCE:BTCUSDT",
            description="Bitcoin / TetherUS",
            type="crypto",
            exchange="BINANCE",
            currency="USDT",
            country="",
        )
    ]
    # The server did highlight; the client removed it.
    assert _searches(http_state)[0]["hl"] == "1"


async def test_every_field_is_clean_of_highlighting(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    results = await search_symbols(http, endpoints, "bitcoin")
    assert len(results) == 7
    for result in results:
        for value in dataclasses.astuple(result):
            assert "<em>" not in value
            assert "</em>" not in value
    assert {r.full_name for r in results} >= {"BINANCE:BTCUSDT", "AMEX:GBTC", "BITMEX_DLY:XBTUSD"}


async def test_paging_follows_symbols_remaining(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    http_state.search_page_size = 3
    results = await search_symbols(http, endpoints, "BTC")
    expected = [entry for entry, _, _ in http_state.search("BTC")]
    assert [(r.symbol, r.exchange) for r in results] == [(e.symbol, e.exchange) for e in expected]
    assert len(results) == len(expected) == 8
    assert [q["start"] for q in _searches(http_state)] == ["0", "3", "6"]


async def test_limit_stops_paging(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    http_state.search_page_size = 3
    results = await search_symbols(http, endpoints, "BTC", limit=4)
    assert len(results) == 4
    assert [q["start"] for q in _searches(http_state)] == ["0", "3"]
    one = await search_symbols(http, endpoints, "BTC", limit=1)
    assert one == results[:1]


async def test_filters_are_sent_and_applied(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    futures = await search_symbols(http, endpoints, "BTC", type="futures")
    assert [r.full_name for r in futures] == ["CME:BTC1!"]
    assert futures[0].country == "US"
    kraken = await search_symbols(http, endpoints, "btc", exchange="KRAKEN")
    assert [r.full_name for r in kraken] == ["KRAKEN:BTCEUR"]
    first, second = _searches(http_state)
    assert first["search_type"] == "futures"
    assert first["exchange"] == ""
    assert second["exchange"] == "KRAKEN"
    for query in (first, second):
        assert query["lang"] == "en"
        assert query["domain"] == "production"
        assert query["sort_by_country"] == "US"


async def test_prefix_names_the_full_name(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    results = await search_symbols(http, endpoints, "XBTUSD")
    assert [(r.full_name, r.exchange) for r in results] == [("BITMEX_DLY:XBTUSD", "BITMEX")]


async def test_origin_referer_and_user_agent_are_sent(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    http_state.required_origin = endpoints.origin
    assert await search_symbols(http, endpoints, "AAPL")
    request = next(r for r in http_state.requests if r.path == "/symbol_search/v3/")
    assert request.headers["Origin"] == "https://www.tradingview.com"
    assert request.headers["Referer"] == "https://www.tradingview.com/"
    assert "Mozilla" in request.headers["User-Agent"]
    assert http_state.forbidden_searches == 0


async def test_forbidden_is_reported_with_its_status(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    http_state.required_origin = "https://elsewhere.example"
    with pytest.raises(TvFeedError, match="HTTP 403"):
        await search_symbols(http, endpoints, "AAPL")
    assert http_state.forbidden_searches == 1


async def test_http_429(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    http_state.throttle_remaining = 1
    http_state.throttle_retry_after = 12
    with pytest.raises(RateLimited) as caught:
        await search_symbols(http, endpoints, "AAPL")
    assert caught.value.retry_after == 12
    assert http_state.throttled_requests == 1


async def test_no_match_is_an_empty_list(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    assert await search_symbols(http, endpoints, "ZZZNOTHING") == []
    assert len(_searches(http_state)) == 1


@pytest.mark.parametrize(("text", "limit"), [("", 10), ("   ", 10), ("BTC", 0), ("BTC", -3)])
async def test_bad_input_sends_nothing(
    http: aiohttp.ClientSession,
    endpoints: Endpoints,
    http_state: HttpState,
    text: str,
    limit: int,
) -> None:
    with pytest.raises(InvalidRequest):
        await search_symbols(http, endpoints, text, limit=limit)
    assert len(http_state.requests) == 0


async def test_legacy_list_answer_is_understood(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    legacy = dataclasses.replace(
        endpoints, symbol_search_url=endpoints.symbol_search_url.replace("v3/", "")
    )
    results = await search_symbols(http, legacy, "BTC")
    assert len(results) == 8
    assert results[0].full_name == "CRYPTOCAP:BTC"  # the exact match ranks first
    assert http_state.search_requests == 1


@pytest.mark.parametrize(
    ("text", "options"),
    [
        (None, {}),
        (b"BTC", {}),
        (5, {}),
        ("BTC", {"limit": "5"}),
        ("BTC", {"limit": 2.5}),
        ("BTC", {"limit": True}),
        ("BTC", {"limit": None}),
        ("BTC", {"exchange": 5}),
        ("BTC", {"exchange": b"BINANCE"}),
        ("BTC", {"type": None}),
    ],
)
async def test_wrong_types_are_invalid_requests_before_any_request(
    http: aiohttp.ClientSession,
    endpoints: Endpoints,
    http_state: HttpState,
    text: object,
    options: dict[str, object],
) -> None:
    with pytest.raises(InvalidRequest):
        await search_symbols(http, endpoints, text, **options)  # type: ignore[arg-type]
    assert len(http_state.requests) == 0


async def test_an_unreachable_search_is_connection_lost_without_the_aiohttp_chain():
    """aiohttp's errors become the feed's in one place (http_common.http_errors): the
    message names the request, and the aiohttp exception (which carries the request and
    its headers) is not chained."""
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoints = Endpoints(symbol_search_url=f"http://127.0.0.1:{port}/symbol_search/v3/")
    async with aiohttp.ClientSession() as http:
        with pytest.raises(ConnectionLost) as caught:
            await search_symbols(http, endpoints, "btc")
    assert "symbol search" in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
