"""The simulator's HTTP side: sign-in, two-factor, the home page that embeds the token, search.

An ``aiohttp.web`` application that answers like ``www.tradingview.com`` and
``symbol-search.tradingview.com`` do, so that this library and third-party
clients can be driven against it on a loopback port. One app serves both hosts: point the
client's ``www_url`` and ``symbol_search_url`` at the same ``http://127.0.0.1:<port>``.

Routes:

* ``POST /accounts/signin/`` (urlencoded or multipart ``username``, ``password``, ``remember``).
  Every answer is JSON with HTTP 200 and an ``error`` key that is empty on success only.
  Success sets ``sessionid``, ``sessionid_sign`` and ``device_t``; an
  account with a second factor gets ``code: "2FA_required"`` plus the cookies of a
  half-authenticated session, which the two-factor endpoint requires.
* ``POST /accounts/two-factor/signin/{totp,sms,email}/`` (``code``, optional ``remember``).
  The code is checked with ``pyotp`` against the account's ``totp_secret`` at ``now()`` with a
  window of one step either side. For ``sms``/``email`` accounts the "message" would contain
  the same TOTP code, so tests compute it the same way.
* ``GET /`` and ``GET /disclaimer/``: an HTML page whose script embeds
  ``var user = {...,"auth_token":"<fresh token>",...};`` (and the same object again as
  ``window.initData = {"user":{...}}`` for parsers that look for ``"user":{``) when the request
  carries the cookies of a fully signed-in session; otherwise an anonymous page without any
  ``auth_token``. Accounts with ``regional_redirect`` get an absolute 302 to ``/?lang=fr``
  first, which serves the page: clients must follow one redirect.
* ``GET /symbol_search/v3/`` (``text, start, hl, exchange, search_type, lang, domain``):
  ``{"symbols_remaining": n, "symbols": [...]}``, ``search_page_size`` results per page,
  ``<em>`` highlighting when ``hl=1``. **Requests without an ``Origin`` header get HTTP 403**
  (real clients always send it), and so do requests whose Origin differs
  from ``HttpState.required_origin`` when that is set.
* ``GET /pine-facade/translate/<id>/<version>``: a script's metadata and IL for the scripts
  of :data:`tvfeed_async.testing.studies.SCRIPTS` (``version`` is ``last`` or the script's
  version): ``{"success": true, "result": {"metaInfo": {...}, "ilTemplate": ...}}``. An
  unknown script or version gets HTTP 404 and an invite-only one HTTP 403, both with
  ``{"success": false, "reason": ...}``.
* ``GET /pine-facade/list?filter=<standard|candlestick|fundamental|saved>``: a JSON array of
  scripts (``scriptIdPart, scriptName, version, extra{kind, shortDescription}``); the
  built-ins for ``standard``, the signed-in account's own scripts (``Account.scripts``,
  by the session cookies) for ``saved`` (HTTP 401 without a signed-in session), an empty
  array for the others; another filter gets HTTP 400. A ``USER;...`` script translates only
  for its owner's session (HTTP 401 signed out, 403 for another account).
* ``GET /symbol_search/`` (legacy): the same matches as a plain JSON array (``type`` instead of
  ``search_type``), no paging, Origin not required unless ``legacy_search_requires_origin``.

Every route first passes a throttle: while ``HttpState.throttle_remaining`` is positive, each
request is answered with HTTP 429 and ``Retry-After`` and decrements it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import pyotp
from aiohttp import web
from aiohttp.typedefs import Handler

from tvfeed_async.testing.studies import SCRIPTS, VERSION, list_body, translate_body
from tvfeed_async.testing.tokens import TokenIssuer

__all__ = [
    "HTTP_STATE_KEY",
    "Account",
    "HttpState",
    "RecordedRequest",
    "SearchEntry",
    "build_http_app",
]

#: The ``aiohttp`` application key under which :func:`build_http_app` stores its state.
HTTP_STATE_KEY: web.AppKey[HttpState] = web.AppKey("tvfeed_http_state")

SIGNIN_PATH = "/accounts/signin/"
TWO_FACTOR_PATH = "/accounts/two-factor/signin/{factor:totp|sms|email}/"
SEARCH_V3_PATH = "/symbol_search/v3/"
SEARCH_LEGACY_PATH = "/symbol_search/"
PINE_TRANSLATE_PATH = "/pine-facade/translate/{script}/{version}"
PINE_LIST_PATH = "/pine-facade/list"
_PINE_LIST_FILTERS = frozenset({"standard", "candlestick", "fundamental", "saved"})

INVALID_CREDENTIALS_TEXT = "Invalid username or password"
CAPTCHA_TEXT = "Please confirm that you are not a robot by clicking the captcha box."
RATE_LIMIT_TEXT = "You have been locked out. Please try again later."
TWO_FACTOR_MESSAGE = "Second authentication factor is needed"

#: ``remember=on`` sessions last a month in the cookie; others end with the browser session.
REMEMBER_MAX_AGE = 30 * 24 * 3600
_FREE_PLANS = frozenset({"", "free"})
_TWO_FACTOR_TYPES = ("totp", "sms", "email")


@dataclass
class Account:
    """A user the simulator knows.

    Attributes:
        username: the sign-in name (matched case-insensitively, like ``email``).
        password: compared exactly.
        user_id: the ``id`` in the user object and ``user_id`` in tokens.
        plan: the plan carried by tokens (``free``, ``pro``, ``pro_premium``...).
        totp_secret: base32 secret; when set the account needs a second factor. Written as
            authenticator apps accept it: any case, spaces, padding optional, 80 bits and up.
        two_factor_type: which factor the account uses (``totp``, ``sms`` or ``email``); the
            code of every factor is the TOTP of ``totp_secret``.
        email: optional e-mail address accepted as the sign-in name.
        regional_redirect: the home page first redirects this account to ``/?lang=fr``
            (like accounts that must use a localised host, TVAPI issue #222).
        date_joined: shown in the user object.
        scripts: the account's own Pine scripts (``USER;...`` ids of
            :data:`tvfeed_async.testing.studies.SCRIPTS`): pine-facade translates and lists
            them for this account's signed-in sessions only.
    """

    username: str
    password: str
    user_id: int
    plan: str = "free"
    totp_secret: str | None = None
    two_factor_type: str = "totp"
    email: str | None = None
    regional_redirect: bool = False
    date_joined: str = "2024-04-12T10:03:43.699491"
    scripts: tuple[str, ...] = ()


@dataclass
class SearchEntry:
    """One symbol symbol search can return.

    Attributes:
        symbol: the ticker (``AAPL``).
        exchange: the exchange shown and filtered on (``NASDAQ``).
        description: the long name (``Apple Inc.``).
        type: ``stock``, ``futures``, ``forex``, ``crypto``, ``index``, ``fund``...
        currency: the ``currency_code``.
        country: two-letter country code, may be empty.
        prefix: the id prefix when it differs from the exchange (``prefix:symbol``).
        typespecs: finer types (``("crypto",)`` for a ``spot`` pair); ``search_type`` matches
            the type or any of these, as the real search does for crypto pairs.
    """

    symbol: str
    exchange: str
    description: str
    type: str
    currency: str
    country: str = ""
    prefix: str | None = None
    typespecs: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    """What a request looked like, for tests that check what a client sends."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]


