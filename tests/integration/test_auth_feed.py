"""Signed-in feeds against the simulator's HTTP side (sign-in, 2FA, home page) and WebSocket."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import AsyncIterator

import anyio
import pyotp
import pytest
import pytest_asyncio

from tvfeed_async import (
    CaptchaRequired,
    InvalidCredentials,
    RateLimited,
    SessionCache,
    TvFeed,
    TwoFactorRequired,
)
from tvfeed_async.testing import TvSimulator
from tvfeed_async.testing.http_app import Account

from ..support.feeds import open_feed
from ..support.streams import FAST, MINUTE, as_tuples, collect_closed, first_forming, truth_bars

PASSWORD = "correct horse battery staple"
TOTP_SECRET = pyotp.random_base32()
#: Loggers of the simulator's side (it plays TradingView, which knows the secrets). The
#: client's own aiohttp loggers (aiohttp.client, aiohttp.internal, ...) are still scanned.
SERVER_LOGGERS = (
    "websockets.server",
    "tvfeed_async.testing",
    "aiohttp.access",
    "aiohttp.server",
    "aiohttp.web",
)


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[TvSimulator]:
    accounts = [
        Account("trader", PASSWORD, 1001, plan="pro_premium"),
        Account("guarded", PASSWORD, 1002, plan="pro", totp_secret=TOTP_SECRET),
        Account(
            "texter", PASSWORD, 1003, plan="pro", totp_secret=TOTP_SECRET, two_factor_type="sms"
        ),
    ]
    async with TvSimulator(accounts=accounts) as simulator:
        yield simulator


async def test_plan_from_the_token_drives_the_page_size(sim):
    async with open_feed(sim, username="trader", password=PASSWORD) as feed:
        assert feed.plan == "pro_premium"
        assert feed.bar_limit == 20_000
        result = await feed.fetch_history("BINANCE:BTCUSDT", interval="1", n_bars=25_000)
    async with open_feed(sim) as anonymous:
        assert anonymous.bar_limit == 5_000
        anonymous_result = await anonymous.fetch_history(
            "BINANCE:BTCUSDT", interval="1", n_bars=25_000
        )
    assert result.chunks == 2
    assert anonymous_result.chunks >= 6
    assert result.frame.equals(anonymous_result.frame)
    assert result.frame.height == 25_000
    assert sim.http is not None
    assert sim.http.signin_attempts == 1


async def test_two_factor_with_totp_secret_and_with_code(sim):
    async with open_feed(
        sim, username="guarded", password=PASSWORD, totp_secret=TOTP_SECRET
    ) as feed:
        assert feed.plan == "pro"
        frame = await feed.get_hist("BINANCE:BTCUSDT", interval="5S", n_bars=50)
    assert frame.height == 50  # seconds bars: the paid plan is entitled to them
    code = pyotp.TOTP(TOTP_SECRET).now()
    async with open_feed(sim, username="guarded", password=PASSWORD, totp_code=code) as feed:
        assert feed.plan == "pro"


async def test_two_factor_problems_are_typed(sim):
    with pytest.raises(TwoFactorRequired) as missing:
        async with open_feed(sim, username="guarded", password=PASSWORD):
            pass
    assert "totp" in str(missing.value).lower()
    with pytest.raises(TwoFactorRequired) as sms:
        async with open_feed(sim, username="texter", password=PASSWORD, totp_secret=TOTP_SECRET):
            pass
    assert sms.value.factors == ["sms"]
    with pytest.raises(InvalidCredentials):
        async with open_feed(sim, username="guarded", password=PASSWORD, totp_code="000000"):
            pass
    with pytest.raises(InvalidCredentials):
        async with open_feed(sim, username="trader", password="wrong"):
            pass


async def test_captcha_and_rate_limit_are_not_retried(sim):
    assert sim.http is not None
    sim.http.captcha_required = True
    with pytest.raises(CaptchaRequired) as captcha:
        async with open_feed(sim, username="trader", password=PASSWORD):
            pass
    assert "sessionid" in str(captcha.value)
    sim.http.captcha_required = False
    sim.http.rate_limited = True
    before = sim.http.signin_attempts
    with pytest.raises(RateLimited):
        async with open_feed(sim, username="trader", password=PASSWORD):
            pass
    assert sim.http.signin_attempts == before + 1


async def test_browser_cookie_session(sim):
    assert sim.http is not None
    sessionid, signature = sim.http.create_session("trader")
    async with open_feed(sim, sessionid=sessionid, sessionid_sign=signature) as feed:
        assert feed.plan == "pro_premium"
        frame = await feed.get_hist("NASDAQ:AAPL", interval="1D", n_bars=10)
    assert frame.height == 10
    assert sim.http.signin_attempts == 0


async def test_token_expiry_mid_stream_refreshes_from_the_cookie_without_losing_a_bar(sim):
    assert sim.http is not None
    async with open_feed(sim, username="trader", password=PASSWORD, **FAST) as feed:
        stream = feed.stream("BINANCE:BTCUSDT", interval="1", partial=True)
        async with contextlib.aclosing(stream):
            start = (await first_forming(stream)).timestamp
            await sim.clock.advance(3 * MINUTE)
            homes_before = sim.http.home_requests
            assert sim.faults.expire_tokens() == 1
            await sim.clock.advance(5 * MINUTE)
            closed = await collect_closed(stream, 8)
        assert feed.connections_opened == 2
    assert as_tuples(closed) == truth_bars(sim, "BINANCE:BTCUSDT", "1", start, start + 8 * MINUTE)
    assert sim.http.signin_attempts == 1  # the refresh used the session cookie, not the password
    assert sim.http.home_requests > homes_before


async def test_session_cache_signs_in_once_across_feeds(sim, tmp_path):
    assert sim.http is not None
    cache = SessionCache(tmp_path / "cache" / "sessions.json")
    for _ in range(3):
        async with open_feed(
            sim, username="trader", password=PASSWORD, session_cache=cache
        ) as feed:
            assert feed.plan == "pro_premium"
    assert sim.http.signin_attempts == 1
    mode = stat.S_IMODE(os.stat(tmp_path / "cache" / "sessions.json").st_mode)
    assert mode == 0o600


async def test_credentials_from_the_environment(sim, monkeypatch):
    monkeypatch.setenv("TV_USERNAME", "trader")
    monkeypatch.setenv("TV_PASSWORD", PASSWORD)
    async with TvFeed(endpoints=sim.endpoints, session_cache=False) as feed:
        assert feed.plan == "pro_premium"


async def test_search_through_the_feed(sim):
    async with open_feed(sim) as feed:
        results = await feed.search_symbol("BTC", exchange="BINANCE", type="crypto", limit=5)
    assert results
    assert results[0].full_name == "BINANCE:BTCUSDT"
    assert all("<em>" not in result.description for result in results)


async def test_no_secret_in_logs_or_reprs(sim, caplog):
    caplog.set_level(logging.DEBUG)
    code = pyotp.TOTP(TOTP_SECRET).now()
    texts: list[str] = []
    async with open_feed(
        sim, username="guarded", password=PASSWORD, totp_secret=TOTP_SECRET
    ) as feed:
        texts.append(repr(feed))
        texts.append(repr(feed._auth))
        token = feed._auth.token if feed._auth else ""
        cookie = feed._auth.sessionid if feed._auth else ""
        with anyio.fail_after(10):
            await feed.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=5)
        sim.faults.expire_tokens()
        await feed.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=5)
    with contextlib.suppress(InvalidCredentials):
        async with open_feed(sim, username="trader", password=PASSWORD + "x"):
            pass
    # The simulator plays TradingView, which knows the token; only the client side matters.
    client = [record for record in caplog.records if not record.name.startswith(SERVER_LOGGERS)]
    assert any(record.name.startswith("tvfeed_async") for record in client)
    texts.extend(record.getMessage() for record in client)
    texts.extend(str(record.args) for record in client)
    assert token
    assert cookie
    for text in texts:
        for secret in (PASSWORD, TOTP_SECRET, code, token, cookie):
            assert secret not in text


async def test_token_is_refreshed_before_it_lapses_without_losing_a_bar(sim):
    """A feed lives for days, a token for hours: it is renewed from the cookie ahead of time."""
    from tvfeed_async import Timeouts

    assert sim.http is not None
    sim.tokens.lifetime = 30  # seconds of wall-clock time
    timeouts = Timeouts(request=30.0, idle=30.0, token_refresh_margin=29.0)
    async with open_feed(
        sim, username="trader", password=PASSWORD, timeouts=timeouts, retry=FAST["retry"]
    ) as feed:
        stream = feed.stream("BINANCE:BTCUSDT", interval="1", partial=True)
        async with contextlib.aclosing(stream):
            start = (await first_forming(stream)).timestamp
            with anyio.fail_after(10):
                while feed.connections_opened < 2:
                    await sim.clock.advance(MINUTE)
                    await anyio.sleep(0.1)
            await sim.clock.advance(2 * MINUTE)
            now = sim.clock.now()
            minutes = int(now - start) // MINUTE
            closed = await collect_closed(stream, minutes)
    assert as_tuples(closed) == truth_bars(
        sim, "BINANCE:BTCUSDT", "1", start, start + minutes * MINUTE
    )
    assert sim.http.signin_attempts == 1
    assert sim.http.home_requests >= 1
