"""Sign-in, two-factor and the home page of the simulator."""

from __future__ import annotations

import json
import re
from typing import Any

import aiohttp
import pyotp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.simulator_http.conftest import REFERER, Clock
from tests.support.accounts import ALICE, BOB, CAROL, DAVE
from tests.support.accounts import BOB_SECRET as TOTP_SECRET
from tvfeed_async.testing.http_app import CAPTCHA_TEXT, Account, HttpState
from tvfeed_async.testing.tokens import TokenIssuer

Client = TestClient[web.Request, web.Application]

#: How TVAPI pulls the cookie values out of Set-Cookie headers.
SESSION_RE = re.compile(r"sessionid=(.*?);")
SIGN_RE = re.compile(r"sessionid_sign=(.*?);")


async def sign_in(
    client: Client, username: str, password: str, **form: str
) -> tuple[aiohttp.ClientResponse, dict[str, Any]]:
    response = await client.post(
        "/accounts/signin/",
        data={"username": username, "password": password, "remember": "on", **form},
        headers=REFERER,
    )
    assert response.status == 200
    return response, await response.json()


def cookie_values(response: aiohttp.ClientResponse) -> tuple[str, str]:
    """(sessionid, sessionid_sign) the way TVAPI extracts them from raw Set-Cookie headers."""
    raw = response.headers.getall("Set-Cookie")
    session = [SESSION_RE.search(c) for c in raw if "sessionid=" in c]
    sign = [SIGN_RE.search(c) for c in raw if "sessionid_sign=" in c]
    assert len(session) == 1
    assert session[0] is not None
    assert len(sign) == 1
    assert sign[0] is not None
    return session[0].group(1), sign[0].group(1)


def cookie_header(sessionid: str, sign: str) -> dict[str, str]:
    # TVAPI's exact format: no space, trailing semicolon.
    return {"Cookie": f"sessionid={sessionid};sessionid_sign={sign};"}


async def home(client: Client, headers: dict[str, str], path: str = "/") -> str:
    response = await client.get(path, headers=headers, allow_redirects=False)
    assert response.status == 200
    assert response.content_type == "text/html"
    return await response.text()


def token_in(page: str) -> str | None:
    match = re.search(r'"auth_token":"(.*?)"', page)
    return match.group(1) if match else None


# -- sign-in --------------------------------------------------------------------------------------


async def test_signin_success_returns_user_token_and_cookies(
    client: Client, state: HttpState, issuer: TokenIssuer, clock: Clock
) -> None:
    response, body = await sign_in(client, ALICE.username, ALICE.password)

    assert body["error"] == ""
    assert "code" not in body  # TVAPI treats any code as a two-factor answer
    user = body["user"]
    assert user["id"] == ALICE.user_id
    assert user["username"] == "alice"
    assert user["is_pro"] is False
    assert user["pro_plan"] == ""
    claims = issuer.verify(user["auth_token"], clock())
    assert claims is not None
    assert (claims.user_id, claims.plan) == (ALICE.user_id, "free")
    sessionid, sign = cookie_values(response)
    assert sign == state.sign(sessionid)
    assert sessionid != sign
    assert response.cookies["device_t"].value
    assert response.cookies["sessionid"]["max-age"]  # remember=on
    assert state.signin_attempts == 1
    assert state.successful_signins == 1
    assert state.signins_without_referer == 0
    assert state.last_signin_referer == REFERER["Referer"]


async def test_signin_carries_the_plan_of_a_pro_account(
    client: Client, issuer: TokenIssuer, clock: Clock
) -> None:
    _, body = await sign_in(client, DAVE.username.upper(), DAVE.password)  # case-insensitive

    claims = issuer.verify(body["user"]["auth_token"], clock())
    assert claims is not None
    assert (claims.user_id, claims.plan) == (DAVE.user_id, DAVE.plan)
    assert body["user"]["pro_plan"] == "pro"
    assert body["user"]["is_pro"] is True