@dataclass
class _Session:
    username: str
    fully_authenticated: bool
    created_at: float


class HttpState:
    """Accounts, sessions, search data, fault knobs and counters of the HTTP side.

    Knobs are plain attributes that tests flip at any time; counters only grow (tests read
    them). ``now`` is the simulator's clock, used for tokens, TOTP checks and session ages.

    Knobs:
        captcha_required: sign-in answers ``code: "recaptcha_required"``.
        rate_limited: sign-in answers ``code: "rate_limit"``.
        require_referer: sign-in without ``Referer`` is refused (HTTP 403); by default it is
            accepted and only counted in ``signins_without_referer``.
        require_session_sign: the home page ignores a ``sessionid`` without a matching
            ``sessionid_sign`` (default True; False mimics cookie checks of older pages).
        search_page_size: symbols per v3 search page.
        required_origin: when set, search demands exactly this ``Origin`` (otherwise any).
        legacy_search_requires_origin: apply the Origin check to ``/symbol_search/`` too.
        throttle_remaining: answer this many next requests (any route) with HTTP 429.
        throttle_retry_after: the ``Retry-After`` seconds sent with those 429s.
        pending_two_factor_lifetime: seconds a half-authenticated session stays usable.

    Counters:
        signin_attempts, successful_signins, totp_attempts (every two-factor POST, whatever
        the factor), home_requests, search_requests, forbidden_searches, throttled_requests,
        signins_without_referer, tokens_issued; ``last_signin_referer`` and ``requests`` (the
        most recent requests of every route, oldest first) record what clients sent.
    """

    def __init__(
        self,
        *,
        tokens: TokenIssuer,
        now: Callable[[], float],
        accounts: Iterable[Account] = (),
        search_entries: Iterable[SearchEntry] = (),
    ) -> None:
        self.tokens = tokens
        self.now = now

        self.captcha_required = False
        self.rate_limited = False
        self.require_referer = False
        self.require_session_sign = True
        self.search_page_size = 50
        self.required_origin: str | None = None
        self.legacy_search_requires_origin = False
        self.throttle_remaining = 0
        self.throttle_retry_after = 30
        self.pending_two_factor_lifetime = 300.0

        self.signin_attempts = 0
        self.successful_signins = 0
        self.totp_attempts = 0
        self.home_requests = 0
        self.search_requests = 0
        self.forbidden_searches = 0
        self.throttled_requests = 0
        self.signins_without_referer = 0
        self.tokens_issued = 0
        self.last_signin_referer: str | None = None
        self.requests: deque[RecordedRequest] = deque(maxlen=1000)

        self._secret = secrets.token_bytes(32)
        self._sessions: dict[str, _Session] = {}
        self._accounts: dict[str, Account] = {}
        for account in accounts:
            self.add_account(account)
        self._entries: list[SearchEntry] = list(search_entries)

    # -- accounts and search data -------------------------------------------------------------

    def add_account(self, account: Account) -> None:
        """Register (or replace) an account."""
        if account.two_factor_type not in _TWO_FACTOR_TYPES:
            raise ValueError(f"unknown two_factor_type {account.two_factor_type!r}")
        if account.totp_secret is not None:
            _totp(account.totp_secret)  # a key no authenticator accepts fails here, not later
        self._accounts[account.username.casefold()] = account

    def account(self, username: str) -> Account | None:
        """The account signing in as ``username`` (its username or e-mail), if any."""
        key = username.casefold()
        found = self._accounts.get(key)
        if found is not None:
            return found
        for candidate in self._accounts.values():
            if candidate.email is not None and candidate.email.casefold() == key:
                return candidate
        return None

    def add_search_entries(self, entries: Iterable[SearchEntry]) -> None:
        """Append symbols to what search can find."""
        self._entries.extend(entries)

    @property
    def entries(self) -> list[SearchEntry]:
        """The symbols search can find, in registration order."""
        return list(self._entries)

    # -- sessions -------------------------------------------------------------------------------

    def sign(self, sessionid: str) -> str:
        """The ``sessionid_sign`` value that matches ``sessionid``."""
        digest = hmac.new(self._secret, sessionid.encode(), hashlib.sha256).digest()
        return "v3:" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def create_session(self, username: str, *, fully_authenticated: bool = True) -> tuple[str, str]:
        """A new session for ``username``, as if signed in from a browser.

        Returns:
            ``(sessionid, sessionid_sign)``, the two cookie values.

        Raises:
            KeyError: no such account.
        """
        account = self.account(username)
        if account is None:
            raise KeyError(username)
        sessionid = secrets.token_hex(16)
        self._sessions[sessionid] = _Session(account.username, fully_authenticated, self.now())
        return sessionid, self.sign(sessionid)

    def revoke_session(self, sessionid: str) -> bool:
        """Forget one session (a sign-out or expiry); True if it existed."""
        return self._sessions.pop(sessionid, None) is not None

    def revoke_all_sessions(self) -> None:
        """Forget every session: all cookies become "wrong or expired"."""
        self._sessions.clear()

    @property
    def session_count(self) -> int:
        """Sessions currently known, half-authenticated ones included."""
        return len(self._sessions)

    def session_for(
        self, sessionid: str | None, signature: str | None, *, fully_authenticated: bool
    ) -> tuple[str, Account] | None:
        """The account behind a cookie pair, or None if it is forged, unknown or in the
        wrong state (a half-authenticated session is not a signed-in one, and vice versa)."""
        if not sessionid:
            return None
        if signature is None:
            if self.require_session_sign:
                return None
        elif not hmac.compare_digest(self.sign(sessionid).encode(), signature.encode()):
            return None
        session = self._sessions.get(sessionid)
        if session is None or session.fully_authenticated != fully_authenticated:
            return None
        if (
            not session.fully_authenticated
            and self.now() - session.created_at > self.pending_two_factor_lifetime
        ):
            del self._sessions[sessionid]
            return None
        account = self.account(session.username)
        if account is None:
            return None
        return sessionid, account

    def issue_token(self, account: Account) -> str:
        """A fresh auth token for ``account``."""
        self.tokens_issued += 1
        return self.tokens.issue(account.user_id, account.plan, self.now())

    def user_object(self, account: Account, token: str) -> dict[str, Any]:
        """The ``user`` object of sign-in answers and of the home page.

        ``id`` comes first and every value is serialised compactly, because clients pull
        fields out of the page with regular expressions such as ``"id":([0-9]{1,10}),``.
        """
        tag = hmac.new(self._secret, account.username.encode(), hashlib.sha256).hexdigest()
        is_pro = account.plan not in _FREE_PLANS
        return {
            "id": account.user_id,
            "username": account.username,
            "first_name": "",
            "last_name": "",
            "reputation": 0.0,
            "following": 0,
            "followers": 0,
            "notification_count": {"following": 0, "user": 0},
            "session_hash": tag[:32],
            "private_channel": tag[32:52],
            "auth_token": token,
            "date_joined": account.date_joined,
            "status": "",
            "ignore_list": [],
            "has_phone": account.two_factor_type == "sms",
            "do_not_track": False,
            "is_non_pro_confirmed": False,
            "profile_data_filled": True,
            "is_corporation_user": False,
            "is_symphony": False,
            "is_active_partner": False,
            "is_broker": False,
            "broker_plan": None,
            "badges": [],
            "permissions": {},
            "is_pro": is_pro,
            "is_trial": False,
            "pro_plan": account.plan if is_pro else "",
            "last_locale": "en",
        }

    def search(
        self, text: str, *, exchange: str = "", search_type: str = ""
    ) -> list[tuple[SearchEntry, tuple[int, int] | None, tuple[int, int] | None]]:
        """Matching entries, best first, each with the matched span in symbol/description.

        ``text`` matches a substring of the symbol or of the description, case-insensitively;
        ``EXCHANGE:TEXT`` restricts the exchange. Exact symbol matches rank first, then
        symbol prefixes, then other symbol matches, then description matches; ties keep the
        registration order, so paging is deterministic.
        """
        needle = text.replace("+", " ").strip()
        if ":" in needle and not exchange:
            exchange, needle = needle.split(":", 1)
        needle_folded = needle.casefold()
        wanted_exchange = exchange.strip().casefold()
        wanted_type = search_type.strip().casefold()
        if wanted_type == "undefined":
            wanted_type = ""
        ranked: list[tuple[int, int, SearchEntry, tuple[int, int] | None, tuple[int, int] | None]]
        ranked = []
        for order, entry in enumerate(self._entries):
            if wanted_exchange and wanted_exchange not in (
                entry.exchange.casefold(),
                (entry.prefix or "").casefold(),
            ):
                continue
            if wanted_type and wanted_type not in (
                entry.type.casefold(),
                *(spec.casefold() for spec in entry.typespecs),
            ):
                continue
            symbol_span = _find(entry.symbol, needle_folded)
            description_span = _find(entry.description, needle_folded)
            if needle_folded and symbol_span is None and description_span is None:
                continue
            if not needle_folded:
                rank = 4
            elif symbol_span is None:
                rank = 3
            elif len(needle_folded) == len(entry.symbol):
                rank = 0
            elif symbol_span[0] == 0:
                rank = 1
            else:
                rank = 2
            ranked.append((rank, order, entry, symbol_span, description_span))
        ranked.sort(key=lambda item: (item[0], item[1]))
        return [(entry, sym, desc) for _, _, entry, sym, desc in ranked]


