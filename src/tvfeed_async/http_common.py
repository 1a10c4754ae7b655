"""HTTP helpers shared by the sign-in flows, symbol search and pine-facade requests.

The WebSocket (transport.py) uses the same User-Agent and the same origin checks; what is
specific to HTTP requests here is :func:`http_errors`, the one place aiohttp's request errors
become :class:`~tvfeed_async.errors.TvFeedError` subclasses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import urlsplit

import aiohttp

from .errors import ConnectionLost, RequestTimeout

__all__ = [
    "USER_AGENT",
    "http_errors",
    "origin_of",
    "origin_text",
    "parse_retry_after",
    "same_site",
]

_SECURE_SCHEMES = {"https": True, "wss": True, "http": False, "ws": False}

#: A desktop browser's User-Agent: the maintained open clients send one since 2025 rather than
#: announce a library.
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)


def origin_of(url: str) -> tuple[bool, str, int] | None:
    """(secure, host, port) of ``url``, ws/wss counted as http/https; None if it has none."""
    try:
        parts = urlsplit(url)
        secure = _SECURE_SCHEMES.get(parts.scheme.lower())
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").rstrip(".")
    if secure is None or not host or parts.username is not None or parts.password is not None:
        return None
    return secure, host, port if port is not None else (443 if secure else 80)


def origin_text(url: str) -> str:
    """``scheme://host[:port]`` of ``url`` (never its path or query, which may hold secrets)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "an invalid URL"
    return f"{parts.scheme}://{host}{port}"


def same_site(configured: str, target: str) -> bool:
    """True if a redirect from the ``configured`` URL to ``target`` may carry credentials.

    Only the same host, port and scheme qualify (no downgrade from https to http, no user
    info), or, when the configured host is ``www.<domain>``, another host under the same
    domain with the same scheme and port: TradingView sends some accounts to a regional site
    such as ``fr.tradingview.com``.
    """
    base = origin_of(configured)
    other = origin_of(target)
    if base is None or other is None or base[0] != other[0] or base[2] != other[2]:
        return False
    base_host, other_host = base[1].lower(), other[1].lower()
    if base_host == other_host:
        return True
    domain = base_host.removeprefix("www.")
    return domain != base_host and "." in domain and other_host.endswith("." + domain)


def parse_retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


@contextlib.contextmanager
def http_errors(what: str, timeout: float) -> Iterator[None]:
    """Turn aiohttp's errors inside the block into the feed's errors.

    ``what`` names the request in the message (``"symbol search"``, ``"GET https://host"``);
    it must not hold a secret. The aiohttp exception is not chained (``from None``): it
    carries the request, whose headers may hold the session cookies.

    Raises:
        RequestTimeout: no answer within ``timeout`` seconds (aiohttp raises TimeoutError).
        ConnectionLost: the connection failed (any ``aiohttp.ClientError``).
    """
    try:
        yield
    except TimeoutError:
        raise RequestTimeout(f"{what} did not answer within {timeout:g} s") from None
    except aiohttp.ClientError as exc:
        raise ConnectionLost(f"could not reach {what}: {type(exc).__name__}") from None
