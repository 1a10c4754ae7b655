"""Plan limits shared by the client and the simulator.

TradingView caps the bars one history request returns by the account's plan (its support
pages quote these figures); the client sizes its requests with them and the bundled
simulator enforces them.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["DEFAULT_BAR_LIMIT", "PLAN_BAR_LIMITS", "bar_limit_for_plan"]

#: Bars per request by plan ("" is the anonymous user).
PLAN_BAR_LIMITS: Mapping[str, int] = {
    "": 5_000,
    "free": 5_000,
    "pro": 10_000,
    "pro_plus": 10_000,
    "pro_premium": 20_000,
    "pro_expert": 25_000,
    "pro_ultimate": 40_000,
}
#: The limit of a plan not in :data:`PLAN_BAR_LIMITS`.
DEFAULT_BAR_LIMIT = 5_000


def bar_limit_for_plan(plan: str) -> int:
    """Bars one history request may return on ``plan`` (5,000 when the plan is unknown)."""
    return PLAN_BAR_LIMITS.get(plan, DEFAULT_BAR_LIMIT)