async def test_signin_with_email_and_multipart_form(client: Client) -> None:
    form = aiohttp.FormData()
    form.add_field("username", "alice@example.com")
    form.add_field("password", ALICE.password)
    form.add_field("remember", "on")
    # A file part forces multipart/form-data, like the browser's fetch.
    form.add_field("extra", b"x", filename="x.bin", content_type="application/octet-stream")
    response = await client.post("/accounts/signin/", data=form, headers=REFERER)

    assert response.status == 200
    assert response.request_info.headers["Content-Type"].startswith("multipart/form-data")
    body = await response.json()
    assert body["error"] == ""
    assert body["user"]["id"] == ALICE.user_id


async def test_signin_without_remember_sets_session_cookies(client: Client) -> None:
    response = await client.post(
        "/accounts/signin/", data={"username": "alice", "password": ALICE.password}, headers=REFERER
    )
    body = await response.json()

    assert body["error"] == ""
    assert response.cookies["sessionid"]["max-age"] == ""


async def test_wrong_password_and_unknown_user_are_refused(
    client: Client, state: HttpState
) -> None:
    for username, password in (("alice", "nope"), ("nobody", ALICE.password), ("", "")):
        response, body = await sign_in(client, username, password)
        assert body["error"] == "Invalid username or password"
        assert body["code"] == "invalid_credentials"
        assert "user" not in body
        assert "sessionid" not in response.cookies
    assert state.signin_attempts == 3
    assert state.successful_signins == 0
    assert state.session_count == 0


async def test_non_ascii_credentials_and_cookies_are_handled(
    client: Client, state: HttpState
) -> None:
    state.add_account(Account("zoë", "pässwörd-€", 1005))
    _, body = await sign_in(client, "ZOË", "pässwörd-€")
    assert body["error"] == ""
    assert body["user"]["username"] == "zoë"

    _, body = await sign_in(client, "zoë", "passwörd-€")
    assert body["code"] == "invalid_credentials"

    sessionid, _ = state.create_session("zoë")
    response = await client.get("/", headers={"Cookie": f"sessionid={sessionid};sessionid_sign=é"})
    assert response.status == 200
    assert "auth_token" not in await response.text()


async def test_unknown_two_factor_type_is_rejected(state: HttpState) -> None:
    with pytest.raises(ValueError, match="two_factor_type"):
        state.add_account(
            Account("eve", "pw", 1006, totp_secret=TOTP_SECRET, two_factor_type="fax")
        )


async def test_missing_referer_is_accepted_but_recorded(client: Client, state: HttpState) -> None:
    response = await client.post(
        "/accounts/signin/", data={"username": "alice", "password": ALICE.password}
    )
    assert (await response.json())["error"] == ""
    assert state.signins_without_referer == 1
    assert state.last_signin_referer is None

    state.require_referer = True
    response = await client.post(
        "/accounts/signin/", data={"username": "alice", "password": ALICE.password}
    )
    assert response.status == 403
    assert state.signins_without_referer == 2


async def test_captcha_knob(client: Client, state: HttpState) -> None:
    state.captcha_required = True
    response, body = await sign_in(client, ALICE.username, ALICE.password)

    assert body["code"] == "recaptcha_required"
    assert body["error"] == CAPTCHA_TEXT
    assert body["error"] == ("Please confirm that you are not a robot by clicking the captcha box.")
    assert "sessionid" not in response.cookies

    state.captcha_required = False
    _, body = await sign_in(client, ALICE.username, ALICE.password)
    assert body["error"] == ""


async def test_rate_limit_knob(client: Client, state: HttpState) -> None:
    state.rate_limited = True
    response, body = await sign_in(client, ALICE.username, ALICE.password)

    assert body["code"] == "rate_limit"
    assert body["error"]
    assert "sessionid" not in response.cookies


