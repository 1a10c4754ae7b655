"""``FeedPool``: many series over several sockets and accounts, with ``TvFeed``'s API.

One :class:`~tvfeed_async.feed.TvFeed` is one socket. A socket holds at most
``Limits.max_chart_sessions`` chart sessions (every live series and every running history
request holds one), and a token says in its ``max_connections`` claim how many sockets its
account may open. A pool opens one ``TvFeed`` per socket and places each live series on a
socket that still has room (``series_per_socket``), opening a new socket of the least used
account when every open one is full, up to ``max_sockets`` per account (and never more than
the token's ``max_connections``).

Each socket is a whole ``TvFeed``: it reconnects and backfills its own streams, and its failure
never touches the other sockets' streams. History requests and quote snapshots go to the open
socket with the fewest series.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import itertools
import json
import logging
import weakref
from collections import deque
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, Unpack

from .config import Endpoints, Limits, RetryPolicy, Timeouts
from .errors import InvalidRequest, TvFeedError
from .events import EVENT_QUEUE, Event, FeedHealth, StreamHealth
from .governor import Governor
from .protocol.bars import Bar
from .protocol.intervals import Interval, IntervalLike
from .protocol.symbols import Symbol, SymbolLike, parse_symbol
from .stats import FeedStats
from .validation import HistoryOptions, stream_specs, symbol_list

if TYPE_CHECKING:
    import polars as pl

    from .auth import SessionCache
    from .delivery import GapPolicy
    from .feed import StreamSpec, TvFeed
    from .history import HistoryResult, SymbolInfo
    from .protocol.studies import ScriptSummary
    from .quotes import Quote, QuoteStream
    from .search import SearchResult
    from .stream import BarStream

__all__ = ["FeedPool", "PoolEvent", "PoolEventStream", "PoolHealth", "PoolStream", "SocketHealth"]

logger = logging.getLogger("tvfeed_async.pool")

_CREDENTIAL_FIELDS = frozenset(
    {
        "username",
        "password",
        "totp_secret",
        "totp_code",
        "auth_token",
        "sessionid",
        "sessionid_sign",
    }
)
#: Chart sessions per socket left free for history requests when ``series_per_socket`` is
#: not given (at most this many, and never more than half the socket).
_HISTORY_HEADROOM = 16

#: (symbol, interval code, session, adjustment, back_adjusted): one server series.
_SeriesKey = tuple[str, str, str, str, bool]


@dataclass(frozen=True, slots=True)
class PoolEvent(Event):
    """An :class:`~tvfeed_async.events.Event` of one of the pool's sockets.

    Attributes:
        socket: the socket's number in the pool (``PoolHealth.sockets[i].socket``).
        account: the account's index in the ``accounts`` given (0 with one account).
    """

    socket: int = 0
    account: int = 0


@dataclass(frozen=True, slots=True)
class SocketHealth:
    """One socket of the pool.

    Attributes:
        socket: its number in the pool (counts up; a closed socket's number is not reused).
        account: the index of its account.
        series: live series placed on it.
        health: its own :meth:`TvFeed.health` (None while it opens).
        error: why it failed to open, if it did.
    """

    socket: int
    account: int
    series: int
    health: FeedHealth | None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PoolHealth:
    """``FeedPool.health()``: the sockets, and the figures of :class:`FeedHealth` over all.

    Attributes:
        connected: every open socket is connected.
        sockets_connected: how many are.
        reconnects: reconnections, summed over the sockets.
        last_data_age: the largest of the sockets' ``last_data_age`` (the most stale one).
        last_error, last_error_time: the latest error of any socket.
        symbols_monitored: distinct symbols of the live series, over all sockets.
        streams: every live series, over all sockets.
        sockets: one entry per socket.
    """

    connected: bool
    sockets_connected: int
    reconnects: int
    last_data_age: float | None
    last_error: str | None
    last_error_time: datetime | None
    symbols_monitored: int
    streams: list[StreamHealth] = field(default_factory=list)
    sockets: list[SocketHealth] = field(default_factory=list)


class _Socket:
    """One ``TvFeed`` of the pool and the series placed on it."""

    def __init__(self, number: int, account: int, feed: TvFeed) -> None:
        self.number = number
        self.account = account
        self.feed = feed
        self.series: dict[_SeriesKey, int] = {}  # key -> streams using it
        #: Quote streams placed here (weak: a stream dropped without closing still ends).
        self.quotes: weakref.WeakSet[QuoteStream] = weakref.WeakSet()
        self.ready = asyncio.Event()
        self.error: BaseException | None = None
        self.opener: asyncio.Task[None] | None = None

    @property
    def open(self) -> bool:
        return self.ready.is_set() and self.error is None

    @property
    def quote_symbols(self) -> int:
        """Symbols watched by the open quote streams placed here."""
        return sum(len(stream.symbols) for stream in list(self.quotes) if not stream.closed)

    async def start(self) -> None:
        try:
            await self.feed.__aenter__()
        except BaseException as error:
            self.error = error
            raise
        finally:
            self.ready.set()

    async def wait(self) -> TvFeed:
        await self.ready.wait()
        if isinstance(self.error, asyncio.CancelledError):
            raise RuntimeError("the pool closed before this socket opened")
        if self.error is not None:
            raise self.error
        return self.feed


def _token_claims(feed: TvFeed) -> Mapping[str, Any]:
    """The JWT claims of the token ``feed`` signed in with (empty when anonymous or not a JWT).

    Read without checking the signature, as ``auth.AuthSession.from_token`` reads the plan.
    """
    auth = getattr(feed, "_auth", None)  # TvFeed keeps its AuthSession there (feed.py)
    token = getattr(auth, "token", None)
    if not isinstance(token, str) or token.count(".") != 2:
        return {}
    payload = token.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, UnicodeDecodeError):
        return {}
    return claims if isinstance(claims, dict) else {}


def _add_stats(total: FeedStats, one: FeedStats) -> FeedStats:
    values: dict[str, Any] = {}
    for item in dataclasses.fields(FeedStats):
        mine, theirs = getattr(total, item.name), getattr(one, item.name)
        if isinstance(mine, dict):
            merged = dict(mine)
            for name, count in theirs.items():
                merged[name] = merged.get(name, 0) + count
            values[item.name] = merged
        else:
            values[item.name] = mine + theirs
    return FeedStats(**values)


class FeedPool:
    """Several ``TvFeed`` sockets, over one or several accounts, behind ``TvFeed``'s API.

    Args:
        accounts: one mapping of ``TvFeed`` credential arguments per account
            (``{"username": ..., "password": ...}``, ``{"auth_token": ...}``...). Empty
            (the default): one account, anonymous unless ``use_env`` finds credentials.
        series_per_socket: live series placed on one socket before the next one opens
            (default: ``limits.max_chart_sessions`` less room for history requests).
        max_sockets: sockets one account may open (default: the token's
            ``max_connections`` claim, else 50); never more than that claim.
        endpoints, timeouts, retry, limits, session_cache, use_env: as for ``TvFeed``, for
            every socket.

    Example::

        async with FeedPool([{"auth_token": a}, {"auth_token": b}]) as pool:
            async for bar in pool.stream_many(symbols, interval="1"):
                ...
    """

    def __init__(
        self,
        accounts: Sequence[Mapping[str, str | None]] = (),
        *,
        series_per_socket: int | None = None,
        max_sockets: int | None = None,
        endpoints: Endpoints | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        limits: Limits | None = None,
        session_cache: SessionCache | bool | None = True,
        use_env: bool = True,
    ) -> None:
        self._accounts: list[dict[str, Any]] = [dict(account) for account in accounts] or [{}]
        for account in self._accounts:
            unknown = set(account) - _CREDENTIAL_FIELDS
            if unknown:
                raise InvalidRequest(f"unknown credential fields: {', '.join(sorted(unknown))}")
        self.limits = limits or Limits()
        if series_per_socket is None:
            sessions = self.limits.max_chart_sessions
            series_per_socket = max(1, sessions - min(_HISTORY_HEADROOM, sessions // 2))
        _check_count(series_per_socket, "series_per_socket")
        if max_sockets is not None:
            _check_count(max_sockets, "max_sockets")
        if series_per_socket > self.limits.max_chart_sessions:
            raise InvalidRequest(
                f"series_per_socket ({series_per_socket}) is above "
                f"limits.max_chart_sessions ({self.limits.max_chart_sessions})"
            )
        self.series_per_socket = series_per_socket
        self._max_sockets = max_sockets
        self._options: dict[str, Any] = {
            "endpoints": endpoints,
            "timeouts": timeouts,
            "retry": retry,
            "limits": self.limits,
            "session_cache": session_cache,
            "use_env": use_env,
        }
        # One governor per account: the server's session rate limit is not per socket, so the
        # sockets of one account share their pace (governor.py).
        self.governors = [Governor.from_limits(self.limits) for _ in self._accounts]
        self._sockets: list[_Socket] = []
        self._numbers = itertools.count()
        self._socket_caps: dict[int, int] = {}
        self._watchers: set[PoolEventStream] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._state = "new"

    def __repr__(self) -> str:
        return f"<FeedPool {self._state} sockets={len(self._sockets)} series={self.series_count}>"

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        """Open one socket per account (a sign-in or connection failure raises here)."""
        if self._state != "new":
            raise RuntimeError("a FeedPool can be entered only once; create a new one")
        self._state = "opening"
        try:
            sockets = [self._new_socket(account) for account in range(len(self._accounts))]
            for socket in sockets:
                await socket.wait()
                self._read_cap(socket)
        except BaseException:
            await self._shutdown()
            raise
        self._state = "open"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._shutdown()

    async def aclose(self) -> None:
        """Close every socket (every stream of the pool ends)."""
        await self._shutdown()

    async def _shutdown(self) -> None:
        self._state = "closed"
        for watcher in list(self._watchers):
            watcher.close()
        tasks, self._tasks = set(self._tasks), set()
        for task in tasks:
            task.cancel()
        sockets = list(self._sockets)
        openers = {s.opener for s in sockets if s.opener is not None and not s.opener.done()}
        for opener in openers:
            opener.cancel()  # a socket still connecting gives up; TvFeed cleans up after itself
        if openers:
            await asyncio.wait(openers)
        await asyncio.gather(*(socket.feed.aclose() for socket in sockets))
        if tasks:
            await asyncio.wait(tasks)

    def _check_open(self) -> None:
        if self._state != "open":
            raise RuntimeError(
                f"use the pool inside 'async with FeedPool(...) as pool:' (it is {self._state})"
            )

    # ------------------------------------------------------------------ sockets

    def _new_socket(self, account: int) -> _Socket:
        from .feed import TvFeed

        feed = TvFeed(**self._accounts[account], **self._options, governor=self.governors[account])
        socket = _Socket(next(self._numbers), account, feed)
        self._sockets.append(socket)
        socket.opener = asyncio.get_running_loop().create_task(
            self._open_socket(socket), name=f"tvfeed-pool-socket-{socket.number}"
        )
        return socket

    async def _open_socket(self, socket: _Socket) -> None:
        try:
            await socket.start()
        except Exception as error:  # noqa: BLE001 (kept on the socket; its streams raise it)
            logger.warning(
                "socket %d (account %d) failed to open: %s", socket.number, socket.account, error
            )
            return
        self._read_cap(socket)
        for watcher in list(self._watchers):
            watcher.attach(socket)

    def _read_cap(self, socket: _Socket) -> None:
        if socket.account in self._socket_caps:
            return
        cap = self._max_sockets or 50
        claimed = _token_claims(socket.feed).get("max_connections")
        if isinstance(claimed, int) and not isinstance(claimed, bool) and claimed > 0:
            cap = min(cap, claimed)
        self._socket_caps[socket.account] = cap

    def _cap(self, account: int) -> int:
        return self._socket_caps.get(account, self._max_sockets or 50)

    def _place(self, key: _SeriesKey) -> _Socket:
        """The socket for a new stream of ``key``, opening one if every socket is full."""
        for socket in self._sockets:
            if key in socket.series and socket.error is None:
                return socket
        usable = [socket for socket in self._sockets if socket.error is None]
        with_room = [s for s in usable if len(s.series) < self.series_per_socket]
        if with_room:
            return min(with_room, key=lambda s: (len(s.series), s.number))
        # Drop sockets that failed to open and hold nothing, so that a new one can take
        # their account's place.
        for socket in [s for s in self._sockets if s.error is not None and not s.series]:
            self._sockets.remove(socket)
        per_account = [
            sum(1 for s in self._sockets if s.account == account)
            for account in range(len(self._accounts))
        ]
        candidates = [a for a, count in enumerate(per_account) if count < self._cap(a)]
        if not candidates:
            total = sum(self._cap(account) for account in range(len(self._accounts)))
            raise InvalidRequest(
                f"the pool is full: {total} sockets of {self.series_per_socket} series each"
            )
        account = min(candidates, key=lambda a: (per_account[a], a))
        logger.info("opening socket %d on account %d", len(self._sockets), account)
        return self._new_socket(account)

    def _open_sockets(self) -> list[_Socket]:
        self._check_open()
        open_sockets = [socket for socket in self._sockets if socket.open]
        if not open_sockets:
            raise RuntimeError("the pool has no open socket")
        return open_sockets

    def _history_socket(self) -> TvFeed:
        return min(self._open_sockets(), key=lambda s: (len(s.series), s.number)).feed

    def _quote_socket(self) -> _Socket:
        """The open socket watching the fewest quote symbols (then: the fewest series)."""
        return min(self._open_sockets(), key=lambda s: (s.quote_symbols, len(s.series), s.number))

    def _release(self, socket: _Socket, key: _SeriesKey) -> None:
        count = socket.series.get(key, 0) - 1
        if count <= 0:
            socket.series.pop(key, None)
        else:
            socket.series[key] = count

    async def wait_open(self) -> None:
        """Wait until every socket that is opening has opened (or failed to)."""
        await asyncio.gather(*(socket.ready.wait() for socket in list(self._sockets)))

    @property
    def sockets(self) -> int:
        """Sockets of the pool (open or opening)."""
        return len(self._sockets)

    @property
    def series_count(self) -> int:
        """Live series placed on the pool's sockets."""
        return sum(len(socket.series) for socket in self._sockets)

    def socket_of(
        self,
        symbol: SymbolLike,
        exchange: str | None = None,
        interval: IntervalLike = Interval.in_1_minute,
        *,
        extended_session: bool = False,
        adjustment: str = "splits",
        back_adjusted: bool = False,
    ) -> int | None:
        """The number of the socket a live series is placed on (None: it is not)."""
        key = _series_key(
            symbol, exchange, interval, None, extended_session, adjustment, back_adjusted
        )
        for socket in self._sockets:
            if key in socket.series:
                return socket.number
        return None

    def feed_of(self, socket: int) -> TvFeed:
        """The ``TvFeed`` of socket number ``socket`` (for its own health and stats)."""
        for candidate in self._sockets:
            if candidate.number == socket:
                return candidate.feed
        raise KeyError(socket)

    # ------------------------------------------------------------------ dashboards

    def health(self) -> PoolHealth:
        """Every socket's :meth:`TvFeed.health`, and their figures over all sockets."""
        sockets: list[SocketHealth] = []
        for socket in self._sockets:
            health = socket.feed.health() if socket.open else None
            error = None if socket.error is None else str(socket.error) or repr(socket.error)
            sockets.append(
                SocketHealth(socket.number, socket.account, len(socket.series), health, error)
            )
        healths = [entry.health for entry in sockets if entry.health is not None]
        streams = [stream for health in healths for stream in health.streams]
        errors = [h for h in healths if h.last_error_time is not None]
        latest = max(errors, key=lambda h: h.last_error_time or datetime.min) if errors else None
        ages = [h.last_data_age for h in healths if h.last_data_age is not None]
        connected = sum(1 for health in healths if health.connected)
        return PoolHealth(
            connected=bool(healths) and connected == len(healths),
            sockets_connected=connected,
            reconnects=sum(health.reconnects for health in healths),
            last_data_age=max(ages) if ages else None,
            last_error=latest.last_error if latest is not None else None,
            last_error_time=latest.last_error_time if latest is not None else None,
            symbols_monitored=len({stream.symbol for stream in streams}),
            streams=streams,
            sockets=sockets,
        )

    def events(self) -> PoolEventStream:
        """Every socket's events, as :class:`PoolEvent` (which socket, which account);
        sockets opened later are included. It ends when the pool closes."""
        self._check_open()
        watcher = PoolEventStream(self)
        self._watchers.add(watcher)
        for socket in self._sockets:
            if socket.open:
                watcher.attach(socket)
        return watcher

    @property
    def stats(self) -> FeedStats:
        """The sockets' :attr:`TvFeed.stats`, summed."""
        total = FeedStats()
        for socket in self._sockets:
            if socket.open:
                total = _add_stats(total, socket.feed.stats)
        return total

    @property
    def stream_count(self) -> int:
        """Live server series, over all sockets."""
        return sum(socket.feed.stream_count for socket in self._sockets if socket.open)

    # ------------------------------------------------------------------ history

    async def get_hist(
        self,
        symbol: SymbolLike,
        exchange: str | None = None,
        interval: IntervalLike = Interval.in_daily,
        n_bars: int | None = None,
        *,
        studies: list[str | tuple[str, dict[str, object]]] | None = None,
        **options: Unpack[HistoryOptions],
    ) -> pl.DataFrame:
        """:meth:`TvFeed.get_hist` on the open socket with the fewest series."""
        feed = self._history_socket()
        return await feed.get_hist(symbol, exchange, interval, n_bars, studies=studies, **options)

    async def fetch_history(
        self,
        symbol: SymbolLike,
        exchange: str | None = None,
        interval: IntervalLike = Interval.in_daily,
        n_bars: int | None = None,
        **options: Unpack[HistoryOptions],
    ) -> HistoryResult:
        """:meth:`TvFeed.fetch_history` on the open socket with the fewest series."""
        feed = self._history_socket()
        return await feed.fetch_history(symbol, exchange, interval, n_bars, **options)

    async def get_hist_many(
        self,
        symbols: Iterable[SymbolLike],
        interval: IntervalLike = Interval.in_daily,
        n_bars: int | None = None,
        *,
        exchange: str | None = None,
        **options: Unpack[HistoryOptions],
    ) -> dict[str, pl.DataFrame | TvFeedError]:
        """:meth:`TvFeed.get_hist_many`, the symbols dealt over every open socket (each runs
        up to ``limits.max_in_flight`` at once); same keys, same order."""
        items = symbol_list(symbols, "get_hist_many")
        self._check_open()
        feeds = [socket.feed for socket in self._sockets if socket.open]
        if not feeds:
            raise RuntimeError("the pool has no open socket")
        shares: list[list[SymbolLike]] = [items[i :: len(feeds)] for i in range(len(feeds))]
        parts = await asyncio.gather(
            *(
                feed.get_hist_many(share, interval, n_bars, exchange=exchange, **options)
                for feed, share in zip(feeds, shares, strict=True)
                if share
            )
        )
        merged: dict[str, pl.DataFrame | TvFeedError] = {}
        for part in parts:
            merged.update(part)
        ordered: dict[str, pl.DataFrame | TvFeedError] = {}
        for item in items:
            try:
                key = parse_symbol(item, exchange, options.get("fut_contract")).full
            except TvFeedError:
                key = str(item)
            if key in merged:
                ordered[key] = merged[key]
        return ordered

    async def resolve(
        self,
        symbol: SymbolLike,
        exchange: str | None = None,
        *,
        fut_contract: int | None = None,
        extended_session: bool = False,
    ) -> SymbolInfo:
        """:meth:`TvFeed.resolve` on one of the sockets."""
        return await self._history_socket().resolve(
            symbol, exchange, fut_contract=fut_contract, extended_session=extended_session
        )

    async def search_symbol(
        self, text: str, exchange: str = "", type: str = "", limit: int = 50
    ) -> list[SearchResult]:
        """:meth:`TvFeed.search_symbol` (HTTP; through one of the sockets' feeds)."""
        return await self._history_socket().search_symbol(text, exchange, type, limit)

    async def get_study(
        self,
        symbol: SymbolLike,
        exchange: str | None = None,
        interval: IntervalLike = Interval.in_daily,
        *,
        study: str,
        inputs: dict[str, object] | None = None,
        n_bars: int | None = None,
        version: str = "last",
        fut_contract: int | None = None,
        extended_session: bool = False,
        adjustment: str = "splits",
        back_adjusted: bool = False,
        timezone: str | None = None,
        include_partial: bool = False,
    ) -> pl.DataFrame:
        """:meth:`TvFeed.get_study` on the open socket with the fewest series."""
        return await self._history_socket().get_study(
            symbol,
            exchange,
            interval,
            study=study,
            inputs=inputs,
            n_bars=n_bars,
            version=version,
            fut_contract=fut_contract,
            extended_session=extended_session,
            adjustment=adjustment,
            back_adjusted=back_adjusted,
            timezone=timezone,
            include_partial=include_partial,
        )

    async def search_studies(
        self, text: str = "", *, filter: str = "standard"
    ) -> list[ScriptSummary]:
        """:meth:`TvFeed.search_studies` (HTTP; through one of the sockets' feeds)."""
        return await self._history_socket().search_studies(text, filter=filter)

    @property
    def connections_opened(self) -> int:
        """WebSockets the pool's sockets have opened, summed (reconnects included)."""
        return sum(socket.feed.connections_opened for socket in self._sockets if socket.open)

    # ------------------------------------------------------------------ live streams

    def stream(
        self,
        symbol: SymbolLike,
        exchange: str | None = None,
        interval: IntervalLike = Interval.in_1_minute,
        *,
        fut_contract: int | None = None,
        extended_session: bool = False,
        adjustment: str = "splits",
        back_adjusted: bool = False,
        partial: bool = False,
        queue_size: int | None = None,
        on_gap: GapPolicy = "raise",
    ) -> PoolStream:
        """:meth:`TvFeed.stream` on the socket the series is placed on (a new socket opens
        when every socket holds ``series_per_socket`` series).

        Raises:
            InvalidRequest: bad arguments, or every account has opened ``max_sockets`` full
                sockets.
        """
        self._check_open()
        key = _series_key(
            symbol, exchange, interval, fut_contract, extended_session, adjustment, back_adjusted
        )
        arguments = {
            "fut_contract": fut_contract,
            "extended_session": extended_session,
            "adjustment": adjustment,
            "back_adjusted": back_adjusted,
            "partial": partial,
            "queue_size": queue_size,
            "on_gap": on_gap,
        }
        socket = self._place(key)
        socket.series[key] = socket.series.get(key, 0) + 1
        return PoolStream(
            self, [(socket, [key], ("stream", (symbol, exchange, interval), arguments))]
        )

    def stream_many(
        self,
        specs: Iterable[StreamSpec | Symbol | str] | str,
        *,
        interval: IntervalLike = Interval.in_1_minute,
        exchange: str | None = None,
        extended_session: bool = False,
        adjustment: str = "splits",
        partial: bool = False,
        queue_size: int | None = None,
        on_gap: GapPolicy = "raise",
    ) -> PoolStream:
        """:meth:`TvFeed.stream_many` over the pool: each series on its socket, merged into
        one iterator (``bar.symbol`` and ``bar.interval`` say which)."""
        self._check_open()
        entries = stream_specs(specs, interval, exchange)
        groups: dict[int, tuple[_Socket, list[_SeriesKey], list[tuple[str, str]]]] = {}
        placed: list[tuple[_Socket, _SeriesKey]] = []
        try:
            for name, ex, every in entries:
                key = _series_key(name, ex, every, None, extended_session, adjustment, False)
                if any(key in keys for _, keys, _ in groups.values()):
                    continue
                socket = self._place(key)
                socket.series[key] = socket.series.get(key, 0) + 1
                placed.append((socket, key))
                group = groups.setdefault(socket.number, (socket, [], []))
                group[1].append(key)
                group[2].append((key[0], key[1]))
        except BaseException:
            for socket, key in placed:
                self._release(socket, key)
            raise
        arguments = {
            "extended_session": extended_session,
            "adjustment": adjustment,
            "partial": partial,
            "queue_size": queue_size,
            "on_gap": on_gap,
        }
        parts = [
            (socket, keys, ("stream_many", (specs_of_group,), arguments))
            for socket, keys, specs_of_group in groups.values()
        ]
        return PoolStream(self, parts)

    async def stream_frames(
        self,
        symbol: SymbolLike,
        exchange: str | None = None,
        interval: IntervalLike = Interval.in_1_minute,
        *,
        fut_contract: int | None = None,
        extended_session: bool = False,
        adjustment: str = "splits",
        back_adjusted: bool = False,
        window: int = 500,
        queue_size: int | None = None,
        on_gap: GapPolicy = "raise",
    ) -> AsyncGenerator[pl.DataFrame, None]:
        """:meth:`TvFeed.stream_frames` on the socket the series is placed on (it holds its
        place until the generator is closed)."""
        self._check_open()
        key = _series_key(
            symbol, exchange, interval, fut_contract, extended_session, adjustment, back_adjusted
        )
        socket = self._place(key)
        socket.series[key] = socket.series.get(key, 0) + 1
        try:
            try:
                feed = await socket.wait()
            except RuntimeError:
                return  # the pool closed before the socket opened
            frames = feed.stream_frames(
                symbol,
                exchange,
                interval,
                fut_contract=fut_contract,
                extended_session=extended_session,
                adjustment=adjustment,
                back_adjusted=back_adjusted,
                window=window,
                queue_size=queue_size,
                on_gap=on_gap,
            )
            async with contextlib.aclosing(frames):
                async for frame in frames:
                    yield frame
        finally:
            self._release(socket, key)

    # ------------------------------------------------------------------ quotes

    def stream_quotes(
        self,
        symbols: Iterable[SymbolLike] | str,
        exchange: str | None = None,
        *,
        fields: Iterable[str] | str = (),
        extended_session: bool = False,
    ) -> QuoteStream:
        """:meth:`TvFeed.stream_quotes` on the open socket that watches the fewest quote
        symbols (then: the fewest series), so that watchlists spread over the sockets."""
        socket = self._quote_socket()
        stream = socket.feed.stream_quotes(
            symbols, exchange, fields=fields, extended_session=extended_session
        )
        socket.quotes.add(stream)
        return stream

    async def get_quotes(
        self,
        symbols: Iterable[SymbolLike] | str,
        exchange: str | None = None,
        *,
        fields: Iterable[str] | str = (),
        extended_session: bool = False,
    ) -> pl.DataFrame:
        """:meth:`TvFeed.get_quotes` on the open socket that watches the fewest quotes."""
        return await self._quote_socket().feed.get_quotes(
            symbols, exchange, fields=fields, extended_session=extended_session
        )

    async def get_quote(
        self,
        symbol: SymbolLike,
        exchange: str | None = None,
        *,
        fields: Iterable[str] | str = (),
        extended_session: bool = False,
    ) -> Quote:
        """:meth:`TvFeed.get_quote` on the open socket that watches the fewest quotes."""
        return await self._quote_socket().feed.get_quote(
            symbol, exchange, fields=fields, extended_session=extended_session
        )


def _check_count(value: object, name: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidRequest(f"{name} must be a positive integer, not {value!r}")


def _series_key(
    symbol: SymbolLike,
    exchange: str | None,
    interval: IntervalLike,
    fut_contract: int | None,
    extended_session: bool,
    adjustment: str,
    back_adjusted: bool,
) -> _SeriesKey:
    if adjustment not in ("splits", "dividends"):
        raise InvalidRequest(f"adjustment must be 'splits' or 'dividends', not {adjustment!r}")
    return (
        parse_symbol(symbol, exchange, fut_contract).full,
        Interval.parse(interval).code,
        "extended" if extended_session else "regular",
        adjustment,
        back_adjusted,
    )


_Part = tuple[_Socket, list[_SeriesKey], tuple[str, tuple[Any, ...], dict[str, Any]]]


class PoolStream:
    """The live bars of a pool's stream: an async iterator, an async context manager, with
    ``aclose()``, like :class:`~tvfeed_async.stream.BarStream`.

    Each part subscribes on its socket when the stream is first iterated (after the socket
    opened). A stream over several sockets merges them: one task per socket hands its bars
    over through a queue as long as the socket's own stream queue (``queue_size``), so a
    consumer that lags ends with ``ConsumerTooSlow`` as on one socket. An error of any part
    (after the bars before it) ends the whole stream.
    """

    def __init__(self, pool: FeedPool, parts: list[_Part]) -> None:
        self._pool = pool
        self._parts = parts
        self._inner: list[BarStream] = []
        self._started = False
        self._done = False
        self._single: BarStream | None = None
        self._queue: asyncio.Queue[Bar | BaseException | None] | None = None
        self._pumps: list[asyncio.Task[None]] = []
        self._open_parts = 0

    def __aiter__(self) -> PoolStream:
        return self

    async def _start(self) -> None:
        try:
            # A cancelled wait (a timeout around the first step) keeps the parts subscribed so
            # far; the next step goes on from there.
            for socket, _, (method, args, kwargs) in self._parts[len(self._inner) :]:
                feed = await socket.wait()
                self._inner.append(getattr(feed, method)(*args, **kwargs))
        except asyncio.CancelledError:
            raise
        except RuntimeError:
            self.close()
            if self._pool._state == "closed":
                raise StopAsyncIteration from None  # as a TvFeed stream ends when it closes
            raise
        except BaseException:
            self.close()
            raise
        self._started = True
        if len(self._inner) == 1:
            self._single = self._inner[0]
            return
        self._queue = asyncio.Queue(maxsize=1)
        self._open_parts = len(self._inner)
        loop = asyncio.get_running_loop()
        for inner in self._inner:
            task = loop.create_task(self._pump(inner), name="tvfeed-pool-stream")
            self._pumps.append(task)
            self._pool._tasks.add(task)
            task.add_done_callback(self._pool._tasks.discard)

    async def _pump(self, inner: BarStream) -> None:
        assert self._queue is not None
        try:
            async for bar in inner:
                await self._queue.put(bar)
        except TvFeedError as error:
            await self._queue.put(error)
        finally:
            self._open_parts -= 1
            if self._open_parts == 0:
                with contextlib.suppress(asyncio.QueueFull):
                    self._queue.put_nowait(None)

    async def __anext__(self) -> Bar:
        if self._done:
            raise StopAsyncIteration
        if not self._started:
            await self._start()
        if self._single is not None:
            try:
                return await self._single.__anext__()
            except (StopAsyncIteration, TvFeedError):
                self.close()
                raise
        assert self._queue is not None
        while True:
            if self._open_parts == 0 and self._queue.empty():
                self.close()
                raise StopAsyncIteration
            item = await self._queue.get()
            if item is None:
                continue
            if isinstance(item, BaseException):
                self.close()
                raise item
            return item

    def close(self) -> None:
        """Detach from every socket's stream now (synchronous; idempotent)."""
        if self._done:
            return
        self._done = True
        for task in self._pumps:
            task.cancel()
        for inner in self._inner:
            inner.close()
        for socket, keys, _ in self._parts:
            for key in keys:
                self._pool._release(socket, key)

    async def aclose(self) -> None:
        """Detach (the last consumer of a series out removes it from its socket)."""
        self.close()

    async def __aenter__(self) -> PoolStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def __del__(self) -> None:
        if not self._done:
            try:
                self.close()
            except Exception:
                logger.debug("could not detach an abandoned pool stream", exc_info=True)


class PoolEventStream:
    """``async for event in pool.events()``: every socket's events as :class:`PoolEvent`."""

    def __init__(self, pool: FeedPool) -> None:
        self._pool = pool
        self._queue: deque[PoolEvent] = deque()
        self._dropped = 0
        self._wakeup = asyncio.Event()
        self._closed = False
        self._pumps: list[asyncio.Task[None]] = []

    def attach(self, socket: _Socket) -> None:
        if self._closed:
            return
        events = socket.feed.events()
        task = asyncio.get_running_loop().create_task(self._pump(socket, events))
        self._pumps.append(task)
        self._pool._tasks.add(task)
        task.add_done_callback(self._pool._tasks.discard)

    async def _pump(self, socket: _Socket, events: Any) -> None:
        try:
            async for event in events:
                values = {f.name: getattr(event, f.name) for f in dataclasses.fields(Event)}
                if len(self._queue) >= EVENT_QUEUE:
                    self._queue.popleft()
                    self._dropped += 1
                self._queue.append(
                    PoolEvent(**values, socket=socket.number, account=socket.account)
                )
                self._wakeup.set()
        finally:
            events.close()

    def __aiter__(self) -> PoolEventStream:
        return self

    async def __anext__(self) -> PoolEvent:
        while not self._queue:
            if self._closed:
                raise StopAsyncIteration
            self._wakeup.clear()
            await self._wakeup.wait()
        event = self._queue.popleft()
        if self._dropped:
            # As TvFeed.events(): the next event says how many this watcher missed.
            dropped, self._dropped = self._dropped, 0
            event = dataclasses.replace(event, dropped_before=event.dropped_before + dropped)
        return event

    def close(self) -> None:
        """Stop watching (synchronous; idempotent)."""
        self._closed = True
        self._pool._watchers.discard(self)
        for task in self._pumps:
            task.cancel()
        self._wakeup.set()

    async def aclose(self) -> None:
        """Stop watching."""
        self.close()

    async def __aenter__(self) -> PoolEventStream:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
