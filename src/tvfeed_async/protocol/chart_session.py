"""One chart session as a state machine: fed server messages, it answers with client messages.

A :class:`ChartSession` knows the ids of one chart session (``cs_...``): the symbols it
resolved (``sds_sym_1``, ``sds_sym_2``...), its series (``sds_1``, ``sds_2``...) and the
studies on them (``st1``, ``st2``...). Every command is built by a method that returns the
client messages to send; :meth:`ChartSession.receive` takes one decoded server message of the
session and returns the client messages it calls for (the next page, the next window), and
appends what happened to :attr:`ChartSession.events`. Nothing here sends, waits or reads a
clock: the asyncio drivers (``tvfeed_async.history``, ``tvfeed_async.stream``,
``tvfeed_async.studies``) send what it returns, wait for the next message and decide about
time.

Matching. The server echoes the turnaround id of each ``create_series``/``modify_series`` in
the series' data (``"t"``) and in its ``series_completed``; ``request_more_data`` continues a
series under the same turnaround. A batch or completion that carries an older turnaround of
the same series (a late answer to a request that was replaced) is counted in
:attr:`Series.stale` and otherwise ignored.

Jobs. A series can carry a job that walks its history:

* :class:`CountJob`: the newest ``n`` bars, paged back with ``request_more_data`` until
  enough bars came or a page adds no older bar (the history is exhausted). Re-sent bars are
  recognised by open time, never by the server's index, which is re-based after each page.
* :class:`RangeJob`: the bars of ``[start, end)``: a first 1-bar ``create_series`` says where
  the data ends, then ``modify_series`` with ``r,<from>:<to>`` (unix seconds) per window,
  each answered before the next is asked, so the batches cannot be confused.

:class:`Backfill` holds the decisions a live series makes when it is re-created after a
reconnect: how far to page back, and whether a hole is left that must be reported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from ..errors import (
    EntitlementError,
    InvalidRequest,
    ProtocolError,
    SymbolNotFound,
    TvFeedError,
)
from .bars import Bar, Gap
from .messages import (
    ClientMessage,
    CriticalError,
    Row,
    SeriesCompleted,
    SeriesData,
    SeriesError,
    ServerMessage,
    StudyRow,
    SymbolError,
    SymbolResolved,
    UnknownMessage,
    chart_create_session,
    chart_delete_session,
    create_series,
    modify_series,
    range_param,
    remove_series,
    request_more_data,
    resolve_symbol,
    symbol_spec,
)
from .studies import create_study, study_error

__all__ = [
    "ENTITLEMENT_REASONS",
    "PERMISSION_REASONS",
    "SERIES_ID",
    "SYMBOL_REF",
    "Answered",
    "Backfill",
    "ChartFailed",
    "ChartSession",
    "CountJob",
    "Event",
    "JobDone",
    "RangeJob",
    "Resolved",
    "Series",
    "Study",
    "StudyCompleted",
    "StudyFailed",
    "chart_error",
]

#: The first series of a chart session, and the first symbol alias (as TVKIT and the Go
#: client finance-data-stream name them); later ones count up (``sds_2``, ``sds_sym_2``).
SERIES_ID = "sds_1"
SYMBOL_REF = "sds_sym_1"
#: series_error reasons that mean "your plan does not include this": custom_resolution and
#: study_not_auth:<study> (TradingView-API reads them), seconds_not_entitled and
#: "unsupported resolution" (listed by the Go client finance-data-stream).
ENTITLEMENT_REASONS = (
    "seconds_not_entitled",
    "custom_resolution",
    "study_not_auth",
    "unsupported resolution",
)
#: symbol_error reasons that mean the symbol exists but the account may not see it.
PERMISSION_REASONS = ("permission denied",)


def chart_error(message: ServerMessage, symbol: str, name: str) -> TvFeedError | None:
    """The typed error a chart message ends its request or stream with, or None.

    Args:
        message: any message routed to the chart session.
        symbol: ``EXCHANGE:TICKER`` of the session.
        name: how errors name the request (e.g. ``"BINANCE:BTCUSDT 1 n_bars=10"``).
    """
    if isinstance(message, SymbolError):
        if message.reason.lower().startswith(PERMISSION_REASONS):
            lacking = " ".join(message.details)
            return EntitlementError(
                f"{name}: TradingView says {message.reason!r}"
                + (f" ({lacking})" if lacking else "")
                + ": the account may not see this symbol's data (it needs a data "
                "subscription or plan that includes it; sign in with one)",
                " ".join((message.reason, *message.details)),
            )
        return SymbolNotFound(symbol, message.reason)
    if isinstance(message, SeriesError):
        reason = message.reason
        if reason.lower().startswith(ENTITLEMENT_REASONS) or "not_entitled" in reason:
            return EntitlementError(
                f"{name}: TradingView says {reason!r}: the account's plan does not include "
                "this (seconds, custom intervals, non-standard chart types such as Renko "
                "need a paid plan; sign in with one)",
                reason,
            )
        return ProtocolError(f"{name}: series error {reason!r}")
    if isinstance(message, CriticalError):
        text = f"{name}: server refused the request ({message.message}; {message.detail})"
        if message.message.startswith("invalid"):
            return InvalidRequest(text)
        return ProtocolError(text)
    return None


# --------------------------------------------------------------------------- events


@dataclass(frozen=True, slots=True)
class Resolved:
    """``symbol_resolved`` for one of the session's symbol aliases."""

    symbol_ref: str
    info: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Answered:
    """A series got the ``series_completed`` of its current request."""

    series_id: str
    completed: SeriesCompleted


