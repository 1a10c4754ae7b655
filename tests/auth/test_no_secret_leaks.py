"""No secret in any log record, repr, exception message or traceback (errors.py).

Runs every flow, successful and failing, with DEBUG logging captured, then scans all the text
a user could ever see for the password, TOTP secret and code, tokens and cookie values.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
import traceback
from collections.abc import Iterator
from http.cookies import SimpleCookie

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
    ConnectionLost,
    InvalidCredentials,
    RateLimited,
    RequestTimeout,
    TokenExpired,
    TvFeedError,
)
from tvfeed_async.search import search_symbols
from tvfeed_async.testing.http_app import HttpState

from ..support.accounts import ALICE, BOB, BOB_SECRET

WRONG_PASSWORD = "Wr0ng-Passw0rd-Zx9"


def _exception_texts(exc: BaseException) -> Iterator[str]:
    yield str(exc)
    yield repr(exc)
    yield "".join(traceback.format_exception(exc))
    # Even the suppressed context ("raise ... from None") must not carry secrets in its text.
    seen: set[int] = set()
    link: BaseException | None = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        yield str(link)
        yield repr(link)
        link = link.__cause__ or link.__context__


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_no_secret_reaches_logs_reprs_or_errors(
    http: aiohttp.ClientSession,
    endpoints: Endpoints,
    http_state: HttpState,
    cache: SessionCache,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="tvfeed_async")
    secrets: set[str] = {ALICE.password, BOB.password, BOB_SECRET, WRONG_PASSWORD}
    texts: list[str] = []
    sessions: list[AuthSession] = []
    errors: list[BaseException] = []

    async def expect_failure(
        authenticator: Authenticator, kind: type[TvFeedError], refresh: bool = False
    ) -> None:
        texts.extend((repr(authenticator), str(authenticator)))
        with pytest.raises(kind) as caught:
            await (authenticator.refresh() if refresh else authenticator.authenticate())
        errors.append(caught.value)

    def make(credentials: Credentials, use_cache: bool = False) -> Authenticator:
        texts.extend((repr(credentials), str(credentials)))
        return Authenticator(http, endpoints, credentials, cache=cache if use_cache else None)

    # Success paths: TOTP by secret (cached), refresh from cookie, TOTP by code, cookie session.
    secrets.add(pyotp.TOTP(BOB_SECRET).now())
    bob = make(Credentials(username="bob", password=BOB.password, totp_secret=BOB_SECRET), True)
    sessions.append(await bob.authenticate())
    sessions.append(await bob.refresh())
    texts.append(repr(bob))
    code = pyotp.TOTP(BOB_SECRET).now()
    secrets.add(code)
    by_code = make(Credentials(username="bob", password=BOB.password, totp_code=code))
    sessions.append(await by_code.authenticate())
    sid, sign = http_state.create_session("alice")
    by_cookie = make(Credentials(sessionid=sid, sessionid_sign=sign))
    sessions.append(await by_cookie.authenticate())
    sessions.append(await make(Credentials(auth_token=sessions[0].token)).authenticate())
    secrets.add(pyotp.TOTP(BOB_SECRET).now())

    # Failure paths.
    await expect_failure(
        make(Credentials(username="alice", password=WRONG_PASSWORD)), InvalidCredentials
    )
    wrong_code = next(c for c in ("000000", "999999", "123456") if c not in secrets)
    secrets.add(wrong_code)
    await expect_failure(
        make(Credentials(username="bob", password=BOB.password, totp_code=wrong_code)),
        InvalidCredentials,
    )
    await expect_failure(
        make(Credentials(sessionid="forged-sid-4c1", sessionid_sign="forged-sign-9d2")), AuthError
    )
    secrets.update(("forged-sid-4c1", "forged-sign-9d2"))
    http_state.captcha_required = True
    await expect_failure(
        make(Credentials(username="alice", password=ALICE.password)), CaptchaRequired
    )
    http_state.captcha_required = False
    http_state.rate_limited = True
    await expect_failure(make(Credentials(username="alice", password=ALICE.password)), RateLimited)
    http_state.rate_limited = False
    http_state.revoke_all_sessions()
    await expect_failure(by_cookie, TokenExpired, refresh=True)

    # Transport failures carry aiohttp exceptions that know the request (and its cookies).
    dead = Endpoints(www_url=f"http://127.0.0.1:{_free_port()}")
    await expect_failure(
        Authenticator(
            http,
            dead,
            Credentials(
                username="alice", password=ALICE.password, sessionid=sid, sessionid_sign=sign
            ),
            cache=None,
        ),
        ConnectionLost,
    )
    never = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await never.wait()
        return web.Response()

    slow_app = web.Application()
    slow_app.router.add_get("/", hang)
    async with TestServer(slow_app, host="127.0.0.1", port=0) as slow:
        slow_endpoints = Endpoints(www_url=str(slow.make_url("")).rstrip("/"))
        authenticator = Authenticator(
            http,
            slow_endpoints,
            Credentials(sessionid=sid, sessionid_sign=sign),
            cache=None,
            timeout=0.2,
        )
        await expect_failure(authenticator, RequestTimeout)
        never.set()

    # Search runs anonymously but shares the logger tree.
    assert await search_symbols(http, endpoints, "BTC", limit=3)

    # Every token and cookie value that ever went over the wire is a secret too.
    for session in sessions:
        texts.extend((repr(session), str(session)))
        secrets.add(session.token)
        secrets.update(v for v in (session.sessionid, session.sessionid_sign) if v)
    for request in http_state.requests:
        jar: SimpleCookie = SimpleCookie()
        jar.load(request.headers.get("Cookie", ""))
        secrets.update(morsel.value for morsel in jar.values())
    texts.append(repr(cache))
    for error in errors:
        texts.extend(_exception_texts(error))
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    for record in caplog.records:
        texts.append(formatter.format(record))
        texts.append(repr(record.args))
    debug_records = [r for r in caplog.records if r.name.startswith("tvfeed_async")]
    assert len(debug_records) >= 10  # the flows were logged, so the scan below means something
    assert len(errors) == 8
    assert sid in secrets
    assert len(secrets) > 15

    leaks = [(secret, text) for text in texts for secret in secrets if secret and secret in text]
    assert not leaks, leaks[:3]

    # The cache file holds the session (token, cookies) but never the password or TOTP secret.
    stored = cache.path.read_text()
    assert BOB.password not in stored
    assert BOB_SECRET not in stored
    assert sessions[1].token in stored  # the refreshed session replaced the first one
    assert time.time() < (sessions[1].expires_at or 0)
