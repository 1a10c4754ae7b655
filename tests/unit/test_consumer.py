"""The per-consumer queue of a stream: order, coalescing, errors, waking (stream.Consumer).

``step()`` is called here outside a running loop only while something is pending; with nothing
pending it returns a future of the running loop, which the async tests check.
"""

from __future__ import annotations

import asyncio

import pytest

from tvfeed_async.errors import ConsumerTooSlow, GapError
from tvfeed_async.protocol.bars import Bar
from tvfeed_async.stream import Consumer

T0 = 1663050540


def bar(
    minute: int, close: float = 100.0, symbol: str = "BINANCE:ETHUSDT", closed: bool = False
) -> Bar:
    return Bar(T0 + 60 * minute, 100.0, 101.0, 99.0, close, 1.0, symbol, "1", closed)


def test_closed_bars_come_first_in_order_then_the_latest_forming_bar() -> None:
    consumer = Consumer(10, partial=True, on_gap="raise")
    consumer.push_forming(bar(0, close=1.0))
    consumer.push_forming(bar(0, close=2.0))  # coalesced: replaces the pending one
    consumer.push_closed(bar(0, close=2.0, closed=True))  # closes it: the forming one goes
    consumer.push_forming(bar(1, close=3.0))
    consumer.push_forming(bar(1, close=4.0))
    assert consumer.step() == bar(0, close=2.0, closed=True)
    assert consumer.step() == bar(1, close=4.0)
    assert not consumer._forming
    assert not consumer._closed
    assert not consumer.done


async def test_forming_bars_are_not_queued_without_partial() -> None:
    consumer = Consumer(10, partial=False, on_gap="raise")
    consumer.push_forming(bar(0))
    assert isinstance(consumer.step(), asyncio.Future)  # nothing pending: wait


def test_forming_bars_of_several_series_each_keep_their_latest() -> None:
    consumer = Consumer(10, partial=True, on_gap="raise")
    consumer.push_forming(bar(0, close=1.0, symbol="A:A"))
    consumer.push_forming(bar(0, close=2.0, symbol="B:B"))
    consumer.push_forming(bar(0, close=3.0, symbol="A:A"))
    assert {consumer.step(), consumer.step()} == {
        bar(0, close=3.0, symbol="A:A"),
        bar(0, close=2.0, symbol="B:B"),
    }
    assert not consumer._forming


def test_a_full_queue_ends_the_consumer_after_its_closed_bars() -> None:
    consumer = Consumer(2, partial=False, on_gap="raise")
    for minute in range(3):
        consumer.push_closed(bar(minute, closed=True))
    assert consumer.done
    assert consumer.step() == bar(0, closed=True)
    assert consumer.step() == bar(1, closed=True)
    with pytest.raises(ConsumerTooSlow):
        consumer.step()


async def test_step_gives_a_future_that_completes_with_the_bar_pushed() -> None:
    # The first bar pushed while the consumer waits is handed over as the future's result
    # (not queued); the ones after it queue, and forming ones are coalesced there.
    consumer = Consumer(10, partial=True, on_gap="raise")
    waiter = consumer.step()
    assert isinstance(waiter, asyncio.Future)
    assert not waiter.done()
    consumer.push_forming(bar(0, close=1.0))
    assert waiter.result() == bar(0, close=1.0)
    consumer.push_forming(bar(0, close=2.0))
    consumer.push_forming(bar(0, close=3.0))
    assert consumer.step() == bar(0, close=3.0)
    waiter = consumer.step()
    assert isinstance(waiter, asyncio.Future)
    consumer.push_closed(bar(0, close=3.0, closed=True))
    assert waiter.result() == bar(0, close=3.0, closed=True)
    assert isinstance(consumer.step(), asyncio.Future)  # nothing else was queued


async def test_ending_a_waiting_consumer_completes_its_future_with_none() -> None:
    consumer = Consumer(10, partial=True, on_gap="raise")
    waiter = consumer.step()
    assert isinstance(waiter, asyncio.Future)
    consumer.finish()
    assert waiter.result() is None
    assert consumer.step() is None