def _find(haystack: str, needle_folded: str) -> tuple[int, int] | None:
    if not needle_folded:
        return None
    index = haystack.casefold().find(needle_folded)
    if index < 0:
        return None
    return index, index + len(needle_folded)


def _highlight(text: str, span: tuple[int, int] | None) -> str:
    if span is None:
        return text
    start, end = span
    return f"{text[:start]}<em>{text[start:end]}</em>{text[end:]}"


def _symbol_json(
    entry: SearchEntry,
    symbol_span: tuple[int, int] | None,
    description_span: tuple[int, int] | None,
    *,
    highlight: bool,
) -> dict[str, Any]:
    source = entry.prefix or entry.exchange
    result: dict[str, Any] = {
        "symbol": _highlight(entry.symbol, symbol_span) if highlight else entry.symbol,
        "description": (
            _highlight(entry.description, description_span) if highlight else entry.description
        ),
        "type": entry.type,
        "exchange": entry.exchange,
        "currency_code": entry.currency,
        "provider_id": source.lower(),
        "source_id": source,
        "source2": {"id": source, "name": entry.exchange, "description": entry.exchange},
        "country": entry.country,
        "typespecs": list(entry.typespecs) or (["common"] if entry.type == "stock" else []),
        "is_primary_listing": True,
        "found_by_isin": False,
        "found_by_cusip": False,
    }
    if entry.prefix is not None:
        result["prefix"] = entry.prefix
    return result


