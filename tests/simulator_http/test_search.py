"""Symbol search of the simulator."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.simulator_http.conftest import NAMED_ENTRIES, ORIGIN, PAGED_ENTRIES
from tvfeed_async.testing.http_app import HttpState

Client = TestClient[web.Request, web.Application]
V3 = "/symbol_search/v3/"


async def search(client: Client, **params: str) -> dict[str, Any]:
    query = {"hl": "1", "lang": "en", "domain": "production", **params}
    response = await client.get(V3, params=query, headers=ORIGIN)
    assert response.status == 200
    assert response.content_type == "application/json"
    body: dict[str, Any] = await response.json()
    return body


def plain(text: str) -> str:
    return text.replace("<em>", "").replace("</em>", "")


async def test_paging_walks_every_match_once(client: Client, state: HttpState) -> None:
    expected = [entry.symbol for entry in PAGED_ENTRIES]
    seen: list[str] = []
    remaining_values = []
    while True:
        body = await search(client, text="zz", start=str(len(seen)), hl="0")
        assert len(body["symbols"]) <= 50
        seen.extend(symbol["symbol"] for symbol in body["symbols"])
        remaining_values.append(body["symbols_remaining"])
        if body["symbols_remaining"] == 0:
            break
    assert remaining_values == [70, 20, 0]
    assert seen == expected  # no overlap, no gap, stable order
    assert state.search_requests == 3


async def test_page_size_knob(client: Client, state: HttpState) -> None:
    state.search_page_size = 7
    first = await search(client, text="ZZ", start="0")
    second = await search(client, text="ZZ", start="7")
    last = await search(client, text="ZZ", start="119")
    beyond = await search(client, text="ZZ", start="500")

    assert [plain(s["symbol"]) for s in first["symbols"]] == [f"ZZ{i:03d}" for i in range(7)]
    assert [plain(s["symbol"]) for s in second["symbols"]] == [f"ZZ{i:03d}" for i in range(7, 14)]
    assert first["symbols_remaining"] == 113
    assert second["symbols_remaining"] == 106
    assert [plain(s["symbol"]) for s in last["symbols"]] == ["ZZ119"]
    assert last["symbols_remaining"] == 0
    assert beyond == {"symbols_remaining": 0, "symbols": []}


async def test_highlighting_wraps_the_matched_part(client: Client) -> None:
    body = await search(client, text="aap", exchange="NASDAQ")

    assert len(body["symbols"]) == 1
    apple = body["symbols"][0]
    assert apple["symbol"] == "<em>AAP</em>L"
    assert apple["description"] == "Apple Inc."  # "aap" is not in the description

    body = await search(client, text="apple", exchange="nasdaq")
    apple = body["symbols"][0]
    assert apple["symbol"] == "AAPL"
    assert apple["description"] == "<em>Apple</em> Inc."

    body = await search(client, text="aap", exchange="NASDAQ", hl="0")
    assert body["symbols"][0]["symbol"] == "AAPL"


async def test_ranking_puts_exact_then_prefix_then_substring_then_description(
    client: Client,
) -> None:
    body = await search(client, text="AAP", hl="0")
    order = [(s["symbol"], s["exchange"]) for s in body["symbols"]]

    assert order == [("AAP", "NYSE"), ("AAPL", "NASDAQ"), ("AAPL", "BMV")]

    body = await search(client, text="apple", hl="0")
    order = [(s["symbol"], s["exchange"]) for s in body["symbols"]]
    # PINEAPPLE matches in its symbol; the two Apple listings only in their description.
    assert order == [("PINEAPPLE", "OTC"), ("AAPL", "NASDAQ"), ("AAPL", "BMV")]


async def test_result_fields(client: Client) -> None:
    body = await search(client, text="EURUSD", hl="0")
    (euro,) = body["symbols"]

    assert euro["symbol"] == "EURUSD"
    assert euro["description"] == "Euro / U.S. Dollar"
    assert euro["type"] == "forex"
    assert euro["exchange"] == "FX_IDC"
    assert euro["prefix"] == "FX"
    assert euro["currency_code"] == "USD"
    assert euro["source_id"] == "FX"
    assert euro["provider_id"] == "fx"
    assert euro["country"] == ""
    assert isinstance(euro["typespecs"], list)

    (apple,) = (await search(client, text="AAPL", exchange="NASDAQ"))["symbols"]
    assert "prefix" not in apple
    assert apple["country"] == "US"
    assert apple["source_id"] == "NASDAQ"


async def test_filters_are_case_insensitive(client: Client) -> None:
    crypto = await search(client, text="", search_type="CRYPTO", hl="0")
    assert [s["symbol"] for s in crypto["symbols"]] == ["BTCUSD"]

    futures = await search(client, text="e", search_type="futures", hl="0")
    assert [s["symbol"] for s in futures["symbols"]] == ["ES1!"]

    by_exchange = await search(client, text="aapl", exchange="bmv", hl="0")
    assert [(s["symbol"], s["exchange"]) for s in by_exchange["symbols"]] == [("AAPL", "BMV")]

    by_prefix = await search(client, text="eur", exchange="fx", hl="0")
    assert [s["symbol"] for s in by_prefix["symbols"]] == ["EURUSD"]

    combined = await search(client, text="NASDAQ:aapl", hl="0")
    assert [(s["symbol"], s["exchange"]) for s in combined["symbols"]] == [("AAPL", "NASDAQ")]

    nothing = await search(client, text="AAPL", search_type="crypto")
    assert nothing == {"symbols_remaining": 0, "symbols": []}

    everything = await search(client, text="", search_type="undefined", hl="0")
    assert everything["symbols_remaining"] + len(everything["symbols"]) == len(NAMED_ENTRIES) + len(
        PAGED_ENTRIES
    )


async def test_plus_in_text_means_space(client: Client) -> None:
    body = await search(client, text="APPLE+INC", hl="0")
    assert [s["exchange"] for s in body["symbols"]] == ["NASDAQ", "BMV"]


async def test_missing_origin_is_forbidden(client: Client, state: HttpState) -> None:
    response = await client.get(V3, params={"text": "AAPL"})
    assert response.status == 403
    assert state.forbidden_searches == 1

    state.required_origin = "https://www.tradingview.com"
    response = await client.get(
        V3, params={"text": "AAPL"}, headers={"Origin": "https://evil.example"}
    )
    assert response.status == 403
    response = await client.get(V3, params={"text": "AAPL"}, headers=ORIGIN)
    assert response.status == 200
    assert state.forbidden_searches == 2
    recorded = [r for r in state.requests if r.path == V3]
    assert recorded[-1].headers["Origin"] == ORIGIN["Origin"]
    assert recorded[-1].query["text"] == "AAPL"


async def test_bad_start_is_a_client_error(client: Client) -> None:
    for start in ("x", "-1"):
        response = await client.get(V3, params={"text": "A", "start": start}, headers=ORIGIN)
        assert response.status == 400


async def test_legacy_search_returns_an_array(client: Client, state: HttpState) -> None:
    # tvdatafeed's request: no Origin, `type=` instead of `search_type=`.
    response = await client.get(
        "/symbol_search/",
        params={
            "text": "AAPL",
            "hl": "1",
            "exchange": "",
            "lang": "en",
            "type": "",
            "domain": "production",
        },
    )
    assert response.status == 200
    raw = await response.text()
    # tvdatafeed deletes the highlight tags from the raw text, then parses.
    body = json.loads(raw.replace("</em>", "").replace("<em>", ""))
    assert isinstance(body, list)
    assert [(s["symbol"], s["exchange"]) for s in body] == [("AAPL", "NASDAQ"), ("AAPL", "BMV")]
    assert "<em>AAPL</em>" in raw

    state.legacy_search_requires_origin = True
    response = await client.get("/symbol_search/", params={"text": "AAPL"})
    assert response.status == 403