async def test_http_429_knob_applies_to_the_next_k_requests_of_any_route(
    client: Client, state: HttpState
) -> None:
    state.throttle_remaining = 3
    state.throttle_retry_after = 7
    statuses = []
    for method, path in (
        ("POST", "/accounts/signin/"),
        ("GET", "/"),
        ("GET", "/symbol_search/v3/"),
    ):
        response = await client.request(method, path, headers=REFERER)
        statuses.append(response.status)
        assert response.headers["Retry-After"] == "7"
    assert statuses == [429, 429, 429]
    assert state.throttled_requests == 3
    assert state.signin_attempts == 0  # throttled before reaching the handler

    _, body = await sign_in(client, ALICE.username, ALICE.password)
    assert body["error"] == ""
    assert state.throttle_remaining == 0


# -- two-factor -----------------------------------------------------------------------------------


async def test_totp_flow_gives_a_token_and_fresh_cookies(
    client: Client, state: HttpState, issuer: TokenIssuer, clock: Clock
) -> None:
    response, body = await sign_in(client, BOB.username, BOB.password)
    assert body == {
        "error": "2FA_required",
        "code": "2FA_required",
        "message": "Second authentication factor is needed",
        "two_factor_types": [{"name": "totp"}],
    }
    pending = cookie_values(response)
    assert pending[1] == state.sign(pending[0])
    # A half-authenticated session does not open the home page.
    assert token_in(await home(client, cookie_header(*pending))) is None

    code = pyotp.TOTP(TOTP_SECRET).at(clock())
    response = await client.post(
        "/accounts/two-factor/signin/totp/",
        data={"code": code, "remember": "on"},
        headers={**REFERER, **cookie_header(*pending)},
    )
    body = await response.json()

    assert body["error"] == ""
    assert "code" not in body
    claims = issuer.verify(body["user"]["auth_token"], clock())
    assert claims is not None
    assert (claims.user_id, claims.plan) == (BOB.user_id, "pro_premium")
    full = cookie_values(response)
    assert full[0] != pending[0]
    assert full[1] == state.sign(full[0])
    assert state.totp_attempts == 1
    page_token = token_in(await home(client, cookie_header(*full)))
    assert page_token is not None
    assert issuer.verify(page_token, clock()) is not None
    # The pending session was consumed.
    response = await client.post(
        "/accounts/two-factor/signin/totp/",
        data={"code": code},
        headers=cookie_header(*pending),
    )
    assert (await response.json())["error"]


async def test_wrong_code_is_refused_and_the_right_one_still_works(
    client: Client, clock: Clock
) -> None:
    response, _ = await sign_in(client, BOB.username, BOB.password)
    pending = cookie_header(*cookie_values(response))
    right = pyotp.TOTP(TOTP_SECRET).at(clock())
    wrong = f"{(int(right) + 1) % 1_000_000:06d}"

    for code in (wrong, "abcdef", ""):
        response = await client.post(
            "/accounts/two-factor/signin/totp/", data={"code": code}, headers=pending
        )
        body = await response.json()
        assert body["error"] == "Invalid code"
        assert body["code"] == "invalid_code"
        assert "sessionid" not in response.cookies

    response = await client.post(
        "/accounts/two-factor/signin/totp/", data={"code": right}, headers=pending
    )
    assert (await response.json())["error"] == ""


async def test_totp_window_is_one_step_either_side(client: Client, clock: Clock) -> None:
    totp = pyotp.TOTP(TOTP_SECRET)
    response, _ = await sign_in(client, BOB.username, BOB.password)
    pending = cookie_header(*cookie_values(response))

    too_old = totp.at(clock() - 90)
    response = await client.post(
        "/accounts/two-factor/signin/totp/", data={"code": too_old}, headers=pending
    )
    if too_old not in (totp.at(clock() - 30), totp.at(clock()), totp.at(clock() + 30)):
        assert (await response.json())["code"] == "invalid_code"

    previous = totp.at(clock() - 30)
    response = await client.post(
        "/accounts/two-factor/signin/totp/", data={"code": previous}, headers=pending
    )
    assert (await response.json())["error"] == ""