# -- responses ----------------------------------------------------------------------------------


def _json(body: dict[str, Any] | list[Any], status: int = 200) -> web.Response:
    return web.Response(
        text=json.dumps(body, separators=(",", ":")),
        status=status,
        content_type="application/json",
    )


def _error(text: str, code: str, **extra: Any) -> web.Response:
    return _json({"error": text, "code": code, **extra})


def _set_session_cookies(
    response: web.Response, state: HttpState, sessionid: str, *, remember: bool
) -> None:
    # No Secure flag: the simulator speaks plain HTTP on loopback and clients must send the
    # cookies back over it.
    max_age = REMEMBER_MAX_AGE if remember else None
    for name, value in (("sessionid", sessionid), ("sessionid_sign", state.sign(sessionid))):
        response.set_cookie(name, value, path="/", httponly=True, samesite="Lax", max_age=max_age)


def _remember(form: Mapping[str, object]) -> bool:
    return str(form.get("remember", "")).lower() in ("on", "true", "1", "yes")


def _state(request: web.Request) -> HttpState:
    return request.app[HTTP_STATE_KEY]


def _cookie_pair(request: web.Request) -> tuple[str | None, str | None]:
    return request.cookies.get("sessionid"), request.cookies.get("sessionid_sign")


# -- middleware ---------------------------------------------------------------------------------


