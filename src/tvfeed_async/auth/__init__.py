"""Signing in to TradingView and keeping a valid auth token.

The package's modules: ``credentials`` (what the user gives), ``session`` (the token and
its claims), ``cache`` (sessions shared between processes) and ``signin`` (the flows and the
:class:`Authenticator` that keeps the session valid).

Four ways in, chosen from what the :class:`Credentials` hold:

* nothing: the anonymous token ``unauthorized_user_token`` (delayed data, 5,000 bars);
* an auth token: used as is; its JWT claims give the plan and the expiry;
* the browser cookies ``sessionid`` + ``sessionid_sign``: the home page embeds the token;
* username + password (+ TOTP): the sign-in form, then the two-factor form when asked.

Password sign-ins are expensive for the user: TradingView sends a "new login" e-mail and blocks
accounts after a handful of them. So a signed-in session is kept in a small
JSON file (:class:`SessionCache`, mode 0600) shared by every process of the user, and a lapsed
token is re-read from the long-lived session cookie before a new password sign-in is considered.
A sign-in is never retried in a loop.

Secrets (password, TOTP secret and code, token, cookies) never appear in a log record, a repr,
or an exception message.
"""

from __future__ import annotations

from ..protocol.messages import ANONYMOUS_TOKEN
from ..protocol.plans import PLAN_BAR_LIMITS, bar_limit_for_plan
from .cache import SessionCache, default_cache
from .credentials import Credentials
from .session import AuthSession, _jwt_claims
from .signin import Authenticator, _Totp, _totp_now

__all__ = [
    "ANONYMOUS_TOKEN",
    "PLAN_BAR_LIMITS",
    "AuthSession",
    "Authenticator",
    "Credentials",
    "SessionCache",
    "_Totp",
    "_jwt_claims",
    "_totp_now",
    "bar_limit_for_plan",
    "default_cache",
]
