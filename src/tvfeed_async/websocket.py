"""The one WebSocket: opening it with the headers TradingView expects, and translating failures.

This layer only moves text. Everything it raises is a :class:`~tvfeed_async.errors.TvFeedError`:
an HTTP 429 on the upgrade becomes :class:`RateLimited` (with the server's Retry-After), every other
failure to open or keep the socket becomes :class:`ConnectionLost`.

The socket is aiohttp's WebSocket client: its C frame reader costs about half the CPU per
message of the alternatives, which is what live streaming spends its time on. Each transport
owns its own :class:`aiohttp.ClientSession`, closed with the socket. aiohttp logs no frames,
so nothing sent on the socket (the auth token included) can reach the logs from here.
"""

from __future__ import annotations

import asyncio
import importlib
import ipaddress
import logging
import socket
import urllib.request
from urllib.parse import urljoin, urlsplit

import aiohttp
import anyio
from aiohttp import WSMsgType
from aiohttp.abc import AbstractResolver, ResolveResult

from .errors import ConnectionLost, InvalidRequest, RateLimited, UnsafeRedirect
from .http_common import USER_AGENT, origin_of, origin_text, parse_retry_after, same_site

__all__ = [
    "USER_AGENT",
    "LoopbackAwareResolver",
    "WebSocketTransport",
    "http_connector",
    "offers_deflate",
    "open_transport",
    "origin_text",
    "same_site",
]

logger = logging.getLogger("tvfeed_async.transport")

_HEADERS = {
    "User-Agent": USER_AGENT,
    "Accept-Language": "en-US,en;q=0.9",
    "Cache-Control": "no-cache",
    "Pragma": "no-cache",
}
# aiohttp adds these to every request unless told not to; the upgrade goes out without them.
_SKIP_AUTO_HEADERS = ("Accept", "Accept-Encoding")

# A 20,000-bar history packet is about 2 MB; allow generous headroom.
_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
# permessage-deflate with the largest window (what aiohttp offers for ``compress=15``).
_DEFLATE_WINDOW_BITS = 15

_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_CONTROL = (WSMsgType.PING, WSMsgType.PONG)


class WebSocketTransport:
    """An open WebSocket to a TradingView-protocol server."""

    __slots__ = ("_close_lock", "_close_timeout", "_session", "_socket")

    def __init__(
        self,
        session: aiohttp.ClientSession,
        socket: aiohttp.ClientWebSocketResponse,
        close_timeout: float,
    ) -> None:
        self._session = session
        self._socket = socket
        self._close_timeout = close_timeout
        self._close_lock = asyncio.Lock()

    @property
    def compressed(self) -> bool:
        """Whether permessage-deflate was negotiated."""
        return self._socket.compress != 0

    async def send(self, text: str) -> None:
        """Send one text message.

        Raises:
            ConnectionLost: the socket is closed.
        """
        socket = self._socket
        if socket.closed:
            raise ConnectionLost(f"WebSocket closed while sending: {_ending(socket)}")
        try:
            await socket.send_str(text)
        except (aiohttp.ClientError, OSError) as exc:  # ClientConnectionResetError is both
            raise ConnectionLost(f"WebSocket closed while sending: {exc}") from exc

    async def receive(self) -> str | bytes:
        """Wait for the next message (safe to cancel: nothing is lost by cancelling).

        Raises:
            ConnectionLost: the socket closed (cleanly or not) or failed.
        """
        socket = self._socket
        while True:
            try:
                # Cancelling leaves a message that arrived meanwhile queued for the next call.
                message = await socket.receive()
            except (aiohttp.ClientError, OSError) as exc:  # e.g. answering a ping failed
                raise ConnectionLost(f"WebSocket failed: {exc}") from exc
            kind = message.type
            if kind is _TEXT or kind is _BINARY:
                return message.data  # type: ignore[no-any-return]
            if kind in _CONTROL:  # answered by aiohttp (autoping); never the caller's business
                continue
            if kind is WSMsgType.CLOSE:
                raise ConnectionLost(
                    f"WebSocket closed: {_close_text(message.data, message.extra)}"
                )
            if kind is WSMsgType.ERROR:
                raise ConnectionLost(f"WebSocket failed: {message.data!r}")
            if kind is WSMsgType.CLOSING:  # close() was called meanwhile
                raise ConnectionLost("WebSocket closed by this client")
            raise ConnectionLost(f"WebSocket closed: {_ending(socket)}")  # CLOSED

    async def close(self) -> None:
        """Close the socket (bounded by the connection's close timeout) and its HTTP session.

        Never raises (but cancellation): a socket that is already gone is simply released.
        Concurrent calls wait for the first one to finish.
        """
        async with self._close_lock:
            try:
                # aiohttp bounds the wait for the server's close frame, not sending ours (a
                # full send buffer): bound both. On timeout aiohttp drops the connection.
                async with asyncio.timeout(self._close_timeout):
                    await self._socket.close()
            except Exception as exc:  # noqa: BLE001 (closing must not fail; it already died)
                logger.debug("socket closed uncleanly: %r", exc)
            finally:
                # The connector is closed before the first await inside, so even a cancelled
                # close releases the connection and leaves no unclosed session behind.
                await self._session.close()


