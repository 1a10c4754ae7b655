"""A signed-in (or anonymous) session: the auth token, its plan, bar limit and expiry."""

from __future__ import annotations

import base64
import binascii
import json
import time
from dataclasses import dataclass, field
from typing import Any

from ..protocol.messages import ANONYMOUS_TOKEN
from ..protocol.plans import PLAN_BAR_LIMITS, bar_limit_for_plan
from .credentials import _HIDDEN, _mask

__all__ = ["AuthSession"]


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
