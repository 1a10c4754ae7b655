"""wakeups.Flag: the set-once event live streams keep instead of anyio.Event."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc

import anyio
import pytest

from tvfeed_async.wakeups import Flag


async def test_wait_returns_once_set_and_wakes_every_waiter() -> None:
    flag = Flag()
    woken: list[int] = []

    async def waiter(number: int) -> None:
        await flag.wait()
        woken.append(number)

    tasks = [asyncio.create_task(waiter(n)) for n in range(3)]
    await asyncio.sleep(0)
    assert not flag.is_set()
    assert woken == []
    flag.set()
    flag.set()  # a second set changes nothing
    await asyncio.gather(*tasks)
    assert flag.is_set()
    assert sorted(woken) == [0, 1, 2]
    assert flag._waiters is None


async def test_wait_on_a_set_flag_yields_once() -> None:
    flag = Flag()
    flag.set()
    order: list[str] = []

    async def other() -> None:
        order.append("other")

    task = asyncio.create_task(other())
    await flag.wait()
    order.append("after wait")
    await task
    assert order == ["other", "after wait"]


async def test_a_cancelled_waiter_leaves_nothing_behind() -> None:
    flag = Flag()
    with anyio.move_on_after(0.01) as scope:
        await flag.wait()
    assert scope.cancelled_caught
    assert flag._waiters is None
    task = asyncio.create_task(flag.wait())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert flag._waiters is None
    flag.set()
    await flag.wait()


async def test_an_idle_flag_is_smaller_than_an_anyio_event() -> None:
    # The point of Flag: no waiter queue while nobody waits (a live stream holds three).
    def traced(make: type) -> int:
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            kept = [make() for _ in range(200)]
            size = tracemalloc.get_traced_memory()[0] - before
            del kept
            return size
        finally:
            tracemalloc.stop()

    assert traced(Flag) * 4 < traced(anyio.Event)
