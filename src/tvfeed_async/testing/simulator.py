"""TvSimulator: a local server that behaves like TradingView.

Example::

    async with TvSimulator() as sim:
        feed = TvFeed(endpoints=sim.endpoints)
        ...
        await sim.clock.advance(3600)            # an hour of live 1-minute bars
        expected = sim.truth("BINANCE:BTCUSDT", "1", n_bars=60)

One simulator runs a WebSocket server (:mod:`.ws_server`) and an HTTP server
(:mod:`.http_app`: sign-in, two-factor, home page with the token, symbol search v3) on
127.0.0.1, both on free ports unless told otherwise. Bars come from :mod:`.truth`
(deterministic per seed), time from :mod:`.clock` (virtual unless ``realtime=True``), and
faults are scripted through :attr:`TvSimulator.faults` (:mod:`.faults`).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections.abc import Callable, Iterable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING

import polars as pl

from ..config import Endpoints
from ..protocol.bars import Bar
from ..protocol.intervals import Interval, IntervalLike
from .catalogue import Catalogue, default_catalogue
from .clock import DEFAULT_START, SimulatorClock
from .faults import Faults
from .tokens import TokenIssuer
from .truth import Truth, TruthRow, TruthSeries
from .ws_server import Hub, ServerConfig, SimulatorStats, WebSocketServer

if TYPE_CHECKING:
    from aiohttp import web

    from .http_app import Account, HttpState

__all__ = ["ORIGIN", "TvSimulator", "serve_forever"]

#: The Origin real clients send; the simulator's endpoints carry it.
ORIGIN = "https://www.tradingview.com"

TimeLike = datetime | float | int


def _unix(value: TimeLike | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime: give a timezone-aware datetime (e.g. UTC)")
        return value.timestamp()
    return float(value)


class TvSimulator:
    """The bundled TradingView simulator.

    Args:
        seed: history seed; the same seed gives the same bars everywhere.
        start: initial virtual time (default :data:`~.clock.DEFAULT_START`, Monday
            2026-01-05 14:00 UTC).
        realtime: virtual time follows wall time times ``speed`` (for demos).
        speed: see ``realtime``.
        host: interface to listen on.
        port: WebSocket port (0: a free one).
        http_port: HTTP port (0: a free one; None: no HTTP side).
        accounts: accounts of the HTTP side (:class:`~.http_app.Account`).
        catalogue: the symbols (default :func:`~.catalogue.default_catalogue`).
        history_bars: history depth in nominal bars per interval, counted back from
            ``start``.
        revisions: live updates per bar while it forms.
        config: WebSocket-side knobs (heartbeats, limits, paging re-sends...).
        token_secret: signing secret of issued tokens (random by default).
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        start: TimeLike = DEFAULT_START,
        realtime: bool = False,
        speed: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        http_port: int | None = 0,
        accounts: Iterable[Account] = (),
        catalogue: Catalogue | None = None,
        history_bars: int = 50_000,
        revisions: int = 4,
        config: ServerConfig | None = None,
        token_secret: bytes | None = None,
    ) -> None:
        start_time = _unix(start)
        assert start_time is not None
        self.clock = SimulatorClock(start_time, realtime=realtime, speed=speed)
        self.catalogue = catalogue or default_catalogue()
        self.ground_truth = Truth(
            self.catalogue,
            seed=seed,
            revisions=revisions,
            history_bars=history_bars,
            reference_time=start_time,
        )
        self.tokens = TokenIssuer(token_secret or secrets.token_bytes(32))
        self.faults = Faults()
        self.config = config or ServerConfig()
        self.host = host
        self._port = port
        self._http_port = http_port
        self._accounts = list(accounts)
        self._hub = Hub(
            clock=self.clock,
            truth=self.ground_truth,
            catalogue=self.catalogue,
            tokens=self.tokens,
            faults=self.faults,
            config=self.config,
        )
        self._ws = WebSocketServer(self._hub)
        self._http_runner: web.AppRunner | None = None
        self._http_bound_port: int | None = None
        self.http: HttpState | None = None
        self._realtime_task: asyncio.Task[None] | None = None
        self._started = False

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start listening (WebSocket, then HTTP unless disabled)."""
        if self._started:
            return
        await self._ws.start(self.host, self._port)
        try:
            if self._http_port is not None:
                await self._start_http(self._http_port)
            if self.clock.realtime:
                self.clock._start_running()
                self._realtime_task = asyncio.create_task(self._hub.run_realtime())
        except BaseException:
            await self._ws.stop()
            raise
        self._started = True

    async def _start_http(self, port: int) -> None:
        from aiohttp import web

        from .http_app import HttpState, SearchEntry, build_http_app

        entries = [
            SearchEntry(
                symbol=info.ticker,
                exchange=info.exchange,
                description=info.description,
                type=info.type,
                currency=info.currency,
                country=info.country,
                typespecs=tuple(getattr(info, "typespecs", ())),
            )
            for info in self.catalogue
        ]
        # Wall-clock time for accounts, TOTP codes and tokens: a client's pyotp and its token
        # expiry checks use the real clock; the virtual clock only drives market data.
        self.http = HttpState(
            tokens=self.tokens, now=time.time, accounts=self._accounts, search_entries=entries
        )
        runner = web.AppRunner(build_http_app(self.http), access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._http_runner = runner
        address = runner.addresses[0]
        self._http_bound_port = int(address[1])

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        if self._realtime_task is not None:
            self._realtime_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._realtime_task
            self._realtime_task = None
        await self._ws.stop()
        if self._http_runner is not None:
            await self._http_runner.cleanup()
            self._http_runner = None
        self._started = False

    async def __aenter__(self) -> TvSimulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.stop()

    async def restart(self) -> int:
        """Close every WebSocket connection (code 1012) and keep truth, clock and tokens;
        returns how many were closed, once they are gone."""
        closed = self._ws.restart()
        for _ in range(1000):
            if not self._hub.connections:
                break
            await asyncio.sleep(0.005)
        return closed

    async def wait_subscribed(
        self,
        symbol: str | None = None,
        interval: IntervalLike | None = None,
        *,
        count: int = 1,
        timeout: float = 10.0,  # noqa: ASYNC109 (a test helper that never hangs a test)
        settle: float = 0.1,
    ) -> int:
        """Wait until at least ``count`` live series (of ``symbol`` and ``interval`` when
        given) exist on the server and their history has been written to the socket, then
        ``settle`` seconds more; returns how many series there are.

        A client's stream subscribes when its generator first runs, so a test that advances
        the clock before that moment sends the updates to nobody and then waits for bars
        that never come. Call this between starting the consumer and advancing the clock.
        Series of history requests count too while they exist. ``settle`` leaves the client
        time to read the history it was sent before the clock moves.

        Raises:
            TimeoutError: not enough series within ``timeout`` seconds (wall clock).
            KeyError: unknown ``symbol``.

        Cancelling it just stops the wait.
        """
        wanted_symbol = None
        if symbol is not None:
            info = self.catalogue.get(symbol)
            if info is None:
                raise KeyError(f"{symbol!r} is not in the simulator's catalogue")
            wanted_symbol = info.full_name
        wanted_interval = None if interval is None else Interval.parse(interval).code

        def live() -> tuple[int, bool]:
            found, written = 0, True
            for connection in self._hub.connections.values():
                if connection.closing:
                    continue
                for chart in connection._charts.values():
                    for series in chart.series.values():
                        if series.cancelled or series.live_slot is None:
                            continue
                        if wanted_symbol not in (None, series.truth.symbol.full_name):
                            continue
                        if wanted_interval not in (None, series.interval.code):
                            continue
                        found += 1
                        written = written and connection.drained.is_set()
            return found, written

        async with asyncio.timeout(timeout):
            # Polled: the server's series tables have no event to wait on (ws_server.py).
            while True:
                found, written = live()
                if found >= count and written:
                    break
                await asyncio.sleep(0.005)
        await asyncio.sleep(settle)
        return found

    # -- addresses -------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The WebSocket port."""
        return self._hub.port

    @property
    def http_port(self) -> int | None:
        """The HTTP port (None without an HTTP side)."""
        return self._http_bound_port

    @property
    def endpoints(self) -> Endpoints:
        """Where a client connects to reach this simulator."""
        www = f"http://{self.host}:{self._http_bound_port or 0}"
        return Endpoints(
            ws_url=f"ws://{self.host}:{self.port}/socket.io/websocket",
            www_url=www,
            symbol_search_url=f"{www}/symbol_search/v3/",
            origin=ORIGIN,
            pine_facade_url=f"{www}/pine-facade",
        )

    @property
    def stats(self) -> SimulatorStats:
        """Counters of the WebSocket side (the HTTP side's are on :attr:`http`)."""
        return self._hub.stats

    @property
    def hub(self) -> Hub:
        """The WebSocket side's shared state (open connections, events)."""
        return self._hub

    # -- tokens ----------------------------------------------------------------------------

    def issue_token(
        self, plan: str = "pro_premium", user_id: int = 1_000_001, issued_at: float | None = None
    ) -> str:
        """A token the WebSocket side accepts, valid for 4 h from ``issued_at`` (default:
        now on the wall clock: tokens live in real time, market data in virtual time)."""
        return self.tokens.issue(user_id, plan, time.time() if issued_at is None else issued_at)

    # -- ground truth ----------------------------------------------------------------------

    def truth_series(
        self,
        symbol: str,
        interval: IntervalLike,
        *,
        session: str = "regular",
        adjustment: str = "splits",
        back_adjusted: bool = False,
    ) -> TruthSeries:
        """The ground-truth generator of one series (see :mod:`.truth`).

        Raises:
            KeyError: unknown symbol.
        """
        return self.ground_truth.series(
            symbol,
            Interval.parse(interval),
            session=session,
            adjustment=adjustment,
            back_adjusted=back_adjusted,
        )

    def truth_rows(
        self,
        symbol: str,
        interval: IntervalLike,
        *,
        session: str = "regular",
        adjustment: str = "splits",
        back_adjusted: bool = False,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        n_bars: int | None = None,
    ) -> list[TruthRow]:
        """Closed bars as ``(open_time, open, high, low, close, volume)`` tuples (see
        :meth:`truth`)."""
        series = self.truth_series(
            symbol, interval, session=session, adjustment=adjustment, back_adjusted=back_adjusted
        )
        return series.closed_rows(
            now=self.clock.now(), start=_unix(start), end=_unix(end), n_bars=n_bars
        )

    def heikin_ashi_rows(
        self,
        symbol: str,
        interval: IntervalLike,
        *,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        n_bars: int | None = None,
    ) -> list[TruthRow]:
        """Closed Heikin-Ashi bars (chart type ``BarSetHeikenAshi@tv-basicstudies-60!``), as
        the simulator serves them; arguments as in :meth:`truth_rows`. See
        :class:`~.ws_server.HeikinAshiSeries` for the transform."""
        series = self._hub.heikin_ashi(self.truth_series(symbol, interval))
        return series.closed_rows(
            now=self.clock.now(), start=_unix(start), end=_unix(end), n_bars=n_bars
        )

    def truth(
        self,
        symbol: str,
        interval: IntervalLike,
        *,
        session: str = "regular",
        adjustment: str = "splits",
        back_adjusted: bool = False,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        n_bars: int | None = None,
    ) -> pl.DataFrame:
        """Closed ground-truth bars (close time not after the clock's now), oldest first.

        Args:
            symbol: ``EXCHANGE:TICKER``.
            interval: e.g. ``"1"``, ``"60"``, ``"1D"``.
            session: ``"regular"`` or ``"extended"``.
            adjustment: ``"splits"``, ``"dividends"`` or ``"none"`` (stocks).
            back_adjusted: continuous futures with ``backadjustment: "default"``.
            start: keep bars opening at or after this (datetime or unix seconds).
            end: keep bars opening before this.
            n_bars: keep the last ``n_bars`` of the selection (without ``start``: the last
                ``n_bars`` before ``end``/now). Without ``start`` and ``n_bars``, all history.

        Returns:
            Columns ``time`` (Datetime us UTC), ``symbol``, ``open``, ``high``, ``low``,
            ``close``, ``volume`` (Float64, null without volume).
        """
        rows = self.truth_rows(
            symbol,
            interval,
            session=session,
            adjustment=adjustment,
            back_adjusted=back_adjusted,
            start=start,
            end=end,
            n_bars=n_bars,
        )
        name = self.truth_series(symbol, interval).symbol.full_name
        return rows_to_frame(rows, name)

    def forming_bar(
        self,
        symbol: str,
        interval: IntervalLike,
        *,
        session: str = "regular",
        adjustment: str = "splits",
        back_adjusted: bool = False,
    ) -> Bar | None:
        """The bar forming at the clock's now as the server currently shows it (``closed``
        False), or None when the market is closed."""
        series = self.truth_series(
            symbol, interval, session=session, adjustment=adjustment, back_adjusted=back_adjusted
        )
        now = self.clock.now()
        slot = series.grid.slot_at_or_after(now)
        if slot[1] > now:
            return None
        row = series.at(slot, now)
        return Bar(
            *row, symbol=series.symbol.full_name, interval=series.interval.code, closed=False
        )