@dataclass(frozen=True, slots=True)
class JobDone:
    """A series' job has every answer it needs.

    Attributes:
        exhausted: the server's history ran out before the job had what it asked for.
    """

    series_id: str
    exhausted: bool


@dataclass(frozen=True, slots=True)
class ChartFailed:
    """The session ended with a typed error (symbol/series/critical error)."""

    error: TvFeedError


@dataclass(frozen=True, slots=True)
class StudyCompleted:
    """``study_completed`` for one of the session's studies."""

    study_id: str


@dataclass(frozen=True, slots=True)
class StudyFailed:
    """``study_error`` for one of the session's studies."""

    study_id: str
    error: TvFeedError


Event = Resolved | Answered | JobDone | ChartFailed | StudyCompleted | StudyFailed

_ROW_BAR = attrgetter("v")
_BAR_TIME = attrgetter("timestamp")


def row_times(rows: Sequence[Row]) -> Iterator[int]:
    """The rows' open times (C-level maps: no Python step per row)."""
    return map(_BAR_TIME, map(_ROW_BAR, rows))


# --------------------------------------------------------------------------- series, studies


class Series:
    """One series of a chart session and what arrived for it.

    Attributes:
        series_id: ``sds_1``, ``sds_2``...
        symbol_ref: the alias of the resolved symbol it shows.
        interval: the interval code it was created with.
        turnaround: the turnaround id of the request whose answer it takes now.
        chunks: the rows of every accepted batch (``timescale_update`` and ``du``), in
            arrival order; only kept while :attr:`collect` is true.
        bar_close_time: ``lbs.bar_close_time`` of the newest accepted batch that had it.
        server_time: the envelope time of the newest accepted batch that had one.
        answers: ``series_completed`` messages taken (one per answered request).
        requests: series requests sent (create/modify_series, request_more_data).
        stale: batches and completions dropped for carrying another turnaround.
        job: what walks the history of this series, if anything.
        created: ``create_series`` was sent: the next request of the series (its job's
            first, after :meth:`ChartSession.reuse`) is a ``modify_series``.
    """

    __slots__ = (
        "_turnarounds",
        "answers",
        "bar_close_time",
        "chunks",
        "collect",
        "created",
        "interval",
        "job",
        "requests",
        "series_id",
        "server_time",
        "stale",
        "symbol_ref",
        "turnaround",
    )

    def __init__(self, series_id: str, symbol_ref: str, interval: str) -> None:
        self.series_id = series_id
        self.symbol_ref = symbol_ref
        self.interval = interval
        self.turnaround = "s1"
        self._turnarounds = 1
        self.chunks: list[list[Row]] = []
        self.collect = True
        self.bar_close_time: int | None = None
        self.server_time: float | None = None
        self.answers = 0
        self.requests = 0
        self.stale = 0
        self.job: CountJob | RangeJob | None = None
        self.created = False

    def next_turnaround(self) -> str:
        """A new turnaround id for the next create/modify_series (``s2``, ``s3``...)."""
        self._turnarounds += 1
        self.turnaround = f"s{self._turnarounds}"
        return self.turnaround


