"""A seeded schedule of every fault type of issues #14 and #15, run against live streams
on the simulator; every closed bar must arrive once, in order, equal to the truth.

Used twice: briefly in the default suite (tests/integration/test_fault_schedule.py) and at
length by ``nox -s soak`` (tests/soak/test_soak.py)."""

from __future__ import annotations

import contextlib
import random
import time
from collections import Counter

import anyio

from tvfeed_async import Bar, Limits, RetryPolicy, Timeouts
from tvfeed_async.testing.faults import FaultScript
from tvfeed_async.testing.simulator import TvSimulator

from ..support.feeds import open_feed
from ..support.streams import MINUTE, as_tuples, first_forming, truth_bars

KEYS = [
    ("BINANCE:BTCUSDT", "1"),
    ("BINANCE:SIM003USDT", "1"),
    ("BINANCE:ETHUSDT", "5"),
    ("BINANCE:SIM009USDT", "15"),
]
#: ~2 KB of JSON nested 1,000 levels deep (it used to kill the reader).
POISON = '{"m":"du","p":["cs_x",' + "[" * 1000 + "]" * 1000 + "]}"
FAULTS = [
    "drop",
    "stall",
    "restart",
    "refuse",
    "poison",
    "huge_length",
    "malformed",
    "bad_du",
    "critical_error",
    "chart_packets",
    "bad_token",
    "late_finals",
    "none",
]
#: Faults that cost a re-open or a token refresh: kept under the client's budgets per
#: window, which are there to stop a loop with a server that always refuses.
RATIONED = {"critical_error": 2, "bad_token": 2}


async def run_fault_schedule(sim: TvSimulator, seconds: float, seed: int) -> Counter[str]:
    """Run the schedule for ``seconds`` (wall clock); return how often each fault fired."""
    rng = random.Random(seed)
    fired: Counter[str] = Counter()
    options = {
        "timeouts": Timeouts(request=60.0, page=2.0, idle=0.4),
        "retry": RetryPolicy(initial=0.01, maximum=0.2),
        # late finals (one of the faults) are delivered right within the grace time
        "limits": Limits(close_grace=0.3),
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
            # Every fault once first (in a seeded order), then at random.
            order = FAULTS[:]
            rng.shuffle(order)
            while time.monotonic() < deadline or order:
                action = order.pop() if order else rng.choice(FAULTS)
                if fired[action] >= RATIONED.get(action, 10**9):
                    action = "none"
                fired[action] += 1
                await apply_fault(sim, action)
                step = rng.randint(1, 45) * MINUTE
                await sim.clock.advance(step)
                advanced += step
                await anyio.sleep(rng.random() * 0.3)
            sim.faults.refuse_upgrades(0)
            sim.faults.default = FaultScript()
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
    return fired


async def apply_fault(sim: TvSimulator, action: str) -> None:
    faults = sim.faults
    if action == "drop":
        faults.drop_open()
    elif action == "stall":
        faults.stall_open()
    elif action == "restart":
        await sim.restart()
    elif action == "refuse":
        faults.refuse_upgrades(2)
    elif action == "poison":
        faults.inject_raw(f"~m~{len(POISON)}~m~{POISON}")
    elif action == "huge_length":
        faults.inject_raw("~m~9999999999~m~" + "x" * 64)
    elif action == "malformed":
        faults.inject_raw('~m~15~m~{"m":"du","p":[')
    elif action == "bad_du":
        faults.bad_du(1e12)
    elif action == "critical_error":
        faults.critical_error("unexpected error")
    elif action == "chart_packets":
        for kind in ("study", "pointset", "depth", "protocol_switched"):
            faults.inject_chart_packets(kind)
    elif action == "bad_token":
        faults.expire_tokens()
    elif action == "late_finals":
        faults.default = FaultScript(late_final_every_bar=True)
        faults.drop_open()  # the next connection sends late finals
