"""Batched wake-ups (``tvfeed_async.wakeups``): the same wake-ups as ``Future.set_result``,
in the same order and contexts, through one loop callback per burst."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import weakref
from collections import deque
from typing import Any

import pytest

from tvfeed_async import wakeups
from tvfeed_async.protocol.bars import Bar
from tvfeed_async.stream import Consumer
from tvfeed_async.wakeups import Waker, waker_for

NAME: contextvars.ContextVar[str] = contextvars.ContextVar("NAME", default="none")


def bar(minute: int, symbol: str) -> Bar:
    return Bar(1663050540 + 60 * minute, 1.0, 2.0, 0.5, 1.5, 1.0, symbol, "1", False)


class CountingLoop:
    """Counts the loop callbacks a waker schedules (wraps the running loop's call_soon)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        loop = asyncio.get_running_loop()
        self.scheduled: list[Any] = []
        call_soon = loop.call_soon

        def counting(callback: Any, *args: Any, context: Any = None) -> asyncio.Handle:
            self.scheduled.append(callback)
            return call_soon(callback, *args, context=context)

        monkeypatch.setattr(loop, "call_soon", counting)


async def test_this_python_supports_batching() -> None:
    # Otherwise every consumer silently falls back to set_result: slower, still correct.
    waker = waker_for(asyncio.get_running_loop())
    assert isinstance(waker, Waker)
    assert waker_for(asyncio.get_running_loop()) is waker  # one per loop


def test_the_registry_does_not_keep_a_loop_alive() -> None:
    loop = asyncio.new_event_loop()
    assert waker_for(loop) is not None
    gone = weakref.ref(loop)
    loop.close()
    del loop
    gc.collect()
    assert gone() is None


async def test_a_burst_wakes_every_task_once_in_order_and_in_its_own_context(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    waker = waker_for(asyncio.get_running_loop())
    assert waker is not None
    woken: list[tuple[str, str]] = []
    futures: list[asyncio.Future[str]] = []

    async def wait(name: str) -> None:
        NAME.set(name)
        future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        futures.append(future)
        woken.append((NAME.get(), await future))

    tasks = [asyncio.create_task(wait(f"t{n}")) for n in range(50)]
    await asyncio.sleep(0)
    assert len(futures) == 50
    counting = CountingLoop(monkeypatch)
    for n in reversed(range(50)):  # completed in reverse: woken in that order
        waker.set_result(futures[n], f"r{n}")
        assert futures[n].done()
    await asyncio.gather(*tasks)
    assert woken == [(f"t{n}", f"r{n}") for n in reversed(range(50))]
    batches = [callback for callback in counting.scheduled if callback == waker._run]
    assert len(batches) == 1  # one loop callback for the 50 wake-ups


async def test_a_future_with_several_callbacks_completes_the_usual_way() -> None:
    waker = waker_for(asyncio.get_running_loop())
    assert waker is not None
    future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    seen: list[int] = []
    future.add_done_callback(lambda f: seen.append(f.result()))
    future.add_done_callback(lambda f: seen.append(f.result() * 10))
    waker.set_result(future, 4)
    assert not waker._queued
    await asyncio.sleep(0)
    assert seen == [4, 40]


async def test_python_futures_are_batched_too() -> None:
    # asyncio's pure-Python Future (used where the C accelerator is missing).
    loop = asyncio.get_running_loop()
    waker = waker_for(loop)
    assert waker is not None
    future: asyncio.Future[str] = asyncio.futures._PyFuture(loop=loop)  # type: ignore[attr-defined]

    task = asyncio.create_task(await_it(future))
    await asyncio.sleep(0)
    waker.set_result(future, "done")
    assert len(waker._queued) == 1
    assert await task == "done"


async def test_a_task_cancelled_after_its_wake_up_was_queued_is_cancelled() -> None:
    waker = waker_for(asyncio.get_running_loop())
    assert waker is not None
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    other: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(await_it(future))
    waiting = asyncio.create_task(await_it(other))
    await asyncio.sleep(0)
    waker.set_result(future, "bar")
    waker.set_result(other, "next")
    task.cancel()  # before the batch ran: the future is done, so the task is cancelled later
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await waiting == "next"  # the rest of the batch is unaffected


async def await_it(future: asyncio.Future[str]) -> str:
    return await future


async def test_an_exception_in_a_callback_is_reported_and_the_rest_still_run() -> None:
    loop = asyncio.get_running_loop()
    waker = waker_for(loop)
    assert waker is not None
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    try:
        futures: list[asyncio.Future[int]] = [loop.create_future() for _ in range(3)]
        seen: list[int] = []

        def boom(future: asyncio.Future[int]) -> None:
            raise RuntimeError("boom")

        futures[0].add_done_callback(lambda f: seen.append(0))
        futures[1].add_done_callback(boom)
        futures[2].add_done_callback(lambda f: seen.append(2))
        for n, future in enumerate(futures):
            waker.set_result(future, n)
        for _ in range(3):
            await asyncio.sleep(0)
        assert seen == [0, 2]
        assert len(reported) == 1
        assert isinstance(reported[0]["exception"], RuntimeError)
    finally:
        loop.set_exception_handler(None)


def test_keyboard_interrupt_propagates_and_the_rest_are_rescheduled() -> None:
    class FakeLoop:
        def __init__(self) -> None:
            self.scheduled: list[Any] = []

        def call_soon(self, callback: Any) -> None:
            self.scheduled.append(callback)

    loop = FakeLoop()
    waker = Waker(loop)  # type: ignore[arg-type]
    ran: list[str] = []

    def interrupt(future: object) -> None:
        raise KeyboardInterrupt

    context = contextvars.copy_context()
    entries: list[Any] = [
        (context, lambda f: ran.append("first"), None),
        (context, interrupt, None),
        (context, lambda f: ran.append("third"), None),
    ]
    waker._queued = deque(entries)
    with pytest.raises(KeyboardInterrupt):
        waker._run()
    assert ran == ["first"]
    assert loop.scheduled == [waker._run]  # the third one runs in the next batch
    waker._run()
    assert ran == ["first", "third"]


async def test_consumers_fall_back_to_set_result_without_a_waker(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(wakeups, "_wakers", weakref.WeakKeyDictionary())
    monkeypatch.setattr(wakeups, "_callbacks_readable", lambda loop: False)
    assert waker_for(asyncio.get_running_loop()) is None
    await wake_fifty_consumers(batched=False, monkeypatch=monkeypatch)


async def test_consumers_are_woken_in_one_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    await wake_fifty_consumers(batched=True, monkeypatch=monkeypatch)


async def wake_fifty_consumers(batched: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    consumers = [Consumer(10, partial=True, on_gap="raise") for _ in range(50)]
    tasks = [asyncio.create_task(consumer.get()) for consumer in consumers]
    await asyncio.sleep(0)
    counting = CountingLoop(monkeypatch)
    for n, consumer in enumerate(consumers):
        consumer.push_forming(bar(0, f"X:S{n}"))
    # Batched: one loop callback wakes the 50 tasks; otherwise one per task.
    assert len(counting.scheduled) == (1 if batched else 50)
    assert await asyncio.gather(*tasks) == [bar(0, f"X:S{n}") for n in range(50)]


@pytest.mark.parametrize(
    "callbacks",
    [
        property(lambda self: None),  # a future without the private list
        property(lambda self: []),  # a list that does not show the callback
        property(lambda self: [lambda future: None]),  # entries of another shape
    ],
    ids=["missing", "empty", "other-shape"],
)
def test_the_probe_refuses_futures_whose_callbacks_look_different(
    monkeypatch: pytest.MonkeyPatch, callbacks: property
) -> None:
    # Future._callbacks is private to CPython's asyncio: where it is not the list of
    # (callback, context) pairs, no waker is made and consumers use set_result().
    class OtherFuture(asyncio.Future):  # type: ignore[type-arg]
        _callbacks = callbacks

    loop = asyncio.new_event_loop()
    try:
        assert wakeups._callbacks_readable(loop)
        monkeypatch.setattr(wakeups.asyncio, "Future", OtherFuture)
        assert not wakeups._callbacks_readable(loop)
        monkeypatch.setattr(wakeups, "_wakers", weakref.WeakKeyDictionary())
        assert waker_for(loop) is None
    finally:
        loop.close()