class Study:
    """One study on a series of the session: its rows until ``study_completed``."""

    __slots__ = ("completed", "error", "rows", "series_id", "study_id")

    def __init__(self, study_id: str, series_id: str) -> None:
        self.study_id = study_id
        self.series_id = series_id
        self.rows: list[StudyRow] = []
        self.completed = False
        self.error: TvFeedError | None = None


# --------------------------------------------------------------------------- the session


class ChartSession:
    """The client side of one chart session (see the module docstring).

    Args:
        session_id: the ``cs_...`` id (may be set later, before the first command).
        symbol: ``EXCHANGE:TICKER`` errors name.
        name: how errors name the request or stream.

    Attributes:
        events: what :meth:`receive` noticed, oldest first; the driver takes them with
            :meth:`take_events`.
        error: the first typed error the session got (it is unusable after it).
        resolved: symbol alias -> ``symbol_resolved`` info.
        accepting: False once the driver is done with it: data that comes later is ignored.
    """

    def __init__(self, session_id: str = "", symbol: str = "", name: str = "") -> None:
        self.session_id = session_id
        self.symbol = symbol
        self.name = name or symbol
        self.series: dict[str, Series] = {}
        self.studies: dict[str, Study] = {}
        self.symbols: dict[str, str] = {}
        self._symbol_refs = 0
        self.resolved: dict[str, dict[str, Any]] = {}
        self.events: list[Event] = []
        self.error: TvFeedError | None = None
        self.accepting = True
        #: Messages accepted for this session's series and studies (a driver watches it to
        #: tell a quiet server from a slow one).
        self.activity = 0

    # ---------------------------------------------------------------- commands

    def open(self) -> list[ClientMessage]:
        """``chart_create_session``."""
        return [chart_create_session(self.session_id)]

    def close(self) -> list[ClientMessage]:
        """``chart_delete_session`` (its series and studies go with it)."""
        self.accepting = False
        return [chart_delete_session(self.session_id)]

    def resolve(
        self,
        symbol: str,
        *,
        adjustment: str = "splits",
        trading_session: str | None = None,
        back_adjusted: bool = False,
        currency: str | None = None,
    ) -> tuple[str, list[ClientMessage]]:
        """Resolve ``symbol`` under a new alias; returns the alias and ``resolve_symbol``."""
        self._symbol_refs += 1
        ref = f"sds_sym_{self._symbol_refs}"
        self.symbols[ref] = symbol
        spec = symbol_spec(
            symbol,
            adjustment=adjustment,
            session=trading_session,
            back_adjustment=back_adjusted,
            currency=currency,
        )
        return ref, [resolve_symbol(self.session_id, ref, spec)]

    def new_series(self, symbol_ref: str = SYMBOL_REF, interval: str = "") -> Series:
        """Declare the next series (``sds_1``, ``sds_2``...) without asking for it: its
        data is taken under turnaround ``s1`` from now on."""
        series = Series(f"sds_{len(self.series) + 1}", symbol_ref, interval)
        self.series[series.series_id] = series
        return series

    def create_series(self, series: Series, size: int | str | list[Any]) -> list[ClientMessage]:
        """``create_series`` of a declared series (turnaround ``s1``)."""
        series.turnaround = "s1"
        series.created = True
        series.requests += 1
        return [
            create_series(
                self.session_id,
                series.series_id,
                series.turnaround,
                series.symbol_ref,
                series.interval,
                size,
            )
        ]

    def modify_series(self, series: Series, size: int | str | list[Any]) -> list[ClientMessage]:
        """``modify_series`` under a new turnaround: only its answer is taken from now on."""
        turnaround = series.next_turnaround()
        series.requests += 1
        return [
            modify_series(
                self.session_id,
                series.series_id,
                turnaround,
                series.symbol_ref,
                series.interval,
                size,
            )
        ]

    def load(self, series: Series, size: int | str | list[Any]) -> list[ClientMessage]:
        """The first request of a job: ``create_series``, or ``modify_series`` (a new
        turnaround) when the series exists on the server already (a reused session)."""
        if series.created:
            return self.modify_series(series, size)
        return self.create_series(series, size)

    def reuse(
        self,
        series: Series,
        symbol: str,
        name: str,
        interval: str,
        *,
        adjustment: str = "splits",
        trading_session: str | None = None,
        back_adjusted: bool = False,
    ) -> list[ClientMessage]:
        """Switch an idle session, and its ``series``, to another request: ``resolve_symbol``
        of ``symbol`` under a new alias (``sds_sym_2``, ``sds_sym_3``...), which the series
        shows at ``interval`` from its next request (its job's :meth:`load`, a
        ``modify_series`` with a new turnaround). What the series and the session got for
        the previous request is forgotten; answers under its turnarounds count as stale.

        Raises:
            ValueError: the session ended with an error (it cannot be reused).
        """
        if self.error is not None:
            raise ValueError(f"chart session {self.session_id} ended with {self.error!r}")
        self.symbol = symbol
        self.name = name or symbol
        self.events = []
        self.accepting = True
        self.symbols.clear()  # the numbering goes on (self._symbol_refs)
        self.resolved.clear()
        ref, resolve = self.resolve(
            symbol,
            adjustment=adjustment,
            trading_session=trading_session,
            back_adjusted=back_adjusted,
        )
        series.symbol_ref = ref
        series.interval = interval
        series.chunks = []
        series.bar_close_time = None
        series.server_time = None
        series.answers = series.requests = series.stale = 0
        series.job = None
        return resolve

    def request_more(self, series: Series, count: int) -> list[ClientMessage]:
        """``request_more_data``: ``count`` bars older than the oldest loaded (answered under
        the series' current turnaround)."""
        series.requests += 1
        return [request_more_data(self.session_id, series.series_id, count)]

    def remove_series(self, series: Series) -> list[ClientMessage]:
        """``remove_series``; nothing of the series is taken afterwards."""
        self.series.pop(series.series_id, None)
        return [remove_series(self.session_id, series.series_id)]

    def start(self, series: Series, job: CountJob | RangeJob) -> list[ClientMessage]:
        """Run ``job`` on ``series``: the first request it makes."""
        series.job = job
        return job.begin(self, series)

    def add_study(
        self, series: Series, inputs: dict[str, Any]
    ) -> tuple[Study, list[ClientMessage]]:
        """``create_study`` of a script study (``st1``, ``st2``...) on ``series``; its
        turnaround is its id."""
        study = Study(f"st{len(self.studies) + 1}", series.series_id)
        self.studies[study.study_id] = study
        message = create_study(
            self.session_id, study.study_id, study.study_id, series.series_id, inputs
        )
        return study, [message]

    # ---------------------------------------------------------------- receiving

    def take_events(self) -> list[Event]:
        """The events noticed since the last call, oldest first."""
        events, self.events = self.events, []
        return events

    def receive(self, message: ServerMessage) -> list[ClientMessage]:
        """Take one server message of this session; returns the client messages it calls
        for (a page, a window), in order."""
        if isinstance(message, SeriesData):
            if self.accepting:
                self._data(message)
            return []
        if isinstance(message, SeriesCompleted):
            return self._completed(message)
        if isinstance(message, SymbolResolved):
            self.resolved[message.symbol_ref] = message.info
            self.events.append(Resolved(message.symbol_ref, message.info))
            return []
        if isinstance(message, UnknownMessage):
            if message.method.startswith("study_"):
                self._study_message(message)
            return []
        error = chart_error(message, self.symbol, self.name)
        if error is not None:
            self.fail(error)
        return []

    def fail(self, error: TvFeedError) -> None:
        """End the session with ``error`` (the first one is kept)."""
        if self.error is None:
            self.error = error
        self.events.append(ChartFailed(error))

    def _data(self, message: SeriesData) -> None:
        parts = message.p.series
        if self.studies:
            for study_id, study in self.studies.items():
                entry = parts.get(study_id)
                if entry is not None and entry.study_rows:
                    study.rows += entry.study_rows
                    self.activity += 1
        for series_id, payload in parts.items():
            series = self.series.get(series_id)
            if series is None:
                continue
            if payload.turnaround and payload.turnaround != series.turnaround:
                series.stale += 1
                continue
            self.activity += 1
            if payload.rows and series.collect:
                series.chunks.append(payload.rows)
                close_time = payload.bar_close_time
                if close_time is not None:
                    series.bar_close_time = close_time
            server_time = message.server_time
            if server_time is not None:
                series.server_time = server_time

    def _completed(self, message: SeriesCompleted) -> list[ClientMessage]:
        series = self.series.get(message.series_id)
        if series is None or not self.accepting:
            return []
        if message.turnaround and message.turnaround != series.turnaround:
            series.stale += 1
            return []
        self.activity += 1
        series.answers += 1
        self.events.append(Answered(series.series_id, message))
        job = series.job
        if job is None or job.done:
            return []
        follow = job.answered(self, series, message)
        if job.done:
            self.events.append(JobDone(series.series_id, job.exhausted))
        return follow

    def _study_message(self, message: UnknownMessage) -> None:
        params = message.params
        # The id must be a string: a malformed packet (a list there) is ignored, not a crash.
        key = params[1] if len(params) > 1 else None
        study = self.studies.get(key) if isinstance(key, str) else None
        if study is None:
            return
        self.activity += 1
        if message.method == "study_error":
            error = study_error(params, self.name)
            if study.error is None:
                study.error = error
            self.events.append(StudyFailed(study.study_id, error))
        elif message.method == "study_completed":
            study.completed = True
            self.events.append(StudyCompleted(study.study_id))