@web.middleware
async def _record_and_throttle(request: web.Request, handler: Handler) -> web.StreamResponse:
    state = _state(request)
    state.requests.append(
        RecordedRequest(
            method=request.method,
            path=request.path,
            query=dict(request.query),
            headers=dict(request.headers),
        )
    )
    if state.throttle_remaining > 0:
        state.throttle_remaining -= 1
        state.throttled_requests += 1
        return web.Response(
            status=429,
            text="Too Many Requests",
            headers={"Retry-After": str(state.throttle_retry_after)},
        )
    return await handler(request)


# -- handlers -----------------------------------------------------------------------------------


async def _signin(request: web.Request) -> web.Response:
    state = _state(request)
    state.signin_attempts += 1
    referer = request.headers.get("Referer")
    state.last_signin_referer = referer
    if referer is None:
        state.signins_without_referer += 1
        if state.require_referer:
            return _json({"error": "Forbidden", "code": "forbidden"}, status=403)
    form = await request.post()
    if state.rate_limited:
        return _error(RATE_LIMIT_TEXT, "rate_limit")
    if state.captcha_required:
        return _error(CAPTCHA_TEXT, "recaptcha_required")
    username = str(form.get("username", ""))
    password = str(form.get("password", ""))
    account = state.account(username) if username else None
    if account is None or not hmac.compare_digest(account.password.encode(), password.encode()):
        return _error(INVALID_CREDENTIALS_TEXT, "invalid_credentials")
    remember = _remember(form)
    if account.totp_secret is not None:
        sessionid, _ = state.create_session(account.username, fully_authenticated=False)
        response = _json(
            {
                "error": "2FA_required",
                "code": "2FA_required",
                "message": TWO_FACTOR_MESSAGE,
                "two_factor_types": [{"name": account.two_factor_type}],
            }
        )
        _set_session_cookies(response, state, sessionid, remember=remember)
        return response
    return _signed_in(state, account, remember=remember)


