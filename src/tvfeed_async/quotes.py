"""Live quotes: the async driver of :class:`~tvfeed_async.protocol.quotes.QuoteSession`.

A :class:`QuoteStream` is one quote session on the feed's socket. Its task (in the feed's task
group) creates the session on every socket the supervisor opens, so a reconnect re-subscribes
every watched symbol; the supervisor's reader hands it the session's ``qsd`` and
``quote_completed`` messages, routed by session id, and the pure core merges the deltas.

Delivery is the one of bars (:class:`~tvfeed_async.delivery.Consumer`), with every quote
update a forming item keyed by its symbol: the reader pushes the symbol's merged
:class:`~tvfeed_async.protocol.quotes.QuoteState`, which replaces the pending one of that
symbol, and the consumer builds the :class:`Quote` from it when it takes it. A consumer that
lags therefore gets the latest state of each symbol, once, in the order the symbols first
changed; what waits for it is bounded by the number of symbols watched, never by the number of
updates. Quotes have no closed items, so a slow consumer is never ended with
:class:`~tvfeed_async.errors.ConsumerTooSlow`: it only sees fewer, later values.

Quote sessions are not counted against the socket's chart-session budget
(``Limits.max_chart_sessions``): the bundled simulator counts only chart sessions, and none
of the open clients or captures documents a quote-session cap.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from operator import attrgetter
from types import MappingProxyType, TracebackType
from typing import Any

import anyio
import polars as pl
from anyio.abc import TaskGroup

from .delivery import Consumer, ItemKind
from .errors import ConnectionLost, InvalidRequest, ProtocolError, TvFeedError
from .protocol.client import new_session_id
from .protocol.messages import ClientMessage, CriticalError, QuoteCompleted, QuoteData
from .protocol.quotes import QuoteSession, QuoteState, delay_seconds, quote_fields, quote_key
from .protocol.symbols import SymbolLike, parse_symbol
from .supervisor import Link, Supervisor

__all__ = [
    "QUOTE_SCHEMA",
    "Quote",
    "QuoteStream",
    "QuoteSubscription",
    "check_fields",
    "quote_fields",
    "quote_from_state",
    "quotes_frame",
]

logger = logging.getLogger("tvfeed_async.quotes")

# asyncio.Future itself: what Consumer.step() returns to wait on.
_Future = asyncio.Future

#: Quote updates: keyed by their symbol's key, never closed (only the latest state matters).
QUOTE_STATES: ItemKind[QuoteState] = ItemKind(
    key=attrgetter("key"), closed=lambda state: False, name="quote updates"
)


#: The schema of :meth:`TvFeed.get_quotes` frames, one row per symbol asked for.
QUOTE_SCHEMA: dict[str, pl.DataType] = {
    "symbol": pl.String(),
    "last": pl.Float64(),
    "bid": pl.Float64(),
    "ask": pl.Float64(),
    "volume": pl.Float64(),
    "change": pl.Float64(),
    "change_percent": pl.Float64(),
    "currency": pl.String(),
    "time": pl.Datetime("us", "UTC"),
    "update_mode": pl.String(),
    "delayed": pl.Boolean(),
    "session": pl.String(),
    "error": pl.String(),
}


@dataclass(frozen=True, slots=True, repr=False)
class Quote:
    """The complete, merged quote of one symbol at one moment (immutable).

    It holds a copy of every field received (``raw``); the named values are read from it
    on access, so that building a quote per update costs one dict copy.

    Attributes:
        symbol: ``EXCHANGE:TICKER`` as asked for.
        session: ``"regular"`` or ``"extended"`` (``extended_session=True``).
        error: why the server has no quote (``qsd`` status ``error``: unknown or forbidden
            symbol); every value is then None.
        raw: every field received, as the server named them (read-only).
        last: last trade price (``lp``).
        bid, ask: best bid and ask.
        volume: the day's volume (None for symbols without volume).
        change, change_percent: against the previous daily close (``ch``, ``chp``).
        currency: the quote currency (``currency_code``).
        time: UTC time of the last trade (``lp_time``).
        update_mode: the server's word for how fresh the values are: ``"streaming"`` (real
            time), ``"delayed_streaming_900"`` (15 minutes late), ``"endofday"``...
        delayed: True unless ``update_mode`` says real time.
        delay: seconds the values lag (0: real time; None: the server does not say).
    """

    symbol: str
    session: str
    error: str | None
    raw: Mapping[str, object] = field(hash=False)

    @property
    def last(self) -> float | None:
        """Last trade price (``lp``)."""
        return _number(self.raw.get("lp"))

    @property
    def bid(self) -> float | None:
        """Best bid."""
        return _number(self.raw.get("bid"))

    @property
    def ask(self) -> float | None:
        """Best ask."""
        return _number(self.raw.get("ask"))

    @property
    def volume(self) -> float | None:
        """The day's volume."""
        return _number(self.raw.get("volume"))

    @property
    def change(self) -> float | None:
        """Change against the previous daily close (``ch``)."""
        return _number(self.raw.get("ch"))

    @property
    def change_percent(self) -> float | None:
        """Change in percent (``chp``)."""
        return _number(self.raw.get("chp"))

    @property
    def currency(self) -> str | None:
        """Quote currency (``currency_code``)."""
        value = self.raw.get("currency_code")
        return value if isinstance(value, str) else None

    @property
    def time(self) -> datetime | None:
        """UTC time of the last trade (``lp_time``)."""
        return _time(self.raw.get("lp_time"))

    @property
    def update_mode(self) -> str | None:
        """``streaming``, ``delayed_streaming_<seconds>``, ``endofday``... (None: not sent)."""
        value = self.raw.get("update_mode")
        return value if isinstance(value, str) else None

    @property
    def delayed(self) -> bool:
        """True unless ``update_mode`` says real time (``streaming``)."""
        return self.raw.get("update_mode") != "streaming"

    @property
    def delay(self) -> int | None:
        """Seconds the values lag real time (0: real time; None: the server does not say)."""
        return delay_seconds(self.raw.get("update_mode"))

    def __repr__(self) -> str:
        if self.error is not None:
            return f"Quote({self.symbol!r}, error={self.error!r})"
        return (
            f"Quote({self.symbol!r}, last={self.last!r}, bid={self.bid!r}, ask={self.ask!r}, "
            f"volume={self.volume!r}, change_percent={self.change_percent!r}, "
            f"time={self.time!r}, update_mode={self.update_mode!r})"
        )


