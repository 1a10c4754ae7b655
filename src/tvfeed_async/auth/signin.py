"""The sign-in flows (token, cookies, password and two-factor) and :class:`Authenticator`, which
keeps the session valid."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import aiohttp
import pyotp

from ..config import Endpoints
from ..errors import (
    AuthError,
    CaptchaRequired,
    InvalidCredentials,
    InvalidRequest,
    RateLimited,
    TokenExpired,
    TwoFactorRequired,
    UnsafeRedirect,
)
from ..http_common import USER_AGENT, http_errors, origin_text, parse_retry_after, same_site
from ..validation import MIN_TOTP_SECRET_BITS, normalise_totp_secret
from .cache import SessionCache, _optional_str
from .credentials import _HIDDEN, Credentials, _secrets
from .session import AuthSession

__all__ = ["Authenticator"]

logger = logging.getLogger("tvfeed_async.auth")

# Home-page redirects followed at most (TradingView-API stops at 5 as well).
_MAX_REDIRECTS = 5
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_SESSION_COOKIES = ("sessionid", "sessionid_sign")
# Cookie values shorter than this ("1", "en") are not secrets, and hiding them would garble
# every error text they happen to occur in.
_MIN_SCRUBBED_LENGTH = 6
_MAX_LEARNT_SECRETS = 64
# The home page embeds the user object as JSON (``var user = {...}`` or ``"user":{...}``).
_AUTH_TOKEN_RE = re.compile(r'"auth_token"\s*:\s*"([^"]+)"')
_PRO_PLAN_RE = re.compile(r'"pro_plan"\s*:\s*"([^"]*)"')
_USERNAME_RE = re.compile(r'"username"\s*:\s*"([^"]*)"')


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
        min_validity: a token that lapses within this many seconds is renewed rather than
            handed out (``Timeouts.token_min_validity``).
    """

    def __init__(
        self,
        http: aiohttp.ClientSession,
        endpoints: Endpoints,
        credentials: Credentials,
        *,
        cache: SessionCache | None,
        timeout: float = 30.0,
        min_validity: float = 60.0,
    ) -> None:
        self._http = http
        self._endpoints = endpoints
        self._credentials = credentials
        self._cache = cache
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._min_validity = min_validity
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
            if cached is not None and _is_newer(cached, current, self._min_validity):
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
        if not session.expires_within(self._min_validity):
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
                if not cached.expires_within(self._min_validity):
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
        # The sign-in answer always has the key "error"; success is an *empty* error.
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
        """Read the token from the home page of a signed-in browser session ."""
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


def _is_newer(candidate: AuthSession, current: AuthSession, min_validity: float) -> bool:
    """True if ``candidate`` (say, written by another process) outlives ``current``.

    Only a strictly later expiry counts, so two processes can never hand an older token back
    and forth; tokens of unknown expiry are never compared.
    """
    if candidate.token == current.token or candidate.expires_at is None:
        return False
    if candidate.expires_within(min_validity):
        return False
    return current.expires_at is not None and candidate.expires_at > current.expires_at


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
