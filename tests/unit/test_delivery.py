"""The one delivery mechanism (tvfeed_async.delivery): bars, quotes and study rows through one
Consumer type; closed items never dropped, forming items coalesced, ConsumerTooSlow, order,
cancellation, and a Hypothesis property holding the fast path (hand-over, inlined push) to a
plain reference model.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tvfeed_async.delivery import BARS, BarConsumer, Consumer, ItemKind, ItemStream
from tvfeed_async.errors import ConsumerTooSlow, GapError
from tvfeed_async.protocol.bars import Bar
from tvfeed_async.protocol.quotes import QuoteState
from tvfeed_async.quotes import QUOTE_STATES

T0 = 1663050540


def bar(minute: int, close: float = 1.0, symbol: str = "X:A", closed: bool = False) -> Bar:
    return Bar(T0 + 60 * minute, 1.0, 2.0, 0.5, close, 1.0, symbol, "1", closed)


class StudyPoint(NamedTuple):
    """A study row as a live study stream would deliver it: keyed by study, closed or not."""

    study: str
    timestamp: int
    values: tuple[float, ...]
    closed: bool


STUDY_POINTS: ItemKind[StudyPoint] = ItemKind(
    key=lambda point: point.study, closed=lambda point: point.closed, name="study rows"
)


def quote_state(key: str, last: float) -> QuoteState:
    state = QuoteState(key)
    state.values = {"lp": last}
    return state


def drain(consumer: Consumer[object]) -> list[object]:
    """Every pending item (step() without a running loop only while something is pending)."""
    taken = []
    while consumer.pending:
        taken.append(consumer.step())
    return taken


# ------------------------------------------------------------------ one type for every kind


def test_bars_quotes_and_study_rows_go_through_one_consumer_type() -> None:
    bars = BarConsumer(10, partial=True, on_gap="raise")
    quotes: Consumer[QuoteState] = Consumer(10, True, "raise", QUOTE_STATES)
    studies: Consumer[StudyPoint] = Consumer(10, True, "raise", STUDY_POINTS)
    assert type(bars).__mro__[1] is Consumer
    assert type(quotes) is Consumer
    assert type(studies) is Consumer

    bars.push_forming(bar(0, close=1.0))
    bars.push_forming(bar(0, close=2.0))
    first, second = quote_state("NASDAQ:AAPL", 1.0), quote_state("NASDAQ:AAPL", 2.0)
    quotes.push_forming(first)
    quotes.push_forming(second)
    studies.push_forming(StudyPoint("st1", T0, (1.0,), closed=False))
    studies.push_closed(StudyPoint("st1", T0, (2.0,), closed=True))
    studies.push_forming(StudyPoint("st1", T0 + 60, (3.0,), closed=False))

    assert drain(bars) == [bar(0, close=2.0)]
    assert drain(quotes) == [second]
    assert drain(studies) == [
        StudyPoint("st1", T0, (2.0,), closed=True),
        StudyPoint("st1", T0 + 60, (3.0,), closed=False),
    ]


# ------------------------------------------------------------------ closed never dropped


def test_closed_items_are_never_dropped_and_overflow_ends_the_consumer() -> None:
    consumer = BarConsumer(5, partial=True, on_gap="raise")
    closed = [bar(minute, closed=True) for minute in range(5)]
    for item in closed:
        consumer.push_closed(item)
        consumer.push_forming(bar(99))  # forming updates in between do not count
    assert not consumer.done
    assert consumer.full
    consumer.push_closed(bar(5, closed=True))  # the sixth: no room
    assert consumer.done
    consumer.push_closed(bar(6, closed=True))  # after the end: ignored, not queued
    # Every closed bar queued before the overflow comes out, in order; then the error.
    assert [consumer.step() for _ in range(5)] == closed
    assert consumer.step() == bar(99)  # the forming one pending before the end
    with pytest.raises(ConsumerTooSlow, match="5 closed bars were waiting"):
        consumer.step()


def test_consumer_too_slow_names_the_kind_and_key() -> None:
    studies: Consumer[StudyPoint] = Consumer(1, True, "raise", STUDY_POINTS)
    studies.push_closed(StudyPoint("st7", T0, (1.0,), closed=True))
    studies.push_closed(StudyPoint("st7", T0 + 60, (1.0,), closed=True))
    assert studies.step() == StudyPoint("st7", T0, (1.0,), closed=True)
    with pytest.raises(ConsumerTooSlow, match=r"st7: 1 closed study rows were waiting"):
        studies.step()


def test_forming_items_alone_never_end_a_consumer() -> None:
    quotes: Consumer[QuoteState] = Consumer(1, True, "raise", QUOTE_STATES)
    states = {f"X:S{n}": quote_state(f"X:S{n}", 0.0) for n in range(50)}
    for _ in range(100):
        for state in states.values():
            quotes.push_forming(state)
    assert not quotes.done
    assert quotes.pending == 50  # bounded by the keys, not by the 5,000 updates
    assert drain(quotes) == list(states.values())


# ------------------------------------------------------------------ coalescing and order


def test_forming_items_keep_the_place_their_key_first_took() -> None:
    consumer = BarConsumer(10, partial=True, on_gap="raise")
    consumer.push_forming(bar(0, close=1.0, symbol="X:A"))
    consumer.push_forming(bar(0, close=1.0, symbol="X:B"))
    consumer.push_forming(bar(0, close=2.0, symbol="X:A"))  # replaces, keeps A's place
    consumer.push_closed(bar(0, close=3.0, symbol="X:C", closed=True))
    assert drain(consumer) == [
        bar(0, close=3.0, symbol="X:C", closed=True),  # closed ones first
        bar(0, close=2.0, symbol="X:A"),
        bar(0, close=1.0, symbol="X:B"),
    ]


def test_a_closed_item_supersedes_the_forming_one_of_its_key_only() -> None:
    consumer = BarConsumer(10, partial=True, on_gap="raise")
    consumer.push_forming(bar(0, symbol="X:A"))
    consumer.push_forming(bar(0, symbol="X:B"))
    consumer.push_closed(bar(0, close=5.0, symbol="X:A", closed=True))
    assert drain(consumer) == [bar(0, close=5.0, symbol="X:A", closed=True), bar(0, symbol="X:B")]


def test_discard_drops_the_pending_forming_item_of_a_key() -> None:
    quotes: Consumer[QuoteState] = Consumer(1, True, "raise", QUOTE_STATES)
    quotes.push_forming(quote_state("X:A", 1.0))
    kept = quote_state("X:B", 1.0)
    quotes.push_forming(kept)
    quotes.discard("X:A")
    quotes.discard("X:unknown")
    assert drain(quotes) == [kept]


def test_forming_items_are_dropped_without_partial_and_after_the_end() -> None:
    consumer = BarConsumer(10, partial=False, on_gap="raise")
    consumer.push_forming(bar(0))
    assert consumer.pending == 0
    ended = BarConsumer(10, partial=True, on_gap="raise")
    ended.finish()
    ended.push_forming(bar(0))
    assert ended.pending == 0
    assert ended.step() is None


def test_the_gap_policy_is_the_consumers() -> None:
    from tvfeed_async.protocol.bars import Gap
    from tvfeed_async.protocol.intervals import Interval
    from tvfeed_async.protocol.symbols import parse_symbol
    from tvfeed_async.stream import StreamKey

    key = StreamKey(parse_symbol("X:A"), Interval("1"))
    told: list[Gap] = []
    going_on = BarConsumer(10, partial=False, on_gap=told.append)
    going_on.report_gap(Gap(1, 2), key)
    assert told == [Gap(1, 2)]
    assert not going_on.done
    raising = BarConsumer(10, partial=False, on_gap="raise")
    raising.report_gap(Gap(1, 2), key)
    with pytest.raises(GapError, match="X:A 1"):
        raising.step()


# ------------------------------------------------------------------ waiting and cancellation


async def test_a_waiting_consumer_gets_the_first_item_handed_over() -> None:
    quotes: Consumer[QuoteState] = Consumer(1, True, "raise", QUOTE_STATES)
    task = asyncio.create_task(quotes.get())
    await asyncio.sleep(0)
    state = quote_state("X:A", 1.0)
    quotes.push_forming(state)
    assert quotes.pending == 0  # handed over, not queued
    assert await task is state


@pytest.mark.parametrize("kind", ["bars", "quotes"])
async def test_an_item_handed_to_a_cancelled_get_is_given_back(kind: str) -> None:
    consumer: Consumer[object]
    if kind == "bars":
        consumer = Consumer(10, True, "raise", BARS)  # type: ignore[arg-type]
        item: object = bar(0)
    else:
        consumer = Consumer(10, True, "raise", QUOTE_STATES)  # type: ignore[arg-type]
        item = quote_state("X:A", 1.0)
    task = asyncio.create_task(consumer.get())
    await asyncio.sleep(0)
    consumer.push_forming(item)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await consumer.get() is item
    assert consumer.pending == 0


async def test_a_stream_cancelled_in_anext_stays_usable_and_loses_nothing() -> None:
    consumer: Consumer[StudyPoint] = Consumer(10, True, "raise", STUDY_POINTS)
    stream = ItemStream(consumer)
    point = StudyPoint("st1", T0, (1.0,), closed=True)
    waiting = asyncio.create_task(anext(stream))
    await asyncio.sleep(0)
    consumer.push_closed(point)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert await anext(stream) == point  # given back
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(anext(stream), 0.01)  # nothing else: times out, stays open
    consumer.push_forming(StudyPoint("st1", T0 + 60, (2.0,), closed=False))
    assert await anext(stream) == StudyPoint("st1", T0 + 60, (2.0,), closed=False)
    await stream.aclose()
    assert consumer.done
    with pytest.raises(StopAsyncIteration):
        await anext(stream)


async def test_a_stream_raises_the_error_after_its_closed_items_and_ends() -> None:
    consumer = BarConsumer(2, partial=True, on_gap="raise")
    stream = ItemStream(consumer)
    for minute in range(3):
        consumer.push_closed(bar(minute, closed=True))
    got = [await anext(stream), await anext(stream)]
    assert got == [bar(0, closed=True), bar(1, closed=True)]
    with pytest.raises(ConsumerTooSlow):
        await anext(stream)
    assert stream._done


async def test_async_for_ends_when_the_consumer_finishes() -> None:
    consumer = BarConsumer(10, partial=True, on_gap="raise")
    seen: list[Bar] = []

    async def read() -> None:
        async with ItemStream(consumer) as stream:
            async for item in stream:
                seen.append(item)

    task = asyncio.create_task(read())
    await asyncio.sleep(0)
    consumer.push_closed(bar(0, closed=True))
    await asyncio.sleep(0)
    consumer.push_forming(bar(1))
    consumer.finish()
    await asyncio.wait_for(task, 1.0)
    assert seen == [bar(0, closed=True), bar(1)]


# ------------------------------------------------------------------ the plain reference


class Reference:
    """The delivery policy written plainly: a closed deque, an insertion-ordered dict of
    forming items, and a consumer that is either waiting (its next item is whatever is pushed
    first) or not."""

    def __init__(self, max_closed: int) -> None:
        self.max_closed = max_closed
        self.closed: deque[Bar] = deque()
        self.forming: dict[tuple[str, str], Bar] = {}
        self.ended = False
        self.waiting = False
        self.handed: Bar | None = None

    def push(self, item: Bar) -> None:
        if self.ended:
            return
        key = (item.symbol, item.interval)
        if item.closed:
            if len(self.closed) >= self.max_closed:
                self.ended = True
                return
            self.forming.pop(key, None)
        if self.waiting:
            self.waiting = False
            self.handed = item
        elif item.closed:
            self.closed.append(item)
        else:
            self.forming[key] = item

    def take(self) -> Bar | str | None:
        """An item; "wait" when the consumer must wait; "error" once ended and drained."""
        if self.closed:
            return self.closed.popleft()
        if self.forming:
            return self.forming.pop(next(iter(self.forming)))
        if self.ended:
            return "error"
        self.waiting = True
        return "wait"


operations = st.lists(
    st.one_of(
        st.tuples(st.just("closed"), st.integers(0, 2)),
        st.tuples(st.just("forming"), st.integers(0, 2)),
        st.just(("take", 0)),
        st.just(("cancel", 0)),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(operations, st.integers(1, 4))
def test_the_consumer_delivers_what_the_plain_reference_delivers(
    script: list[tuple[str, int]], max_closed: int
) -> None:
    asyncio.run(_replay(script, max_closed))


async def _replay(script: list[tuple[str, int]], max_closed: int) -> None:
    consumer = BarConsumer(max_closed, partial=True, on_gap="raise")
    reference = Reference(max_closed)
    minutes = [0, 0, 0]
    revision = 0
    waiter: asyncio.Future[Bar | None] | None = None
    delivered: list[Bar] = []
    expected: list[Bar] = []
    for operation, series in script:
        symbol = f"X:S{series}"
        if operation in ("closed", "forming"):
            revision += 1
            if operation == "closed":
                item = bar(minutes[series], revision, symbol, closed=True)
                minutes[series] += 1
                consumer.push_closed(item)
            else:
                item = bar(minutes[series], revision, symbol)
                consumer.push_forming(item)
            reference.push(item)
        elif operation == "take":
            if waiter is not None:
                if waiter.done():  # the consumer's task runs: it gets the handed item
                    got = waiter.result()
                    waiter = None
                    reference.waiting = False
                    if got is None:  # ended while waiting: ask again
                        assert reference.ended
                        continue
                    delivered.append(got)
                    assert reference.handed is not None
                    expected.append(reference.handed)
                    reference.handed = None
                continue
            want = reference.take()
            try:
                step = consumer.step()
            except ConsumerTooSlow:
                assert want == "error"
                continue
            if want == "wait":
                assert isinstance(step, asyncio.Future)
                waiter = step
            else:
                assert isinstance(step, Bar)
                delivered.append(step)
                assert isinstance(want, Bar)
                expected.append(want)
        elif waiter is not None:  # cancel the waiting task: a handed item is given back
            if waiter.done():
                consumer._give_back(waiter)
                handed = reference.handed
                assert handed is not None
                reference.handed = None
                key = (handed.symbol, handed.interval)
                if handed.closed:
                    reference.closed.appendleft(handed)
                elif key not in reference.forming and all(
                    (queued.symbol, queued.interval) != key for queued in reference.closed
                ):
                    reference.forming[key] = handed
            else:
                waiter.cancel()
            reference.waiting = False
            waiter = None
        assert delivered == expected
        assert consumer.pending == len(reference.closed) + len(reference.forming)
        assert consumer.done == reference.ended
    # Closed bars: each delivered at most once, in increasing open time per series.
    closed = [item for item in delivered if item.closed]
    assert len(set(closed)) == len(closed)
    for series in range(3):
        times = [item.timestamp for item in closed if item.symbol == f"X:S{series}"]
        assert times == sorted(times)


# ------------------------------------------------------------------ quotes on the shared consumer


class _NoTasks:
    """A task group stand-in: the quote session task is not needed to feed the consumer."""

    def start_soon(self, *args: object) -> None:
        pass


def quote_subscription(symbols: list[str]) -> tuple[object, list[str]]:
    from tvfeed_async.quotes import QuoteSubscription

    subscription = QuoteSubscription(None, _NoTasks(), [], "regular")  # type: ignore[arg-type]
    subscription.add_now(symbols)
    return subscription, list(subscription.session.keys)


def qsd(subscription: object, key: str, last: float) -> None:
    from tvfeed_async.protocol.messages import QuoteData

    session = subscription.session  # type: ignore[attr-defined]
    subscription.handle(QuoteData(session.session_id, key, "ok", {"lp": last}))  # type: ignore[attr-defined]


async def test_quote_updates_coalesce_per_symbol_in_first_changed_order() -> None:
    subscription, (apple, tesla) = quote_subscription(["NASDAQ:AAPL", "NASDAQ:TSLA"])
    for last in (1.0, 2.0, 3.0):
        qsd(subscription, apple, last)
        qsd(subscription, tesla, 10 * last)
    assert subscription.pending == 2  # type: ignore[attr-defined]
    first = await subscription.next()  # type: ignore[attr-defined]
    second = await subscription.next()  # type: ignore[attr-defined]
    assert (first.symbol, first.last) == ("NASDAQ:AAPL", 3.0)
    assert (second.symbol, second.last) == ("NASDAQ:TSLA", 30.0)
    assert subscription.pending == 0  # type: ignore[attr-defined]


async def test_a_quote_handed_to_a_cancelled_next_is_not_lost() -> None:
    subscription, (apple,) = quote_subscription(["NASDAQ:AAPL"])
    waiting = asyncio.create_task(subscription.next())  # type: ignore[attr-defined]
    await asyncio.sleep(0)
    qsd(subscription, apple, 1.0)  # handed over to the waiting next()
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    quote = await subscription.next()  # type: ignore[attr-defined]
    assert quote.last == 1.0  # given back, and taken once
    assert subscription.pending == 0  # type: ignore[attr-defined]
    subscription.close()  # type: ignore[attr-defined]
    with pytest.raises(StopAsyncIteration):
        await subscription.next()  # type: ignore[attr-defined]


async def test_a_quote_handed_over_is_built_from_the_latest_state_once() -> None:
    subscription, (apple,) = quote_subscription(["NASDAQ:AAPL"])
    waiting = asyncio.create_task(subscription.next())  # type: ignore[attr-defined]
    await asyncio.sleep(0)
    qsd(subscription, apple, 1.0)  # handed over
    qsd(subscription, apple, 2.0)  # before the consumer runs
    assert (await waiting).last == 2.0
    assert subscription.pending == 0  # type: ignore[attr-defined]