def _number(value: object) -> float | None:
    if value.__class__ is float:
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _time(value: object) -> datetime | None:
    seconds = _number(value)
    if seconds is None or not 0 <= seconds < 4_102_444_800:  # year 2100: not believed
        return None
    return datetime.fromtimestamp(seconds, UTC)


def quote_from_state(symbol: str, session: str, state: QuoteState) -> Quote:
    """The :class:`Quote` of a merged state (a copy: later updates do not change it)."""
    return Quote(symbol, session, state.error, MappingProxyType(state.values.copy()))


def quotes_frame(quotes: Sequence[Quote]) -> pl.DataFrame:
    """One row per quote, :data:`QUOTE_SCHEMA` (an error row has only symbol, session and
    error set)."""
    columns: dict[str, list[Any]] = {name: [] for name in QUOTE_SCHEMA}
    for quote in quotes:
        columns["symbol"].append(quote.symbol)
        columns["last"].append(quote.last)
        columns["bid"].append(quote.bid)
        columns["ask"].append(quote.ask)
        columns["volume"].append(quote.volume)
        columns["change"].append(quote.change)
        columns["change_percent"].append(quote.change_percent)
        columns["currency"].append(quote.currency)
        columns["time"].append(quote.time)
        columns["update_mode"].append(quote.update_mode)
        columns["delayed"].append(None if quote.error else quote.delayed)
        columns["session"].append(quote.session)
        columns["error"].append(quote.error)
    return pl.DataFrame(columns, schema=QUOTE_SCHEMA)


