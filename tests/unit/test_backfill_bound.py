"""Subscription._pending is bounded while a backfill is delivered: the consumer it waits for
is ended with ConsumerTooSlow, and no closed bar is dropped for the others."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from tvfeed_async.errors import ConsumerTooSlow
from tvfeed_async.protocol.bars import Bar
from tvfeed_async.protocol.intervals import Interval
from tvfeed_async.protocol.messages import parse_message
from tvfeed_async.protocol.symbols import parse_symbol
from tvfeed_async.stream import Consumer, StreamKey, Subscription

SESSION = "cs_aaaaaaaaaaaa"
T0 = 1_767_225_600


def du(open_time: int) -> object:
    return parse_message(
        '{"m":"du","p":["' + SESSION + '",{"sds_1":{"s":[{"i":5,"v":['
        f"{open_time},1,2,0,1.5,10"
        ']}],"t":"s1"}}]}'
    )


def subscription() -> Subscription:
    manager = SimpleNamespace(close_grace=0.0)
    key = StreamKey(parse_symbol("BINANCE:BTCUSDT"), Interval("1"))
    return Subscription(manager, key, history=2)  # type: ignore[arg-type]


async def test_bars_arriving_during_a_backfill_delivery_end_the_consumer_it_waits_for() -> None:
    sub = subscription()
    slow, keeping_up = Consumer(3, False, "raise"), Consumer(3, False, "raise")
    sub.attach(slow)
    sub.attach(keeping_up)
    for n in range(3):  # the slow consumer's queue is full: the backfill waits for it
        slow.push_closed(Bar(T0 - 60 * (3 - n), 1, 1, 1, 1, 1, "BINANCE:BTCUSDT", "1", True))
    sub._bound_pending()
    for n in range(3):
        sub.handle(du(T0 + 60 * n))
    assert not slow.done  # within the bound: they wait
    sub.handle(du(T0 + 180))  # one more than a queue holds
    assert not keeping_up.done
    assert [slow.step() for _ in range(3)]  # its closed bars first, then the error
    with pytest.raises(ConsumerTooSlow):
        slow.step()
    # Nothing was dropped: every bar that arrived is still pending for the others.
    assert [bar.timestamp for bar in sub._pending] == [T0 + 60 * n for n in range(4)]


async def test_without_a_backfill_delivery_pending_is_not_bounded() -> None:
    sub = subscription()
    consumer = Consumer(2, False, "raise")
    sub.attach(consumer)
    for n in range(10):  # the history of a new series loading
        sub.handle(du(T0 + 60 * n))
    assert len(sub._pending) == 10
    assert not consumer.done