async def open_transport(
    url: str,
    *,
    origin: str,
    open_timeout: float,
    close_timeout: float = 5.0,
    compression: str = "auto",
) -> WebSocketTransport:
    """Open the WebSocket with TradingView's expected headers.

    ``compression`` is ``Endpoints.compression``: permessage-deflate is offered when it is
    ``"on"``, or ``"auto"`` and the host is not a loopback one (see :func:`offers_deflate`).

    ``open_timeout`` bounds the whole opening (DNS, TCP, proxy, TLS, upgrade) and
    ``close_timeout`` the closing handshake.

    Raises:
        RateLimited: the server refused the upgrade with HTTP 429.
        UnsafeRedirect: the upgrade was redirected to another origin (not followed).
        ConnectionLost: anything else went wrong (DNS, TCP, TLS, upgrade, timeout).
        InvalidRequest: the URL is not a ws:// or wss:// URL.
    """
    _check_url(url)
    proxy = _proxy_for(url)
    session = aiohttp.ClientSession(
        # The opening is bounded by open_timeout below; the socket itself lives for days.
        timeout=aiohttp.ClientTimeout(),
        skip_auto_headers=_SKIP_AUTO_HEADERS,
        # The proxy is chosen by _proxy_for; trust_env would also send ~/.netrc credentials
        # to the server and ignore HTTPS_PROXY for wss:// URLs.
        trust_env=False,
        connector=http_connector(),
        trace_configs=[_redirect_guard(url)],
    )
    try:
        async with asyncio.timeout(open_timeout):
            socket = await session.ws_connect(
                url,
                origin=origin,
                headers=_HEADERS,
                proxy=proxy,
                compress=_DEFLATE_WINDOW_BITS if offers_deflate(url, compression) else 0,
                max_msg_size=_MAX_MESSAGE_SIZE,
                autoping=True,
                autoclose=True,
                heartbeat=None,  # the protocol has its own heartbeats, watched by the supervisor
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=close_timeout),
            )
    except BaseException as exc:
        with anyio.move_on_after(close_timeout, shield=True):
            await session.close()
        error = _open_error(url, open_timeout, exc)
        if error is exc:
            raise
        raise error from exc
    return WebSocketTransport(session, socket, close_timeout)


class LoopbackAwareResolver(AbstractResolver):
    """Name lookups without a thread wherever that is possible.

    aiohttp's default resolver runs ``getaddrinfo`` in the loop's thread pool, which breaks
    "no threads" (the library starts none). Here literal IP addresses and ``localhost`` (RFC 6761:
    always the loopback addresses) are answered directly; other names go to aiodns (the
    ``dns`` extra: ``pip install "tvfeed-async[dns]"``) when it is installed, and only
    without it to aiohttp's threaded resolver. Neither avoids threads completely: pycares 5,
    under aiodns, runs background threads of its own (docs/concepts.md says so).
    """

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        direct = _resolve_without_lookup(host, port, family)
        if direct is not None:
            return direct
        # A resolver per lookup: lookups happen once per connection, and nothing is left to
        # close when the connector closes (it does not close a resolver it was given).
        resolver = _dns_resolver()
        try:
            return await resolver.resolve(host, port, family)
        finally:
            await resolver.close()

    async def close(self) -> None:
        """Nothing to release (each lookup closes its own resolver)."""


def http_connector() -> aiohttp.TCPConnector:
    """A connector whose name lookups start no thread where avoidable (see
    :class:`LoopbackAwareResolver`). Call it inside the event loop."""
    return aiohttp.TCPConnector(resolver=LoopbackAwareResolver())


def _resolve_without_lookup(
    host: str, port: int, family: socket.AddressFamily | int
) -> list[ResolveResult] | None:
    """The addresses of a literal IP or of ``localhost``, or None when a lookup is needed."""
    name = host.rstrip(".").lower()
    try:
        addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = [
            ipaddress.ip_address(name.strip("[]"))
        ]
    except ValueError:
        if name != "localhost" and not name.endswith(".localhost"):
            return None
        addresses = [ipaddress.IPv4Address("127.0.0.1"), ipaddress.IPv6Address("::1")]
    results: list[ResolveResult] = []
    for address in addresses:
        address_family = socket.AF_INET if address.version == 4 else socket.AF_INET6
        if family not in (socket.AF_UNSPEC, address_family):
            continue
        results.append(
            {
                "hostname": host,
                "host": str(address),
                "port": port,
                "family": address_family,
                "proto": 0,
                "flags": socket.AI_NUMERICHOST | socket.AI_NUMERICSERV,
            }
        )
    if not results:
        raise OSError(f"{host} has no address of the requested family")
    return results


