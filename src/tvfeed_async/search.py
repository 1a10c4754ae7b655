"""Symbol search over TradingView's v3 endpoint, page by page.

The endpoint wants an ``Origin`` header (clients without it are refused), answers one page at a
time as ``{"symbols_remaining": n, "symbols": [...]}``, and wraps the matched text in
``<em>...</em>`` because clients ask for highlighting. Searching works without signing in.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

from .config import Endpoints
from .errors import InvalidRequest, RateLimited, TvFeedError
from .http_common import USER_AGENT, http_errors, parse_retry_after

__all__ = ["SearchResult", "search_symbols"]

logger = logging.getLogger("tvfeed_async.search")

# A server that keeps answering non-empty pages forever must not keep the caller forever.
_MAX_PAGES = 100


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One symbol found by :func:`search_symbols`.

    Attributes:
        symbol: the ticker, e.g. ``"BTCUSDT"``.
        full_name: what to subscribe with: ``"PREFIX:SYMBOL"`` when the server gives a prefix,
            otherwise ``"EXCHANGE:SYMBOL"``.
        description: a readable name, e.g. ``"Bitcoin / TetherUS"`` (highlighting removed).
        type: ``"stock"``, ``"crypto"``, ``"futures"``, ``"forex"``, ``"index"``...
        exchange: the exchange, e.g. ``"BINANCE"``.
        currency: the quote currency code, e.g. ``"USDT"`` (``""`` when not given).
        country: the two-letter country code (``""`` when not given).
    """

    symbol: str
    full_name: str
    description: str
    type: str
    exchange: str
    currency: str
    country: str


async def search_symbols(
    http: aiohttp.ClientSession,
    endpoints: Endpoints,
    text: str,
    *,
    exchange: str = "",
    type: str = "",
    limit: int = 50,
    timeout: float = 30.0,  # noqa: ASYNC109 (a per-page deadline handed to aiohttp, not a scope)
) -> list[SearchResult]:
    """Search symbols, following the pages until ``limit`` results or the end of the list.

    Args:
        http: the aiohttp session to send the requests with (owned by the caller).
        endpoints: ``symbol_search_url`` and the ``origin`` to send.
        text: what to look for: a ticker, part of one, or words of a description.
        exchange: only this exchange (e.g. ``"BINANCE"``); ``""`` for all.
        type: only this kind (``"stock"``, ``"crypto"``, ``"futures"``, ``"forex"``, ``"cfd"``,
            ``"index"``, ``"economic"``, ``"bond"``, ``"fund"``...); ``""`` for all.
        limit: at most this many results.
        timeout: seconds allowed for each page.

    Returns:
        The results in the server's order, at most ``limit`` of them.

    Raises:
        InvalidRequest: ``text`` is empty or not a string, ``exchange`` or ``type`` is not a
            string, or ``limit`` is not a positive int (all checked before any request).
        RateLimited: the server answered HTTP 429.
        RequestTimeout: a page did not arrive within ``timeout``.
        ConnectionLost: the server could not be reached.
        TvFeedError: any other HTTP error (its status is in the message) or a body that is not
            the expected JSON.

    Cancelling stops the search; the results of earlier pages are discarded.
    """
    # Checked before any request: a wrong type must not cost a round trip first.
    if not isinstance(text, str):
        raise InvalidRequest(f"search text must be a string, not {text.__class__.__name__}")
    for name, value in (("exchange", exchange), ("type", type)):
        if not isinstance(value, str):
            raise InvalidRequest(f"{name} must be a string, not {value.__class__.__name__}")
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise InvalidRequest(f"limit must be a positive int, not {limit!r}")
    query = text.strip()
    if not query:
        raise InvalidRequest("search text is empty")
    if limit <= 0:
        raise InvalidRequest(f"limit must be positive, not {limit}")
    headers = {
        "Origin": endpoints.origin,
        "Referer": endpoints.origin.rstrip("/") + "/",
        "User-Agent": USER_AGENT,
    }
    client_timeout = aiohttp.ClientTimeout(total=timeout)
    results: list[SearchResult] = []
    for _ in range(_MAX_PAGES):
        params = {
            "text": query,
            "start": str(len(results)),
            "hl": "1",
            "exchange": exchange,
            "lang": "en",
            "search_type": type,
            "domain": "production",
            "sort_by_country": "US",
        }
        logger.debug("symbol search %r from %d", query, len(results))
        document = await _get_page(
            http, endpoints.symbol_search_url, params, headers, client_timeout
        )
        symbols, remaining = _page_content(document)
        page = [_result(entry) for entry in symbols if isinstance(entry, Mapping)]
        results.extend(page)
        if len(results) >= limit or remaining <= 0 or not page:
            break
    return results[:limit]


async def _get_page(
    http: aiohttp.ClientSession,
    url: str,
    params: dict[str, str],
    headers: dict[str, str],
    client_timeout: aiohttp.ClientTimeout,
) -> object:
    with http_errors("symbol search", client_timeout.total or 0.0):
        async with http.get(
            url, params=params, headers=headers, timeout=client_timeout, raise_for_status=False
        ) as response:
            body = await response.text(errors="replace")
            status = response.status
            retry_after = response.headers.get("Retry-After")
    if status == 429:
        raise RateLimited(
            "symbol search answered HTTP 429 (too many requests); wait before searching again",
            retry_after=parse_retry_after(retry_after),
        )
    if status >= 400:
        raise TvFeedError(f"symbol search failed with HTTP {status}: {body[:200]}")
    try:
        return json.loads(body)
    except ValueError:
        raise TvFeedError(
            f"symbol search answered HTTP {status} with a body that is not JSON"
        ) from None


def _page_content(document: object) -> tuple[list[Any], int]:
    """The symbols of one page and how many remain after it."""
    if isinstance(document, list):
        # The legacy endpoint answers a bare list: everything at once.
        return document, 0
    if not isinstance(document, dict):
        raise TvFeedError("symbol search answered something other than a JSON object")
    symbols = document.get("symbols")
    remaining = document.get("symbols_remaining")
    return (
        symbols if isinstance(symbols, list) else [],
        remaining if isinstance(remaining, int) else 0,
    )


def _plain(value: object) -> str:
    if not isinstance(value, str):
        return ""
    return value.replace("<em>", "").replace("</em>", "")


def _result(entry: Mapping[str, Any]) -> SearchResult:
    symbol = _plain(entry.get("symbol"))
    exchange = _plain(entry.get("exchange"))
    prefix = _plain(entry.get("prefix"))
    # TVAPI's rule: the prefix names the feed when present, otherwise the exchange does.
    owner = prefix or exchange
    return SearchResult(
        symbol=symbol,
        full_name=f"{owner}:{symbol}" if owner else symbol,
        description=_plain(entry.get("description")),
        type=_plain(entry.get("type")),
        exchange=exchange,
        currency=_plain(entry.get("currency_code")),
        country=_plain(entry.get("country")),
    )
