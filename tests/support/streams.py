"""Helpers for tests of live streams: the simulator's truth as comparable tuples, and ways
to wait for a stream to go live or to collect its closed bars."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import anyio

from tvfeed_async import Bar, RetryPolicy, Timeouts

__all__ = ["FAST", "MINUTE", "as_tuples", "collect_closed", "first_forming", "truth_bars"]

MINUTE = 60
FAST = {
    "timeouts": Timeouts(request=30.0, idle=30.0),
    "retry": RetryPolicy(initial=0.01, maximum=0.05, max_attempts=50),
}


def truth_bars(sim, symbol: str, interval: str, start: int, end: int, **options) -> list[tuple]:
    """Closed truth bars with ``start <= open time < end`` as comparable tuples."""
    frame = sim.truth(symbol, interval, start=start, end=end, **options)
    return [
        (
            int(row["time"].timestamp()),
            row["open"],
            row["high"],
            row["low"],
            row["close"],
            row["volume"],
        )
        for row in frame.iter_rows(named=True)
    ]


def as_tuples(bars: list[Bar]) -> list[tuple]:
    return [(b.timestamp, b.open, b.high, b.low, b.close, b.volume) for b in bars]


async def first_forming(stream: AsyncGenerator[Bar, None]) -> Bar:
    """The first item of a partial stream is the forming bar: the subscription is live."""
    with anyio.fail_after(20):
        bar = await anext(stream)
    assert not bar.closed
    return bar


async def collect_closed(
    stream: AsyncGenerator[Bar, None], count: int, limit: float = 30
) -> list[Bar]:
    bars: list[Bar] = []
    with anyio.fail_after(limit):
        async for bar in stream:
            if bar.closed:
                bars.append(bar)
                if len(bars) == count:
                    break
    return bars
