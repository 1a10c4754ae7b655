"""Auth tokens issued and checked by the simulator.

Real tokens are RS512 JWTs with claims ``user_id, exp, iat, plan, ...`` and a 4 h lifetime.
The simulator issues tokens of the same shape; the signature is an HMAC under a per-simulator
secret (clients never verify it, they only read the claims).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any

from ..protocol.plans import PLAN_BAR_LIMITS

__all__ = ["PLAN_BAR_LIMITS", "TokenClaims", "TokenIssuer", "decode_claims"]

TOKEN_LIFETIME = 14_400


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def decode_claims(token: str) -> dict[str, Any] | None:
    """The claims of a JWT-shaped token, without checking its signature; None if not a JWT."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        claims = json.loads(_unb64(parts[1]))
    except (ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


@dataclass(frozen=True, slots=True)
class TokenClaims:
    """What the simulator knows about a token it issued."""

    user_id: int
    plan: str
    issued_at: int
    expires_at: int
    #: The ``max_connections`` claim (sockets one token may hold at once), if present.
    max_connections: int | None = None

    @property
    def bar_limit(self) -> int:
        """Bars per request for this plan."""
        return PLAN_BAR_LIMITS.get(self.plan, 5_000)


class TokenIssuer:
    """Issues and verifies JWT-shaped tokens signed with ``secret``."""

    def __init__(self, secret: bytes, lifetime: int = TOKEN_LIFETIME) -> None:
        self._secret = secret
        self.lifetime = lifetime

    def issue(self, user_id: int, plan: str, now: float) -> str:
        """A token for ``user_id`` on ``plan``, valid from ``now`` for ``lifetime`` seconds."""
        header = {"alg": "RS512", "kid": "SIMU", "typ": "JWT"}
        issued = int(now)
        claims = {
            "user_id": user_id,
            "exp": issued + self.lifetime,
            "iat": issued,
            "plan": plan,
            "prostatus": "non_pro" if plan in ("", "free") else "pro",
            "ext_hours": 1,
            "perm": "",
            "max_studies": 25,
            "max_charts": 8,
            "max_connections": 50,
        }
        signing_input = (
            _b64(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64(json.dumps(claims, separators=(",", ":")).encode())
        )
        signature = hmac.new(self._secret, signing_input.encode(), hashlib.sha512).digest()
        return signing_input + "." + _b64(signature)

    def verify(self, token: str, now: float) -> TokenClaims | None:
        """Claims of a valid, unexpired token this issuer signed; otherwise None."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        signing_input = parts[0] + "." + parts[1]
        expected = _b64(hmac.new(self._secret, signing_input.encode(), hashlib.sha512).digest())
        if not hmac.compare_digest(expected, parts[2]):
            return None
        claims = decode_claims(token)
        if claims is None:
            return None
        try:
            result = TokenClaims(
                int(claims["user_id"]),
                str(claims.get("plan", "")),
                int(claims["iat"]),
                int(claims["exp"]),
                int(claims["max_connections"]) if "max_connections" in claims else None,
            )
        except (KeyError, TypeError, ValueError):
            return None
        if now >= result.expires_at:
            return None
        return result
