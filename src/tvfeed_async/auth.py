"""Signing in to TradingView and keeping a valid auth token (PROTOCOL.md §7.1 to §7.4).

Four ways in, chosen from what the :class:`Credentials` hold:

* nothing: the anonymous token ``unauthorized_user_token`` (delayed data, 5,000 bars);
* an auth token: used as is; its JWT claims give the plan and the expiry;
* the browser cookies ``sessionid`` + ``sessionid_sign``: the home page embeds the token;
* username + password (+ TOTP): the sign-in form, then the two-factor form when asked.

Password sign-ins are expensive for the user: TradingView sends a "new login" e-mail and blocks
accounts after a handful of them (USERS.md item 5). So a signed-in session is kept in a small
JSON file (:class:`SessionCache`, mode 0600) shared by every process of the user, and a lapsed
token is re-read from the long-lived session cookie before a new password sign-in is considered.
A sign-in is never retried in a loop.

Secrets (password, TOTP secret and code, token, cookies) never appear in a log record, a repr,
or an exception message.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import json
import logging
import math
import os
import re
import stat
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import aiohttp
import pyotp

if sys.platform == "win32":  # pragma: no cover (no flock; a lost update costs one sign-in)
    _fcntl = None
else:
    import fcntl as _fcntl

from .config import Endpoints
from .errors import (
    AuthError,
    CaptchaRequired,
    InvalidCredentials,
    InvalidRequest,
    RateLimited,
    TokenExpired,
    TwoFactorRequired,
    UnsafeRedirect,
)
from .http_common import USER_AGENT, http_errors, origin_text, parse_retry_after, same_site
from .validation import MIN_TOTP_SECRET_BITS, check_credential_fields, normalise_totp_secret

__all__ = [
    "ANONYMOUS_TOKEN",
    "PLAN_BAR_LIMITS",
    "AuthSession",
    "Authenticator",
    "Credentials",
    "SessionCache",
    "bar_limit_for_plan",
    "default_cache",
]

logger = logging.getLogger("tvfeed_async.auth")

#: The token every client sends when it is not signed in.
ANONYMOUS_TOKEN = "unauthorized_user_token"  # noqa: S105 (a public constant, not a secret)

#: Bars per request by plan, as TradingView support quotes them (PROTOCOL.md §8).
PLAN_BAR_LIMITS: Mapping[str, int] = {
    "": 5_000,
    "free": 5_000,
    "pro": 10_000,
    "pro_plus": 10_000,
    "pro_premium": 20_000,
    "pro_expert": 25_000,
    "pro_ultimate": 40_000,
}
_DEFAULT_BAR_LIMIT = 5_000
# TVAPI caps the home-page redirects it follows at 5 (PROTOCOL.md §7.3).
_MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_SESSION_COOKIES = ("sessionid", "sessionid_sign")
# Cookie values shorter than this ("1", "en") are not secrets, and hiding them would garble
# every error text they happen to occur in.
_MIN_SCRUBBED_LENGTH = 6
_MAX_LEARNT_SECRETS = 64
_HIDDEN = "<hidden>"
# A token that lapses within this many seconds is renewed rather than handed out: the feed
# would otherwise connect with it only to reconnect a moment later.
_FRESHNESS_MARGIN = 60.0
# The home page embeds the user object as JSON (``var user = {...}`` or ``"user":{...}``).
_AUTH_TOKEN_RE = re.compile(r'"auth_token"\s*:\s*"([^"]+)"')
_PRO_PLAN_RE = re.compile(r'"pro_plan"\s*:\s*"([^"]*)"')
_USERNAME_RE = re.compile(r'"username"\s*:\s*"([^"]*)"')


def bar_limit_for_plan(plan: str) -> int:
    """Bars one history request may return on ``plan`` (5,000 when the plan is unknown)."""
    return PLAN_BAR_LIMITS.get(plan, _DEFAULT_BAR_LIMIT)


def _mask(value: str | None) -> str:
    return "None" if value is None else _HIDDEN


# --------------------------------------------------------------------------------------------
# Credentials and sessions
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Credentials:
    """What the user gave to sign in with. Every field is optional; none means anonymous.

    Attributes:
        username: TradingView username or e-mail (with ``password``).
        password: the account password.
        totp_secret: base32 key of the authenticator app, to answer TOTP two-factor. Any
            case, spaces and missing ``=`` padding are accepted, from 80 bits (16 characters);
            it is kept in canonical form (upper case, no spaces, no padding).
        totp_code: a current 6-digit code, instead of the secret (valid for ~30 s only).
        auth_token: an auth token copied from a browser (lives about 4 hours).
        sessionid: the ``sessionid`` cookie copied from a signed-in browser (lives months).
        sessionid_sign: the ``sessionid_sign`` cookie that goes with ``sessionid``.
    """

    username: str | None = None
    password: str | None = field(default=None, repr=False)
    totp_secret: str | None = field(default=None, repr=False)
    totp_code: str | None = field(default=None, repr=False)
    auth_token: str | None = field(default=None, repr=False)
    sessionid: str | None = field(default=None, repr=False)
    sessionid_sign: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        """Raises InvalidRequest for a field that is not a string (or None) or a TOTP secret
        no authenticator accepts; the message names the field, never its value."""
        # Checked here, before any request: a garbage TOTP key must not cost a password
        # sign-in (and its "new login" e-mail) before it is found out.
        check_credential_fields({item.name: getattr(self, item.name) for item in fields(self)})
        if self.totp_secret:
            object.__setattr__(self, "totp_secret", normalise_totp_secret(self.totp_secret))

    def __repr__(self) -> str:
        # Say which secrets are present, never what they are.
        return (
            f"Credentials(username={self.username!r}, password={_mask(self.password)}, "
            f"totp_secret={_mask(self.totp_secret)}, totp_code={_mask(self.totp_code)}, "
            f"auth_token={_mask(self.auth_token)}, sessionid={_mask(self.sessionid)}, "
            f"sessionid_sign={_mask(self.sessionid_sign)})"
        )

    __str__ = __repr__

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, **explicit: str | None
    ) -> Credentials:
        """Credentials from keyword arguments, with the environment filling the gaps.

        ``TV_USERNAME``, ``TV_PASSWORD``, ``TV_TOTP_SECRET``, ``TV_AUTH_TOKEN``, ``TV_SESSIONID``
        and ``TV_SESSIONID_SIGN`` are read for every field not given explicitly (``None`` counts
        as not given; empty variables are ignored).

        Raises:
            InvalidRequest: an unknown keyword argument, a field that is not a string, or a
                TOTP secret that is not a base32 key of 80 bits or more.
        """
        env = os.environ if environ is None else environ
        names = {
            "username": "TV_USERNAME",
            "password": "TV_PASSWORD",
            "totp_secret": "TV_TOTP_SECRET",
            "totp_code": None,  # a code lives 30 s: an environment variable makes no sense
            "auth_token": "TV_AUTH_TOKEN",
            "sessionid": "TV_SESSIONID",
            "sessionid_sign": "TV_SESSIONID_SIGN",
        }
        unknown = sorted(set(explicit) - set(names))
        if unknown:
            raise InvalidRequest(f"unknown credential field(s): {', '.join(unknown)}")
        values: dict[str, str | None] = {}
        for name, variable in names.items():
            value = explicit.get(name)
            if value is None and variable is not None:
                value = env.get(variable) or None
            values[name] = value
        return cls(**values)

    @property
    def is_anonymous(self) -> bool:
        """True when nothing was given that could sign in."""
        return not (self.username or self.password or self.auth_token or self.sessionid)


@dataclass(frozen=True, repr=False)
class AuthSession:
    """A token the feed can send, with what is known about it.

    Attributes:
        token: the value for ``set_auth_token`` (``"unauthorized_user_token"`` when anonymous).
        plan: ``""`` anonymous, ``"free"``, ``"pro"``, ``"pro_premium"``...
        bar_limit: bars one history request may return on this plan.
        expires_at: unix time the token lapses (the JWT ``exp``); ``None`` when unknown.
        sessionid: the session cookie the token was read from, kept to refresh the token.
        sessionid_sign: the signature cookie that goes with ``sessionid``.
        username: the account's username, when known.
    """

    token: str = field(repr=False)
    plan: str
    bar_limit: int
    expires_at: float | None
    sessionid: str | None = field(default=None, repr=False)
    sessionid_sign: str | None = field(default=None, repr=False)
    username: str | None = None

    def __repr__(self) -> str:
        return (
            f"AuthSession(token={_HIDDEN if not self.is_anonymous else ANONYMOUS_TOKEN!r}, "
            f"plan={self.plan!r}, bar_limit={self.bar_limit}, expires_at={self.expires_at!r}, "
            f"sessionid={_mask(self.sessionid)}, sessionid_sign={_mask(self.sessionid_sign)}, "
            f"username={self.username!r})"
        )

    __str__ = __repr__

    @classmethod
    def anonymous(cls) -> AuthSession:
        """The session of a client that is not signed in."""
        return cls(ANONYMOUS_TOKEN, "", PLAN_BAR_LIMITS[""], None)

    @classmethod
    def from_token(
        cls,
        token: str,
        *,
        plan: str | None = None,
        sessionid: str | None = None,
        sessionid_sign: str | None = None,
        username: str | None = None,
    ) -> AuthSession:
        """A session for ``token``, reading the plan and expiry from its JWT claims.

        The claims are decoded without checking the signature (only TradingView can). A token
        that is not a JWT is accepted with an unknown expiry and the given (or free) plan.
        """
        claims = _jwt_claims(token)
        claimed_plan = claims.get("plan")
        if isinstance(claimed_plan, str):
            plan = claimed_plan
        expiry = claims.get("exp")
        expires_at = float(expiry) if isinstance(expiry, int | float) else None
        plan = plan or "free"
        return cls(
            token,
            plan,
            bar_limit_for_plan(plan),
            expires_at,
            sessionid,
            sessionid_sign,
            username,
        )

    @property
    def is_anonymous(self) -> bool:
        """True for the anonymous token."""
        return self.token == ANONYMOUS_TOKEN

    @property
    def has_cookies(self) -> bool:
        """True when the token can be refreshed from the session cookies."""
        return bool(self.sessionid and self.sessionid_sign)

    def expires_within(self, seconds: float, now: float | None = None) -> bool:
        """True if the token lapses less than ``seconds`` from ``now`` (default: the clock).

        A token with an unknown expiry (anonymous, non-JWT) never reports that it lapses.
        """
        if self.expires_at is None:
            return False
        current = time.time() if now is None else now
        return current + seconds >= self.expires_at


def _jwt_claims(token: str) -> dict[str, Any]:
    parts = token.split(".")
    if len(parts) != 3:
        return {}
    payload = parts[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, binascii.Error):  # UnicodeDecodeError and JSONDecodeError included
        return {}
    return claims if isinstance(claims, dict) else {}


# --------------------------------------------------------------------------------------------
# The session cache
# --------------------------------------------------------------------------------------------


class SessionCache:
    """Signed-in sessions kept in one small JSON file, shared by every process of the user.

    Keyed by a SHA-256 of the case-folded username (the entries hold tokens and cookies, never
    the password or TOTP secret; the file is as sensitive as a browser's cookies). The file is
    created with mode 0600 inside directories created 0700 (whatever the umask), and always
    replaced atomically (a temporary file, then :func:`os.replace`), so a reader never sees
    half a file. Writers take an exclusive ``flock`` on the directory and re-read the file
    under it, so two processes storing at once both keep their update.

    A file that is not safe to trust is ignored (it costs a sign-in, never a crash): a
    symbolic link, not a regular file, owned by another user, writable by group or others,
    or larger than 1 MiB. Values read from it are checked (a ``bar_limit`` outside 1 to
    1,000,000 falls back to the plan's).

    The file is tiny and touched only at sign-in, so its synchronous I/O does not hold up the
    event loop in any way that matters; waiting for another process's lock is bounded too.
    """

    _VERSION = 1
    #: Files larger than this are not read: a real one holds a few KiB per account.
    MAX_FILE_SIZE = 1024 * 1024

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"SessionCache({str(self.path)!r})"

    @staticmethod
    def key_for(username: str) -> str:
        """The key under which ``username``'s session is stored."""
        return hashlib.sha256(username.strip().casefold().encode("utf-8")).hexdigest()

    def load(self, username: str) -> AuthSession | None:
        """The stored session of ``username``, or None (also when the file is unreadable or
        not safe to trust)."""
        entry = self._read().get(self.key_for(username))
        if not isinstance(entry, dict):
            return None
        try:
            token = entry["token"]
            plan = entry["plan"]
            expires_at = entry.get("expires_at")
            if not isinstance(token, str) or not isinstance(plan, str):
                return None
            return AuthSession(
                token=token,
                plan=plan,
                bar_limit=_cached_bar_limit(entry.get("bar_limit"), plan),
                expires_at=_cached_expiry(expires_at),
                sessionid=_optional_str(entry.get("sessionid")),
                sessionid_sign=_optional_str(entry.get("sessionid_sign")),
                username=_optional_str(entry.get("username")),
            )
        except (KeyError, TypeError, ValueError):
            logger.debug("ignoring a malformed session cache entry")
            return None

    def store(self, username: str, session: AuthSession) -> None:
        """Save ``session`` as ``username``'s (atomically, mode 0600, merged with what other
        processes stored meanwhile)."""
        entry = {
            "token": session.token,
            "plan": session.plan,
            "bar_limit": session.bar_limit,
            "expires_at": session.expires_at,
            "sessionid": session.sessionid,
            "sessionid_sign": session.sessionid_sign,
            "username": session.username,
            "saved_at": time.time(),
        }
        key = self.key_for(username)
        self._make_directory()
        with self._locked():
            sessions = self._read()
            sessions[key] = entry
            self._write(sessions)

    def delete(self, username: str) -> None:
        """Forget ``username``'s session (nothing happens if there is none)."""
        if not self.path.parent.is_dir():
            return
        with self._locked():
            sessions = self._read()
            if sessions.pop(self.key_for(username), None) is not None:
                self._write(sessions)

    def _read(self) -> dict[str, Any]:
        text = self._read_trusted()
        if text is None:
            return {}
        try:
            document = json.loads(text)
        except ValueError:
            # A damaged cache costs one sign-in, never a crash.
            logger.debug("session cache %s is not JSON; ignoring it", self.path)
            return {}
        if not isinstance(document, dict) or document.get("version") != self._VERSION:
            return {}
        sessions = document.get("sessions")
        return dict(sessions) if isinstance(sessions, dict) else {}

    def _read_trusted(self) -> str | None:
        """The file's text, or None when it is missing, unreadable or not safe to trust."""
        try:
            # O_NOFOLLOW: a symbolic link (say, to another user's file) is refused, not read.
            descriptor = os.open(self.path, os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK)
        except FileNotFoundError:
            return None
        except OSError as exc:
            logger.warning("ignoring the session cache %s: %s", self.path, _why_refused(exc))
            return None
        with os.fdopen(descriptor, "rb") as handle:
            info = os.fstat(handle.fileno())
            problem = _untrusted_file(info, self.MAX_FILE_SIZE)
            if problem is not None:
                logger.warning("ignoring the session cache %s: %s", self.path, problem)
                return None
            try:
                data = handle.read(self.MAX_FILE_SIZE + 1)
            except OSError as exc:
                logger.debug("session cache %s is unreadable (%s); ignoring it", self.path, exc)
                return None
        if len(data) > self.MAX_FILE_SIZE:  # it grew after the fstat
            logger.warning("ignoring the session cache %s: larger than 1 MiB", self.path)
            return None
        return data.decode("utf-8", errors="replace")

    def _make_directory(self) -> None:
        """Create the missing directories, each 0700 whatever the umask (mkdir(parents=True)
        would create the intermediate ones 0777 minus the umask)."""
        directory = self.path.parent
        missing: list[Path] = []
        while not directory.exists():
            missing.append(directory)
            if directory.parent == directory:
                break
            directory = directory.parent
        for level in reversed(missing):
            with contextlib.suppress(FileExistsError):  # another process was quicker
                level.mkdir(mode=0o700)
                os.chmod(level, 0o700)  # the umask may have taken bits off 0700 itself

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Hold an exclusive lock on the cache directory (a no-op where flock is missing).

        The directory, not the file, is locked: the file is replaced on every write, and a
        lock on the replaced file would not exclude the next writer.
        """
        if _fcntl is None:
            yield
            return
        descriptor = os.open(self.path.parent, os.O_RDONLY)
        try:
            deadline = time.monotonic() + _LOCK_WAIT
            while True:
                try:
                    _fcntl.flock(descriptor, _fcntl.LOCK_EX | _fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() >= deadline:
                        # A stuck process must not hang this one: store without the lock
                        # (the worst case is the lost update the lock exists to prevent).
                        logger.warning("session cache %s stayed locked; not waiting", self.path)
                        break
                    time.sleep(_LOCK_POLL)
            yield
        finally:
            os.close(descriptor)  # releases the lock

    def _write(self, sessions: dict[str, Any]) -> None:
        directory = self.path.parent
        data = json.dumps({"version": self._VERSION, "sessions": sessions}, indent=1)
        # mkstemp creates the file with mode 0600 from the start: no window where it is readable.
        descriptor, temporary = tempfile.mkstemp(
            prefix=f".{self.path.name}.", suffix=".tmp", dir=directory
        )
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            # os.replace swaps a symbolic link itself for the file; it never writes through it.
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise


_O_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO planted as the cache must not block open()
# Waiting for another process's lock blocks the event loop, so it is short: writers hold it
# for one small read and write.
_LOCK_WAIT = 2.0
_LOCK_POLL = 0.01
# bar_limit values outside this range in the cache are not believed (plans allow 40,000).
_MAX_CACHED_BAR_LIMIT = 1_000_000


def _untrusted_file(info: os.stat_result, max_size: int) -> str | None:
    """Why a cache file with this ``fstat`` must not be trusted, or None if it may."""
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if sys.platform != "win32":
        if info.st_uid != os.getuid():
            return f"owned by another user (uid {info.st_uid})"
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return "writable by other users (it should be mode 0600)"
    if info.st_size > max_size:
        return f"larger than {max_size // 1024} KiB ({info.st_size} bytes)"
    return None


def _why_refused(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "it is a symbolic link"
    return f"cannot open it ({exc.strerror or exc})"


def _cached_bar_limit(value: object, plan: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if 1 <= value <= _MAX_CACHED_BAR_LIMIT:
            return value
        logger.debug("ignoring the cached bar_limit %d (out of range)", value)
    return bar_limit_for_plan(plan)


def _cached_expiry(value: object) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("expires_at is not a number")
    expiry = float(value)
    if not math.isfinite(expiry):
        raise ValueError("expires_at is not finite")
    return expiry


def _optional_str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _user_cache_dir(environ: Mapping[str, str]) -> Path:
    home = Path.home()
    if sys.platform == "win32":
        base = environ.get("LOCALAPPDATA") or str(home / "AppData" / "Local")
        return Path(base) / "tvfeed_async" / "Cache"
    if sys.platform == "darwin":
        return home / "Library" / "Caches" / "tvfeed_async"
    return Path(environ.get("XDG_CACHE_HOME") or home / ".cache") / "tvfeed_async"


def default_cache(environ: Mapping[str, str] | None = None) -> SessionCache:
    """The per-user cache: ``$TVFEED_CACHE_DIR/sessions.json`` when set, otherwise in the
    platform's cache directory (``$XDG_CACHE_HOME/tvfeed_async`` or ``~/.cache/tvfeed_async``
    on Linux, ``~/Library/Caches/tvfeed_async`` on macOS, ``%LOCALAPPDATA%`` on Windows)."""
    env = os.environ if environ is None else environ
    override = env.get("TVFEED_CACHE_DIR")
    directory = Path(override) if override else _user_cache_dir(env)
    return SessionCache(directory / "sessions.json")


# --------------------------------------------------------------------------------------------
# The authenticator
# --------------------------------------------------------------------------------------------


@dataclass
class _Reply:
    """What the authenticator keeps of one HTTP response."""

    status: int
    body: str
    cookies: dict[str, str]
    location: str | None
    retry_after: float | None


class Authenticator:
    """Turns :class:`Credentials` into an :class:`AuthSession` and keeps it valid.

    Args:
        http: the aiohttp session to send requests with (owned by the caller).
        endpoints: where ``www_url`` and ``origin`` point.
        credentials: what the user gave.
        cache: where signed-in sessions are shared between processes; ``None`` disables it.
        timeout: seconds allowed for each HTTP request.
    """

    def __init__(
        self,
        http: aiohttp.ClientSession,
        endpoints: Endpoints,
        credentials: Credentials,
        *,
        cache: SessionCache | None,
        timeout: float = 30.0,
    ) -> None:
        self._http = http
        self._endpoints = endpoints
        self._credentials = credentials
        self._cache = cache
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: AuthSession | None = None
        # Secrets learnt during the flows (TOTP codes computed here, cookies and tokens the
        # server set), scrubbed from error texts along with those of the credentials.
        self._learnt_secrets: dict[str, None] = {}  # insertion-ordered, the newest last

    def __repr__(self) -> str:
        return f"Authenticator(credentials={self._credentials!r}, session={self._session!r})"

    @property
    def session(self) -> AuthSession | None:
        """The current session (None before :meth:`authenticate`)."""
        return self._session

    async def authenticate(self) -> AuthSession:
        """Obtain a session from the credentials, reusing the cache when it holds one.

        The order: anonymous credentials give the anonymous session without any request; a
        token is used as is (or refreshed from the cookies if it has already lapsed); cookies
        are exchanged for a token on the home page; username and password reuse the cached
        session while its token lives, re-read a lapsed token from the cached cookies, and only
        then sign in with the password (and TOTP) — once, never in a loop.

        Raises:
            InvalidCredentials: the password or two-factor code was rejected.
            TwoFactorRequired: a second factor is needed that was not given or is not TOTP.
            CaptchaRequired: TradingView wants a captcha; use cookies or a token instead.
            RateLimited: TradingView is throttling sign-ins.
            TokenExpired: the given token lapsed and nothing else can renew it.
            UnsafeRedirect: a request carrying credentials was redirected off the configured
                site (not followed).
            AuthError: the cookies were rejected, or TradingView answered something unexpected.
            RequestTimeout: TradingView did not answer in time.
            ConnectionLost: TradingView could not be reached.

        Cancelling is safe: nothing is stored until a session has been obtained.
        """
        credentials = self._credentials
        if credentials.is_anonymous:
            logger.debug("no credentials: using the anonymous token")
            session = AuthSession.anonymous()
        elif credentials.auth_token:
            session = await self._from_given_token(credentials.auth_token)
        elif credentials.sessionid:
            session = await self._from_given_cookies()
        else:
            session = await self._from_password(use_cache=True)
        self._session = session
        return session

    async def refresh(self) -> AuthSession:
        """Get a new token after the current one lapsed or the server rejected it.

        Tries, in order and at most once each: a session another process already refreshed in
        the cache; the session cookies (home page, no password involved); a full password
        sign-in when a password was given. Never loops.

        Raises:
            TokenExpired: the token cannot be renewed with what was given (say, a bare token).
            and everything :meth:`authenticate` raises for the password sign-in.
        """
        current = self._session
        if current is None:
            return await self.authenticate()
        if current.is_anonymous:
            return current
        credentials = self._credentials
        username = credentials.username
        if self._cache is not None and username:
            cached = self._cache.load(username)
            if cached is not None and _is_newer(cached, current):
                logger.debug("using a session another process refreshed")
                self._session = cached
                return cached
        if current.has_cookies:
            session = await self._try_cookies(current, username)
            if session is not None:
                self._remember(session)
                return session
        if username and credentials.password:
            session = await self._from_password(use_cache=False)
            self._session = session
            return session
        if self._cache is not None and username:
            self._cache.delete(username)
        reason = (
            "the session cookies were rejected too"
            if current.has_cookies
            else "no session cookie or password was given to renew it"
        )
        raise TokenExpired(
            f"The auth token was rejected or has lapsed, and {reason}. Pass a fresh auth token, "
            "the sessionid and sessionid_sign cookies of a signed-in browser, or a username and "
            "password."
        )

    # ---- the four ways in -----------------------------------------------------------------

    async def _from_given_token(self, token: str) -> AuthSession:
        credentials = self._credentials
        session = AuthSession.from_token(
            token,
            sessionid=credentials.sessionid,
            sessionid_sign=credentials.sessionid_sign,
            username=credentials.username,
        )
        if not session.expires_within(_FRESHNESS_MARGIN):
            logger.debug("using the given auth token (plan %r)", session.plan)
            return session
        logger.debug("the given auth token has lapsed; renewing it")
        if credentials.sessionid:
            return await self._from_given_cookies()
        if credentials.username and credentials.password:
            return await self._from_password(use_cache=True)
        raise TokenExpired(
            "The given auth token has expired (tokens live about 4 hours). Copy a fresh one, or "
            "pass the sessionid and sessionid_sign cookies so it can be renewed automatically."
        )

    async def _from_given_cookies(self) -> AuthSession:
        credentials = self._credentials
        if not credentials.sessionid_sign:
            raise InvalidRequest(
                "sessionid was given without sessionid_sign; copy both cookies from a signed-in "
                "browser (TV_SESSIONID and TV_SESSIONID_SIGN)"
            )
        try:
            return await self._from_cookies(
                credentials.sessionid or "", credentials.sessionid_sign, credentials.username
            )
        except UnsafeRedirect:
            raise
        except AuthError:
            if not (credentials.username and credentials.password):
                raise
            logger.debug("the given cookies were rejected; signing in with the password")
            return await self._from_password(use_cache=True)

    async def _from_password(self, *, use_cache: bool) -> AuthSession:
        credentials = self._credentials
        username = credentials.username
        if not username:
            raise InvalidRequest("a password was given without a username")
        if use_cache and self._cache is not None:
            cached = self._cache.load(username)
            if cached is not None:
                if not cached.expires_within(_FRESHNESS_MARGIN):
                    logger.debug("reusing the cached session of this account")
                    return cached
                session = await self._try_cookies(cached, username)
                if session is not None:
                    self._store(username, session)
                    return session
        if not credentials.password:
            raise InvalidRequest(
                "a username was given without a password (and no cached session exists); "
                "set TV_PASSWORD, or use the sessionid/sessionid_sign cookies or an auth token"
            )
        session = await self._sign_in(username, credentials.password)
        self._store(username, session)
        return session

    async def _try_cookies(self, session: AuthSession, username: str | None) -> AuthSession | None:
        """A new token from ``session``'s cookies, or None when there are none or they are
        rejected (throttling and network errors still raise: a password would not help)."""
        if not session.has_cookies:
            return None
        try:
            return await self._from_cookies(
                session.sessionid or "", session.sessionid_sign or "", username
            )
        except UnsafeRedirect:
            raise
        except AuthError:
            logger.debug("the session cookie was rejected")
            return None

    # ---- the HTTP flows -------------------------------------------------------------------

    async def _sign_in(self, username: str, password: str) -> AuthSession:
        logger.debug("signing in to %s as %r", self._endpoints.www_url, username)
        url = self._url("/accounts/signin/")
        reply = await self._request(
            "POST",
            url,
            step="sign-in",
            data={"username": username, "password": password, "remember": "on"},
        )
        document = self._json(reply, "sign-in")
        cookies = dict(reply.cookies)
        if _code(document) == "2FA_required":
            factors = _two_factor_names(document)
            logger.debug("the server asks for a second factor: %s", ", ".join(factors) or "?")
            document, cookies = await self._second_factor(factors, cookies)
        else:
            self._raise_for_sign_in_error(reply, document, "sign-in")
        return await self._session_from_user(document, cookies, username)

    async def _second_factor(
        self, factors: list[str], cookies: dict[str, str]
    ) -> tuple[dict[str, Any], dict[str, str]]:
        credentials = self._credentials
        if "totp" not in factors:
            wanted = " or ".join(factors) or "an unknown method"
            raise TwoFactorRequired(
                f"TradingView wants a second factor by {wanted}, which tvfeed_async "
                "cannot answer. Sign in with a browser and pass its "
                "sessionid and sessionid_sign cookies instead (TV_SESSIONID, TV_SESSIONID_SIGN), "
                "or switch the account's two-factor method to an authenticator app (TOTP).",
                factors,
            )
        code = credentials.totp_code
        if not code and credentials.totp_secret:
            code = _totp_now(credentials.totp_secret)
        if not code:
            raise TwoFactorRequired(
                "This account uses two-factor authentication with an authenticator app (TOTP), "
                "but no TOTP secret was given. Pass totp_secret (TV_TOTP_SECRET, the base32 key "
                "shown when the authenticator was set up) or a current totp_code.",
                factors,
            )
        self._learn(code)
        logger.debug("answering the TOTP challenge (code %s)", _HIDDEN)
        url = self._url("/accounts/two-factor/signin/totp/")
        reply = await self._request(
            "POST", url, step="two-factor sign-in", data={"code": code}, cookies=cookies
        )
        document = self._json(reply, "two-factor sign-in")
        self._raise_for_sign_in_error(reply, document, "two-factor code")
        return document, {**cookies, **reply.cookies}

    def _raise_for_sign_in_error(self, reply: _Reply, document: dict[str, Any], step: str) -> None:
        code = _code(document)
        # PROTOCOL.md §10.14: the key "error" is always there; success is an *empty* error.
        error = document.get("error") or ""
        message = str(document.get("message") or error or code)
        if reply.status == 429 or code == "rate_limit":
            raise RateLimited(
                f"TradingView is rate-limiting sign-ins ({self._scrub(message)}). Wait several "
                "minutes before trying again; repeated sign-ins can block the account. Cookies "
                "or an auth token avoid signing in at all.",
                retry_after=reply.retry_after,
            )
        if code == "recaptcha_required":
            raise CaptchaRequired(
                "TradingView wants a captcha solved before it accepts a password sign-in. Sign in "
                "with a browser, then pass its sessionid and sessionid_sign cookies "
                "(TV_SESSIONID, TV_SESSIONID_SIGN) or its auth token (TV_AUTH_TOKEN) instead of "
                "the password."
            )
        if error or code:
            raise InvalidCredentials(
                f"TradingView rejected the {step}: {self._scrub(message)}. Check the username, "
                "password and two-factor secret."
            )
        if reply.status >= 400:
            raise AuthError(f"TradingView answered the {step} with HTTP {reply.status}")

    async def _session_from_user(
        self, document: dict[str, Any], cookies: dict[str, str], username: str
    ) -> AuthSession:
        user = document.get("user")
        user = user if isinstance(user, dict) else {}
        sessionid = cookies.get("sessionid")
        sessionid_sign = cookies.get("sessionid_sign")
        name = _optional_str(user.get("username")) or username
        token = user.get("auth_token")
        if isinstance(token, str) and token:
            self._learn(token)
            plan = _optional_str(user.get("pro_plan"))
            logger.debug("signed in; token read from the sign-in answer")
            return AuthSession.from_token(
                token,
                plan=plan,
                sessionid=sessionid,
                sessionid_sign=sessionid_sign,
                username=name,
            )
        if not (sessionid and sessionid_sign):
            raise AuthError(
                "TradingView accepted the sign-in but sent neither an auth token nor session "
                "cookies; pass the sessionid/sessionid_sign cookies of a browser instead."
            )
        logger.debug("signed in; reading the token from the home page")
        return await self._from_cookies(sessionid, sessionid_sign, name)

    async def _from_cookies(
        self, sessionid: str, sessionid_sign: str, username: str | None
    ) -> AuthSession:
        """Read the token from the home page of a signed-in browser session (§7.3)."""
        cookies = {"sessionid": sessionid, "sessionid_sign": sessionid_sign}
        url = self._url("/")
        logger.debug("reading the auth token from %s with the session cookie", url)
        reply = await self._request("GET", url, step="home page", cookies=cookies)
        if reply.status == 429:
            raise RateLimited(
                "TradingView answered the home page with HTTP 429 (too many requests); "
                "wait before trying again",
                retry_after=reply.retry_after,
            )
        # A redirect may have rotated the cookies; keep the newest ones.
        cookies.update({k: v for k, v in reply.cookies.items() if k in _SESSION_COOKIES})
        match = _AUTH_TOKEN_RE.search(reply.body)
        if match is not None:
            self._learn(match.group(1))
            plan_match = _PRO_PLAN_RE.search(reply.body)
            name_match = _USERNAME_RE.search(reply.body)
            return AuthSession.from_token(
                match.group(1),
                plan=plan_match.group(1) if plan_match else None,
                sessionid=cookies["sessionid"],
                sessionid_sign=cookies["sessionid_sign"],
                username=(name_match.group(1) if name_match else None) or username,
            )
        raise AuthError(
            "Wrong or expired sessionid/signature: TradingView's home page did not contain an "
            "auth token for these cookies. Copy fresh sessionid and sessionid_sign cookies from "
            "a browser that is signed in to tradingview.com (or your regional site)."
        )

    # ---- plumbing -------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return self._endpoints.www_url.rstrip("/") + path

    def _headers(self) -> dict[str, str]:
        origin = self._endpoints.origin
        return {"Referer": origin, "Origin": origin, "User-Agent": USER_AGENT}

    async def _request(
        self,
        method: str,
        url: str,
        *,
        step: str,
        data: dict[str, str] | None = None,
        cookies: dict[str, str] | None = None,
    ) -> _Reply:
        """Send a request, following redirects only within the configured site.

        aiohttp would follow redirects anywhere, re-sending the form (a 307 keeps the body,
        password included) and the cookies given per request, so redirects are followed here,
        each target checked first, at most five times. The reply's cookies are those of every
        hop.

        Raises:
            UnsafeRedirect: a redirect to another host (not followed).
            RequestTimeout, ConnectionLost: see :meth:`_send`.
        """
        sent = dict(cookies) if cookies else {}
        received: dict[str, str] = {}
        for _ in range(_MAX_REDIRECTS + 1):
            reply = await self._send(method, url, data=data, cookies=sent or None)
            received.update(reply.cookies)
            self._learn(*(v for v in reply.cookies.values() if len(v) >= _MIN_SCRUBBED_LENGTH))
            if reply.location is None:
                reply.cookies = received
                return reply
            target = urljoin(url, reply.location)
            if not same_site(self._endpoints.www_url, target):
                raise UnsafeRedirect(
                    f"TradingView's answer to the {step} redirected to "
                    f"{self._scrub(origin_text(target))}, which is not the configured site "
                    f"{origin_text(self._endpoints.www_url)}. It was not followed, so no "
                    "password, code or session cookie went there. Check Endpoints.www_url "
                    "(TVFEED_WWW_URL)."
                )
            # What browsers do: 303 (and 301/302 after a POST) continue as a GET without body.
            if reply.status == 303 or (reply.status in (301, 302) and method == "POST"):
                method, data = "GET", None
            sent.update({k: v for k, v in reply.cookies.items() if k in _SESSION_COOKIES})
            logger.debug("following the %s redirect to %s", step, origin_text(target))
            url = target
        # Past the cap, the last redirect is the answer; the callers report it as such.
        reply.cookies = received
        return reply

    async def _send(
        self,
        method: str,
        url: str,
        *,
        data: dict[str, str] | None,
        cookies: dict[str, str] | None,
    ) -> _Reply:
        what = f"TradingView ({method} {origin_text(url)})"
        with http_errors(what, self._timeout.total or 0.0):
            async with self._http.request(
                method,
                url,
                data=data,
                cookies=cookies,
                headers=self._headers(),
                allow_redirects=False,
                timeout=self._timeout,
                # Statuses are interpreted here (429, sign-in JSON), whatever the session's
                # own raise_for_status setting.
                raise_for_status=False,
            ) as response:
                body = await response.text(errors="replace")
                location = (
                    response.headers.get("Location")
                    if response.status in _REDIRECT_STATUSES
                    else None
                )
                return _Reply(
                    status=response.status,
                    body=body,
                    cookies={name: morsel.value for name, morsel in response.cookies.items()},
                    location=location,
                    retry_after=parse_retry_after(response.headers.get("Retry-After")),
                )

    def _json(self, reply: _Reply, step: str) -> dict[str, Any]:
        try:
            document = json.loads(reply.body)
        except ValueError:
            document = None
        if isinstance(document, dict):
            return document
        if reply.status == 429:
            raise RateLimited(
                f"TradingView answered the {step} with HTTP 429 (too many requests); wait several "
                "minutes before signing in again",
                retry_after=reply.retry_after,
            )
        raise AuthError(
            f"TradingView answered the {step} with HTTP {reply.status} and no JSON object; "
            "the service may have changed or be unavailable"
        )

    def _learn(self, *secrets: str) -> None:
        for secret in secrets:
            self._learnt_secrets.pop(secret, None)
            self._learnt_secrets[secret] = None
        # A feed that runs for months refreshes its token every few hours: keep the newest.
        while len(self._learnt_secrets) > _MAX_LEARNT_SECRETS:
            del self._learnt_secrets[next(iter(self._learnt_secrets))]

    def _scrub(self, text: str) -> str:
        """``text`` with every secret replaced: those of the credentials, the TOTP codes sent
        and the cookies received (servers may echo input, e.g. the half-signed-in session
        cookie or the rejected code in a two-factor error)."""
        secrets = {*_secrets(self._credentials), *self._learnt_secrets}
        # Longest first, so that a secret containing another is hidden whole.
        for secret in sorted(secrets, key=len, reverse=True):
            text = text.replace(secret, _HIDDEN)
        return text

    def _store(self, username: str, session: AuthSession) -> None:
        if self._cache is None:
            return
        try:
            self._cache.store(username, session)
        except OSError as exc:
            # The session works without the cache; only the next process pays a sign-in.
            logger.warning("could not save the session cache %s: %s", self._cache.path, exc)

    def _remember(self, session: AuthSession) -> None:
        self._session = session
        if self._credentials.username:
            self._store(self._credentials.username, session)


def _is_newer(candidate: AuthSession, current: AuthSession) -> bool:
    """True if ``candidate`` (say, written by another process) outlives ``current``.

    Only a strictly later expiry counts, so two processes can never hand an older token back
    and forth; tokens of unknown expiry are never compared.
    """
    if candidate.token == current.token or candidate.expires_at is None:
        return False
    if candidate.expires_within(_FRESHNESS_MARGIN):
        return False
    return current.expires_at is not None and candidate.expires_at > current.expires_at


def _secrets(credentials: Credentials) -> Iterator[str]:
    for value in (
        credentials.password,
        credentials.totp_secret,
        credentials.totp_code,
        credentials.auth_token,
        credentials.sessionid,
        credentials.sessionid_sign,
    ):
        if value:
            yield value


def _code(document: Mapping[str, Any]) -> str:
    code = document.get("code") or ""
    if not code and document.get("error") == "2FA_required":
        code = "2FA_required"
    return str(code)


def _two_factor_names(document: Mapping[str, Any]) -> list[str]:
    names: list[str] = []
    factors = document.get("two_factor_types")
    if isinstance(factors, list):
        for factor in factors:
            name = factor.get("name") if isinstance(factor, dict) else factor
            if isinstance(name, str) and name:
                names.append(name)
    return names


class _Totp(pyotp.TOTP):
    # pyotp 2.12 refuses keys under 112 bits; authenticator apps take 80-bit keys, and
    # normalise_totp_secret has already checked the key's alphabet and length.
    min_secret_length_bits = MIN_TOTP_SECRET_BITS


def _totp_now(secret: str) -> str:
    """The current RFC 6238 code (SHA-1, 30 s, 6 digits) of ``secret``."""
    return _Totp(normalise_totp_secret(secret)).now()
