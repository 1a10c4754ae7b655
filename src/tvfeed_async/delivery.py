"""Delivery: from the socket reader to one consumer, for bars, quotes and study rows alike.

Both halves live here:

* the **pushing half**, :class:`Consumer`: a bounded per-consumer queue that the socket reader
  feeds without ever blocking or yielding;
* the **taking half**, :class:`ItemStream` (and :class:`BarStream`, what ``TvFeed.stream``
  and ``stream_many`` return): the async iterator the user's ``async for`` drives.

The overflow policy, the same for every kind of item:

* **Closed items are never dropped.** A closed bar (or a closed study row) is queued until the
  consumer takes it. At most ``max_closed`` may wait: the one after that ends the consumer with
  :class:`~tvfeed_async.errors.ConsumerTooSlow`, raised by its next ``__anext__`` once the
  closed items queued before it were taken. The stream ends rather than lose one, or buffer
  without bound.
* **Forming items are coalesced.** A forming bar, a study row still being revised, or a quote
  update replaces the pending item of the same key (its series, or its symbol), so only the
  latest value of each key waits, keeping the place where the key first became pending. What
  waits is bounded by the number of keys, never by the number of updates: coalescing alone
  never ends a consumer.

Items come out closed first (oldest first), then the pending forming item of each key, in the
order the keys first became pending. A closed item removes the pending forming item of its
key (it supersedes it).

The hand-over: when the consumer waits (its queue is empty), it awaits a bare
:class:`asyncio.Future`, and the first item pushed is handed over as that future's result
without being queued, so a live update costs one task wake-up. The wake-ups of one burst are
batched into one loop callback by the loop's :class:`~tvfeed_async.wakeups.Waker`. A wait that
is cancelled after an item was handed over gives the item back (:meth:`Consumer._give_back`),
so a consumer that goes on after a cancelled ``__anext__`` loses nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Generic, Literal, Protocol, TypeVar

from .errors import ConsumerTooSlow, GapError, TvFeedError
from .protocol.bars import Bar, Gap
from .wakeups import DIRECT, DirectWaker, Waker, waker_for

if TYPE_CHECKING:
    from .stream import StreamManager, Subscription

__all__ = [
    "BARS",
    "BarConsumer",
    "BarStream",
    "Consumer",
    "GapPolicy",
    "ItemKind",
    "ItemStream",
]

logger = logging.getLogger("tvfeed_async.delivery")

T = TypeVar("T")

#: What to do when an outage was longer than the server can backfill: ``"raise"`` ends the
#: stream with :class:`GapError`; a callable is called with the :class:`Gap` and the stream
#: goes on with the items after it.
GapPolicy = Literal["raise"] | Callable[[Gap], None]

# asyncio.Future itself (the C class): loop.create_future() is a Python-level method that
# does only this, and a consumer creates one per live update it waits for.
_Future = asyncio.Future


@dataclass(frozen=True, slots=True)
class ItemKind(Generic[T]):
    """How a consumer tells items of one kind apart.

    Attributes:
        key: the coalescing key of an item: its series for bars and study rows, its symbol
            for quotes. A forming item replaces the pending one of the same key.
        closed: whether an item is closed (final). Only read when a handed-over item is
            given back after a cancelled wait; the reader says which items are closed by
            calling ``push_closed`` or ``push_forming``.
        name: what the item is called in error messages (``"bars"``).
    """

    key: Callable[[T], Hashable]
    closed: Callable[[T], bool]
    name: str


#: Bars (and anything shaped like one: index 6 the symbol, 7 the interval, 8 closed).
BARS: ItemKind[Bar] = ItemKind(key=itemgetter(6, 7), closed=itemgetter(8), name="bars")


class _SeriesKey(Protocol):
    """What a gap report names: a stream key (``stream.StreamKey``)."""

    @property
    def symbol(self) -> _Named: ...

    @property
    def interval(self) -> _Coded: ...


class _Named(Protocol):
    @property
    def full(self) -> str: ...


class _Coded(Protocol):
    @property
    def code(self) -> str: ...


def _release(waiter: asyncio.Future[T | None] | asyncio.Future[None] | None) -> None:
    """Complete ``waiter`` with None if it is still pending (it may have been cancelled)."""
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


def _describe(key: Hashable) -> str:
    if isinstance(key, tuple):
        return " ".join(str(part) for part in key)
    return str(key)


class Consumer(Generic[T]):
    """One consumer's bounded queue; it may be fed by several producers (``stream_many``).

    Closed items queue up to ``max_closed``; forming items are coalesced per key (see the
    module's docstring for the policy).

    Pushing never blocks and never yields: it runs in the socket reader. The consumer waits on
    a bare asyncio future, created only while its queue is empty, and the first item pushed
    while it waits is handed over as that future's result, without queueing. Items pushed after
    the hand-over, before the consumer runs, queue as usual, so a consumer that lags still has
    its forming items coalesced.

    Args:
        max_closed: how many closed items may wait; one more ends the consumer with
            :class:`~tvfeed_async.errors.ConsumerTooSlow`.
        partial: whether forming items are wanted at all (False: ``push_forming`` ignores
            them).
        on_gap: the gap policy (see :meth:`report_gap`).
        kind: how items are keyed (:data:`BARS` by default).
    """

    __slots__ = (
        "_closed",
        "_error",
        "_finished",
        "_forming",
        "_key",
        "_kind",
        "_loop",
        "_no_forming",
        "_room",
        "_waiter",
        "_waker",
        "max_closed",
        "on_gap",
        "partial",
    )

    def __init__(
        self,
        max_closed: int,
        partial: bool = True,
        on_gap: GapPolicy = "raise",
        kind: ItemKind[T] = BARS,  # type: ignore[assignment]
    ) -> None:
        self.max_closed = max_closed
        self.partial = partial
        self.on_gap = on_gap
        self._kind = kind
        self._key = kind.key
        self._closed: deque[T] = deque()
        self._forming: dict[Hashable, T] = {}
        self._error: BaseException | None = None
        self._finished = False
        # While set, the queue is empty and the consumer waits for this future; its result is
        # the next item (handed over by a push) or None (ended: ask step() again).
        self._waiter: asyncio.Future[T | None] | None = None
        self._room: asyncio.Future[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Completes the waiter: the loop's batching Waker, once the consumer first waits.
        self._waker: Waker | DirectWaker = DIRECT
        # True when forming items are not wanted: not partial, or the consumer was ended.
        self._no_forming = not partial

    # ------------------------------------------------------------------ state

    @property
    def full(self) -> bool:
        """True while ``max_closed`` closed items are waiting (the next one would overflow)."""
        return len(self._closed) >= self.max_closed and not self.done

    @property
    def done(self) -> bool:
        """True once the consumer was ended (error, feed closed, or left)."""
        return self._finished or self._error is not None

    @property
    def pending(self) -> int:
        """Items waiting to be taken: closed ones plus one per key with a forming item."""
        return len(self._closed) + len(self._forming)

    async def wait_for_room(self) -> None:
        """Wait until the consumer takes a closed item (or ends).

        Cancelling it leaves the consumer as it was.
        """
        while self.full:
            room = self._room = asyncio.get_running_loop().create_future()
            try:
                await room
            finally:
                self._room = None

    # ------------------------------------------------------------------ the pushing half

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        _release(waiter)

    def _make_room(self) -> None:
        room, self._room = self._room, None
        _release(room)

    def push_closed(self, item: T) -> None:
        """Queue a closed item; never dropped. When ``max_closed`` closed items already wait,
        the consumer is ended with ConsumerTooSlow instead (its next ``get`` raises it once
        the queued ones were taken)."""
        if self.done:
            return
        if len(self._closed) >= self.max_closed:
            self.fail(
                ConsumerTooSlow(
                    f"{_describe(self._key(item))}: {len(self._closed)} closed "
                    f"{self._kind.name} were waiting for this consumer; it is ended rather "
                    "than lose one (consume faster or raise queue_size)"
                )
            )
            return
        if self._forming:
            self._forming.pop(self._key(item), None)
        if not self._hand_over(item):
            self._closed.append(item)

    def _hand_over(self, item: T) -> bool:
        """Give ``item`` to the consumer if it is waiting (then nothing is queued); True if so."""
        waiter = self._waiter
        if waiter is None:
            return False
        self._waiter = None
        if waiter.done():  # cancelled
            return False
        self._waker.set_result(waiter, item)
        return True

    def push_forming(self, item: T) -> None:
        """Replace the pending forming item of the same key (coalescing); dropped when forming
        items are not wanted (``partial=False``, or the consumer was ended)."""
        if self._no_forming:
            return
        waiter = self._waiter
        if waiter is not None:  # _hand_over(), inlined: this runs for every live update
            self._waiter = None
            if not waiter.done():
                self._waker.set_result(waiter, item)
                return
        self._forming[self._key(item)] = item

    def discard(self, key: Hashable) -> None:
        """Drop the pending forming item of ``key``, if any (its producer went away, or the
        consumer built a newer value of it already)."""
        if self._forming:
            self._forming.pop(key, None)

    def report_gap(self, gap: Gap, key: _SeriesKey) -> None:
        """Apply the gap policy: ``"raise"`` ends the consumer with GapError; a callable is
        called with ``gap`` and the consumer goes on."""
        if self.on_gap == "raise":
            self.fail(
                GapError(
                    f"{key.symbol.full} {key.interval.code}: the connection was down longer than "
                    f"the server can backfill; bars between {gap.after} and {gap.before} may be "
                    "missing",
                    gap.after,
                    gap.before,
                )
            )
        elif callable(self.on_gap):
            self.on_gap(gap)

    def fail(self, error: BaseException) -> None:
        """End the consumer with ``error`` (raised by its next ``get`` once the items queued
        before it were taken). Forming items pushed from now on are dropped."""
        if self._error is None and not self._finished:
            self._error = error
            self._no_forming = True
            self._wake()
            self._make_room()

    def finish(self) -> None:
        """End the consumer normally: it gives what was queued, then stops."""
        self._finished = True
        self._no_forming = True
        self._wake()
        self._make_room()

    # ------------------------------------------------------------------ the taking half

    def step(self) -> T | asyncio.Future[T | None] | None:
        """The next pending item; if none is pending, a future to await (its result is the
        next item, or None: then ask again); None once the consumer was finished.

        Closed items come first (oldest first), then the latest forming item of each key.
        One call per item and one per wait, so that a stream (which awaits the future itself,
        without a coroutine in between) costs as little as possible per live update.

        Raises:
            The error the consumer was ended with, once its closed items were taken.
        """
        if self._closed:
            if self._room is not None:
                self._make_room()
            return self._closed.popleft()
        forming = self._forming
        if forming:
            if len(forming) == 1:
                return forming.popitem()[1]
            return forming.pop(next(iter(forming)))
        if self._error is not None:
            raise self._error
        if self._finished:
            return None
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
            self._waker = waker_for(loop) or DIRECT
        waiter: asyncio.Future[T | None] = _Future(loop=loop)
        self._waiter = waiter
        return waiter

    async def get(self) -> T | None:
        """The next item, or None once the consumer was finished.

        Closed items queued before an error are delivered first; then the error is raised.
        Cancelled, it loses nothing: an item handed over just before goes back to the queue.

        Raises:
            ConsumerTooSlow: the consumer let more than ``max_closed`` closed items wait.
            TvFeedError: the error its producer ended it with (GapError, ...).
        """
        while True:
            item = self.step()
            if item is None or item.__class__ is not _Future:
                return item  # type: ignore[return-value]
            waiter: asyncio.Future[T | None] = item
            try:
                got = await waiter
            except asyncio.CancelledError:
                self._give_back(waiter)
                raise
            if got is not None:
                return got

    def _give_back(self, waiter: asyncio.Future[T | None]) -> None:
        """Requeue the item handed over through ``waiter`` when the wait for it was cancelled
        after the hand-over (the task was cancelled before it could run), so that a consumer
        that goes on after a cancelled wait (``asyncio.timeout`` around ``get()``) loses no
        item. A forming item that a newer one of its key already superseded is dropped."""
        if not waiter.done() or waiter.cancelled():
            return
        item = waiter.result()
        if item is None:
            return
        if self._kind.closed(item):
            self._closed.appendleft(item)
            return
        key_of = self._key
        key = key_of(item)
        if key in self._forming or any(key_of(queued) == key for queued in self._closed):
            return
        self._forming[key] = item


class ItemStream(Generic[T]):
    """The async iterator over one :class:`Consumer`.

    ``async for item in stream``; also an async context manager with ``aclose()``. Unlike an
    async generator, a cancelled ``__anext__`` does not end it: ``asyncio.wait_for(anext(
    stream), 0.5)`` timing out leaves it subscribed, and an item handed over just before the
    cancellation is kept for the next call. It ends (StopAsyncIteration) when its consumer is
    finished or after ``aclose()``; an error of the consumer (ConsumerTooSlow, GapError, ...)
    is raised once its closed items were taken, and ends it too. Ending it detaches it from its
    producer once (:meth:`_detach`: here, the consumer is finished).
    """

    __slots__ = ("__weakref__", "_consumer", "_done", "_step")

    def __init__(self, consumer: Consumer[T]) -> None:
        self._consumer = consumer
        self._step = consumer.step
        self._done = False

    @property
    def consumer(self) -> Consumer[T]:
        """The queue this stream takes from."""
        return self._consumer

    def __aiter__(self) -> ItemStream[T]:
        return self

    async def __anext__(self) -> T:
        """The next item.

        Raises:
            StopAsyncIteration: the stream ended (closed, or its feed closed).
            ConsumerTooSlow: more than ``max_closed`` closed items waited for it.
            TvFeedError: the error its producer ended it with.
        """
        try:
            item = self._step()
            while item.__class__ is _Future:
                waiter: asyncio.Future[T | None] = item
                try:
                    # The reader hands the next item over as the future's result (None: ask
                    # again).
                    got = await waiter
                except asyncio.CancelledError:
                    self._consumer._give_back(waiter)
                    raise
                if got is not None:
                    return got
                item = self._step()
            if item is None:
                raise StopAsyncIteration
            return item  # type: ignore[return-value]
        except (StopAsyncIteration, TvFeedError):
            self.close()
            raise

    def close(self) -> None:
        """Detach from the producer now (synchronous; idempotent)."""
        if self._done:
            return
        self._done = True
        self._detach()

    def _detach(self) -> None:
        """Stop the producer feeding this stream's consumer (a subclass knows how)."""
        self._consumer.finish()

    async def aclose(self) -> None:
        """Detach from the producer (idempotent)."""
        self.close()

    async def __aenter__(self) -> ItemStream[T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        # An abandoned stream (a loop left by break, never closed) detaches when collected,
        # as an async generator's finally did.
        if not self._done:
            try:
                self.close()
            except Exception:
                logger.debug("could not detach an abandoned stream", exc_info=True)


class BarConsumer(Consumer[Bar]):
    """The consumer of bars (``stream.Consumer``): keyed by series, the gap policy its own."""

    __slots__ = ()

    def __init__(self, max_closed: int, partial: bool, on_gap: GapPolicy) -> None:
        super().__init__(max_closed, partial, on_gap, BARS)


class BarStream(ItemStream[Bar]):
    """The live bars of one consumer: what ``TvFeed.stream`` and ``stream_many`` return.

    An :class:`ItemStream` of :class:`~tvfeed_async.protocol.bars.Bar`: closed bars exactly
    once, in open-time order per series; with ``partial=True`` the latest forming bar of each
    series too. Ending it (``aclose()``, leaving ``async with``, the end of the feed, an error)
    detaches its consumer from every subscription it was fed by; the last consumer out of a
    subscription removes the server series.
    """

    __slots__ = ("_manager", "_subscriptions")

    def __init__(
        self, manager: StreamManager, subscriptions: list[Subscription], consumer: BarConsumer
    ) -> None:
        super().__init__(consumer)
        self._manager = manager
        self._subscriptions = subscriptions

    def _detach(self) -> None:
        consumer = self._consumer
        assert isinstance(consumer, BarConsumer)
        for subscription in self._subscriptions:
            self._manager.unsubscribe(subscription, consumer)

    def __aiter__(self) -> BarStream:
        return self

    async def __aenter__(self) -> BarStream:
        return self