class QuoteSubscription:
    """One quote session: the supervisor's route for it, its task, and the one consumer's
    coalescing queue. :class:`QuoteStream` is the handle users hold; this object is kept
    alive by its task, so that a stream abandoned without ``aclose()`` can still be
    collected (and then ends this)."""

    def __init__(
        self,
        supervisor: Supervisor,
        task_group: TaskGroup,
        fields: Sequence[str],
        session: str,
        exchange: str | None = None,
    ) -> None:
        self._supervisor = supervisor
        self._session_name = session
        self._exchange = exchange
        self.session = QuoteSession(new_session_id("qs"), fields)
        #: key -> EXCHANGE:TICKER
        self._names: dict[str, str] = {}
        # Bounded by the symbols watched: every item is a forming one (coalesced per key).
        self._consumer: Consumer[QuoteState] = Consumer(1, True, "raise", QUOTE_STATES)
        self._progress = anyio.Event()
        self._snapshot_waiters = 0
        self._lost = anyio.Event()
        self._link: Link | None = None
        self._route: str | None = None
        self._send_lock = anyio.Lock()
        self._error: TvFeedError | None = None
        self._finished = False
        self._scope = anyio.CancelScope()
        #: qsd messages merged (the benchmark's count of updates that reached the client).
        self.updates = 0
        task_group.start_soon(self._run)

    # ------------------------------------------------------------------ symbols

    def _keys(self, symbols: Iterable[SymbolLike] | str) -> dict[str, str]:
        if isinstance(symbols, str):
            symbols = [symbols]
        keys: dict[str, str] = {}
        for symbol in symbols:
            full = parse_symbol(symbol, self._exchange).full
            keys[quote_key(full, self._session_name)] = full
        return keys

    @property
    def symbols(self) -> list[str]:
        """The watched symbols (``EXCHANGE:TICKER``), in the order they were added."""
        return [self._names[key] for key in self.session.keys]

    def add_now(self, symbols: Iterable[SymbolLike] | str) -> list[ClientMessage]:
        """Watch ``symbols`` too (bookkeeping only); returns what must be sent."""
        keys = self._keys(symbols)
        self._names.update(keys)
        return self.session.add(keys)

    async def add(self, symbols: Iterable[SymbolLike] | str) -> None:
        """Watch more symbols; their snapshots follow. Symbols watched already are ignored.

        Raises:
            InvalidSymbol: a malformed symbol (nothing is added).
        """
        messages = self.add_now(symbols)
        async with self._send_lock:
            await self._send(messages)

    async def remove(self, symbols: Iterable[SymbolLike] | str) -> None:
        """Stop watching symbols (unknown ones are ignored); a quote of theirs that was
        waiting for the consumer is dropped.

        Raises:
            InvalidSymbol: a malformed symbol (nothing is removed).
        """
        keys = self._keys(symbols)
        async with self._send_lock:
            messages = self.session.remove(keys)
            for key in keys:
                self._names.pop(key, None)
                self._consumer.discard(key)
            await self._send(messages)

    async def _send(self, messages: list[ClientMessage]) -> None:
        link = self._link
        if link is None or link.closed or not messages:
            return  # the next socket's session is opened with every watched symbol
        # Shielded (and bounded): the bookkeeping is done, so a cancelled caller must not
        # leave the server without the change until the next reconnect.
        with anyio.CancelScope(shield=True), anyio.move_on_after(self._supervisor.timeouts.send):
            try:
                for message in messages:
                    await link.send(message)
            except ConnectionLost:
                logger.debug("socket closed before a quote change went out; resent on the next")

    # ------------------------------------------------------------------ route callbacks

    def handle(self, message: object) -> None:
        """A message of this stream's session (called from the socket reader)."""
        cls = message.__class__
        if cls is QuoteData:
            state = self.session.receive(message)  # type: ignore[arg-type]
            if state is None:
                return
            self.updates += 1
            self._consumer.push_forming(state)
            if state.completed:
                self._notify()
        elif cls is QuoteCompleted:
            if self.session.receive(message) is not None:  # type: ignore[arg-type]
                self._notify()
        elif isinstance(message, CriticalError):
            self._fail(
                ProtocolError(
                    f"quote session refused by the server ({message.message}; {message.detail})"
                )
            )

    def connection_lost(self, error: TvFeedError) -> None:
        """The socket died: the task re-creates the session on the next one."""
        self._lost.set()
        self._notify()

    def _notify(self) -> None:
        """Wake every snapshot() waiting for progress (none waits: nothing to do; a new
        anyio.Event per quote update cost more than the rest of its delivery)."""
        if not self._snapshot_waiters:
            return
        progress, self._progress = self._progress, anyio.Event()
        progress.set()

    def _fail(self, error: TvFeedError) -> None:
        if self._error is None and not self._finished:
            self._error = error
            self._consumer.fail(error)
        self._notify()
        self._scope.cancel()

    def _finish(self) -> None:
        self._finished = True
        self._consumer.finish()
        self._notify()

    # ------------------------------------------------------------------ the session task

    async def _run(self) -> None:
        supervisor = self._supervisor
        with self._scope:
            try:
                while True:
                    link = await supervisor.wait_link()
                    async with self._send_lock:
                        self._drop_route()
                        session_id = new_session_id("qs")
                        self._lost = anyio.Event()
                        self._link, self._route = link, session_id
                        supervisor.add_route(session_id, self)
                        messages = self.session.reopen(session_id)
                        try:
                            for message in messages:
                                await link.send(message)
                        except ConnectionLost:
                            continue
                    self._notify()  # snapshots restart: waiters look again
                    await self._lost.wait()
            except TvFeedError as error:
                self._fail(error)
            finally:
                wait = self._supervisor.timeouts.session_delete
                with anyio.CancelScope(shield=True), anyio.move_on_after(wait):
                    await self._delete_session()
                self._finish()

    def _drop_route(self) -> None:
        route, self._route = self._route, None
        if route is not None:
            self._supervisor.remove_route(route)

    async def _delete_session(self) -> None:
        link = self._link
        self._drop_route()
        self._link = None
        if link is None or link.closed or self._supervisor.fatal_error is not None:
            return
        try:
            for message in self.session.close():
                await link.send(message)
        except ConnectionLost:
            pass

    # ------------------------------------------------------------------ consumer side

    async def next(self) -> Quote:
        """The next changed symbol's quote (see :class:`QuoteStream`).

        Raises:
            StopAsyncIteration: the stream ended (closed, or the feed closed).
            TvFeedError: the stream's error (the feed gave up reconnecting).
        """
        consumer = self._consumer
        step = consumer.step
        state: QuoteState
        while True:
            # Consumer.get() without its coroutine: the future is awaited here (one coroutine
            # less per quote), and given back if the wait is cancelled after a hand-over.
            item = step()
            if item.__class__ is _Future:
                waiter: asyncio.Future[QuoteState | None] = item
                try:
                    got = await waiter
                except asyncio.CancelledError:
                    consumer._give_back(waiter)
                    raise
                if got is None:
                    continue  # ended: step() says how
                state = got
                # The quote is built from the latest state: a newer update of the symbol
                # that queued after this state was handed over is in it already.
                consumer.discard(state.key)
            elif item is None:
                raise StopAsyncIteration
            else:
                state = item  # type: ignore[assignment]
            key = state.key
            name = self._names.get(key)
            if name is None or self.session.states.get(key) is not state:
                continue  # removed meanwhile
            return quote_from_state(name, self._session_name, state)

    async def snapshot(self) -> list[Quote]:
        """Wait until every watched symbol has its snapshot (or error) on the current
        socket, and return their quotes in the order they were added. Quotes waiting for
        ``async for`` are left as they are.

        Raises:
            TvFeedError: the stream ended with an error (the feed gave up reconnecting).
            ConnectionLost: the stream ended (feed closed) before the snapshots arrived.
        """
        while True:
            if self._error is not None:
                raise self._error
            if self._finished:
                raise ConnectionLost("the quote stream ended before its snapshots arrived")
            progress = self._progress
            live = self._route is not None and not self._lost.is_set()
            if live and self.session.all_completed():
                return [
                    quote_from_state(self._names[key], self._session_name, state)
                    for key, state in self.session.states.items()
                ]
            self._snapshot_waiters += 1
            try:
                await progress.wait()
            finally:
                self._snapshot_waiters -= 1

    @property
    def pending(self) -> int:
        """Symbols whose latest quote waits for the consumer."""
        return self._consumer.pending

    @property
    def connected(self) -> bool:
        """True while the session is open on a live socket."""
        return self._route is not None and not self._lost.is_set()

    @property
    def finished(self) -> bool:
        """True once :meth:`close` was called."""
        return self._finished

    def close(self) -> None:
        """End the stream now (synchronous; the session task deletes the server session)."""
        self._finished = True
        self._consumer.finish()
        self._notify()
        self._scope.cancel()