@pytest.mark.parametrize("closed", [False, True])
async def test_a_bar_handed_to_a_cancelled_get_is_not_lost(closed: bool) -> None:
    # The bar reaches the waiting future, then the task is cancelled before it runs (e.g. an
    # asyncio.timeout around get()): the bar goes back to the queue.
    consumer = Consumer(10, partial=True, on_gap="raise")
    task = asyncio.create_task(consumer.get())
    await asyncio.sleep(0)
    handed = bar(0, closed=closed)
    if closed:
        consumer.push_closed(handed)
    else:
        consumer.push_forming(handed)
    other = bar(1, symbol="B:B", closed=True)
    consumer.push_closed(other)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # A closed bar goes back in front; a forming one after the closed bars, as always.
    expected = [handed, other] if closed else [other, handed]
    assert [await consumer.get(), await consumer.get()] == expected
    assert isinstance(consumer.step(), asyncio.Future)


async def test_a_forming_bar_given_back_after_its_series_moved_on_is_dropped() -> None:
    consumer = Consumer(10, partial=True, on_gap="raise")
    task = asyncio.create_task(consumer.get())
    await asyncio.sleep(0)
    consumer.push_forming(bar(0, close=1.0))  # handed over
    consumer.push_closed(bar(0, close=2.0, closed=True))  # its series moved on meanwhile
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await consumer.get() == bar(0, close=2.0, closed=True)
    assert isinstance(consumer.step(), asyncio.Future)  # the stale forming bar is gone


async def test_step_gives_none_once_the_consumer_is_finished() -> None:
    consumer = Consumer(10, partial=False, on_gap="raise")
    consumer.push_closed(bar(0, closed=True))
    consumer.finish()
    assert consumer.step() == bar(0, closed=True)  # what was queued still comes out first
    assert consumer.step() is None


async def test_get_waits_and_returns_none_when_finished() -> None:
    consumer = Consumer(10, partial=False, on_gap="raise")
    task = asyncio.create_task(consumer.get())
    await asyncio.sleep(0)
    assert not task.done()
    consumer.push_closed(bar(0, closed=True))
    assert await task == bar(0, closed=True)
    task = asyncio.create_task(consumer.get())
    await asyncio.sleep(0)
    consumer.finish()
    assert await task is None


async def test_a_cancelled_wait_leaves_the_consumer_usable() -> None:
    consumer = Consumer(10, partial=False, on_gap="raise")
    task = asyncio.create_task(consumer.get())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    consumer.push_closed(bar(0, closed=True))  # must not fail on the cancelled waiter
    assert await consumer.get() == bar(0, closed=True)


async def test_fail_wakes_the_waiter_with_the_error() -> None:
    consumer = Consumer(10, partial=False, on_gap="raise")
    task = asyncio.create_task(consumer.get())
    await asyncio.sleep(0)
    consumer.fail(GapError("hole", 1, 2))
    with pytest.raises(GapError):
        await task


async def test_wait_for_room_returns_once_a_closed_bar_is_taken() -> None:
    consumer = Consumer(1, partial=False, on_gap="raise")
    consumer.push_closed(bar(0, closed=True))
    assert consumer.full
    waiting = asyncio.create_task(consumer.wait_for_room())
    await asyncio.sleep(0)
    assert not waiting.done()
    assert consumer.step() == bar(0, closed=True)
    await asyncio.wait_for(waiting, 1.0)


async def test_updates_of_one_bar_while_loading_keep_only_the_latest() -> None:
    """Subscription._pending grows by bars, not by live revisions, during a backfill."""
    from types import SimpleNamespace

    from tvfeed_async.protocol.intervals import Interval
    from tvfeed_async.protocol.messages import parse_message
    from tvfeed_async.protocol.symbols import parse_symbol
    from tvfeed_async.stream import StreamKey, Subscription

    manager = SimpleNamespace(close_grace=0.0)
    key = StreamKey(parse_symbol("BINANCE:BTCUSDT"), Interval("1"))
    subscription = Subscription(manager, key, history=2)  # type: ignore[arg-type]
    session = "cs_aaaaaaaaaaaa"
    for revision in range(1_000):
        text = (
            '{"m":"du","p":["'
            + session
            + '",{"sds_1":{"s":[{"i":5,"v":[1767225600,1,2,0,'
            + str(1 + revision)
            + ',10]}],"t":"s1"}}]}'
        )
        subscription.handle(parse_message(text))
    assert len(subscription._pending) == 1
    assert subscription._pending[0].close == 1_000
