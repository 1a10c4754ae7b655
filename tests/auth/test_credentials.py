"""Credentials, AuthSession and the session cache, without a server."""

from __future__ import annotations

import json
import os
import stat
import time
from pathlib import Path

import pytest

from tvfeed_async.auth import (
    ANONYMOUS_TOKEN,
    AuthSession,
    Credentials,
    SessionCache,
    bar_limit_for_plan,
    default_cache,
)
from tvfeed_async.errors import InvalidRequest
from tvfeed_async.testing.tokens import TokenIssuer

SECRETS = {
    "password": "pw-Zq81!x",
    "totp_secret": "JBSWY3DPEHPK3PXP",
    "totp_code": "492039",
    "auth_token": "tok.en-value-77",
    "sessionid": "sid-a81d0f",
    "sessionid_sign": "v3:sign-9c2e",
}


def test_from_env_reads_every_variable() -> None:
    env = {
        "TV_USERNAME": "alice",
        "TV_PASSWORD": "pw",
        "TV_TOTP_SECRET": "JBSWY3DPEHPK3PXP",
        "TV_AUTH_TOKEN": "token",
        "TV_SESSIONID": "sid",
        "TV_SESSIONID_SIGN": "sign",
    }
    credentials = Credentials.from_env(env)
    assert credentials == Credentials(
        username="alice",
        password="pw",
        totp_secret="JBSWY3DPEHPK3PXP",
        auth_token="token",
        sessionid="sid",
        sessionid_sign="sign",
    )


def test_from_env_explicit_arguments_win_and_empty_variables_are_ignored() -> None:
    env = {"TV_USERNAME": "alice", "TV_PASSWORD": "", "TV_SESSIONID": "sid"}
    credentials = Credentials.from_env(env, username="bob", password=None, totp_code="123456")
    assert credentials.username == "bob"
    assert credentials.password is None
    assert credentials.totp_code == "123456"
    assert credentials.sessionid == "sid"


def test_from_env_rejects_unknown_fields() -> None:
    with pytest.raises(InvalidRequest, match="pasword"):
        Credentials.from_env({}, pasword="x")


def test_is_anonymous() -> None:
    assert Credentials().is_anonymous
    assert Credentials.from_env({}).is_anonymous
    assert Credentials(totp_secret="JBSWY3DPEHPK3PXP").is_anonymous
    assert not Credentials(username="a", password="b").is_anonymous
    assert not Credentials(auth_token="t").is_anonymous
    assert not Credentials(sessionid="s", sessionid_sign="t").is_anonymous


def test_credentials_repr_and_str_hide_every_secret() -> None:
    credentials = Credentials(username="alice", **SECRETS)
    for text in (repr(credentials), str(credentials), f"{credentials}"):
        assert "alice" in text
        assert "password=<hidden>" in text
        for secret in SECRETS.values():
            assert secret not in text
    assert "password=None" in repr(Credentials(username="alice"))


def test_auth_session_repr_hides_token_and_cookies() -> None:
    session = AuthSession(
        token=SECRETS["auth_token"],
        plan="pro",
        bar_limit=10_000,
        expires_at=123.0,
        sessionid=SECRETS["sessionid"],
        sessionid_sign=SECRETS["sessionid_sign"],
        username="alice",
    )
    for text in (repr(session), str(session)):
        assert "plan='pro'" in text
        assert "alice" in text
        for secret in (SECRETS["auth_token"], SECRETS["sessionid"], SECRETS["sessionid_sign"]):
            assert secret not in text


def test_anonymous_session() -> None:
    session = AuthSession.anonymous()
    assert session.token == ANONYMOUS_TOKEN == "unauthorized_user_token"
    assert session.plan == ""
    assert session.bar_limit == 5_000
    assert session.expires_at is None
    assert session.is_anonymous
    assert not session.expires_within(10**9)


@pytest.mark.parametrize(
    ("plan", "bars"),
    [
        ("", 5_000),
        ("free", 5_000),
        ("pro", 10_000),
        ("pro_plus", 10_000),
        ("pro_premium", 20_000),
        ("pro_expert", 25_000),
        ("pro_ultimate", 40_000),
        ("something_new", 5_000),
    ],
)
def test_bar_limit_for_plan(plan: str, bars: int) -> None:
    assert bar_limit_for_plan(plan) == bars


