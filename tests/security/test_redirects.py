"""Redirects never carry credentials off the configured hosts (issue #15, "Redirects send
credentials to other hosts").

Two loopback servers on two ports are two origins: the configured one answers each request
that carries a credential with a redirect to the other, which records everything it gets and
answers as a server that would gladly take the credentials. Each case must end in
``UnsafeRedirect`` with nothing at all reaching the second server.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tvfeed_async import AuthError, TvFeed, UnsafeRedirect
from tvfeed_async.auth import Authenticator, Credentials
from tvfeed_async.config import Endpoints
from tvfeed_async.websocket import open_transport, same_site

PASSWORD = "hunter2-Redirect-pw"
SESSIONID = "sid-must-stay-home-7f3"
SESSIONID_SIGN = "sign-must-stay-home-c41"
TOTP_CODE = "482913"
TOKEN = "token-must-stay-home-0b9"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Recorder:
    """What the second origin received: every request, body and WebSocket message."""

    requests: list[tuple[str, str, str, str]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)

    def text(self) -> str:
        return repr(self.requests) + repr(self.messages)


@pytest.fixture
async def elsewhere() -> AsyncIterator[tuple[TestServer, Recorder]]:
    """The other origin: takes anything and answers like a signed-in TradingView would."""
    recorder = Recorder()

    async def anything(request: web.Request) -> web.StreamResponse:
        body = await request.text()
        recorder.requests.append(
            (request.method, request.path_qs, request.headers.get("Cookie", ""), body)
        )
        if request.headers.get("Upgrade", "").lower() == "websocket":
            socket = web.WebSocketResponse()
            await socket.prepare(request)
            await socket.send_str('~m~52~m~{"session_id":"x","timestamp":1,"javastudies":[]}')
            async for message in socket:
                recorder.messages.append(str(message.data))
            return socket
        if request.path == "/":
            return web.Response(text='var user = {"auth_token":"stolen","pro_plan":"pro"};')
        return web.json_response({"error": "", "user": {"auth_token": "stolen"}})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", anything)
    async with TestServer(app, host="127.0.0.1", port=0) as server:
        yield server, recorder


async def _configured(routes: dict[tuple[str, str], Handler]) -> TestServer:
    app = web.Application()
    for (method, path), handler in routes.items():
        app.router.add_route(method, path, handler)
    server = TestServer(app, host="127.0.0.1", port=0)
    await server.start_server()
    return server


def _redirect(status: int, target: str) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        return web.Response(status=status, headers={"Location": target})

    return handler


def _endpoints(server: TestServer) -> Endpoints:
    base = str(server.make_url("")).rstrip("/")
    return Endpoints(
        ws_url=f"ws://127.0.0.1:{server.port}/socket.io/websocket",
        www_url=base,
        symbol_search_url=f"{base}/symbol_search/v3/",
    )


def _assert_nothing_reached(recorder: Recorder) -> None:
    assert recorder.requests == []
    assert recorder.messages == []


async def _authenticate(endpoints: Endpoints, credentials: Credentials) -> BaseException:
    async with aiohttp.ClientSession() as http:
        authenticator = Authenticator(http, endpoints, credentials, cache=None)
        with pytest.raises(UnsafeRedirect) as caught:
            await authenticator.authenticate()
    return caught.value


@pytest.mark.parametrize("status", [307, 308, 302])
async def test_sign_in_post_redirected_elsewhere_sends_no_password(
    elsewhere: tuple[TestServer, Recorder], status: int
) -> None:
    other, recorder = elsewhere
    target = str(other.make_url("/accounts/signin/"))
    server = await _configured({("POST", "/accounts/signin/"): _redirect(status, target)})
    try:
        error = await _authenticate(
            _endpoints(server), Credentials(username="victim", password=PASSWORD)
        )
    finally:
        await server.close()
    _assert_nothing_reached(recorder)
    assert f"127.0.0.1:{other.port}" in str(error)
    assert "sign-in" in str(error)
    assert PASSWORD not in str(error)


async def test_home_page_redirected_elsewhere_sends_no_session_cookie(
    elsewhere: tuple[TestServer, Recorder],
) -> None:
    other, recorder = elsewhere
    # The query echoes the cookie: the error must still not show it.
    target = str(other.make_url(f"/?sid={SESSIONID}"))
    server = await _configured({("GET", "/"): _redirect(302, target)})
    try:
        endpoints = _endpoints(server)
        error = await _authenticate(
            endpoints, Credentials(sessionid=SESSIONID, sessionid_sign=SESSIONID_SIGN)
        )
        # With a password as a fallback the refusal is not mistaken for rejected cookies.
        await _authenticate(
            endpoints,
            Credentials(
                username="victim",
                password=PASSWORD,
                sessionid=SESSIONID,
                sessionid_sign=SESSIONID_SIGN,
            ),
        )
    finally:
        await server.close()
    _assert_nothing_reached(recorder)
    assert "home page" in str(error)
    assert SESSIONID not in str(error)


async def test_two_factor_post_redirected_elsewhere_sends_no_code(
    elsewhere: tuple[TestServer, Recorder],
) -> None:
    other, recorder = elsewhere

    async def half_signed_in(request: web.Request) -> web.Response:
        await request.read()
        response = web.json_response(
            {
                "error": "2FA_required",
                "code": "2FA_required",
                "two_factor_types": [{"name": "totp"}],
            }
        )
        response.set_cookie("sessionid", SESSIONID)
        response.set_cookie("sessionid_sign", SESSIONID_SIGN)
        return response

    target = str(other.make_url("/accounts/two-factor/signin/totp/"))
    server = await _configured(
        {
            ("POST", "/accounts/signin/"): half_signed_in,
            ("POST", "/accounts/two-factor/signin/totp/"): _redirect(307, target),
        }
    )
    try:
        error = await _authenticate(
            _endpoints(server),
            Credentials(username="victim", password=PASSWORD, totp_code=TOTP_CODE),
        )
    finally:
        await server.close()
    _assert_nothing_reached(recorder)
    assert "two-factor" in str(error)
    assert TOTP_CODE not in str(error)


async def test_websocket_upgrade_redirected_elsewhere_gets_no_token(
    elsewhere: tuple[TestServer, Recorder],
) -> None:
    other, recorder = elsewhere
    target = str(other.make_url("/socket.io/websocket"))
    server = await _configured({("GET", "/socket.io/websocket"): _redirect(302, target)})
    try:
        endpoints = _endpoints(server)
        with pytest.raises(UnsafeRedirect) as direct:
            await open_transport(endpoints.ws_url, origin=endpoints.origin, open_timeout=5.0)
        feed = TvFeed(auth_token=TOKEN, endpoints=endpoints, session_cache=False, use_env=False)
        with pytest.raises(UnsafeRedirect) as through_feed:
            # The supervisor gives up on the refusal (no retry loop); depending on when it
            # does, the error comes from the `async with` line or from the first request.
            async with feed:
                await feed.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=5)
    finally:
        await server.close()
    _assert_nothing_reached(recorder)
    assert TOKEN not in recorder.text()
    assert f"127.0.0.1:{other.port}" in str(direct.value)
    assert "WebSocket" in str(through_feed.value)
    assert isinstance(through_feed.value, AuthError)


async def test_redirects_within_the_configured_origin_are_still_followed() -> None:
    async def signed_in(request: web.Request) -> web.Response:
        form = await request.post()
        assert form["password"] == PASSWORD  # a 307 keeps the form, on the same origin
        return web.json_response({"error": "", "user": {"auth_token": TOKEN}})

    server = await _configured(
        {
            ("POST", "/accounts/signin/"): _redirect(307, "/accounts/signin/v2/"),
            ("POST", "/accounts/signin/v2/"): signed_in,
        }
    )
    try:
        async with aiohttp.ClientSession() as http:
            authenticator = Authenticator(
                http,
                _endpoints(server),
                Credentials(username="victim", password=PASSWORD),
                cache=None,
            )
            session = await authenticator.authenticate()
    finally:
        await server.close()
    assert session.token == TOKEN


@pytest.mark.parametrize(
    ("target", "allowed"),
    [
        ("https://www.tradingview.com/accounts/signin/", True),
        ("https://fr.tradingview.com/?lang=fr", True),  # regional site
        ("https://WWW.TradingView.com./", True),
        ("http://www.tradingview.com/", False),  # downgrade to plain text
        ("https://www.tradingview.com:8443/", False),
        ("https://tradingview.com.example.net/", False),
        ("https://example.net/www.tradingview.com/", False),
        ("https://user:pw@www.tradingview.com/", False),
        ("https://evil-tradingview.com/", False),
        ("ftp://www.tradingview.com/", False),
        ("https://[::1", False),
    ],
)
def test_which_redirect_targets_count_as_the_configured_site(target: str, allowed: bool) -> None:
    assert same_site("https://www.tradingview.com", target) is allowed


def test_a_host_without_www_allows_only_itself() -> None:
    assert same_site("http://127.0.0.1:8000", "http://127.0.0.1:8000/x")
    assert not same_site("http://127.0.0.1:8000", "http://127.0.0.1:8001/x")
    assert not same_site("http://127.0.0.1:8000", "http://localhost:8000/x")
    assert not same_site("https://tradingview.com", "https://fr.tradingview.com/")
