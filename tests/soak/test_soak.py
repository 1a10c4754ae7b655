"""Long seeded fault schedules (opt-in: ``nox -s soak``; TVFEED_SOAK_SECONDS, TVFEED_SOAK_SEED)."""

from __future__ import annotations

import contextlib
import os
import random
import time

import anyio
import pytest

from tvfeed_async import Bar, RetryPolicy, Timeouts

from ..support.feeds import open_feed
from ..support.streams import MINUTE, as_tuples, first_forming, truth_bars

pytestmark = pytest.mark.soak

KEYS = [
    ("BINANCE:BTCUSDT", "1"),
    ("BINANCE:SIM003USDT", "1"),
    ("BINANCE:ETHUSDT", "5"),
    ("BINANCE:SIM009USDT", "15"),
]


async def test_soak_many_streams_under_random_faults(lively_simulator):
    sim = lively_simulator
    seconds = float(os.environ.get("TVFEED_SOAK_SECONDS", "60"))
    rng = random.Random(int(os.environ.get("TVFEED_SOAK_SEED", "7")))
    options = {
        "timeouts": Timeouts(request=60.0, idle=0.4),
        "retry": RetryPolicy(initial=0.01, maximum=0.2, max_attempts=None),
    }
    received: dict[tuple[str, str], list[Bar]] = {key: [] for key in KEYS}
    starts: dict[tuple[str, str], int] = {}
    advanced = 0
    async with open_feed(sim, **options) as feed, contextlib.AsyncExitStack() as stack:
        streams = {}
        for symbol, interval in KEYS:
            stream = feed.stream(symbol, interval=interval, partial=True)
            await stack.enter_async_context(contextlib.aclosing(stream))
            starts[(symbol, interval)] = (await first_forming(stream)).timestamp
            streams[(symbol, interval)] = stream

        async def consume(key: tuple[str, str]) -> None:
            async for bar in streams[key]:
                if bar.closed:
                    received[key].append(bar)

        async with anyio.create_task_group() as task_group:
            for key in KEYS:
                task_group.start_soon(consume, key)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                action = rng.choice(["drop", "stall", "restart", "refuse", "none", "none"])
                if action == "drop":
                    sim.faults.drop_open()
                elif action == "stall":
                    sim.faults.stall_open()
                elif action == "restart":
                    await sim.restart()
                elif action == "refuse":
                    sim.faults.refuse_upgrades(rng.randint(1, 3))
                step = rng.randint(1, 45) * MINUTE
                await sim.clock.advance(step)
                advanced += step
                await anyio.sleep(rng.random() * 0.5)
            sim.faults.refuse_upgrades(0)
            await sim.clock.advance(15 * MINUTE)
            advanced += 15 * MINUTE
            await anyio.sleep(2.0)
            with anyio.fail_after(60):
                for (symbol, interval), start in starts.items():
                    expected = truth_bars(
                        sim, symbol, interval, start, start + advanced - int(interval) * MINUTE
                    )
                    while len(received[(symbol, interval)]) < len(expected):  # noqa: ASYNC110
                        await anyio.sleep(0.05)
            task_group.cancel_scope.cancel()
    for (symbol, interval), start in starts.items():
        got = as_tuples(received[(symbol, interval)])
        closed_by_now = truth_bars(
            sim, symbol, interval, start, start + advanced - int(interval) * MINUTE
        )
        assert len(got) >= len(closed_by_now) > 0
        assert got[: len(closed_by_now)] == closed_by_now  # every closed bar once, in order


async def test_soak_every_fault_type_on_a_seeded_schedule(lively_simulator):
    """Every fault type of issues #14 and #15 (poison packets, impossible bars, critical
    errors, late finals, bad tokens... beside drops, stalls and restarts)."""
    from .schedule import FAULTS, run_fault_schedule

    seconds = float(os.environ.get("TVFEED_SOAK_SECONDS", "60"))
    seed = int(os.environ.get("TVFEED_SOAK_SEED", "7"))
    fired = await run_fault_schedule(lively_simulator, seconds=seconds, seed=seed)
    assert set(FAULTS) <= set(fired)