async def test_totp_without_the_first_response_cookies_fails(
    client: Client, state: HttpState, clock: Clock
) -> None:
    response, _ = await sign_in(client, BOB.username, BOB.password)
    sessionid, _sign = cookie_values(response)
    code = pyotp.TOTP(TOTP_SECRET).at(clock())

    for headers in (
        {},
        {"Cookie": f"sessionid={sessionid}"},  # signature missing
        cookie_header(sessionid, "v3:forged"),
        cookie_header("0" * 32, state.sign("0" * 32)),  # well signed, unknown
    ):
        response = await client.post(
            "/accounts/two-factor/signin/totp/", data={"code": code}, headers=headers
        )
        body = await response.json()
        assert body["error"]
        assert body["code"] == "2FA_session_not_found"
        assert "user" not in body
    assert state.successful_signins == 0


async def test_fully_signed_in_cookies_are_not_a_two_factor_session(
    client: Client, clock: Clock
) -> None:
    response, _ = await sign_in(client, ALICE.username, ALICE.password)
    response = await client.post(
        "/accounts/two-factor/signin/totp/",
        data={"code": pyotp.TOTP(TOTP_SECRET).at(clock())},
        headers=cookie_header(*cookie_values(response)),
    )
    assert (await response.json())["code"] == "2FA_session_not_found"


async def test_pending_two_factor_session_expires(
    client: Client, state: HttpState, clock: Clock
) -> None:
    response, _ = await sign_in(client, BOB.username, BOB.password)
    pending = cookie_header(*cookie_values(response))
    clock.value += state.pending_two_factor_lifetime + 1

    response = await client.post(
        "/accounts/two-factor/signin/totp/",
        data={"code": pyotp.TOTP(TOTP_SECRET).at(clock())},
        headers=pending,
    )
    assert (await response.json())["code"] == "2FA_session_not_found"
    assert state.session_count == 0


async def test_sms_factor_uses_its_own_endpoint(
    client: Client, issuer: TokenIssuer, clock: Clock
) -> None:
    response, body = await sign_in(client, CAROL.username, CAROL.password)
    assert body["code"] == "2FA_required"
    assert body["two_factor_types"] == [{"name": "sms"}]
    pending = cookie_header(*cookie_values(response))
    code = pyotp.TOTP(CAROL.totp_secret).at(clock())

    response = await client.post(
        "/accounts/two-factor/signin/totp/", data={"code": code}, headers=pending
    )
    body = await response.json()
    assert body["code"] == "2FA_type_not_enabled"
    assert body["error"]

    response = await client.post(
        "/accounts/two-factor/signin/sms/", data={"code": code}, headers=pending
    )
    body = await response.json()
    assert body["error"] == ""
    claims = issuer.verify(body["user"]["auth_token"], clock())
    assert claims is not None
    assert (claims.user_id, claims.plan) == (CAROL.user_id, CAROL.plan)


async def test_unknown_factor_path_is_not_found(client: Client) -> None:
    response = await client.post("/accounts/two-factor/signin/pigeon/", data={"code": "1"})
    assert response.status == 404


# -- home page ------------------------------------------------------------------------------------