# --------------------------------------------------------------------------- jobs


class CountJob:
    """The newest bars of a series, paged back until ``wanted`` distinct bars came.

    Args:
        wanted: distinct bars (by open time) to collect.
        bar_limit: the most one request returns.
        enough: given the distinct open times collected and the series, whether the
            request has what it needs although fewer than ``wanted`` came (a caller that
            asked for one bar more than it keeps, in case the newest is still forming,
            passes a test that the newest is in fact closed); None: only ``wanted`` counts.

    Attributes:
        exhausted: a page brought no older bar: the history ends where the bars end.
        done: no further request is needed.
    """

    def __init__(
        self,
        wanted: int,
        bar_limit: int,
        enough: Callable[[set[int], Series], bool] | None = None,
    ) -> None:
        self.wanted = wanted
        self.bar_limit = bar_limit
        self.enough = enough
        self.seen: set[int] = set()
        self.oldest: int | None = None
        self.exhausted = False
        self.done = False
        self._processed = 0
        self._first = True

    def begin(self, session: ChartSession, series: Series) -> list[ClientMessage]:
        return session.load(series, min(self.wanted, self.bar_limit))

    def answered(
        self, session: ChartSession, series: Series, completed: SeriesCompleted
    ) -> list[ClientMessage]:
        new_times: set[int] = set()
        for rows in series.chunks[self._processed :]:
            new_times.update(row_times(rows))
        self._processed = len(series.chunks)
        new_times -= self.seen
        seen = self.seen
        seen |= new_times
        page_oldest = min(new_times, default=None)
        added_older = page_oldest is not None and (self.oldest is None or page_oldest < self.oldest)
        if added_older:
            self.oldest = page_oldest
        first, self._first = self._first, False
        if len(seen) >= self.wanted or (
            self.enough is not None and seen and self.enough(seen, series)
        ):
            self.done = True
            return []
        if not added_older and (not first or not seen):
            # A page that brought no older bar (only re-sent ones, or none): history ends here.
            self.done = self.exhausted = True
            return []
        return session.request_more(series, min(self.bar_limit, self.wanted - len(seen)))


