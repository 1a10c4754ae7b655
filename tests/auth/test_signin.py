"""Every way in, against the simulator's HTTP app on a loopback port."""

from __future__ import annotations

import time

import aiohttp
import pyotp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tvfeed_async.auth import Authenticator, AuthSession, Credentials, SessionCache
from tvfeed_async.config import Endpoints
from tvfeed_async.errors import (
    AuthError,
    CaptchaRequired,
    InvalidCredentials,
    InvalidRequest,
    RateLimited,
    TokenExpired,
    TwoFactorRequired,
)
from tvfeed_async.testing.http_app import HttpState

from ..support.accounts import ALICE, BOB, BOB_SECRET, CAROL, DAVE


def _authenticator(
    http: aiohttp.ClientSession,
    endpoints: Endpoints,
    cache: SessionCache | None = None,
    **credentials: str,
) -> Authenticator:
    return Authenticator(http, endpoints, Credentials(**credentials), cache=cache)


def _wrong_code(secret: str) -> str:
    """A 6-digit code the server will reject (not valid one step either side of now)."""
    totp = pyotp.TOTP(secret)
    now = time.time()
    valid = {totp.at(now + step * 30) for step in (-2, -1, 0, 1, 2)}
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in valid)


async def test_anonymous_needs_no_request(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    session = await _authenticator(http, endpoints).authenticate()
    assert session == AuthSession.anonymous()
    assert len(http_state.requests) == 0


async def test_password_sign_in(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    authenticator = _authenticator(http, endpoints, username="alice", password=ALICE.password)
    session = await authenticator.authenticate()
    claims = http_state.tokens.verify(session.token, time.time())
    assert claims is not None
    assert claims.user_id == ALICE.user_id
    assert session.plan == "free"
    assert session.bar_limit == 5_000
    assert session.expires_at == claims.expires_at
    assert session.username == "alice"
    assert session.sessionid
    assert session.sessionid_sign
    assert authenticator.session == session
    assert http_state.signin_attempts == 1
    assert http_state.successful_signins == 1
    assert http_state.home_requests == 0  # the token came in the sign-in answer
    signin = next(r for r in http_state.requests if r.path == "/accounts/signin/")
    assert signin.method == "POST"
    assert signin.headers["Referer"] == endpoints.origin
    assert signin.headers["Origin"] == endpoints.origin
    assert "Mozilla" in signin.headers["User-Agent"]


async def test_sign_in_works_when_the_server_requires_a_referer(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    http_state.require_referer = True
    authenticator = _authenticator(http, endpoints, username="alice", password=ALICE.password)
    await authenticator.authenticate()
    assert http_state.successful_signins == 1
    assert http_state.signins_without_referer == 0


async def test_wrong_password(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    authenticator = _authenticator(http, endpoints, username="alice", password="wrong-pw-xyz")
    with pytest.raises(InvalidCredentials, match="Invalid username or password") as caught:
        await authenticator.authenticate()
    assert "wrong-pw-xyz" not in str(caught.value)
    assert http_state.signin_attempts == 1
    assert authenticator.session is None


async def test_totp_sign_in_with_secret(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    authenticator = _authenticator(
        http, endpoints, username="bob", password=BOB.password, totp_secret=BOB_SECRET
    )
    session = await authenticator.authenticate()
    claims = http_state.tokens.verify(session.token, time.time())
    assert claims is not None
    assert claims.user_id == BOB.user_id
    assert session.plan == "pro_premium"
    assert session.bar_limit == 20_000
    assert http_state.totp_attempts == 1
    assert http_state.successful_signins == 1
    # The second step carried the first step's (half-authenticated) cookies and the headers.
    two_factor = next(r for r in http_state.requests if "two-factor" in r.path)
    assert two_factor.path == "/accounts/two-factor/signin/totp/"
    assert "sessionid=" in two_factor.headers["Cookie"]
    assert "sessionid_sign=" in two_factor.headers["Cookie"]
    assert two_factor.headers["Referer"] == endpoints.origin
    # The session cookies are the fully signed-in ones: the home page accepts them.
    found = http_state.session_for(
        session.sessionid, session.sessionid_sign, fully_authenticated=True
    )
    assert found is not None


async def test_totp_sign_in_with_given_code(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    code = pyotp.TOTP(BOB_SECRET).now()
    authenticator = _authenticator(
        http, endpoints, username="bob", password=BOB.password, totp_code=code
    )
    session = await authenticator.authenticate()
    assert session.plan == "pro_premium"
    assert http_state.successful_signins == 1


async def test_totp_wrong_code(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    code = _wrong_code(BOB_SECRET)
    authenticator = _authenticator(
        http, endpoints, username="bob", password=BOB.password, totp_code=code
    )
    with pytest.raises(InvalidCredentials, match="two-factor code") as caught:
        await authenticator.authenticate()
    assert code not in str(caught.value)
    assert http_state.totp_attempts == 1  # no retry
    assert http_state.successful_signins == 0


async def test_totp_missing_secret(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    authenticator = _authenticator(http, endpoints, username="bob", password=BOB.password)
    with pytest.raises(TwoFactorRequired, match="TOTP") as caught:
        await authenticator.authenticate()
    assert caught.value.factors == ["totp"]
    assert "TV_TOTP_SECRET" in str(caught.value)
    assert http_state.totp_attempts == 0


async def test_invalid_totp_secret_is_a_clear_error(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    # Found out when the credentials are built, before the password is sent (issue #15).
    with pytest.raises(InvalidRequest, match="base32") as caught:
        _authenticator(
            http, endpoints, username="bob", password=BOB.password, totp_secret="not base32 !!"
        )
    assert "not base32 !!" not in str(caught.value)
    assert http_state.totp_attempts == 0
    assert http_state.signin_attempts == 0


async def test_non_totp_factor_is_named(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    authenticator = _authenticator(
        http, endpoints, username="carol", password=CAROL.password, totp_secret=BOB_SECRET
    )
    with pytest.raises(TwoFactorRequired, match="sms") as caught:
        await authenticator.authenticate()
    assert caught.value.factors == ["sms"]
    assert "sessionid" in str(caught.value)
    assert http_state.totp_attempts == 0


async def test_captcha(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    http_state.captcha_required = True
    authenticator = _authenticator(http, endpoints, username="alice", password=ALICE.password)
    with pytest.raises(CaptchaRequired) as caught:
        await authenticator.authenticate()
    message = str(caught.value)
    assert "sessionid" in message
    assert "sessionid_sign" in message
    assert "auth token" in message
    assert http_state.signin_attempts == 1


async def test_rate_limit_code_is_not_retried(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    http_state.rate_limited = True
    authenticator = _authenticator(http, endpoints, username="alice", password=ALICE.password)
    with pytest.raises(RateLimited, match="rate-limiting"):
        await authenticator.authenticate()
    assert http_state.signin_attempts == 1
    assert len(http_state.requests) == 1


async def test_http_429_is_not_retried(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    http_state.throttle_remaining = 5
    http_state.throttle_retry_after = 42
    authenticator = _authenticator(http, endpoints, username="alice", password=ALICE.password)
    with pytest.raises(RateLimited) as caught:
        await authenticator.authenticate()
    assert caught.value.retry_after == 42
    assert http_state.throttled_requests == 1
    assert len(http_state.requests) == 1


async def test_cookie_session_reads_the_token_from_the_home_page(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    sessionid, signature = http_state.create_session("bob")
    authenticator = _authenticator(http, endpoints, sessionid=sessionid, sessionid_sign=signature)
    session = await authenticator.authenticate()
    claims = http_state.tokens.verify(session.token, time.time())
    assert claims is not None
    assert claims.user_id == BOB.user_id
    assert session.plan == "pro_premium"
    assert session.username == "bob"
    assert (session.sessionid, session.sessionid_sign) == (sessionid, signature)
    assert http_state.home_requests == 1
    assert http_state.signin_attempts == 0


async def test_forged_cookie_is_rejected(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    sessionid, _ = http_state.create_session("bob")
    authenticator = _authenticator(
        http, endpoints, sessionid=sessionid, sessionid_sign="v3:forged-signature"
    )
    with pytest.raises(AuthError, match="Wrong or expired sessionid/signature") as caught:
        await authenticator.authenticate()
    assert sessionid not in str(caught.value)
    assert http_state.home_requests == 1


async def test_sessionid_without_signature_is_an_invalid_request(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    authenticator = _authenticator(http, endpoints, sessionid="abc")
    with pytest.raises(InvalidRequest, match="sessionid_sign"):
        await authenticator.authenticate()
    assert len(http_state.requests) == 0


async def test_rejected_cookie_falls_back_to_the_password(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    authenticator = _authenticator(
        http,
        endpoints,
        username="alice",
        password=ALICE.password,
        sessionid="stale",
        sessionid_sign="stale-sign",
    )
    session = await authenticator.authenticate()
    assert session.username == "alice"
    assert http_state.home_requests == 1
    assert http_state.signin_attempts == 1


async def test_regional_redirect_is_followed(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    sessionid, signature = http_state.create_session("dave")
    authenticator = _authenticator(http, endpoints, sessionid=sessionid, sessionid_sign=signature)
    session = await authenticator.authenticate()
    assert session.username == "dave"
    assert session.plan == "pro"
    assert session.bar_limit == 10_000
    homes = [r for r in http_state.requests if r.path == "/"]
    assert [r.query.get("lang") for r in homes] == [None, "fr"]
    assert all("sessionid=" in r.headers["Cookie"] for r in homes)


async def test_password_sign_in_of_a_redirected_account(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    authenticator = _authenticator(http, endpoints, username="dave", password=DAVE.password)
    session = await authenticator.authenticate()
    assert session.plan == "pro"
    assert http_state.successful_signins == 1


async def test_redirects_are_capped(http: aiohttp.ClientSession) -> None:
    hits = 0

    async def loop_forever(request: web.Request) -> web.Response:
        nonlocal hits
        hits += 1
        return web.Response(status=302, headers={"Location": f"/?hop={hits}"})

    app = web.Application()
    app.router.add_get("/", loop_forever)
    async with TestServer(app, host="127.0.0.1", port=0) as looping:
        endpoints = Endpoints(www_url=str(looping.make_url("")).rstrip("/"))
        authenticator = _authenticator(http, endpoints, sessionid="s", sessionid_sign="t")
        with pytest.raises(AuthError, match="Wrong or expired"):
            await authenticator.authenticate()
    assert hits == 6  # the first request and five redirects


async def test_sign_in_answer_without_token_reads_the_home_page(
    http: aiohttp.ClientSession,
) -> None:
    """Some clients (SEMOI) ignore the sign-in body; a server may also omit the token there."""

    async def sign_in(request: web.Request) -> web.Response:
        response = web.json_response({"error": "", "user": {"username": "zed"}})
        response.set_cookie("sessionid", "sid-zed")
        response.set_cookie("sessionid_sign", "sign-zed")
        return response

    async def home(request: web.Request) -> web.Response:
        if request.cookies.get("sessionid") != "sid-zed":
            return web.Response(text="<html>anonymous</html>", content_type="text/html")
        page = '<script>var user = {"username":"zed","auth_token":"opaque-zed","pro_plan":""}'
        return web.Response(text=page, content_type="text/html")

    app = web.Application()
    app.router.add_post("/accounts/signin/", sign_in)
    app.router.add_get("/", home)
    async with TestServer(app, host="127.0.0.1", port=0) as custom:
        endpoints = Endpoints(www_url=str(custom.make_url("")).rstrip("/"))
        session = await _authenticator(
            http, endpoints, username="zed", password="pw"
        ).authenticate()
    assert session.token == "opaque-zed"
    assert session.plan == "free"
    assert session.expires_at is None
    assert (session.sessionid, session.sessionid_sign) == ("sid-zed", "sign-zed")


async def test_direct_token(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    now = time.time()
    token = http_state.tokens.issue(user_id=9, plan="pro_expert", now=now)
    session = await _authenticator(http, endpoints, auth_token=token).authenticate()
    assert session.token == token
    assert session.plan == "pro_expert"
    assert session.bar_limit == 25_000
    assert session.expires_at == int(now) + 14_400
    assert len(http_state.requests) == 0


async def test_direct_non_jwt_token(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    session = await _authenticator(http, endpoints, auth_token="legacy-token").authenticate()
    assert session.token == "legacy-token"
    assert session.expires_at is None
    assert session.bar_limit == 5_000


async def test_expired_direct_token_without_cookies(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    token = http_state.tokens.issue(user_id=9, plan="pro", now=time.time() - 20_000)
    with pytest.raises(TokenExpired, match="sessionid"):
        await _authenticator(http, endpoints, auth_token=token).authenticate()
    assert len(http_state.requests) == 0


async def test_expired_direct_token_is_renewed_from_cookies(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    old = http_state.tokens.issue(user_id=BOB.user_id, plan="pro_premium", now=time.time() - 20_000)
    sessionid, signature = http_state.create_session("bob")
    session = await _authenticator(
        http, endpoints, auth_token=old, sessionid=sessionid, sessionid_sign=signature
    ).authenticate()
    assert session.token != old
    assert http_state.tokens.verify(session.token, time.time()) is not None
    assert http_state.home_requests == 1


async def test_sign_in_answer_that_is_not_json(http: aiohttp.ClientSession) -> None:
    async def broken(request: web.Request) -> web.Response:
        return web.Response(status=502, text="<html>Bad gateway</html>", content_type="text/html")

    app = web.Application()
    app.router.add_post("/accounts/signin/", broken)
    async with TestServer(app, host="127.0.0.1", port=0) as custom:
        endpoints = Endpoints(www_url=str(custom.make_url("")).rstrip("/"))
        authenticator = _authenticator(http, endpoints, username="zed", password="pw")
        with pytest.raises(AuthError, match="HTTP 502"):
            await authenticator.authenticate()