async def test_home_page_embeds_a_fresh_token_for_a_signed_in_session(
    client: Client, state: HttpState, issuer: TokenIssuer, clock: Clock
) -> None:
    response, _ = await sign_in(client, ALICE.username, ALICE.password)
    cookies = cookie_header(*cookie_values(response))

    page = await home(client, cookies)
    assert "var user = {" in page
    # The regular expressions TVAPI and the tvdatafeed forks use on this page.
    token = token_in(page)
    assert token is not None
    claims = issuer.verify(token, clock())
    assert claims is not None
    assert (claims.user_id, claims.plan) == (ALICE.user_id, "free")
    id_match = re.search(r'"id":([0-9]{1,10}),', page)
    assert id_match is not None
    assert int(id_match.group(1)) == ALICE.user_id
    assert re.search(r'"username":"(.*?)"', page).group(1) == "alice"  # type: ignore[union-attr]
    assert re.search(r'"pro_plan":"(.*?)"', page) is not None
    assert re.search(r'"notification_count":\{"following":([0-9]*),', page) is not None
    assert re.search(r',"followers":([0-9]*?),', page) is not None
    # The object parses as JSON from `var user = ` and from a `"user":{` block.
    var_user = re.search(r"var user = (\{.*?\});\n", page)
    assert var_user is not None
    assert json.loads(var_user.group(1))["auth_token"] == token
    init = re.search(r"window\.initData = (\{.*?\});\n", page)
    assert init is not None
    assert json.loads(init.group(1))["user"]["id"] == ALICE.user_id
    assert state.home_requests == 1

    clock.value += 60
    second = token_in(await home(client, cookies, "/disclaimer/"))
    assert second is not None
    assert second != token  # fresh: issued at the new time
    later = issuer.verify(second, clock())
    assert later is not None
    assert later.issued_at == int(clock())
    assert state.tokens_issued == 3


async def test_home_page_is_anonymous_for_bad_cookies(client: Client, state: HttpState) -> None:
    response, _ = await sign_in(client, ALICE.username, ALICE.password)
    sessionid, sign = cookie_values(response)
    unknown = "f" * 32

    for headers in (
        {},
        cookie_header(sessionid, "v3:forged"),
        cookie_header(sessionid, sign[:-1]),
        cookie_header(unknown, state.sign(unknown)),
        {"Cookie": f"sessionid={sessionid}"},
    ):
        page = await home(client, headers)
        assert "auth_token" not in page
        assert "var user = " in page

    # Older pages accepted a bare sessionid; the knob brings that back.
    state.require_session_sign = False
    assert token_in(await home(client, {"Cookie": f"sessionid={sessionid}"})) is not None


async def test_revoked_session_becomes_anonymous(client: Client, state: HttpState) -> None:
    response, _ = await sign_in(client, ALICE.username, ALICE.password)
    sessionid, sign = cookie_values(response)
    assert token_in(await home(client, cookie_header(sessionid, sign))) is not None

    assert state.revoke_session(sessionid) is True
    assert "auth_token" not in await home(client, cookie_header(sessionid, sign))


async def test_browser_session_can_be_created_directly(
    client: Client, state: HttpState, issuer: TokenIssuer, clock: Clock
) -> None:
    sessionid, sign = state.create_session("bob")
    token = token_in(await home(client, cookie_header(sessionid, sign)))

    assert token is not None
    claims = issuer.verify(token, clock())
    assert claims is not None
    assert claims.user_id == BOB.user_id


async def test_regional_redirect_must_be_followed(
    client: Client, issuer: TokenIssuer, clock: Clock
) -> None:
    response, _ = await sign_in(client, DAVE.username, DAVE.password)
    cookies = cookie_header(*cookie_values(response))

    response = await client.get("/", headers=cookies, allow_redirects=False)
    assert response.status == 302
    location = response.headers["Location"]
    assert location == f"http://127.0.0.1:{client.port}/?lang=fr"
    assert "auth_token" not in await response.text()

    page = await home(client, cookies, "/?lang=fr")
    token = token_in(page)
    assert token is not None
    assert '<html lang="fr">' in page
    claims = issuer.verify(token, clock())
    assert claims is not None
    assert claims.user_id == DAVE.user_id

    # A client that follows redirects (and keeps its Cookie header on the same host) gets it.
    response = await client.get("/", headers=cookies)
    assert response.status == 200
    assert len(response.history) == 1
    assert token_in(await response.text()) is not None
