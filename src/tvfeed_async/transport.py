"""The one WebSocket: opening it with the headers TradingView expects, and translating failures.

This layer only moves text. Everything it raises is a :class:`~tvfeed_async.errors.TvFeedError`:
an HTTP 429 on the upgrade becomes :class:`RateLimited` (PROTOCOL.md §1, §8), every other
failure to open or keep the socket becomes :class:`ConnectionLost`.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from .errors import ConnectionLost, InvalidRequest, RateLimited

__all__ = ["USER_AGENT", "WebSocketTransport", "open_transport"]

logger = logging.getLogger("tvfeed_async.transport")

#: A desktop browser User-Agent, as the maintained clients send since 2025 (PROTOCOL.md §1).
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)


class _NoFrameDumps(logging.LoggerAdapter):  # type: ignore[type-arg]
    """The websockets library logs every frame at DEBUG, the auth token included. Its
    connection events (INFO and above) still go to ``tvfeed_async.websocket``; frame dumps
    never do, so turning on debug logging cannot leak a secret."""

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


_WEBSOCKET_LOGGER = _NoFrameDumps(logging.getLogger("tvfeed_async.websocket"), {})

# A 20,000-bar history packet is about 2 MB (PROTOCOL.md §8); allow generous headroom.
_MAX_MESSAGE_SIZE = 64 * 1024 * 1024


class WebSocketTransport:
    """An open WebSocket to a TradingView-protocol server."""

    __slots__ = ("_connection",)

    def __init__(self, connection: ClientConnection) -> None:
        self._connection = connection

    async def send(self, text: str) -> None:
        """Send one text message.

        Raises:
            ConnectionLost: the socket is closed.
        """
        try:
            await self._connection.send(text)
        except ConnectionClosed as exc:
            raise ConnectionLost(f"WebSocket closed while sending: {exc}") from exc

    async def receive(self) -> str | bytes:
        """Wait for the next message (safe to cancel: nothing is lost by cancelling).

        Raises:
            ConnectionLost: the socket closed (cleanly or not) or failed.
        """
        try:
            return await self._connection.recv()
        except ConnectionClosed as exc:
            raise ConnectionLost(f"WebSocket closed: {exc}") from exc
        except OSError as exc:
            raise ConnectionLost(f"WebSocket failed: {exc}") from exc

    async def close(self) -> None:
        """Close the socket (bounded by the connection's close timeout)."""
        try:
            await self._connection.close()
        except (ConnectionClosed, OSError):  # already gone: nothing more to do
            logger.debug("socket already closed")


async def open_transport(
    url: str, *, origin: str, open_timeout: float, close_timeout: float = 5.0
) -> WebSocketTransport:
    """Open the WebSocket with TradingView's expected headers.

    Raises:
        RateLimited: the server refused the upgrade with HTTP 429.
        ConnectionLost: anything else went wrong (DNS, TCP, TLS, upgrade, timeout).
        InvalidRequest: the URL is not a ws:// or wss:// URL.
    """
    try:
        connection = await connect(
            url,
            origin=origin,  # type: ignore[arg-type]
            user_agent_header=USER_AGENT,
            additional_headers={
                "Accept-Language": "en-US,en;q=0.9",
                "Cache-Control": "no-cache",
                "Pragma": "no-cache",
            },
            open_timeout=open_timeout,
            close_timeout=close_timeout,
            max_size=_MAX_MESSAGE_SIZE,
            max_queue=64,
            logger=_WEBSOCKET_LOGGER,
            # Loopback servers (the bundled simulator, tests) must never go through a proxy
            # configured for the outside world; other hosts use the environment's proxy.
            proxy=None if _is_loopback(url) else True,
        )
    except InvalidURI as exc:
        raise InvalidRequest(f"not a WebSocket URL: {url!r}") from exc
    except InvalidStatus as exc:
        status = exc.response.status_code
        if status == 429:
            retry_after = exc.response.headers.get("Retry-After")
            raise RateLimited(
                "TradingView refused the connection with HTTP 429 (too many requests); "
                "wait before reconnecting",
                retry_after=_parse_retry_after(retry_after),
            ) from exc
        raise ConnectionLost(f"WebSocket upgrade refused with HTTP {status}") from exc
    except (InvalidHandshake, OSError, TimeoutError) as exc:
        raise ConnectionLost(f"could not open {url}: {exc!r}") from exc
    return WebSocketTransport(connection)


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def _parse_retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
