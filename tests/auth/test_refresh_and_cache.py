"""Refreshing lapsed tokens and sharing sessions between processes."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import time
from dataclasses import replace

import aiohttp
import pytest

from tvfeed_async.auth import Authenticator, AuthSession, Credentials, SessionCache
from tvfeed_async.config import Endpoints
from tvfeed_async.errors import RateLimited, TokenExpired
from tvfeed_async.testing.http_app import HttpState

from ..support.accounts import ALICE, BOB, BOB_SECRET


def _alice(
    http: aiohttp.ClientSession, endpoints: Endpoints, cache: SessionCache | None
) -> Authenticator:
    credentials = Credentials(username="alice", password=ALICE.password)
    return Authenticator(http, endpoints, credentials, cache=cache)


async def test_refresh_uses_the_cookie_not_the_password(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    authenticator = _alice(http, endpoints, None)
    first = await authenticator.authenticate()
    refreshed = await authenticator.refresh()
    assert http_state.signin_attempts == 1
    assert http_state.home_requests == 1
    assert http_state.tokens_issued == 2
    assert http_state.tokens.verify(refreshed.token, time.time()) is not None
    assert (refreshed.sessionid, refreshed.sessionid_sign) == (
        first.sessionid,
        first.sessionid_sign,
    )
    assert authenticator.session == refreshed


async def test_refresh_signs_in_again_once_when_the_cookie_is_dead(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    authenticator = _alice(http, endpoints, None)
    await authenticator.authenticate()
    http_state.revoke_all_sessions()
    refreshed = await authenticator.refresh()
    assert http_state.home_requests == 1
    assert http_state.signin_attempts == 2
    assert http_state.tokens.verify(refreshed.token, time.time()) is not None


async def test_refresh_of_a_cookie_session_whose_cookie_died_raises(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    sessionid, signature = http_state.create_session("bob")
    credentials = Credentials(sessionid=sessionid, sessionid_sign=signature)
    authenticator = Authenticator(http, endpoints, credentials, cache=None)
    await authenticator.authenticate()
    http_state.revoke_all_sessions()
    with pytest.raises(TokenExpired, match="cookies were rejected"):
        await authenticator.refresh()
    assert http_state.home_requests == 2  # one at start-up, one refresh attempt: no loop
    assert http_state.signin_attempts == 0


async def test_refresh_of_a_bare_token_raises_without_requests(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    token = http_state.tokens.issue(user_id=1, plan="pro", now=time.time())
    authenticator = Authenticator(http, endpoints, Credentials(auth_token=token), cache=None)
    await authenticator.authenticate()
    with pytest.raises(TokenExpired, match="fresh auth token"):
        await authenticator.refresh()
    assert len(http_state.requests) == 0


async def test_refresh_of_anonymous_is_anonymous(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    authenticator = Authenticator(http, endpoints, Credentials(), cache=None)
    session = await authenticator.authenticate()
    assert await authenticator.refresh() == session
    assert len(http_state.requests) == 0


async def test_refresh_before_authenticate_authenticates(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    session = await _alice(http, endpoints, None).refresh()
    assert session.username == "alice"
    assert http_state.signin_attempts == 1


async def test_cache_is_reused_without_any_request(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState, cache: SessionCache
) -> None:
    first = await _alice(http, endpoints, cache).authenticate()
    assert cache.load("alice") == first
    requests = len(http_state.requests)
    second = await _alice(http, endpoints, cache).authenticate()
    assert second == first
    assert len(http_state.requests) == requests
    assert http_state.signin_attempts == 1


async def test_cache_is_ignored_when_disabled(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    await _alice(http, endpoints, None).authenticate()
    await _alice(http, endpoints, None).authenticate()
    assert http_state.signin_attempts == 2


async def test_lapsed_cached_token_is_renewed_from_the_cached_cookie(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState, cache: SessionCache
) -> None:
    first = await _alice(http, endpoints, cache).authenticate()
    cache.store("alice", replace(first, expires_at=time.time() - 1))
    renewed = await _alice(http, endpoints, cache).authenticate()
    assert http_state.signin_attempts == 1
    assert http_state.home_requests == 1
    assert renewed.expires_at is not None
    assert renewed.expires_at > time.time()
    assert cache.load("alice") == renewed


async def test_lapsed_cached_token_with_dead_cookie_signs_in(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState, cache: SessionCache
) -> None:
    first = await _alice(http, endpoints, cache).authenticate()
    cache.store("alice", replace(first, expires_at=time.time() - 1))
    http_state.revoke_all_sessions()
    renewed = await _alice(http, endpoints, cache).authenticate()
    assert http_state.signin_attempts == 2
    assert http_state.home_requests == 1
    assert cache.load("alice") == renewed


async def test_refresh_takes_a_session_another_process_already_refreshed(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState, cache: SessionCache
) -> None:
    authenticator = _alice(http, endpoints, cache)
    first = await authenticator.authenticate()
    newer_token = http_state.tokens.issue(user_id=ALICE.user_id, plan="free", now=time.time() + 5)
    newer = AuthSession.from_token(
        newer_token, sessionid=first.sessionid, sessionid_sign=first.sessionid_sign
    )
    assert first.expires_at is not None
    assert newer.expires_at is not None
    assert newer.expires_at > first.expires_at
    cache.store("alice", newer)
    requests = len(http_state.requests)
    refreshed = await authenticator.refresh()
    assert refreshed.token == newer_token
    assert len(http_state.requests) == requests


async def test_refresh_ignores_an_older_cached_session(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState, cache: SessionCache
) -> None:
    """Two processes must never hand an older token back and forth."""
    authenticator = _alice(http, endpoints, cache)
    first = await authenticator.authenticate()
    older_token = http_state.tokens.issue(user_id=ALICE.user_id, plan="free", now=time.time() - 60)
    cache.store("alice", replace(first, token=older_token, expires_at=time.time() + 3600))
    refreshed = await authenticator.refresh()
    assert refreshed.token != older_token
    assert http_state.home_requests == 1  # renewed from the cookie instead
    assert cache.load("alice") == refreshed


async def test_refresh_stores_the_new_session(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState, cache: SessionCache
) -> None:
    authenticator = _alice(http, endpoints, cache)
    await authenticator.authenticate()
    refreshed = await authenticator.refresh()
    assert cache.load("alice") == refreshed


async def test_username_alone_uses_the_cache(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState, cache: SessionCache
) -> None:
    credentials = Credentials(username="bob", password=BOB.password, totp_secret=BOB_SECRET)
    first = await Authenticator(http, endpoints, credentials, cache=cache).authenticate()
    again = await Authenticator(
        http, endpoints, Credentials(username="bob"), cache=cache
    ).authenticate()
    assert again == first
    assert http_state.totp_attempts == 1


_SECOND_PROCESS = textwrap.dedent(
    """
    import asyncio, sys
    import aiohttp
    from tvfeed_async.auth import Authenticator, AuthSession, Credentials, SessionCache
    from tvfeed_async.config import Endpoints

    async def main():
        www, cache_path, password = sys.argv[1], sys.argv[2], sys.stdin.read()
        async with aiohttp.ClientSession() as http:
            credentials = Credentials(username="alice", password=password)
            authenticator = Authenticator(
                http, Endpoints(www_url=www), credentials, cache=SessionCache(cache_path)
            )
            session = await authenticator.authenticate()
        print(session.token)

    asyncio.run(main())
    """
)


async def _run_second_process(endpoints: Endpoints, cache: SessionCache) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _SECOND_PROCESS,
        endpoints.www_url,
        str(cache.path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    # The password goes through stdin: never on a command line other users can read.
    out, err = await process.communicate(ALICE.password.encode())
    assert process.returncode == 0, err.decode()
    return out.decode().strip()


async def test_cache_is_shared_across_processes(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState, cache: SessionCache
) -> None:
    # Another process signs in first and leaves its session in the shared file...
    token = await _run_second_process(endpoints, cache)
    assert http_state.signin_attempts == 1
    assert http_state.tokens.verify(token, time.time()) is not None
    # ...this process reuses it without signing in...
    session = await _alice(http, endpoints, cache).authenticate()
    assert session.token == token
    # ...and a third process too.
    assert await _run_second_process(endpoints, cache) == token
    assert http_state.signin_attempts == 1
    assert http_state.successful_signins == 1


async def test_cached_token_about_to_lapse_is_renewed_first(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState, cache: SessionCache
) -> None:
    first = await _alice(http, endpoints, cache).authenticate()
    cache.store("alice", replace(first, expires_at=time.time() + 5))
    renewed = await _alice(http, endpoints, cache).authenticate()
    assert http_state.home_requests == 1
    assert http_state.signin_attempts == 1
    assert renewed.expires_at is not None
    assert renewed.expires_at > time.time() + 3600


async def test_throttled_refresh_does_not_fall_back_to_a_password_sign_in(
    http: aiohttp.ClientSession, endpoints: Endpoints, http_state: HttpState
) -> None:
    authenticator = _alice(http, endpoints, None)
    await authenticator.authenticate()
    http_state.throttle_remaining = 3
    with pytest.raises(RateLimited):
        await authenticator.refresh()
    assert http_state.throttled_requests == 1
    assert http_state.signin_attempts == 1


@pytest.mark.parametrize(("min_validity", "renewed"), [(60.0, False), (300.0, True)])
async def test_a_cached_token_lapsing_within_min_validity_is_renewed(
    http: aiohttp.ClientSession,
    endpoints: Endpoints,
    http_state: HttpState,
    cache: SessionCache,
    min_validity: float,
    renewed: bool,
) -> None:
    """``Timeouts.token_min_validity`` (handed to the Authenticator as ``min_validity``) is
    the one margin that decides whether a cached token is still worth connecting with."""
    first = await _alice(http, endpoints, cache).authenticate()
    lapsing = replace(first, expires_at=time.time() + 120)
    cache.store("alice", lapsing)
    credentials = Credentials(username="alice", password=ALICE.password)
    authenticator = Authenticator(
        http, endpoints, credentials, cache=cache, min_validity=min_validity
    )
    session = await authenticator.authenticate()
    assert session.expires_at is not None
    assert lapsing.expires_at is not None
    # A renewed session carries its token's own expiry, hours away, not the 120 s stored.
    assert (session.expires_at > lapsing.expires_at + 600) is renewed
    assert http_state.home_requests == (1 if renewed else 0)
