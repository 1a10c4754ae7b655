"""TOTP keys as authenticator apps accept them (issue #14.1, #15 "garbage TOTP secret").

16-, 26- and 32-character keys, in any case, with spaces, without padding, sign in against
the simulator's two-factor endpoint; text that is not base32 is refused before the password
is sent.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
import time

import aiohttp
import pytest

from tvfeed_async import TvFeed
from tvfeed_async.auth import Authenticator, Credentials, _Totp, _totp_now
from tvfeed_async.config import Endpoints
from tvfeed_async.errors import InvalidRequest
from tvfeed_async.testing import TvSimulator
from tvfeed_async.testing.http_app import Account, HttpState
from tvfeed_async.validation import normalise_totp_secret

# 10, 16 and 20 bytes: the key lengths behind 16-, 26- and 32-character base32 keys.
KEY_80 = base64.b32encode(bytes(range(1, 11))).decode()
KEY_130 = base64.b32encode(bytes(range(40, 56))).decode().rstrip("=")
KEY_160 = base64.b32encode(b"12345678901234567890").decode()


def _reference_totp(key: bytes, now: float) -> str:
    """RFC 6238 with SHA-1, 30 s steps and 6 digits, written out from the RFC (no pyotp)."""
    digest = hmac.new(key, struct.pack(">Q", int(now) // 30), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    number = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{number % 1_000_000:06d}"


def _spaced_lower(key: str) -> str:
    return " ".join(key[i : i + 4] for i in range(0, len(key), 4)).lower()


def test_the_keys_have_the_advertised_lengths() -> None:
    assert (len(KEY_80), len(KEY_130), len(KEY_160)) == (16, 26, 32)


def test_rfc_6238_test_vector() -> None:
    # RFC 6238 appendix B, SHA-1 key "12345678901234567890", T = 59 s: 94287082 (8 digits).
    assert _reference_totp(b"12345678901234567890", 59) == "287082"
    assert _Totp(KEY_160).at(59) == "287082"
    assert _Totp(KEY_80).at(59) == _reference_totp(bytes(range(1, 11)), 59)


@pytest.mark.parametrize("key", [KEY_80, KEY_130, KEY_160])
def test_every_written_form_gives_the_same_codes(key: str) -> None:
    raw = base64.b32decode(key + "=" * (-len(key) % 8))
    padded = key + "=" * (-len(key) % 8)
    forms = [key, key.lower(), _spaced_lower(key), padded, f"  {padded.lower()}\t"]
    for form in forms:
        assert normalise_totp_secret(form) == key
        assert Credentials(totp_secret=form).totp_secret == key
    now = time.time()
    expected = _reference_totp(raw, now)
    assert _totp_now(_spaced_lower(key)) in {expected, _reference_totp(raw, now + 1)}


@pytest.mark.parametrize(
    "garbage",
    [
        "not base32 !!",
        "JBSWY3DPEHPK3PX0",  # 0 is not a base32 digit
        "JBSWY3DPEHPK3PX1",  # nor is 1
        "JBSWY3DPEHPK3PXPQ",  # 17 characters: no encoder ends a key with one lone character
        "JBSW=Y3DPEHPK3PXP",  # padding in the middle
        "JBSWY3DP",  # 40 bits: too short for any authenticator
        "ÄBSWY3DPEHPK3PXP",
        "   ",
    ],
)
def test_text_that_is_not_a_key_is_refused_at_construction(garbage: str) -> None:
    with pytest.raises(InvalidRequest, match="TOTP secret") as caught:
        Credentials(username="bob", password="pw", totp_secret=garbage)
    assert not garbage.strip() or garbage.strip() not in str(caught.value)
    with pytest.raises(InvalidRequest, match="TOTP secret"):
        TvFeed(username="bob", password="pw", totp_secret=garbage, use_env=False)


def test_a_secret_of_the_wrong_type_is_refused() -> None:
    with pytest.raises(InvalidRequest, match="totp_secret"):
        TvFeed(username="bob", password="pw", totp_secret=12345, use_env=False)  # type: ignore[arg-type]


@pytest.mark.parametrize("key", [KEY_80, KEY_130, KEY_160])
@pytest.mark.parametrize("written", ["canonical", "spaced lower case"])
async def test_sign_in_with_16_26_and_32_character_keys(
    http: aiohttp.ClientSession,
    endpoints: Endpoints,
    http_state: HttpState,
    key: str,
    written: str,
) -> None:
    # The simulator registers the key as a user might have typed it, and the client gets it
    # in the other form: both sides normalise.
    server_key = _spaced_lower(key) if written == "canonical" else key
    client_key = key if written == "canonical" else _spaced_lower(key)
    http_state.add_account(
        Account(
            username="erin", password="erin-pw-1", user_id=505, plan="pro", totp_secret=server_key
        )
    )
    authenticator = Authenticator(
        http,
        endpoints,
        Credentials(username="erin", password="erin-pw-1", totp_secret=client_key),
        cache=None,
    )
    session = await authenticator.authenticate()
    assert session.plan == "pro"
    assert http_state.totp_attempts == 1
    assert http_state.successful_signins == 1
    claims = http_state.tokens.verify(session.token, time.time())
    assert claims is not None
    assert claims.user_id == 505


async def test_a_garbage_secret_from_the_environment_sends_nothing(
    http_state: HttpState, endpoints: Endpoints, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TV_TOTP_SECRET", "definitely not base32")
    feed = TvFeed(username="bob", password="pw", endpoints=endpoints, session_cache=False)
    with pytest.raises(InvalidRequest, match="TOTP secret"):
        async with feed:
            pass
    assert http_state.signin_attempts == 0
    assert len(http_state.requests) == 0


def test_the_simulator_refuses_an_account_key_no_authenticator_accepts(
    http_state: HttpState,
) -> None:
    with pytest.raises(ValueError, match=r"base32|bits|Incorrect|Non-base32"):
        http_state.add_account(
            Account(username="x", password="y", user_id=1, totp_secret="JBSWY3DP")
        )


async def test_the_issue_s_example_signs_a_feed_in_against_the_simulator() -> None:
    # Issue #14.1, word for word: an 80-bit key as authenticator set-ups show it.
    account = Account("keyholder", "kh-Pa55-word", 6001, plan="pro", totp_secret="JBSWY3DPEHPK3PXP")
    async with TvSimulator(accounts=[account]) as sim:
        assert sim.http is not None
        for written in ("JBSWY3DPEHPK3PXP", "jbsw y3dp ehpk 3pxp"):
            feed = TvFeed(
                username="keyholder",
                password="kh-Pa55-word",
                totp_secret=written,
                endpoints=sim.endpoints,
                session_cache=False,
                use_env=False,
            )
            async with feed:
                assert feed.plan == "pro"
                frame = await feed.get_hist("BINANCE:BTCUSDT", interval="1D", n_bars=3)
            assert frame.height == 3
        assert sim.http.totp_attempts == 2
        assert sim.http.successful_signins == 2