def _signed_in(state: HttpState, account: Account, *, remember: bool) -> web.Response:
    sessionid, _ = state.create_session(account.username)
    state.successful_signins += 1
    response = _json({"error": "", "user": state.user_object(account, state.issue_token(account))})
    _set_session_cookies(response, state, sessionid, remember=remember)
    response.set_cookie("device_t", secrets.token_urlsafe(24), path="/", httponly=True)
    return response


async def _two_factor(request: web.Request) -> web.Response:
    state = _state(request)
    state.totp_attempts += 1
    factor = request.match_info["factor"]
    form = await request.post()
    found = state.session_for(*_cookie_pair(request), fully_authenticated=False)
    if found is None:
        return _error(
            "Please sign in with your username and password first.", "2FA_session_not_found"
        )
    sessionid, account = found
    if account.totp_secret is None or account.two_factor_type != factor:
        return _error(f"Two-factor method {factor!r} is not enabled", "2FA_type_not_enabled")
    code = str(form.get("code", "")).strip()
    valid = (
        code.isascii()
        and code.isdigit()
        and _totp(account.totp_secret).verify(code, for_time=state.now(), valid_window=1)
    )
    if not valid:
        return _error("Invalid code", "invalid_code")
    # The half-authenticated session is consumed; the signed-in one gets fresh cookies.
    state.revoke_session(sessionid)
    return _signed_in(state, account, remember=_remember(form))


class _AuthenticatorTotp(pyotp.TOTP):
    # Authenticator apps take 80-bit (16-character) keys; pyotp 2.12 asks for 112 by default.
    min_secret_length_bits = 80


def _totp(secret: str) -> pyotp.TOTP:
    """The TOTP of a key written as authenticator apps accept it: any case, spaces, no padding.

    Raises:
        ValueError: the key is not base32 or is shorter than 80 bits.
    """
    return _AuthenticatorTotp("".join(secret.split()).upper().rstrip("="))


_PAGE = """<!DOCTYPE html>
<html lang="{lang}">
<head><meta charset="utf-8"><title>TradingView (simulated)</title></head>
<body>
<script>
var user = {user};
window.initData = {init};
</script>
</body>
</html>
"""


def _script_json(value: Any) -> str:
    # "</" would end the <script> element early.
    return json.dumps(value, separators=(",", ":")).replace("</", "<\\/")


async def _home(request: web.Request) -> web.Response:
    state = _state(request)
    state.home_requests += 1
    lang = request.query.get("lang", "en")
    found = state.session_for(*_cookie_pair(request), fully_authenticated=True)
    if found is None:
        anonymous = {"is_authenticated": False}
        page = _PAGE.format(lang=lang, user=_script_json(anonymous), init=_script_json({}))
        return web.Response(text=page, content_type="text/html")
    _, account = found
    if account.regional_redirect and lang != "fr":
        # Absolute, because some clients re-request the Location value as is.
        location = f"{request.scheme}://{request.host}/?lang=fr"
        return web.Response(status=302, headers={"Location": location})
    user = state.user_object(account, state.issue_token(account))
    page = _PAGE.format(lang=lang, user=_script_json(user), init=_script_json({"user": user}))
    return web.Response(text=page, content_type="text/html")


