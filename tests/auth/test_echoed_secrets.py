"""Error texts that echo server input hide the TOTP code and the half-signed-in session
cookies, like the password (issue #15, "Secrets in error text").

A server that quotes back everything it knows: the code it was sent and the cookies of the
half-authenticated session it set. Those values are not in the credentials (the code is
computed from the secret, the cookies come from the server), so scrubbing the credentials
alone would let them through.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tvfeed_async.auth import Authenticator, Credentials, _Totp
from tvfeed_async.config import Endpoints
from tvfeed_async.errors import InvalidCredentials, RateLimited, TvFeedError

PASSWORD = "echo-Pa55word-k2"
TOTP_SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
HALF_SESSIONID = "half-signed-in-sid-5d2e91"
HALF_SIGN = "v3:half-signed-in-sign-77ab"
DEVICE = "device-token-value-19cc"


def _texts(exc: BaseException) -> str:
    parts = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    link = exc.__cause__ or exc.__context__
    while link is not None:
        parts.extend((str(link), repr(link)))
        link = link.__cause__ or link.__context__
    return "\n".join(parts)


@pytest.fixture
async def echoing_endpoints() -> AsyncIterator[Endpoints]:
    """Sign-in asks for TOTP and sets the half session; the two-factor answer echoes it all."""

    async def sign_in(request: web.Request) -> web.Response:
        await request.post()
        response = web.json_response(
            {
                "error": "2FA_required",
                "code": "2FA_required",
                "two_factor_types": [{"name": "totp"}],
            }
        )
        response.set_cookie("sessionid", HALF_SESSIONID)
        response.set_cookie("sessionid_sign", HALF_SIGN)
        response.set_cookie("device_t", DEVICE)
        return response

    async def two_factor(request: web.Request) -> web.Response:
        form = await request.post()
        cookies = "; ".join(f"{k}={v}" for k, v in request.cookies.items())
        text = f"Invalid code {form.get('code')} for session [{cookies}]"
        return web.json_response({"error": text, "code": "invalid_code"})

    app = web.Application()
    app.router.add_post("/accounts/signin/", sign_in)
    app.router.add_post("/accounts/two-factor/signin/totp/", two_factor)
    async with TestServer(app, host="127.0.0.1", port=0) as server:
        base = str(server.make_url("")).rstrip("/")
        yield Endpoints(www_url=base, ws_url="ws://127.0.0.1:9/socket.io/websocket")


@pytest.mark.parametrize("by", ["secret", "code"])
async def test_two_factor_error_hides_the_code_and_the_half_session(
    echoing_endpoints: Endpoints, caplog: pytest.LogCaptureFixture, by: str
) -> None:
    caplog.set_level(logging.DEBUG)
    code = "731905"
    credentials = (
        Credentials(username="echo", password=PASSWORD, totp_secret=TOTP_SECRET)
        if by == "secret"
        else Credentials(username="echo", password=PASSWORD, totp_code=code)
    )
    async with aiohttp.ClientSession() as http:
        authenticator = Authenticator(http, echoing_endpoints, credentials, cache=None)
        with pytest.raises(InvalidCredentials) as caught:
            await authenticator.authenticate()
    text = _texts(caught.value)
    # The server did echo, so the scrubbing below is what keeps the values out.
    assert "Invalid code <hidden> for session [" in text
    secrets = [HALF_SESSIONID, HALF_SIGN, DEVICE, PASSWORD, TOTP_SECRET, code]
    if by == "secret":
        # The code computed during the sign-in, whichever 30-second step it fell in.
        now = time.time()
        secrets.extend(_Totp(TOTP_SECRET).at(now + step) for step in (-30, 0))
    logs = "\n".join(record.getMessage() for record in caplog.records)
    for secret in secrets:
        assert secret not in text, secret
        assert secret not in logs, secret


async def test_the_rate_limit_text_is_scrubbed_too(echoing_endpoints: Endpoints) -> None:
    async def rate_limited_echo(request: web.Request) -> web.Response:
        form = await request.post()
        text = f"Too many tries of {form.get('code')} with {request.cookies.get('sessionid')}"
        return web.json_response({"error": text, "code": "rate_limit"})

    app = web.Application()

    async def sign_in(request: web.Request) -> web.Response:
        response = web.json_response(
            {
                "error": "2FA_required",
                "code": "2FA_required",
                "two_factor_types": [{"name": "totp"}],
            }
        )
        response.set_cookie("sessionid", HALF_SESSIONID)
        response.set_cookie("sessionid_sign", HALF_SIGN)
        return response

    app.router.add_post("/accounts/signin/", sign_in)
    app.router.add_post("/accounts/two-factor/signin/totp/", rate_limited_echo)
    async with TestServer(app, host="127.0.0.1", port=0) as server, aiohttp.ClientSession() as http:
        endpoints = Endpoints(www_url=str(server.make_url("")).rstrip("/"))
        authenticator = Authenticator(
            http,
            endpoints,
            Credentials(username="echo", password=PASSWORD, totp_code="246810"),
            cache=None,
        )
        with pytest.raises(TvFeedError) as caught:
            await authenticator.authenticate()
    assert isinstance(caught.value, RateLimited)
    text = _texts(caught.value)
    assert "Too many tries of <hidden> with <hidden>" in text
    assert "246810" not in text
    assert HALF_SESSIONID not in text