def rows_to_frame(rows: list[TruthRow], symbol: str) -> pl.DataFrame:
    """Ground-truth rows as a frame with the client's schema."""
    times = pl.Series("time", [row[0] for row in rows], dtype=pl.Int64)
    return pl.DataFrame(
        {
            "time": pl.from_epoch(times, time_unit="s").dt.replace_time_zone("UTC"),
            "symbol": pl.Series("symbol", [symbol] * len(rows), dtype=pl.String),
            "open": pl.Series("open", [row[1] for row in rows], dtype=pl.Float64),
            "high": pl.Series("high", [row[2] for row in rows], dtype=pl.Float64),
            "low": pl.Series("low", [row[3] for row in rows], dtype=pl.Float64),
            "close": pl.Series("close", [row[4] for row in rows], dtype=pl.Float64),
            "volume": pl.Series("volume", [row[5] for row in rows], dtype=pl.Float64),
        }
    )


async def serve_forever(
    port: int = 0,
    http_port: int | None = 0,
    realtime: bool = True,
    *,
    speed: float = 1.0,
    seed: int = 0,
    host: str = "127.0.0.1",
    start: TimeLike | None = None,
    print_fn: Callable[[str], None] = print,
    accounts: Iterable[Account] = (),
    config: ServerConfig | None = None,
) -> None:
    """Run a simulator until cancelled, printing its endpoints (``tvfeed-async simulate``).

    Args:
        port: WebSocket port (0: a free one).
        http_port: HTTP port (0: a free one; None: no HTTP side).
        realtime: let virtual time follow wall time (otherwise it stands still).
        speed: virtual seconds per wall second in real-time mode.
        seed: history seed.
        host: interface to listen on.
        start: initial virtual time (default: the fixed default instant).
        print_fn: where the endpoint lines go.
        accounts: accounts of the HTTP side (``tvfeed-async simulate --account``).
        config: the WebSocket side's knobs, e.g. its session rate limit
            (``tvfeed-async simulate --session-rate``).
    """
    simulator = TvSimulator(
        seed=seed,
        start=DEFAULT_START if start is None else start,
        realtime=realtime,
        speed=speed,
        host=host,
        port=port,
        http_port=http_port,
        accounts=accounts,
        config=config,
    )
    async with simulator:
        endpoints = simulator.endpoints
        print_fn(f"TradingView simulator: ws_url={endpoints.ws_url}")
        if simulator.http_port is not None:
            print_fn(f"  www_url={endpoints.www_url}")
            print_fn(f"  symbol_search_url={endpoints.symbol_search_url}")
            print_fn(f"  pine_facade_url={endpoints.pine_facade_url}")
        print_fn(
            f"  TVFEED_WS_URL={endpoints.ws_url} TVFEED_WWW_URL={endpoints.www_url} "
            f"TVFEED_SYMBOL_SEARCH_URL={endpoints.symbol_search_url} "
            f"TVFEED_PINE_FACADE_URL={endpoints.pine_facade_url}"
        )
        print_fn(f"  clock: {simulator.clock!r}")
        await asyncio.Event().wait()