def test_session_from_jwt_reads_plan_and_expiry() -> None:
    issued = 1_763_000_000
    token = TokenIssuer(b"k").issue(user_id=7, plan="pro_ultimate", now=issued)
    session = AuthSession.from_token(token, plan="free", username="u")
    assert session.plan == "pro_ultimate"  # the token's claim beats what the page said
    assert session.bar_limit == 40_000
    assert session.expires_at == issued + 14_400
    assert session.username == "u"
    assert not session.expires_within(60, now=issued)
    assert session.expires_within(60, now=issued + 14_400 - 30)
    assert session.expires_within(0, now=issued + 14_400)


def test_session_from_non_jwt_token_has_unknown_expiry() -> None:
    session = AuthSession.from_token("opaque-token-without-dots")
    assert session.plan == "free"
    assert session.bar_limit == 5_000
    assert session.expires_at is None
    assert not session.expires_within(10**9)
    garbage = AuthSession.from_token("a.!!!not-base64!!!.c", plan="pro")
    assert garbage.expires_at is None
    assert garbage.plan == "pro"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _session(token: str = "t.o.k", expires_at: float | None = None) -> AuthSession:
    return AuthSession(token, "pro", 10_000, expires_at, "sid", "sign", "alice")


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_cache_file_is_0600_in_a_0700_directory(tmp_path: Path) -> None:
    cache = SessionCache(tmp_path / "deeper" / "tvfeed" / "sessions.json")
    cache.store("alice", _session())
    assert _mode(cache.path) == 0o600
    assert _mode(cache.path.parent) == 0o700
    cache.store("bob", _session())  # a rewrite keeps the mode
    assert _mode(cache.path) == 0o600
    # Only the cache file is left behind: the temporary file went through os.replace.
    assert [p.name for p in cache.path.parent.iterdir()] == ["sessions.json"]


def test_cache_round_trip_keyed_by_hashed_username(tmp_path: Path) -> None:
    cache = SessionCache(tmp_path / "sessions.json")
    assert cache.load("alice") is None
    stored = _session(expires_at=time.time() + 100)
    cache.store("Alice", stored)
    assert cache.load("alice") == stored  # usernames are case-insensitive
    assert cache.load("bob") is None
    text = cache.path.read_text()
    assert '"alice"' in text  # the username inside the entry, as the server spelled it
    assert "Alice" not in json.loads(text)["sessions"]
    assert SessionCache.key_for("alice") in json.loads(text)["sessions"]
    cache.delete("alice")
    assert cache.load("alice") is None
    cache.delete("alice")  # deleting twice is fine


def test_cache_ignores_a_damaged_file(tmp_path: Path) -> None:
    cache = SessionCache(tmp_path / "sessions.json")
    cache.path.write_text("{not json")
    assert cache.load("alice") is None
    cache.store("alice", _session())  # and replaces it
    assert cache.load("alice") == _session()
    cache.path.write_text(json.dumps({"version": 1, "sessions": {cache.key_for("alice"): 5}}))
    assert cache.load("alice") is None


def test_default_cache_location() -> None:
    assert default_cache({"TVFEED_CACHE_DIR": "/x/y"}).path == Path("/x/y/sessions.json")
    if os.name == "posix" and os.uname().sysname == "Linux":
        path = default_cache({"XDG_CACHE_HOME": "/c"}).path
        assert path == Path("/c/tvfeed_async/sessions.json")
        assert default_cache({}).path == Path.home() / ".cache" / "tvfeed_async" / "sessions.json"


@pytest.mark.parametrize(
    "field", ["username", "password", "totp_secret", "totp_code", "auth_token", "sessionid"]
)
@pytest.mark.parametrize("value", [12345, 3.5, b"bytes", ["x"]])
def test_fields_of_the_wrong_type_are_invalid_requests(field: str, value: object) -> None:
    with pytest.raises(InvalidRequest, match=field) as caught:
        Credentials(**{field: value})  # type: ignore[arg-type]
    assert str(value) not in str(caught.value)  # the message names the field, not the value
    with pytest.raises(InvalidRequest, match=field):
        Credentials.from_env({}, **{field: value})  # type: ignore[arg-type]
