"""``TvFeed``: the session manager that owns authentication and the one multiplexed WebSocket.

Lifecycle: ``async with TvFeed(...) as feed`` signs in (if credentials were given), opens the
socket at once (so a wrong URL or a refused upgrade fails at the ``async with`` line, not at
the first request) and starts the connection supervisor in the feed's own task group. Every
request and stream of the feed rides on that socket, routed by chart session id; the feed is
safe to use from many tasks at once. Leaving the block cancels every background task, ends
every stream, closes the socket and the HTTP session. A ``TvFeed`` is single-use.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import zoneinfo
from collections import deque
from collections.abc import AsyncGenerator, Iterable
from datetime import UTC, date, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, Unpack

import aiohttp
import anyio
import polars as pl

from .config import Endpoints, Limits, RetryPolicy, Timeouts
from .delivery import Consumer as ItemConsumer
from .errors import ConnectionLost, InvalidRequest, RequestTimeout, TvFeedError
from .events import EventStream, FeedHealth, age
from .frames import frame_from_bars
from .governor import Governor
from .history import (
    FailedLink,
    HistoryRequest,
    HistoryResult,
    SymbolInfo,
    close_idle_charts,
    collect_history,
    fetch_symbol_info,
)
from .protocol.bars import Bar
from .protocol.intervals import Interval, IntervalLike
from .protocol.messages import ANONYMOUS_TOKEN
from .protocol.symbols import Symbol, SymbolLike, parse_symbol
from .quotes import Quote, QuoteStream, QuoteSubscription, check_fields, quote_fields, quotes_frame
from .slots import InFlight
from .stats import FeedStats
from .stream import BarStream, Consumer, GapPolicy, StreamKey, StreamManager
from .supervisor import Link, Supervisor
from .validation import (
    HistoryOptions,
    TimeLike,
    check_credential_fields,
    check_exchange,
    check_history_arguments,
    check_history_options,
    stream_specs,
    symbol_list,
)
from .websocket import http_connector

if TYPE_CHECKING:
    from .auth import AuthSession, SessionCache
    from .protocol.studies import ScriptSummary
    from .search import SearchResult
    from .studies import StudyJob, StudyValues
    from .study_stream import StudyStream

__all__ = ["HistoryOptions", "StreamSpec", "TimeLike", "TvFeed"]

logger = logging.getLogger("tvfeed_async.feed")

#: One entry of ``stream_many``: ``(ticker, exchange, interval)`` or
#: ``("EXCHANGE:TICKER", interval)``.
StreamSpec = tuple[str, str, IntervalLike] | tuple[str, IntervalLike]
_ADJUSTMENTS = ("splits", "dividends")
_ENV_CREDENTIALS = (
    "TV_USERNAME",
    "TV_PASSWORD",
    "TV_TOTP_SECRET",
    "TV_AUTH_TOKEN",
    "TV_SESSIONID",
    "TV_SESSIONID_SIGN",
)


class TvFeed:
    """One authenticated, multiplexed connection to TradingView.

    Args:
        username, password: sign in with a password (``totp_secret`` or ``totp_code`` for 2FA).
        auth_token: a token copied from a browser instead of signing in.
        sessionid, sessionid_sign: a browser session cookie instead of signing in.
        endpoints: where to connect (default: ``Endpoints.from_env()``, the real TradingView
            unless ``TVFEED_WS_URL`` & co. say otherwise; pass ``sim.endpoints`` for the
            bundled simulator).
        timeouts, retry, limits: tuning; see :mod:`tvfeed_async.config`.
        session_cache: reuse signed-in sessions across processes (True: the default file in
            the user's cache directory; False/None: off; or a ``SessionCache``).
        use_env: read ``TV_USERNAME``, ``TV_PASSWORD``, ``TV_TOTP_SECRET``, ``TV_AUTH_TOKEN``,
            ``TV_SESSIONID``, ``TV_SESSIONID_SIGN`` for credentials not given as arguments, and
            the ``TVFEED_*`` endpoint variables when ``endpoints`` is not given.
        governor: paces session creation and series requests (default: a new one built
            from ``limits``; pass one :class:`~tvfeed_async.governor.Governor` to several
            feeds of one account so that they share the server's rate limit).

    Example::

        async with TvFeed() as feed:
            df = await feed.get_hist("BINANCE:BTCUSDT", interval="60", n_bars=1000)
    """

    def __init__(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        totp_secret: str | None = None,
        totp_code: str | None = None,
        auth_token: str | None = None,
        sessionid: str | None = None,
        sessionid_sign: str | None = None,
        endpoints: Endpoints | None = None,
        timeouts: Timeouts | None = None,
        retry: RetryPolicy | None = None,
        limits: Limits | None = None,
        session_cache: SessionCache | bool | None = True,
        use_env: bool = True,
        governor: Governor | None = None,
    ) -> None:
        self._credential_args = {
            "username": username,
            "password": password,
            "totp_secret": totp_secret,
            "totp_code": totp_code,
            "auth_token": auth_token,
            "sessionid": sessionid,
            "sessionid_sign": sessionid_sign,
        }
        check_credential_fields(self._credential_args)
        self._use_env = use_env
        self._session_cache = session_cache
        self.endpoints = endpoints or (Endpoints.from_env() if use_env else Endpoints())
        self.timeouts = timeouts or Timeouts()
        self.retry = retry or RetryPolicy()
        self.limits = limits or Limits()
        self._http: aiohttp.ClientSession | None = None
        self._authenticator: Any = None
        self._auth: AuthSession | None = None
        self._runner: asyncio.Task[None] | None = None
        self._background_ready = anyio.Event()
        self._closed = anyio.Event()
        self._last_refresh = -self.retry.token_retry_delay
        self._in_flight = InFlight(self.limits.max_in_flight)
        #: Paces session creation and series requests on every socket of this feed.
        self.governor = governor if governor is not None else Governor.from_limits(self.limits)
        self._supervisor = Supervisor(
            self.endpoints,
            self.timeouts,
            self.retry,
            self._token,
            max_chart_sessions=self.limits.max_chart_sessions,
            governor=self.governor,
        )
        self._streams: StreamManager | None = None
        self._state = "new"

    def __repr__(self) -> str:
        return f"<TvFeed {self._state} {self.endpoints.ws_url} plan={self.plan!r}>"

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        if self._state != "new":
            raise RuntimeError("a TvFeed can be entered only once; create a new one")
        self._state = "opening"
        try:
            self._http = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeouts.http),
                connector=http_connector(),
            )
            await self._authenticate()
            loop = asyncio.get_running_loop()
            # The runner task owns the feed's task group. Keeping the group inside one task
            # (rather than entering it here and leaving it in __aexit__) lets the feed be
            # closed from any task, at any nesting of the caller's own task groups.
            self._runner = loop.create_task(self._run_background(), name="tvfeed-async")
            await self._background_ready.wait()
            if self._runner.done():
                self._runner.result()  # a crash while starting: raise it here
            await self._supervisor.wait_first_attempt()
        except BaseException:
            await self._shutdown()
            raise
        self._state = "open"
        return self

    async def _run_background(self) -> None:
        try:
            async with anyio.create_task_group() as task_group:
                self._streams = StreamManager(
                    self._supervisor,
                    task_group,
                    lambda: self.bar_limit,
                    self.limits.max_backfill_bars,
                    self.limits.close_grace,
                    request_timeout=self.timeouts.request,
                    page_timeout=self.timeouts.page,
                )
                task_group.start_soon(self._supervisor.run)
                if self._authenticator is not None:
                    task_group.start_soon(self._keep_token_fresh)
                self._background_ready.set()
                await anyio.sleep_forever()
        finally:
            self._background_ready.set()
            self._supervisor.stop()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._shutdown()

    async def aclose(self) -> None:
        """Close the feed (same as leaving ``async with``); safe to call from any task.

        Every stream ends, background tasks finish their bounded cleanup, the socket and the
        HTTP session close. Calling it again does nothing.
        """
        await self._shutdown()

    async def _shutdown(self) -> None:
        if self._state == "closed":
            await self._closed.wait()
            return
        self._state = "closed"
        with anyio.move_on_after(self.timeouts.session_delete, shield=True):
            await close_idle_charts(self._supervisor)  # before the socket closes
        if self._streams is not None:
            self._streams.close()
        runner, self._runner = self._runner, None
        try:
            if runner is not None and not runner.done():
                runner.cancel()
                with anyio.CancelScope(shield=True):
                    await asyncio.wait({runner})
            if runner is not None and not runner.cancelled() and runner.exception() is not None:
                logger.error("background task failed", exc_info=runner.exception())
        finally:
            http, self._http = self._http, None
            if http is not None:
                with anyio.CancelScope(shield=True):
                    await http.close()
            self._closed.set()

    def _check_open(self) -> None:
        if self._state != "open":
            raise RuntimeError(
                f"use the feed inside 'async with TvFeed(...) as feed:' (it is {self._state})"
            )

    # ------------------------------------------------------------------ authentication

    def _session_cookies(self) -> dict[str, str] | None:
        """The signed-in session's cookies, which pine-facade wants for a user's own scripts
        (None when anonymous or signed in with a bare token)."""
        auth = self._auth
        if auth is None or not auth.sessionid or not auth.sessionid_sign:
            return None
        return {"sessionid": auth.sessionid, "sessionid_sign": auth.sessionid_sign}

    def _has_credentials(self) -> bool:
        if any(value for value in self._credential_args.values()):
            return True
        return self._use_env and any(os.environ.get(name) for name in _ENV_CREDENTIALS)

    async def _authenticate(self) -> None:
        if not self._has_credentials():
            return
        from .auth import Authenticator, Credentials, default_cache

        if self._use_env:
            credentials = Credentials.from_env(None, **self._credential_args)
        else:
            credentials = Credentials(**self._credential_args)
        cache: SessionCache | None
        if self._session_cache is True:
            cache = default_cache()
        elif self._session_cache is False or self._session_cache is None:
            cache = None
        else:
            cache = self._session_cache
        assert self._http is not None
        self._authenticator = Authenticator(
            self._http,
            self.endpoints,
            credentials,
            cache=cache,
            timeout=self.timeouts.http,
            min_validity=self.timeouts.token_min_validity,
        )
        self._auth = await self._authenticator.authenticate()

    async def _token(self, refresh: bool) -> str:
        if self._authenticator is None:
            return ANONYMOUS_TOKEN
        lapsing = self._auth is None or self._auth.expires_within(self.timeouts.token_min_validity)
        if refresh or lapsing:
            self._auth = await self._authenticator.refresh()
        assert self._auth is not None
        token: str = self._auth.token
        return token

    async def _keep_token_fresh(self) -> None:
        """Refresh the token before it lapses and move the socket onto the new one.

        A feed can live for days while a token lives about 4 hours. The
        refresh reads a new token from the session cookie when there is one (no new password
        sign-in); the reconnect is gap-free for streams.
        """
        while True:
            auth = self._auth
            if auth is None or auth.expires_at is None:
                return
            wait = auth.expires_at - self.timeouts.token_refresh_margin - time.time()
            if wait > 0:
                await anyio.sleep(wait)
                continue
            if time.monotonic() - self._last_refresh < self.retry.token_retry_delay:
                # A fresh token that already looks close to lapsing (clock skew between us and
                # the server): do not hammer the sign-in endpoints; rely on the server saying
                # "bad auth token", which refreshes and reconnects anyway.
                await anyio.sleep(self.retry.token_retry_delay)
                continue
            self._last_refresh = time.monotonic()
            logger.info("auth token lapses soon; refreshing it")
            try:
                self._auth = await self._authenticator.refresh()
            except TvFeedError as error:
                logger.warning("could not refresh the auth token: %s", error)
                await anyio.sleep(self.retry.token_retry_delay)
                continue
            await self._supervisor.reconnect()

    @property
    def plan(self) -> str:
        """The account's plan (``""`` when anonymous)."""
        return self._auth.plan if self._auth is not None else ""

    @property
    def bar_limit(self) -> int:
        """Bars one request may return: the plan's limit, else ``limits.bars_per_request``."""
        if self._auth is not None and self._auth.bar_limit:
            return int(self._auth.bar_limit)
        return self.limits.bars_per_request

    @property
    def connections_opened(self) -> int:
        """How many WebSockets this feed has opened (1 unless it had to reconnect)."""
        return self._supervisor.connections_opened

    def health(self) -> FeedHealth:
        """A snapshot for a dashboard: the connection (connected, since when, reconnects, the
        age of the last data, the last error) and every live series (last bar, gaps...)."""
        events = self._supervisor.events
        streams = self._streams.health() if self._streams is not None else []
        return FeedHealth(
            connected=events.connected,
            connected_since=events.connected_since,
            reconnects=self._supervisor.stats.reconnects,
            last_data_age=age(self._supervisor.last_data),
            last_error=events.last_error,
            last_error_time=events.last_error_time,
            symbols_monitored=len({stream.symbol for stream in streams}),
            streams=streams,
        )

    def events(self) -> EventStream:
        """What happens to the feed from now on, as :class:`~tvfeed_async.events.Event`s:
        ``connected``, ``disconnected``, ``reconnected``, ``rate_limited``, ``gave_up``,
        and per stream ``backfilled``, ``gap``, ``stream_reopened``, ``stream_error``.

        ``async for event in feed.events():`` (or ``async with feed.events() as events``);
        it ends when the feed closes. Each watcher holds at most ``EVENT_QUEUE`` events: a
        watcher that lags loses the oldest, and the next event it gets says how many
        (``dropped_before``).
        """
        self._check_open()
        return self._supervisor.events.watch()

    @property
    def stats(self) -> FeedStats:
        """A snapshot of what the feed counted besides data (see :class:`FeedStats`)."""
        seen = self._supervisor.stats
        rejected, late = self._streams.counts() if self._streams is not None else (0, 0)
        return FeedStats(
            connections_opened=self._supervisor.connections_opened,
            reconnects=seen.reconnects,
            malformed_messages=seen.malformed_messages,
            unexpected_errors=seen.unexpected_errors,
            critical_errors=seen.critical_errors,
            token_rejections=seen.token_rejections,
            unknown_messages=dict(seen.unknown_messages),
            unrouted_messages=seen.unrouted_messages,
            rejected_bars=rejected,
            late_revisions=late,
            streams=self.stream_count,
        )

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
        """Historical bars as a Polars frame (tvdatafeed's ``get_hist``, asynchronous).

        Args:
            symbol: ``"BINANCE:BTCUSDT"``, ``"BTCUSDT"`` with ``exchange``, or a tuple.
            exchange: the exchange when ``symbol`` is a bare ticker.
            interval: ``Interval.in_1_hour``, ``"60"``, ``"1H"``, ``"1D"``, ...
            n_bars: how many of the most recent bars (default 10 when no ``start``); paged past
                the per-request cap automatically. With ``end`` and no ``start``: the
                ``n_bars`` bars before ``end``.
            fut_contract: 1 for the front continuous futures contract (``NQ`` -> ``NQ1!``).
            extended_session: include pre- and post-market bars.
            start, end: a date range (``start <= time < end``); datetimes without a timezone
                are taken as UTC; ints/floats are unix seconds; ``end`` defaults to now.
            adjustment: ``"splits"`` (default) or ``"dividends"``.
            back_adjusted: back-adjust continuous futures.
            timezone: convert the ``time`` column to this IANA zone for display.
            include_partial: keep the newest bar even if it is still forming.
            studies: Pine studies to join as columns, in count or range mode: ``"STD;RSI"``
                or ``("STD;RSI", {"length": 14})``; see :meth:`get_study`. Plot columns that
                would repeat a name get ``_2``, ``_3``...

        Returns:
            Columns ``time`` (Datetime us, UTC unless ``timezone``), ``symbol``, ``open``,
            ``high``, ``low``, ``close``, ``volume`` (null when the symbol has none), then
            the studies' plots; sorted by time, unique times.

        Raises:
            InvalidRequest: bad arguments (nothing was sent).
            SymbolNotFound: the server could not resolve the symbol.
            EntitlementError: the plan does not include this interval or data.
            RequestTimeout: no completing answer within ``timeouts.request``.
            ConnectionLost: the connection failed and retrying did not help.

        Cancelling the call deletes its chart session on the server (best effort).
        """
        request = self._history_request(symbol, exchange, interval, n_bars, options)
        self._check_open()
        if studies:
            return await self._study_frame(request, list(studies), with_bars=True)
        return (await self._run_history(request)).frame

    async def fetch_history(
        self,
        symbol: SymbolLike,
        exchange: str | None = None,
        interval: IntervalLike = Interval.in_daily,
        n_bars: int | None = None,
        **options: Unpack[HistoryOptions],
    ) -> HistoryResult:
        """Like :meth:`get_hist`, but also says whether history ran out and what the symbol is.

        Returns:
            A :class:`~tvfeed_async.history.HistoryResult`: ``frame``, ``exhausted`` (the
            server had fewer bars than asked for), ``symbol_info``, ``chunks``.

        Raises:
            The same errors as :meth:`get_hist`.
        """
        request = self._history_request(symbol, exchange, interval, n_bars, options)
        self._check_open()
        return await self._run_history(request)

    async def _run_history(self, request: HistoryRequest) -> HistoryResult:
        failed: Link | None = None
        try:
            with anyio.fail_after(self.timeouts.request):
                async with self._in_flight.slot() as slot:
                    attempts = max(1, self.retry.history_attempts)
                    for attempt in range(attempts):
                        try:
                            collected = await collect_history(
                                self._supervisor,
                                request,
                                self.bar_limit,
                                page_quiet=self.timeouts.page,
                                after=failed,
                                # As many as may be open at once (InFlight).
                                keep_idle=2 * self.limits.max_in_flight,
                                on_top_up=slot.top_up,
                            )
                            break
                        except FailedLink as error:
                            if attempt == attempts - 1 or self._state != "open":
                                raise ConnectionLost(str(error)) from error
                            # The next attempt waits for the next socket: the reader may not
                            # have seen this one die yet (retrying on it fails at once).
                            failed = error.link
                            logger.info("retrying %s after a lost connection", request.describe())
        except TimeoutError:
            raise RequestTimeout(
                f"no complete answer for {request.describe()} within "
                f"{self.timeouts.request:g} s (the server went quiet); try again or raise "
                "Timeouts.request"
            ) from None
        # The frame is built after the in-flight slot is released: the next request is on
        # its way meanwhile.
        return collected.result()

    async def get_hist_many(
        self,
        symbols: Iterable[SymbolLike],
        interval: IntervalLike = Interval.in_daily,
        n_bars: int | None = None,
        *,
        exchange: str | None = None,
        **options: Unpack[HistoryOptions],
    ) -> dict[str, pl.DataFrame | TvFeedError]:
        """Fetch several symbols at once on the one socket, failures isolated per symbol.

        At most ``limits.max_in_flight`` requests run at the same time.

        Args:
            symbols: anything :meth:`get_hist` accepts as ``symbol`` (tuples are
                ``(ticker, exchange)``); one string is one symbol.
            exchange: the exchange of bare tickers.
            options: the keyword options of :meth:`get_hist` (:class:`HistoryOptions`);
                another keyword raises ``InvalidRequest`` before any request.

        Returns:
            ``EXCHANGE:TICKER`` (or the input as text, if it could not be parsed) -> the frame,
            or the :class:`TvFeedError` that symbol failed with. Order follows the input.
        """
        items = symbol_list(symbols, "get_hist_many")
        check_history_options({**options, "exchange": exchange})
        self._check_open()
        results: dict[str, pl.DataFrame | TvFeedError] = {}
        jobs: list[tuple[str, Symbol]] = []
        for item in items:
            try:
                parsed = parse_symbol(item, exchange, options.get("fut_contract"))
            except TvFeedError as error:
                results[str(item)] = error
                continue
            results[parsed.full] = pl.DataFrame()  # placeholder keeps the input order
            jobs.append((parsed.full, parsed))

        passed = options.copy()
        passed.pop("fut_contract", None)  # already applied by parse_symbol

        async def one(key: str, parsed: Symbol) -> None:
            try:
                results[key] = await self.get_hist(
                    parsed,
                    interval=interval,
                    n_bars=n_bars,
                    **passed,
                )
            except TvFeedError as error:
                results[key] = error

        async with anyio.create_task_group() as task_group:
            for key, parsed in jobs:
                task_group.start_soon(one, key, parsed)
        return results

    async def resolve(
        self,
        symbol: SymbolLike,
        exchange: str | None = None,
        *,
        fut_contract: int | None = None,
        extended_session: bool = False,
    ) -> SymbolInfo:
        """What the server knows about a symbol (``symbol_resolved``).

        Raises:
            InvalidSymbol: the symbol is malformed.
            SymbolNotFound: the server could not resolve it.
            RequestTimeout: no answer within ``timeouts.request``.
        """
        check_exchange(exchange)
        parsed = parse_symbol(symbol, exchange, fut_contract)
        self._check_open()
        session = "extended" if extended_session else "regular"
        try:
            with anyio.fail_after(self.timeouts.request):
                return await fetch_symbol_info(self._supervisor, parsed, session)
        except TimeoutError:
            raise RequestTimeout(f"no answer resolving {parsed.full}") from None

    async def search_symbol(
        self, text: str, exchange: str = "", type: str = "", limit: int = 50
    ) -> list[SearchResult]:
        """Search symbols (symbol search v3, paged until ``limit``); works anonymously.

        Raises:
            InvalidRequest: empty text or a non-positive limit.
            RateLimited: HTTP 429.
        """
        from .search import search_symbols

        self._check_open()
        assert self._http is not None
        return await search_symbols(
            self._http,
            self.endpoints,
            text,
            exchange=exchange,
            type=type,
            limit=limit,
            timeout=self.timeouts.http,
        )

    # ------------------------------------------------------------------ live streams

    def stream(
        self,
        symbol: SymbolLike,
        exchange: str | None = None,
        interval: IntervalLike = Interval.in_1_minute,
        *,
        partial: bool = False,
        fut_contract: int | None = None,
        extended_session: bool = False,
        adjustment: str = "splits",
        back_adjusted: bool = False,
        queue_size: int | None = None,
        on_gap: GapPolicy = "raise",
    ) -> BarStream:
        """Live bars of one symbol and interval, pushed by the server on the feed's socket.

        Yields each closed bar exactly once, in open-time order, across reconnects (bars that
        closed while the connection was down are backfilled first). With ``partial=True`` it
        also yields forming updates (``bar.closed`` False), coalesced when the consumer lags.

        Args:
            queue_size: closed bars that may wait for this consumer (default
                ``limits.stream_queue``); past that the stream ends with ``ConsumerTooSlow``.
            on_gap: ``"raise"`` ends the stream with ``GapError`` when an outage outlasted
                the server's history; a callable is called with the ``Gap`` instead and the
                stream goes on.

        Raises:
            InvalidRequest: bad arguments.
            SymbolNotFound, EntitlementError: in this consumer only; other streams go on.
            ConsumerTooSlow, GapError: see above.

        Returns:
            A :class:`~tvfeed_async.stream.BarStream`: ``async for bar in ...``; also
            ``async with feed.stream(...) as bars:`` and ``await bars.aclose()``. A timeout
            around one step (``asyncio.wait_for(anext(bars), 1)``) does not end it.

        Streams of the same key share one server series; ``aclose()`` (or leaving
        ``async with``) detaches this consumer and the last one out removes the series; a
        stream abandoned with ``break`` detaches when it is garbage-collected. When the feed
        closes, the loop simply ends.
        """
        check_exchange(exchange)
        key = self._stream_key(
            symbol, exchange, interval, fut_contract, extended_session, adjustment, back_adjusted
        )
        consumer = self._new_consumer(queue_size, partial, on_gap)
        streams = self._stream_manager()
        return BarStream(streams, [streams.subscribe(key, consumer)], consumer)

    def stream_many(
        self,
        specs: Iterable[StreamSpec | Symbol | str] | str,
        *,
        interval: IntervalLike = Interval.in_1_minute,
        exchange: str | None = None,
        partial: bool = False,
        extended_session: bool = False,
        adjustment: str = "splits",
        queue_size: int | None = None,
        on_gap: GapPolicy = "raise",
    ) -> BarStream:
        """Several live streams merged into one iterator; ``bar.symbol`` and ``bar.interval``
        say which. Same guarantees and errors as :meth:`stream` (an error of one symbol ends
        this merged iterator; use separate :meth:`stream` calls to isolate symbols).

        ``specs`` are symbols streamed at ``interval`` (``"BINANCE:BTCUSDT"``, or tickers with
        ``exchange``), ``("EXCHANGE:TICKER", interval)`` or ``(ticker, exchange, interval)``
        entries; one string is one symbol."""
        keys = [
            self._stream_key(name, ex, every, None, extended_session, adjustment, False)
            for name, ex, every in stream_specs(specs, interval, exchange)
        ]
        consumer = self._new_consumer(queue_size, partial, on_gap)
        streams = self._stream_manager()
        subscriptions = [streams.subscribe(key, consumer) for key in dict.fromkeys(keys)]
        return BarStream(streams, subscriptions, consumer)

    async def stream_frames(
        self,
        symbol: SymbolLike,
        exchange: str | None = None,
        interval: IntervalLike = Interval.in_1_minute,
        *,
        window: int = 500,
        fut_contract: int | None = None,
        extended_session: bool = False,
        adjustment: str = "splits",
        back_adjusted: bool = False,
        queue_size: int | None = None,
        on_gap: GapPolicy = "raise",
    ) -> AsyncGenerator[pl.DataFrame, None]:
        """A Polars frame of the last ``window`` closed bars, prefilled from history and
        yielded again each time a bar closes (same guarantees as :meth:`stream`)."""
        _check_positive_int(window, "window")
        check_exchange(exchange)
        key = self._stream_key(
            symbol, exchange, interval, fut_contract, extended_session, adjustment, back_adjusted
        )
        consumer = self._new_consumer(queue_size, False, on_gap)
        streams = self._stream_manager()
        subscription = streams.subscribe(key, consumer, history=window)
        try:
            await subscription.ready.wait()
            bars: deque[Bar] = deque(subscription.retained, maxlen=window)
            if len(bars) < window:
                older = await self.get_hist(
                    key.symbol,
                    interval=key.interval,
                    n_bars=window,
                    extended_session=extended_session,
                    adjustment=adjustment,
                    back_adjusted=back_adjusted,
                )
                known = {bar.timestamp for bar in bars}
                columns = zip(
                    older["time"].dt.epoch("s"),
                    older["open"],
                    older["high"],
                    older["low"],
                    older["close"],
                    older["volume"],
                    strict=True,
                )
                symbol, code = key.symbol.full, key.interval.code
                prefix = [
                    Bar(opened, open_, high, low, close, volume, symbol, code, True)
                    for opened, open_, high, low, close, volume in columns
                    if opened not in known
                ]
                merged = sorted([*prefix, *bars], key=lambda bar: bar.timestamp)
                bars = deque(merged, maxlen=window)
            last = bars[-1].timestamp if bars else None
            yield frame_from_bars(list(bars))
            while True:
                bar = await consumer.get()
                if bar is None:
                    return
                if last is not None and bar.timestamp <= last:
                    continue
                last = bar.timestamp
                bars.append(bar)
                yield frame_from_bars(list(bars))
        finally:
            streams.unsubscribe(subscription, consumer)

    @property
    def stream_count(self) -> int:
        """Live server series (streams of the same key share one)."""
        return self._streams.subscription_count if self._streams is not None else 0

    def _stream_manager(self) -> StreamManager:
        self._check_open()
        assert self._streams is not None
        return self._streams

    def _new_consumer(self, queue_size: int | None, partial: bool, on_gap: GapPolicy) -> Consumer:
        return Consumer(self._queue_size(queue_size, on_gap), partial, on_gap)

    def _queue_size(self, queue_size: int | None, on_gap: GapPolicy) -> int:
        """A stream's ``queue_size`` (default ``limits.stream_queue``), its ``on_gap`` checked."""
        size = self.limits.stream_queue if queue_size is None else queue_size
        _check_positive_int(size, "queue_size")
        if on_gap != "raise" and not callable(on_gap):
            raise InvalidRequest("on_gap must be 'raise' or a callable taking a Gap")
        return size

    def _stream_key(
        self,
        symbol: SymbolLike,
        exchange: str | None,
        interval: IntervalLike,
        fut_contract: int | None,
        extended_session: bool,
        adjustment: str,
        back_adjusted: bool,
    ) -> StreamKey:
        if adjustment not in _ADJUSTMENTS:
            raise InvalidRequest(f"adjustment must be 'splits' or 'dividends', not {adjustment!r}")
        return StreamKey(
            parse_symbol(symbol, exchange, fut_contract),
            Interval.parse(interval),
            "extended" if extended_session else "regular",
            adjustment,
            back_adjusted,
        )

    # ------------------------------------------------------------------ validation

    def _history_request(
        self,
        symbol: SymbolLike,
        exchange: str | None,
        interval: IntervalLike,
        n_bars: int | None,
        options: HistoryOptions,
    ) -> HistoryRequest:
        """Validate the arguments of every history-shaped call once, into a request."""
        check_history_options(options)
        fut_contract = options.get("fut_contract")
        start = options.get("start")
        end = options.get("end")
        adjustment = options.get("adjustment", "splits")
        timezone = options.get("timezone")
        check_history_arguments(exchange=exchange, start=start, end=end, timezone=timezone)
        parsed = parse_symbol(symbol, exchange, fut_contract)
        parsed_interval = Interval.parse(interval)
        if n_bars is not None:
            _check_positive_int(n_bars, "n_bars")
        if adjustment not in _ADJUSTMENTS:
            raise InvalidRequest(f"adjustment must be 'splits' or 'dividends', not {adjustment!r}")
        if timezone is not None:
            try:
                zoneinfo.ZoneInfo(timezone)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
                raise InvalidRequest(f"unknown timezone {timezone!r} (use an IANA name)") from exc
        start_s = _unix_seconds(start, "start")
        end_s = _unix_seconds(end, "end")
        if start_s is not None and n_bars is not None:
            raise InvalidRequest(
                "give either start/end or n_bars (n_bars may be combined with end alone)"
            )
        if end_s is not None and start_s is None:
            if n_bars is None:
                raise InvalidRequest("end= needs start= or n_bars=")
            start_s = 0
        if start_s is not None:
            if end_s is None:
                end_s = int(time.time()) + parsed_interval.seconds
            if end_s <= start_s:
                raise InvalidRequest(f"end ({end}) must be after start ({start})")
        elif n_bars is None:
            n_bars = 10
        return HistoryRequest(
            symbol=parsed,
            interval=parsed_interval,
            n_bars=n_bars,
            start=start_s,
            end=end_s,
            session="extended" if options.get("extended_session", False) else "regular",
            adjustment=adjustment,
            back_adjusted=options.get("back_adjusted", False),
            include_partial=options.get("include_partial", False),
            timezone=timezone,
        )

    # ------------------------------------------------------------------ quotes (#18)

    def stream_quotes(
        self,
        symbols: Iterable[SymbolLike] | str,
        exchange: str | None = None,
        *,
        fields: Iterable[str] | str = (),
        extended_session: bool = False,
    ) -> QuoteStream:
        """Live quotes of a watchlist, on the feed's socket (one quote session).

        ``async for quote in ...`` yields the complete, merged :class:`Quote` of one symbol
        each time it changed (its snapshot first). A consumer that lags gets each changed
        symbol once, with its latest state: what waits is bounded by the number of symbols.
        Add or remove symbols on the running stream with ``await stream.add([...])`` and
        ``await stream.remove([...])``. After a reconnect every symbol is subscribed again
        and its new snapshot follows. A symbol the server does not know is yielded once with
        ``quote.error`` set; the others go on.

        Args:
            symbols: ``"EXCHANGE:TICKER"`` names (tickers with ``exchange``); may be empty.
            fields: quote fields wanted besides the default set
                (:data:`~tvfeed_async.protocol.quotes.DEFAULT_QUOTE_FIELDS`), e.g.
                ``["market_cap_basic", "sector"]``; ``"all"`` asks for every field
                TradingView-API's ``all`` set names. They appear in ``quote.raw``.
            extended_session: quote pre- and post-market trading (the symbol spec's
                ``session`` is ``extended``).

        Raises:
            InvalidSymbol, InvalidRequest: bad arguments (before anything is sent).

        Returns:
            A :class:`~tvfeed_async.quotes.QuoteStream`; also an async context manager with
            ``aclose()``. When the feed closes, the loop simply ends; when it gives up
            reconnecting, the loop raises its error.
        """
        check_exchange(exchange)
        extra = check_fields(fields)
        streams = self._stream_manager()
        try:
            wanted = quote_fields(extra)
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
        subscription = QuoteSubscription(
            self._supervisor,
            streams._task_group,
            wanted,
            "extended" if extended_session else "regular",
            exchange,
        )
        try:
            subscription.add_now(symbols)
        except BaseException:
            subscription.close()
            raise
        return QuoteStream(subscription)

    async def get_quotes(
        self,
        symbols: Iterable[SymbolLike] | str,
        exchange: str | None = None,
        *,
        fields: Iterable[str] | str = (),
        extended_session: bool = False,
    ) -> pl.DataFrame:
        """A snapshot of several quotes as one Polars frame, one row per symbol in the order
        given (:data:`~tvfeed_async.quotes.QUOTE_SCHEMA`; a symbol given twice is one row).
        A symbol the server does not know does not spoil the others: its row has only
        ``symbol``, ``session`` and ``error`` set.

        Raises:
            InvalidSymbol, InvalidRequest: bad arguments.
            RequestTimeout: not every snapshot arrived within ``timeouts.request``.

        Cancelling it closes its quote session (as does every way out).
        """
        quotes = await self._quote_snapshot(symbols, exchange, fields, extended_session)
        return quotes_frame(quotes)

    async def get_quote(
        self,
        symbol: SymbolLike,
        exchange: str | None = None,
        *,
        fields: Iterable[str] | str = (),
        extended_session: bool = False,
    ) -> Quote:
        """The current quote of one symbol (a snapshot of a quote session, then closed).

        Raises:
            InvalidSymbol: malformed symbol.
            SymbolNotFound: the server has no quotes for it (``qsd`` status ``error``).
            RequestTimeout: no snapshot within ``timeouts.request``.

        Cancelling it closes its quote session (as does every way out).
        """
        from .errors import SymbolNotFound

        symbols: list[SymbolLike] = [symbol]
        (quote,) = await self._quote_snapshot(symbols, exchange, fields, extended_session)
        if quote.error is not None:
            raise SymbolNotFound(quote.symbol, quote.error)
        return quote

    async def _quote_snapshot(
        self,
        symbols: Iterable[SymbolLike] | str,
        exchange: str | None,
        fields: Iterable[str] | str,
        extended_session: bool,
    ) -> list[Quote]:
        stream = self.stream_quotes(
            symbols, exchange, fields=fields, extended_session=extended_session
        )
        try:
            with anyio.fail_after(self.timeouts.request):
                return await stream.snapshot()
        except TimeoutError:
            raise RequestTimeout(
                f"no quote snapshot for {', '.join(stream.symbols)} within "
                f"{self.timeouts.request:g} s"
            ) from None
        finally:
            stream.close()

    # ------------------------------------------------------------------ studies (#19)
    # One contiguous block: get_study and its helpers (tvfeed_async.studies does the work).

    async def get_study(
        self,
        symbol: SymbolLike,
        exchange: str | None = None,
        interval: IntervalLike = Interval.in_daily,
        *,
        study: str,
        inputs: dict[str, object] | None = None,
        n_bars: int | None = None,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        version: str = "last",
        fut_contract: int | None = None,
        extended_session: bool = False,
        adjustment: str = "splits",
        back_adjusted: bool = False,
        timezone: str | None = None,
        include_partial: bool = False,
    ) -> pl.DataFrame:
        """Values of a Pine study (``STD;RSI``, ``PUB;...``) computed by TradingView over the
        bars ``get_hist`` would return for the same arguments.

        Args:
            study: the script id, e.g. ``"STD;RSI"``, ``"STD;MACD"``, ``"PUB;<id>"``.
            inputs: by the names in the script's metadata (``{"length": 14}``; case and
                spaces do not matter: ``"Fast Length"`` is ``fast_length``) or ``in_<n>``;
                the others keep their defaults.
            n_bars: how many of the most recent bars (default 10), paged like ``get_hist``.
            start, end: a date range instead, as for :meth:`get_hist` (the study is computed
                over the bars of the range only: its first rows are warm-up values).
            version: the script version (``"last"``).
            symbol, exchange, interval, fut_contract, extended_session, adjustment,
                back_adjusted, timezone, include_partial: as for :meth:`get_hist`.

        Returns:
            ``time`` (as in ``get_hist``) plus one Float64 column per plot, named from the
            metadata (``RSI``; ``MACD``, ``Signal``, ``Histogram``...); null where the
            study has no value (TradingView's ``1e100``, e.g. warm-up bars).

        Raises:
            InvalidRequest: bad arguments, an unknown script, an input the script does not
                have or a value of the wrong type (nothing was sent on the socket).
            EntitlementError: an invite-only or private script, or the plan lacks the data.
            SymbolNotFound, RequestTimeout, ConnectionLost: as for :meth:`get_hist`.

        Cancelling the call deletes its chart session on the server (best effort).
        """
        if not isinstance(study, str):
            raise InvalidRequest(f"study must be a script id string, not {study!r}")
        request = self._history_request(
            symbol,
            exchange,
            interval,
            n_bars,
            {
                "start": start,
                "end": end,
                "fut_contract": fut_contract,
                "extended_session": extended_session,
                "adjustment": adjustment,
                "back_adjusted": back_adjusted,
                "timezone": timezone,
                "include_partial": include_partial,
            },
        )
        self._check_open()
        return await self._study_frame(
            request, [(study, inputs or {})], with_bars=False, version=version
        )

    async def _study_frame(
        self,
        request: HistoryRequest,
        studies: list[str | tuple[str, dict[str, object]]],
        *,
        with_bars: bool,
        version: str = "last",
    ) -> pl.DataFrame:
        """The bars of ``request`` (or only their ``time``) with the columns of ``studies``.

        Every script's metadata is fetched and its inputs checked before anything is sent
        on the socket; studies share a chart session, at most the token's ``max_studies``
        per session (25 without a claim; more use further sessions).
        """
        from .studies import join_studies, studies_per_chart, study_columns

        jobs: list[StudyJob] = []
        items: list[object] = list(studies)
        for item in items:
            given: dict[str, object]
            if isinstance(item, str):
                script, given = item, {}
            elif (
                isinstance(item, tuple)
                and len(item) == 2
                and isinstance(item[0], str)
                and isinstance(item[1], dict)
            ):
                script, given = item
            else:
                raise InvalidRequest(
                    f"a study is 'STD;RSI' or ('STD;RSI', {{'length': 14}}), not {item!r}"
                )
            jobs.append(await self._study_job(script, given, version))
        bars: pl.DataFrame | None = None
        values: list[StudyValues] = []
        per_chart = studies_per_chart(self._auth.token if self._auth is not None else "")
        try:
            with anyio.fail_after(self.timeouts.request):
                for first in range(0, len(jobs), per_chart):
                    group = jobs[first : first + per_chart]
                    group_bars, group_values = await self._run_studies(request, group)
                    bars = group_bars if bars is None else bars
                    values += group_values
        except TimeoutError:
            raise RequestTimeout(
                f"no complete answer for the studies on {request.describe()} within "
                f"{self.timeouts.request:g} s; try again or raise Timeouts.request"
            ) from None
        assert bars is not None
        taken = set(bars.columns) if with_bars else {"time"}
        named = [
            (study_columns(meta.plots, taken), found)
            for (meta, _), found in zip(jobs, values, strict=True)
        ]
        return join_studies(bars if with_bars else bars.select("time"), named, request.timezone)

    async def _study_job(self, script: str, given: dict[str, object], version: str) -> StudyJob:
        """The script's metadata from pine-facade and ``given`` checked into the
        ``create_study`` inputs object."""
        from .protocol.studies import study_inputs
        from .studies import fetch_script

        assert self._http is not None
        meta = await fetch_script(
            self._http,
            self.endpoints,
            script,
            version,
            http_timeout=self.timeouts.http,
            cookies=self._session_cookies(),
        )
        return meta, study_inputs(meta, given)

    def stream_study(
        self,
        symbol: SymbolLike,
        exchange: str | None = None,
        interval: IntervalLike = Interval.in_1_minute,
        *,
        study: str,
        inputs: dict[str, object] | None = None,
        version: str = "last",
        history: int = 300,
        partial: bool = False,
        fut_contract: int | None = None,
        extended_session: bool = False,
        adjustment: str = "splits",
        back_adjusted: bool = False,
        queue_size: int | None = None,
        on_gap: GapPolicy = "raise",
    ) -> StudyStream:
        """Live rows of a Pine study (``STD;RSI``, ``PUB;...``, ``USER;...``) computed by
        TradingView on one symbol and interval, with the contract of :meth:`stream`.

        The study runs on its own chart session over ``history`` bars; its rows over them
        come first (the closed ones, oldest first), then live rows as bars form and close.
        Each closed row comes exactly once, in open-time order, across reconnects: after one,
        the rows that closed during the outage are backfilled before it goes live again.

        Args:
            study, inputs, version: as for :meth:`get_study`.
            history: bars the study is computed over at the start (and at least over after
                a reconnect); a recursive study such as RSI needs a few hundred to settle.
            partial: also yield the forming row (``row.closed`` False), coalesced.
            queue_size, on_gap: as for :meth:`stream` (the queue holds at least ``history``
                rows, which arrive at once).
            symbol, exchange, interval, fut_contract, extended_session, adjustment,
                back_adjusted: as for :meth:`get_hist`.

        Returns:
            A :class:`~tvfeed_async.study_stream.StudyStream` of
            :class:`~tvfeed_async.study_stream.StudyPoint` (``timestamp``, ``values``,
            ``plots``, ``closed``; ``as_dict()``); also an async context manager with
            ``aclose()``.

        Raises:
            InvalidRequest: bad arguments (at once); an unknown script, input or input type
                (from the first step, since the script's metadata is fetched in the stream's
                task).
            EntitlementError, SymbolNotFound: from the first step; other streams go on.
            ConsumerTooSlow, GapError: as for :meth:`stream`.
        """
        from .study_stream import STUDY_POINTS, StudySubscription, start_study_stream

        if not isinstance(study, str):
            raise InvalidRequest(f"study must be a script id string, not {study!r}")
        if inputs is not None and not isinstance(inputs, dict):
            raise InvalidRequest(f"inputs must be a dict of input name -> value, not {inputs!r}")
        _check_positive_int(history, "history")
        request = self._history_request(
            symbol,
            exchange,
            interval,
            history,
            {
                "fut_contract": fut_contract,
                "extended_session": extended_session,
                "adjustment": adjustment,
                "back_adjusted": back_adjusted,
            },
        )
        size = self._queue_size(queue_size, on_gap)
        streams = self._stream_manager()
        given = dict(inputs or {})

        async def load_script() -> StudyJob:
            return await self._study_job(study, given, version)

        subscription = StudySubscription(
            self._supervisor,
            request,
            load_script,
            # The history's rows are delivered at once: the queue holds them all.
            ItemConsumer(max(size, history), partial, on_gap, STUDY_POINTS),
            bar_limit=lambda: self.bar_limit,
            max_backfill_bars=self.limits.max_backfill_bars,
            page_quiet=self.timeouts.page,
        )
        return start_study_stream(streams._task_group, subscription)

    async def search_studies(
        self, text: str = "", *, filter: str = "standard"
    ) -> list[ScriptSummary]:
        """TradingView's scripts of a kind (pine-facade ``list``) whose name or short
        description contains ``text`` (letters only, any case; empty: all of them).

        Args:
            filter: ``"standard"`` (built-in indicators), ``"candlestick"``,
                ``"fundamental"``, or ``"saved"``: the signed-in user's own scripts
                (``USER;...`` ids; needs a password or cookie sign-in).

        Returns:
            :class:`~tvfeed_async.protocol.studies.ScriptSummary` items; their ``id`` is
            what :meth:`get_study` takes as ``study``.

        Raises:
            InvalidRequest: another filter, or ``"saved"`` without a signed-in session.
            AuthError: pine-facade refused the session's cookies.
            RateLimited, RequestTimeout, ConnectionLost: the service failed.
        """
        from .protocol.studies import input_key
        from .studies import fetch_script_list

        self._check_open()
        assert self._http is not None
        scripts = await fetch_script_list(
            self._http,
            self.endpoints,
            filter,
            http_timeout=self.timeouts.http,
            cookies=self._session_cookies(),
        )
        wanted = input_key(text).replace("_", "")
        return [
            script
            for script in scripts
            if wanted in input_key(script.name).replace("_", "")
            or wanted in input_key(script.short_description).replace("_", "")
            or wanted in input_key(script.id).replace("_", "")
        ]

    async def _run_studies(
        self, request: HistoryRequest, group: list[StudyJob]
    ) -> tuple[pl.DataFrame, list[StudyValues]]:
        from .studies import fetch_studies

        failed: Link | None = None
        async with self._in_flight.slot():
            for attempt in range(self.retry.history_attempts):
                try:
                    return await fetch_studies(
                        self._supervisor,
                        request,
                        group,
                        self.bar_limit,
                        page_quiet=self.timeouts.page,
                        after=failed,
                    )
                except FailedLink as error:
                    if attempt == self.retry.history_attempts - 1 or self._state != "open":
                        raise ConnectionLost(str(error)) from error
                    failed = error.link
        raise AssertionError("unreachable")  # pragma: no cover


def _check_positive_int(value: object, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidRequest(f"{name} must be a positive int, not {value!r}")


def _unix_seconds(value: TimeLike | None, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise InvalidRequest(f"{name} must be a datetime, a date or unix seconds")
    if isinstance(value, datetime):
        moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        return int(moment.timestamp())
    if isinstance(value, date):
        return int(datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp())
    if isinstance(value, int | float):
        return int(value)
    raise InvalidRequest(f"{name} must be a datetime, a date or unix seconds, not {value!r}")