def _dns_resolver() -> AbstractResolver:
    """aiohttp's aiodns resolver when aiodns (3.2+, which has getaddrinfo) is installed,
    otherwise its threaded one: the one remaining thread, documented in docs/concepts.md."""
    try:
        aiodns = importlib.import_module("aiodns")
    except ImportError:
        return aiohttp.ThreadedResolver()
    if not hasattr(aiodns.DNSResolver, "getaddrinfo"):
        return aiohttp.ThreadedResolver()
    return aiohttp.AsyncResolver()


def _redirect_guard(url: str) -> aiohttp.TraceConfig:
    """A trace that refuses an upgrade redirected to another origin than ``url``'s.

    aiohttp's ``ws_connect`` follows redirects and offers no switch to stop it; once the
    socket is open the auth token goes out in ``set_auth_token``, so a socket on another host
    must never be opened. The trace runs before aiohttp follows the redirect.
    """

    async def on_redirect(
        session: aiohttp.ClientSession,
        context: object,
        params: aiohttp.TraceRequestRedirectParams,
    ) -> None:
        location = params.response.headers.get("Location") or params.response.headers.get("URI")
        if location is None:
            return  # aiohttp does not follow a redirect without a target
        target = urljoin(str(params.url), location)
        if _same_origin(url, target):
            return
        params.response.close()
        raise UnsafeRedirect(
            f"the WebSocket upgrade to {origin_text(url)} was redirected to "
            f"{origin_text(target)}; it was not followed, so the auth token was not sent "
            "there. Check Endpoints.ws_url (TVFEED_WS_URL)."
        )

    trace = aiohttp.TraceConfig()
    trace.on_request_redirect.append(on_redirect)
    return trace


def _check_url(url: str) -> None:
    """Raise InvalidRequest unless ``url`` is a ws:// or wss:// URL with a host."""
    try:
        parts = urlsplit(url)
        valid = parts.scheme in ("ws", "wss") and bool(parts.hostname)
        _ = parts.port  # a malformed port raises ValueError
    except ValueError:
        valid = False
    if not valid:
        raise InvalidRequest(f"not a WebSocket URL: {url!r}")


def _open_error(url: str, open_timeout: float, exc: BaseException) -> BaseException:
    """The error to raise for a failed opening (``exc`` itself when it is not a failure)."""
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        status = exc.status
        if status == 429:
            retry_after = exc.headers.get("Retry-After") if exc.headers else None
            return RateLimited(
                "TradingView refused the connection with HTTP 429 (too many requests); "
                "wait before reconnecting",
                retry_after=parse_retry_after(retry_after),
            )
        if status != 101:
            return ConnectionLost(f"WebSocket upgrade refused with HTTP {status}")
        return ConnectionLost(f"WebSocket upgrade to {url} failed: {exc.message}")
    if isinstance(exc, aiohttp.InvalidURL):
        return InvalidRequest(f"not a WebSocket URL: {url!r}")
    if isinstance(exc, TimeoutError):  # includes aiohttp's own timeouts
        return ConnectionLost(f"could not open {url} within {open_timeout:g} s")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return ConnectionLost(f"could not open {url}: {exc!r}")
    return exc


def _proxy_for(url: str) -> str | None:
    """The proxy the environment asks for, chosen as the ``websockets`` library does.

    Loopback servers (the bundled simulator, tests) never go through a proxy configured for
    the outside world. Other hosts honour ``no_proxy`` and use ``wss_proxy``/``https_proxy``
    (wss://) or ``ws_proxy``/``https_proxy``/``http_proxy`` (ws://).

    Raises:
        ConnectionLost: the chosen proxy is not an HTTP(S) proxy (SOCKS is not supported).
    """
    if _is_loopback(url):
        return None
    parts = urlsplit(url)
    secure = parts.scheme == "wss"
    port = parts.port or (443 if secure else 80)
    if urllib.request.proxy_bypass(f"{parts.hostname}:{port}"):
        return None
    proxies = urllib.request.getproxies()
    for scheme in ("wss", "https") if secure else ("ws", "https", "http"):
        proxy = proxies.get(scheme)
        if proxy:
            if urlsplit(proxy).scheme not in ("http", "https"):
                raise ConnectionLost(
                    f"the {scheme} proxy configured in the environment is not an HTTP(S) "
                    "proxy; only HTTP(S) proxies are supported"
                )
            return proxy
    return None


def _same_origin(configured: str, target: str) -> bool:
    base = origin_of(configured)
    return base is not None and base == origin_of(target)


def offers_deflate(url: str, compression: str) -> bool:
    """Whether the upgrade to ``url`` offers permessage-deflate under ``compression``.

    ``"auto"`` offers it to every host but loopback ones: there the bytes cross no network,
    and deflating (server) and inflating (client) only cost CPU.
    """
    if compression == "auto":
        return not _is_loopback(url)
    return compression == "on"


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def _close_text(code: object, reason: str | None) -> str:
    if code is None:
        return "no close code"
    return f"code {code} ({reason})" if reason else f"code {code}"


def _ending(socket: aiohttp.ClientWebSocketResponse) -> str:
    """How the socket ended: its close code and the error that ended it, if any."""
    text = _close_text(socket.close_code, None)
    error = socket.exception()
    return f"{text}: {error!r}" if error is not None else text