class RangeJob:
    """The bars of ``[start, end)`` (or the newest ``n_bars`` before ``end``), in windows.

    Only the part of the range where data can be is walked: a first 1-bar request tells the
    newest bar (nothing after it is asked for), windows that come back empty double in span
    (walking back to 1970 or 1900 over years with no data takes a few dozen requests, not
    thousands), and a window the bar limit cut short (``data_completed: "limit"``, or a full
    page) is continued from its oldest bar, so that nothing inside it is skipped.

    Attributes:
        collected: distinct open times inside the windows so far.
        exhausted: the data does not reach back to ``start``.
        done: no further request is needed.
    """

    def __init__(
        self,
        start: int,
        end: int,
        interval_seconds: int,
        bar_limit: int,
        n_bars: int | None = None,
    ) -> None:
        self.start = start
        self.end = end
        self.interval_seconds = interval_seconds
        self.bar_limit = bar_limit
        self.n_bars = n_bars
        self.collected: set[int] = set()
        self.exhausted = False
        self.done = False
        # A window of bar_limit bars spans at least bar_limit * interval seconds, whatever
        # the market hours, so a window of that span cannot hold more bars than one request
        # returns.
        self._span = max(interval_seconds, (bar_limit - 1) * interval_seconds)
        self._window_end = end
        # Windows still to ask for, newest first: (from, to) with from <= time < to.
        self._todo: list[tuple[int, int]] = []
        self._window: tuple[int, int] = (start, end)
        self._revisit = False
        self._before = 0
        self._probing = True

    def begin(self, session: ChartSession, series: Series) -> list[ClientMessage]:
        return session.load(series, 1)

    def answered(
        self, session: ChartSession, series: Series, completed: SeriesCompleted
    ) -> list[ClientMessage]:
        if self._probing:
            self._probing = False
            newest = max((t for rows in series.chunks for t in row_times(rows)), default=None)
            series.chunks.clear()  # the batch of the 1-bar probe is not part of the range
            if newest is None:
                return self._finish(session, exhausted=True)  # the series has no bars at all
            self._window_end = min(self.end, newest + self.interval_seconds)
            return self._next(session, series)
        window_start, window_stop = self._window
        times = {
            timestamp
            for rows in series.chunks[self._before :]
            for timestamp in row_times(rows)
            if window_start <= timestamp < window_stop
        }
        self.collected.update(times)
        limit = self.bar_limit
        if times and (completed.data_completed == "limit" or len(times) >= limit):
            # The bar limit cut this window: what it did not return is asked for again,
            # newer part first (a server may keep either end of an over-full window).
            oldest_here, newest_here = min(times), max(times)
            if oldest_here > window_start:
                if self._revisit:
                    self._todo.append((window_start, oldest_here))
                else:
                    self._window_end = oldest_here
            if newest_here + self.interval_seconds < window_stop:
                self._todo.append((newest_here + 1, window_stop))
        elif not self._revisit and len(times) < limit // 4:
            self._span *= 2  # sparse or no data here: look further back at once
        if self.n_bars is not None and not self._todo and len(self.collected) > self.n_bars:
            return self._finish(session, exhausted=False)
        return self._next(session, series)

    def _next(self, session: ChartSession, series: Series) -> list[ClientMessage]:
        if not self._todo and self._window_end <= self.start:
            oldest = min(self.collected, default=None)
            exhausted = oldest is None or oldest > self.start + self.interval_seconds
            return self._finish(session, exhausted=exhausted)
        self._revisit = bool(self._todo)
        if self._revisit:
            self._window = self._todo.pop()
        else:
            self._window = (max(self.start, self._window_end - self._span), self._window_end)
            self._window_end = self._window[0]
        self._before = len(series.chunks)
        return session.modify_series(series, range_param(*self._window))

    def _finish(self, session: ChartSession, *, exhausted: bool) -> list[ClientMessage]:
        self.done = True
        self.exhausted = exhausted
        return []


