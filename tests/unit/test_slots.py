"""The in-flight bound (tvfeed_async.slots): ``limit`` requests wait for full answers, and
``limit`` more may finish with a top-up page; every slot is given back however a request
ends."""

from __future__ import annotations

import anyio
import pytest

from tvfeed_async.slots import InFlight, Slot


def _borrowed(bound: InFlight) -> tuple[int, int]:
    return bound.waiting.borrowed_tokens, bound.topping_up.borrowed_tokens


async def test_at_most_limit_requests_wait_at_once() -> None:
    bound = InFlight(2)
    inside = 0
    most = 0

    async def request() -> None:
        nonlocal inside, most
        async with bound.slot():
            inside += 1
            most = max(most, inside)
            await anyio.sleep(0.01)
            inside -= 1

    async with anyio.create_task_group() as group:
        for _ in range(7):
            group.start_soon(request)
    assert most == 2
    assert _borrowed(bound) == (0, 0)


async def test_a_top_up_gives_the_slot_to_the_next_request() -> None:
    bound = InFlight(1)
    started: list[str] = []
    first_topped_up = anyio.Event()
    release_first = anyio.Event()

    async def first() -> None:
        async with bound.slot() as slot:
            started.append("first")
            slot.top_up()
            assert slot.topping_up
            first_topped_up.set()
            await release_first.wait()

    async def second() -> None:
        await first_topped_up.wait()
        async with bound.slot():
            started.append("second")
            assert _borrowed(bound) == (1, 1)
            release_first.set()

    with anyio.fail_after(5):
        async with anyio.create_task_group() as group:
            group.start_soon(first)
            group.start_soon(second)
    assert started == ["first", "second"]
    assert _borrowed(bound) == (0, 0)


async def test_a_top_up_keeps_the_slot_when_every_top_up_slot_is_taken() -> None:
    bound = InFlight(1)
    async with bound.slot() as first:
        first.top_up()
        async with bound.slot() as second:
            second.top_up()  # the one top-up slot is the first's: the second keeps its own
            assert not second.topping_up
            assert _borrowed(bound) == (1, 1)
            assert bound.waiting.available_tokens == 0
        first.top_up()  # again: no change
        assert first.topping_up
        assert _borrowed(bound) == (0, 1)
    assert _borrowed(bound) == (0, 0)


async def test_slots_are_given_back_on_errors_and_cancellation() -> None:
    bound = InFlight(1)

    async def failing_request() -> None:
        async with bound.slot() as slot:
            slot.top_up()
            raise RuntimeError("request failed")

    with pytest.raises(RuntimeError):
        await failing_request()
    assert _borrowed(bound) == (0, 0)

    async with bound.slot():
        with anyio.move_on_after(0.05) as scope:
            async with bound.slot():  # waits: the one slot is taken
                pytest.fail("got a slot that was taken")
        assert scope.cancelled_caught
    assert _borrowed(bound) == (0, 0)
    # The bound still works after all that.
    async with bound.slot() as slot:
        assert isinstance(slot, Slot)
        assert _borrowed(bound) == (1, 0)