def _origin_allowed(state: HttpState, request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:
        return False
    return state.required_origin is None or origin == state.required_origin


def _forbidden(state: HttpState) -> web.Response:
    state.forbidden_searches += 1
    return web.Response(status=403, text="Forbidden: Origin header required")


def _int_param(request: web.Request, name: str) -> int | None:
    raw = request.query.get(name, "0") or "0"
    try:
        value = int(raw)
    except ValueError:
        return None
    return value if value >= 0 else None


async def _search_v3(request: web.Request) -> web.Response:
    state = _state(request)
    state.search_requests += 1
    if not _origin_allowed(state, request):
        return _forbidden(state)
    start = _int_param(request, "start")
    if start is None:
        return _json({"error": "start must be a non-negative integer"}, status=400)
    matches = state.search(
        request.query.get("text", ""),
        exchange=request.query.get("exchange", ""),
        search_type=request.query.get("search_type", ""),
    )
    page = matches[start : start + max(1, state.search_page_size)]
    highlight = request.query.get("hl", "0") == "1"
    return _json(
        {
            "symbols_remaining": max(0, len(matches) - start - len(page)),
            "symbols": [_symbol_json(*match, highlight=highlight) for match in page],
        }
    )


async def _search_legacy(request: web.Request) -> web.Response:
    state = _state(request)
    state.search_requests += 1
    if state.legacy_search_requires_origin and not _origin_allowed(state, request):
        return _forbidden(state)
    matches = state.search(
        request.query.get("text", ""),
        exchange=request.query.get("exchange", ""),
        search_type=request.query.get("type", ""),
    )
    highlight = request.query.get("hl", "0") == "1"
    return _json([_symbol_json(*match, highlight=highlight) for match in matches])


def _own_scripts(request: web.Request) -> tuple[str, ...] | None:
    """The scripts of the account signed in by the request's cookies (None: nobody)."""
    found = _state(request).session_for(*_cookie_pair(request), fully_authenticated=True)
    return None if found is None else found[1].scripts


async def _pine_translate(request: web.Request) -> web.Response:
    spec = SCRIPTS.get(request.match_info["script"])
    if spec is None or request.match_info["version"] not in ("last", VERSION):
        return _json({"success": False, "reason": "Script not found"}, status=404)
    if spec.invite_only:
        return _json({"success": False, "reason": "Access to the script is denied"}, status=403)
    if spec.private:
        owned = _own_scripts(request)
        if owned is None:
            return _json({"success": False, "reason": "Authorization required"}, status=401)
        if spec.pine_id not in owned:
            return _json({"success": False, "reason": "Access to the script is denied"}, status=403)
    return _json(translate_body(spec))


async def _pine_list(request: web.Request) -> web.Response:
    filter_name = request.query.get("filter", "")
    if filter_name not in _PINE_LIST_FILTERS:
        return web.Response(status=400, text=f"unknown filter {filter_name!r}")
    if filter_name == "saved":
        owned = _own_scripts(request)
        if owned is None:
            return _json({"success": False, "reason": "Authorization required"}, status=401)
        return _json(list_body(filter_name, owned))
    return _json(list_body(filter_name))


def build_http_app(state: HttpState) -> web.Application:
    """The ``aiohttp`` application serving ``state`` (see the module docstring for routes)."""
    app = web.Application(middlewares=[_record_and_throttle])
    app[HTTP_STATE_KEY] = state
    app.router.add_post(SIGNIN_PATH, _signin)
    app.router.add_post(TWO_FACTOR_PATH, _two_factor)
    app.router.add_get("/", _home)
    app.router.add_get("/disclaimer/", _home)
    app.router.add_get(SEARCH_V3_PATH, _search_v3)
    app.router.add_get(SEARCH_LEGACY_PATH, _search_legacy)
    app.router.add_get(PINE_TRANSLATE_PATH, _pine_translate)
    app.router.add_get(PINE_LIST_PATH, _pine_list)
    return app
