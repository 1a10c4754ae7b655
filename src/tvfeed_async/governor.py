"""How fast a feed asks the server for new sessions and series: token buckets that slow down
when the server says it is asked too fast.

TradingView rate-limits session creation: past some rate it answers ``protocol_error
["max sessions rate reached"]`` and closes the socket (TradingView-API issue #173; the
rate itself is not documented anywhere). A feed that re-creates 2,000 streams after a
reconnect, or runs a thousand history requests, must pace itself instead of finding the
limit. (An HTTP 429 on the WebSocket upgrade is about connections, not sessions: the
reconnect back-off spaces those, and the governor does not slow down for it.) The
:class:`Governor` holds three buckets, each ``rate`` tokens per second up to
``burst`` saved:

* chart sessions (``chart_create_session``);
* quote sessions (``quote_create_session``);
* series requests (``create_series``, ``modify_series``, ``request_more_data``,
  ``create_study``).

Every message of those methods waits for a token before it is sent
(:meth:`Governor.before_send`, called by the socket's single write path). When the server
rate-limits anyway, :meth:`Governor.rate_limited` multiplies every rate by
``Limits.rate_limit_backoff`` (halves it by default, down to 1/64 of the setting); after
``Limits.rate_limit_recovery`` seconds without another, the rates double back, one step per
window, up to the setting (multiplicative decrease, multiplicative recovery).

A governor may be shared by several feeds (``TvFeed(governor=...)``; ``FeedPool`` shares
one per account), as the server's limit is not per socket. The bucket arithmetic
(:class:`TokenBucket`) takes the time as an argument, so it is tested without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import anyio

from .errors import InvalidRequest

if TYPE_CHECKING:
    from .config import Limits

__all__ = ["Governor", "GovernorStats", "TokenBucket"]

#: The lowest fraction of the configured rates the back-off goes down to.
MIN_FACTOR = 1 / 64

_CHART = ("chart_create_session",)
_QUOTE = ("quote_create_session",)
_SERIES = ("create_series", "modify_series", "request_more_data", "create_study")


class TokenBucket:
    """``rate`` tokens per second, at most ``burst`` saved up; a token is taken by
    :meth:`reserve` even when none is left (the bucket goes into debt), and the caller waits
    the time it returns, so waiters are served in the order they came."""

    __slots__ = ("_stamp", "_tokens", "burst", "rate")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        if rate <= 0 or burst < 1:
            raise InvalidRequest(
                f"a session or request rate must be above 0 and its burst at least 1 "
                f"(got rate {rate!r}, burst {burst!r}); use None for no pacing"
            )
        self.rate = rate
        self.burst = float(burst)
        self._tokens = float(burst)
        self._stamp = now

    def _refill(self, now: float) -> None:
        if now > self._stamp:
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now

    def reserve(self, now: float) -> float:
        """Take one token; return the seconds to wait before using it (0.0: at once)."""
        self._refill(now)
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def refund(self, now: float) -> None:
        """Give back a token whose reservation was abandoned (its waiter was cancelled)."""
        self._refill(now)
        self._tokens = min(self.burst, self._tokens + 1.0)

    def set_rate(self, rate: float, now: float) -> None:
        """Change the rate from ``now`` on (what accrued so far is kept)."""
        self._refill(now)
        self.rate = rate

    def available(self, now: float) -> float:
        """Tokens there are at ``now`` (negative: owed to waiters)."""
        self._refill(now)
        return self._tokens


@dataclass(slots=True)
class GovernorStats:
    """Counters of one governor (they only grow, except ``factor``).

    Attributes:
        chart_sessions, quote_sessions, series_requests: messages let through, per bucket.
        waits: how many of them had to wait for a token.
        waited: seconds spent waiting, summed.
        rate_limited: times the server rate-limited a socket of this governor.
        factor: the fraction of the configured rates in force (1.0 unless rate-limited).
    """

    chart_sessions: int = 0
    quote_sessions: int = 0
    series_requests: int = 0
    waits: int = 0
    waited: float = 0.0
    rate_limited: int = 0
    factor: float = 1.0


class Governor:
    """Paces session creation and series requests (see the module docstring).

    Args:
        chart_sessions_per_second, quote_sessions_per_second, series_requests_per_second:
            the configured rates; None leaves that kind unpaced.
        session_burst, series_burst: how many may go at once after a quiet spell.
        backoff: the factor applied to every rate when the server rate-limits (0 < b < 1).
        recovery: seconds without a rate limit before the rates double back.
        clock: monotonic seconds (``time.monotonic``; tests pass their own).
    """

    def __init__(
        self,
        *,
        chart_sessions_per_second: float | None = 10.0,
        quote_sessions_per_second: float | None = 10.0,
        series_requests_per_second: float | None = None,
        session_burst: int = 32,
        series_burst: int = 100,
        backoff: float = 0.5,
        recovery: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < backoff < 1:
            raise InvalidRequest(f"rate_limit_backoff must be between 0 and 1, not {backoff!r}")
        self._clock = clock
        now = clock()
        self._configured: dict[str, float | None] = {
            "chart": chart_sessions_per_second,
            "quote": quote_sessions_per_second,
            "series": series_requests_per_second,
        }
        bursts = {"chart": session_burst, "quote": session_burst, "series": series_burst}
        self._buckets: dict[str, TokenBucket] = {
            kind: TokenBucket(rate, bursts[kind], now)
            for kind, rate in self._configured.items()
            if rate is not None
        }
        self._kind_of: dict[str, str] = {}
        for kind, methods in (("chart", _CHART), ("quote", _QUOTE), ("series", _SERIES)):
            for method in methods:
                self._kind_of[method] = kind
        self.backoff = backoff
        self.recovery = recovery
        self._last_limited: float | None = None
        self.stats = GovernorStats()

    @classmethod
    def from_limits(cls, limits: Limits) -> Governor:
        """The governor ``limits`` describe (its ``*_per_second``, burst and back-off fields)."""
        return cls(
            chart_sessions_per_second=limits.chart_sessions_per_second,
            quote_sessions_per_second=limits.quote_sessions_per_second,
            series_requests_per_second=limits.series_requests_per_second,
            session_burst=limits.session_burst,
            series_burst=limits.series_burst,
            backoff=limits.rate_limit_backoff,
            recovery=limits.rate_limit_recovery,
        )

    @property
    def factor(self) -> float:
        """The fraction of the configured rates in force."""
        return self.stats.factor

    def rate(self, kind: str) -> float | None:
        """The rate in force for ``"chart"``, ``"quote"`` or ``"series"`` (None: unpaced)."""
        bucket = self._buckets.get(kind)
        return None if bucket is None else bucket.rate

    def rate_limited(self) -> None:
        """The server said it is asked too fast: slow every bucket down by ``backoff``."""
        now = self._clock()
        self.stats.rate_limited += 1
        self._last_limited = now
        self._set_factor(max(MIN_FACTOR, self.stats.factor * self.backoff), now)

    def _set_factor(self, factor: float, now: float) -> None:
        self.stats.factor = factor
        for kind, bucket in self._buckets.items():
            configured = self._configured[kind]
            assert configured is not None
            bucket.set_rate(configured * factor, now)

    def _recover(self, now: float) -> None:
        last = self._last_limited
        if last is not None and self.stats.factor < 1.0 and now - last >= self.recovery:
            self._last_limited = now
            self._set_factor(min(1.0, self.stats.factor * 2), now)

    def delay_for(self, method: str) -> float:
        """Reserve a token for a message of ``method``; the seconds to wait before sending it."""
        kind = self._kind_of.get(method)
        if kind is None:
            return 0.0
        if kind == "chart":
            self.stats.chart_sessions += 1
        elif kind == "quote":
            self.stats.quote_sessions += 1
        else:
            self.stats.series_requests += 1
        bucket = self._buckets.get(kind)
        if bucket is None:
            return 0.0
        now = self._clock()
        self._recover(now)
        return bucket.reserve(now)

    async def before_send(self, method: str) -> None:
        """Wait until a message of ``method`` may go out (at once for other methods)."""
        delay = self.delay_for(method)
        if delay <= 0:
            return
        self.stats.waits += 1
        self.stats.waited += delay
        try:
            await anyio.sleep(delay)
        except BaseException:
            kind = self._kind_of[method]
            self._buckets[kind].refund(self._clock())
            raise