# --------------------------------------------------------------------------- backfill


class Backfill:
    """What a live series does when it is re-created after a reconnect.

    The new ``create_series`` asked for the newest bars; if they do not reach back to the
    bar the series last knew (``known_newest``), it pages back with ``request_more_data``
    until they do, the history runs out (a page brings no older bar), or ``max_bars`` bars
    are held. Whatever the history still does not cover is a gap, reported, never skipped.

    Args:
        known_newest: open time of the newest bar the series had before the outage.
        max_bars: the most bars a backfill holds.
        page: the bars one ``request_more_data`` asks for.
    """

    __slots__ = ("_asked", "_before", "_oldest", "known_newest", "max_bars", "page", "pages")

    def __init__(self, known_newest: int, max_bars: int, page: int) -> None:
        self.known_newest = known_newest
        self.max_bars = max_bars
        self.page = page
        self.pages = 0
        self._asked = False
        self._before = 0
        self._oldest: int | None = None

    def next_page(self, pending: Sequence[Bar]) -> int | None:
        """After the answer to ``create_series`` or to the last page (``pending`` holds every
        bar the series got since): the count of the next ``request_more_data``, or None
        when the backfill has what it can get."""
        if self._asked:
            oldest = self._oldest
            if not any(oldest is None or bar.timestamp < oldest for bar in pending[self._before :]):
                return None  # the page brought nothing older: the history ends here
        if len(pending) >= self.max_bars:
            return None
        oldest = min((bar.timestamp for bar in pending), default=None)
        if oldest is not None and oldest <= self.known_newest:
            return None
        self._asked = True
        self._oldest = oldest
        self._before = len(pending)
        self.pages += 1
        return self.page

    def gap(self, pending: Sequence[Bar], last_closed: int | None) -> Gap | None:
        """The hole the history leaves before its oldest bar, or None when it reaches the
        bar the series last knew. ``last_closed``: the open time of the series' last
        closed bar (the gap starts there; else at ``known_newest``)."""
        oldest = min((bar.timestamp for bar in pending), default=None)
        if oldest is None or oldest <= self.known_newest:
            return None
        return Gap(after=self.known_newest if last_closed is None else last_closed, before=oldest)
