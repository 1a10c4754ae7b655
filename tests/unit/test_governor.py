"""The governor's arithmetic, on a clock the test moves (no sleeping)."""

from __future__ import annotations

import anyio
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tvfeed_async import InvalidRequest, TvFeed
from tvfeed_async.config import Limits
from tvfeed_async.governor import MIN_FACTOR, Governor, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_lets_a_burst_through_then_spaces_at_its_rate() -> None:
    bucket = TokenBucket(rate=10.0, burst=3, now=0.0)
    assert [bucket.reserve(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    # Each later token is owed 0.1 s after the one before it: waiters keep their order.
    assert [round(bucket.reserve(0.0), 9) for _ in range(3)] == [0.1, 0.2, 0.3]
    # After 1 s the debt (3 tokens) is paid and the bucket holds the 3 it may save, no more.
    assert bucket.available(1.3) == pytest.approx(3.0)
    assert bucket.available(100.0) == pytest.approx(3.0)


def test_a_refund_returns_an_abandoned_token() -> None:
    bucket = TokenBucket(rate=1.0, burst=1, now=0.0)
    assert bucket.reserve(0.0) == 0.0
    assert bucket.reserve(0.0) == pytest.approx(1.0)
    bucket.refund(0.0)
    assert bucket.reserve(0.0) == pytest.approx(1.0)


@given(
    rate=st.floats(0.5, 100.0),
    burst=st.integers(1, 50),
    gaps=st.lists(st.floats(0.0, 2.0), min_size=1, max_size=200),
)
def test_no_window_sees_more_than_burst_plus_rate_times_its_length(
    rate: float, burst: int, gaps: list[float]
) -> None:
    """Whatever the arrival times, the send times (arrival + returned wait) never put more
    than ``burst + rate * T`` messages in any window of length T: the bucket's promise."""
    bucket = TokenBucket(rate, burst, now=0.0)
    now = 0.0
    sends = []
    for gap in gaps:
        now += gap
        sends.append(now + bucket.reserve(now))
    assert sends == sorted(sends)
    for i, start in enumerate(sends):
        for j in range(i, len(sends)):
            window = sends[j] - start
            assert j - i + 1 <= burst + rate * window + 1e-6


def test_rate_limits_halve_every_rate_and_quiet_windows_double_them_back() -> None:
    clock = Clock()
    governor = Governor(
        chart_sessions_per_second=8.0,
        quote_sessions_per_second=4.0,
        series_requests_per_second=16.0,
        recovery=60.0,
        clock=clock,
    )
    governor.rate_limited()
    governor.rate_limited()
    assert governor.factor == 0.25
    assert (governor.rate("chart"), governor.rate("quote"), governor.rate("series")) == (
        2.0,
        1.0,
        4.0,
    )
    clock.now = 59.0
    governor.delay_for("chart_create_session")
    assert governor.factor == 0.25  # not quiet long enough
    clock.now = 61.0
    governor.delay_for("chart_create_session")
    assert governor.factor == 0.5
    clock.now = 100.0
    governor.delay_for("create_series")
    assert governor.factor == 0.5  # one step per window
    clock.now = 122.0
    governor.delay_for("create_series")
    assert governor.factor == 1.0
    clock.now = 1_000.0
    governor.delay_for("create_series")
    assert governor.factor == 1.0
    assert governor.rate("chart") == 8.0
    for _ in range(20):
        governor.rate_limited()
    assert governor.factor == MIN_FACTOR
    assert governor.stats.rate_limited == 22


def test_methods_map_to_their_buckets_and_others_pass() -> None:
    clock = Clock()
    governor = Governor(
        chart_sessions_per_second=1.0,
        quote_sessions_per_second=None,
        series_requests_per_second=1.0,
        session_burst=1,
        series_burst=1,
        clock=clock,
    )
    assert governor.delay_for("chart_create_session") == 0.0
    assert governor.delay_for("chart_create_session") == pytest.approx(1.0)
    for method in (
        "quote_create_session",
        "quote_add_symbols",
        "resolve_symbol",
        "chart_delete_session",
    ):
        for _ in range(5):
            assert governor.delay_for(method) == 0.0
    assert governor.delay_for("create_series") == 0.0
    for method in ("modify_series", "request_more_data", "create_study"):
        assert governor.delay_for(method) > 0.0
    stats = governor.stats
    assert (stats.chart_sessions, stats.quote_sessions, stats.series_requests) == (2, 5, 4)


def test_from_limits_and_bad_settings() -> None:
    limits = Limits(chart_sessions_per_second=3.0, series_requests_per_second=None, session_burst=4)
    governor = Governor.from_limits(limits)
    assert governor.rate("chart") == 3.0
    assert governor.rate("series") is None
    assert governor.rate("quote") == Limits().quote_sessions_per_second
    with pytest.raises(InvalidRequest, match="backoff"):
        Governor(backoff=1.0)
    with pytest.raises(InvalidRequest, match="rate"):
        TokenBucket(0.0, 1, 0.0)
    # A feed with such limits fails at construction, before any socket.
    with pytest.raises(InvalidRequest, match="burst"):
        TvFeed(limits=Limits(session_burst=0), use_env=False, session_cache=False)


async def test_a_cancelled_waiter_gives_its_token_back() -> None:
    governor = Governor(chart_sessions_per_second=2.0, session_burst=1)
    await governor.before_send("chart_create_session")  # the burst
    with anyio.move_on_after(0.05):
        await governor.before_send("chart_create_session")  # waits 0.5 s; cancelled
    bucket = governor._buckets["chart"]
    # Refunded: the debt is gone, so the next waiter is owed about 0.5 s, not 1 s.
    assert governor.delay_for("chart_create_session") == pytest.approx(0.5, abs=0.06)
    assert governor.stats.waits == 1
    assert bucket.rate == 2.0