class QuoteStream:
    """Live quotes of a set of symbols: what ``TvFeed.stream_quotes`` returns.

    ``async for quote in stream`` yields the complete quote of one symbol after it changed
    (the first one is its snapshot). Symbols that changed while the consumer was busy are
    yielded once each, with their latest state, in the order they first changed. A symbol
    the server has no quotes for is yielded once with ``quote.error`` set; the others go on.

    Also an async context manager; ``aclose()`` (or leaving ``async with``) ends it and
    deletes the server session; a stream abandoned with ``break`` does so when it is
    garbage-collected. It ends (StopAsyncIteration) when the feed closes; it raises the
    feed's error when the feed gave up reconnecting. A cancelled ``__anext__`` loses
    nothing.
    """

    __slots__ = ("__weakref__", "_subscription")

    def __init__(self, subscription: QuoteSubscription) -> None:
        self._subscription = subscription

    @property
    def symbols(self) -> list[str]:
        """The watched symbols (``EXCHANGE:TICKER``), in the order they were added."""
        return self._subscription.symbols

    @property
    def session(self) -> QuoteSession:
        """The quote session's state (merged fields per symbol key)."""
        return self._subscription.session

    @property
    def updates(self) -> int:
        """``qsd`` messages merged so far (what reached the client, coalesced or not)."""
        return self._subscription.updates

    @property
    def pending(self) -> int:
        """Symbols whose latest quote waits to be taken (at most the number watched)."""
        return self._subscription.pending

    @property
    def connected(self) -> bool:
        """True while the quote session is open on a live socket."""
        return self._subscription.connected

    @property
    def closed(self) -> bool:
        """True once the stream was closed (``close``, ``aclose``, leaving ``async with``)."""
        return self._subscription.finished

    async def add(self, symbols: Iterable[SymbolLike] | str) -> None:
        """Watch more symbols; their snapshots follow. Symbols watched already are ignored.
        Cancelling it does not undo the change (it is sent anyway, within a few seconds).

        Raises:
            InvalidSymbol: a malformed symbol (nothing is added).
        """
        await self._subscription.add(symbols)

    async def remove(self, symbols: Iterable[SymbolLike] | str) -> None:
        """Stop watching symbols (unknown ones are ignored); a quote of theirs that was
        waiting to be taken is dropped. Cancelling it does not undo the change.

        Raises:
            InvalidSymbol: a malformed symbol (nothing is removed).
        """
        await self._subscription.remove(symbols)

    async def snapshot(self) -> list[Quote]:
        """Wait until every watched symbol has its snapshot (or error) on the current
        socket; their quotes in the order they were added (what ``get_quotes`` uses).

        Raises:
            TvFeedError: the stream ended with an error (the feed gave up reconnecting).
            ConnectionLost: the stream ended (feed closed) before the snapshots arrived.
        """
        return await self._subscription.snapshot()

    def __aiter__(self) -> QuoteStream:
        return self

    def __anext__(self) -> Coroutine[Any, Any, Quote]:
        return self._subscription.next()

    def close(self) -> None:
        """End the stream now (synchronous; idempotent)."""
        self._subscription.close()

    async def aclose(self) -> None:
        """End the stream and delete its server session (idempotent)."""
        self._subscription.close()

    async def __aenter__(self) -> QuoteStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._subscription.close()

    def __del__(self) -> None:
        # The subscription's task keeps it alive; an abandoned handle ends it.
        self._subscription.close()


def check_fields(fields: Iterable[str] | str) -> list[str]:
    """The extra field names asked for, checked.

    Raises:
        InvalidRequest: an empty name.
    """
    if isinstance(fields, str):
        fields = [fields]
    names = list(fields)
    for name in names:
        if not name:
            raise InvalidRequest(f"quote fields must be non-empty strings, not {name!r}")
    return names
