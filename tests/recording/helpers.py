"""Helpers of the recording tests: truth, waiting for a store, running a recorder."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

import anyio

from tvfeed_async.sinks import SeriesKey
from tvfeed_async.testing import TvSimulator

from .stores import Row

MINUTE = 60


def truth(sim: TvSimulator, key: SeriesKey, start: int) -> list[Row]:
    """The simulator's closed bars of ``key`` from ``start`` (inclusive) to its clock's now."""
    return [tuple(row) for row in sim.truth_rows(key.symbol, key.interval, start=start)]  # type: ignore[misc]


def newest_truth(sim: TvSimulator, key: SeriesKey) -> int:
    """Open time of the newest closed bar at the simulator's now."""
    return int(sim.truth_rows(key.symbol, key.interval, n_bars=1)[0][0])


async def wait_for_store(
    read: Callable[[SeriesKey], Awaitable[list[Row]]],
    sim: TvSimulator,
    keys: Sequence[SeriesKey],
    limit: float = 60.0,
) -> dict[SeriesKey, list[Row]]:
    """Poll the store until each series' newest stored bar is the simulator's newest closed
    bar (or ``limit`` seconds pass); returns what the store holds then."""
    deadline = time.monotonic() + limit
    while True:
        held = {key: await read(key) for key in keys}
        if all(rows and rows[-1][0] >= newest_truth(sim, key) for key, rows in held.items()):
            return held
        if time.monotonic() > deadline:
            return held
        await anyio.sleep(0.05)


def assert_exactly_truth(
    held: dict[SeriesKey, list[Row]], sim: TvSimulator, first: dict[SeriesKey, int]
) -> None:
    """Each series holds exactly the truth from its first expected bar to now: nothing lost,
    nothing doubled, in order."""
    for key, rows in held.items():
        expected = truth(sim, key, first[key])
        assert rows, f"{key}: nothing stored"
        times = [row[0] for row in rows]
        assert len(times) == len(set(times)), f"{key}: duplicated bars"
        assert times == sorted(times), f"{key}: out of order"
        missing = sorted({row[0] for row in expected} - set(times))
        extra = sorted(set(times) - {row[0] for row in expected})
        assert not missing, f"{key}: {len(missing)} bars lost, first {missing[:5]}"
        assert not extra, f"{key}: {len(extra)} bars that are not in the truth: {extra[:5]}"
        assert rows == expected, f"{key}: stored values differ from the truth"
