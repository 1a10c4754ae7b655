"""Bars and the rules that make a bar stream "nothing lost": each closed bar once, in order.

A bar is identified by (symbol, interval, open time). The server never says "this bar closed":
a bar is closed when a bar with a later open time arrives. Updates for the
forming bar revise it; updates older than the forming bar (re-sent history, late duplicates)
are dropped, because the bar they belong to has already been delivered as closed.

:class:`BarMerger` applies those rules to one series and reports, for each update, which bars
became closed, what the forming bar now is, and whether history handed to it after a
reconnect leaves a hole (a gap) that it cannot fill.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

__all__ = ["MAX_AHEAD", "Bar", "BarMerger", "Gap", "MergeResult"]

# Bar._replace is a Python-level call that builds a dict; the merger runs once per live update,
# so it copies with tuple.__new__ (what Bar._make does) and these tails instead.
_new_tuple = tuple.__new__
_FORMING = (False,)
_CLOSED = (True,)
_NOTHING: tuple[None, None] = (None, None)


class Bar(NamedTuple):
    """One OHLCV bar.

    Attributes:
        timestamp: open time, unix seconds UTC (``time`` gives it as an aware datetime).
        open, high, low, close: prices.
        volume: traded volume, or ``None`` for symbols without volume (indices).
        symbol: ``EXCHANGE:TICKER``.
        interval: the TradingView interval code, e.g. ``"1"``, ``"60"``, ``"1D"``.
        closed: ``True`` once a later bar has opened; ``False`` for a forming bar.
    """

    timestamp: int
    open: float
    high: float
    low: float
    close: float
    volume: float | None = None
    symbol: str = ""
    interval: str = ""
    closed: bool = False

    @property
    def time(self) -> datetime:
        """The open time as a timezone-aware UTC datetime."""
        return datetime.fromtimestamp(self.timestamp, UTC)

    def same_values(self, other: Bar) -> bool:
        """True when time and OHLCV are equal (ignoring symbol, interval and ``closed``)."""
        return self[:6] == other[:6]


@dataclass(frozen=True, slots=True)
class Gap:
    """Bars may be missing between two open times.

    Attributes:
        after: open time of the last bar known before the hole.
        before: open time of the first bar known after it.
    """

    after: int
    before: int


@dataclass(slots=True)
class MergeResult:
    """What one call to :class:`BarMerger` changed.

    Attributes:
        closed: bars that became closed, oldest first; each is reported exactly once.
        forming: the forming bar if it was created or revised by this call, else ``None``.
        gap: set when the bars given could not be joined to what came before without a hole.
    """

    closed: list[Bar] = field(default_factory=list)
    forming: Bar | None = None
    gap: Gap | None = None


#: How far ahead of the clock a bar may open before it is taken for garbage: clocks differ
#: by seconds, not days; a day leaves room for a wrong local clock.
MAX_AHEAD = 86_400.0


class BarMerger:
    """Merges updates of one series into closed bars and one forming bar.

    Rules: upsert by open time; a later open time closes the
    forming bar; updates older than the forming bar are dropped; identical updates are ignored.

    Impossible updates are dropped and counted in ``rejected``, so that one bad packet cannot
    poison the series: prices or volume that are not finite numbers, and a new bar whose open
    time is off the interval's grid (``grid`` seconds) or more than :data:`MAX_AHEAD` seconds
    ahead of ``clock()``. (Accepting a bar from the year 33658 would close the forming bar
    with its unfinished values and then drop every real bar as older.)

    With ``grace`` set, a bar that a newer one closed is held back as *closing* until the
    caller calls :meth:`release` (after the grace time) or the bar after next opens; a late
    revision of it meanwhile (a server may send a bar's final values after the next
    bar opened) revises it rather than being lost. Late revisions that come after a bar was
    reported closed are dropped and counted in ``late_revisions``.

    Args:
        last_closed: open time of the last bar already delivered as closed, when resuming a
            stream (bars at or before it are never reported again).
        grid: open times are multiples of this many seconds (0: no check).
        clock: unix time now, for the look-ahead check (None: no check).
        grace: hold closing bars for :meth:`release` (see above).
    """

    __slots__ = (
        "_closed_values",
        "_closing",
        "_forming",
        "_last_closed",
        "clock",
        "grace",
        "grid",
        "late_revisions",
        "rejected",
    )

    def __init__(
        self,
        last_closed: int | None = None,
        *,
        grid: int = 0,
        clock: Callable[[], float] | None = None,
        grace: bool = False,
    ) -> None:
        self._forming: Bar | None = None
        self._closing: Bar | None = None
        self._last_closed = last_closed
        self._closed_values: tuple[object, ...] = ()
        self.grid = grid
        self.clock = clock
        self.grace = grace
        self.rejected = 0
        self.late_revisions = 0

    @property
    def forming(self) -> Bar | None:
        """The current forming (not yet closed) bar, if any."""
        return self._forming

    @property
    def closing(self) -> Bar | None:
        """The bar held back in its grace time (``grace`` only), if any."""
        return self._closing

    @property
    def last_closed(self) -> int | None:
        """Open time of the newest bar reported closed, if any."""
        return self._last_closed

    @property
    def newest_time(self) -> int | None:
        """Open time of the newest bar seen (forming or closed)."""
        if self._forming is not None:
            return self._forming.timestamp
        if self._closing is not None:
            return self._closing.timestamp
        return self._last_closed

    def plausible(self, bar: Bar) -> bool:
        """False for a bar that cannot be real (see the class docstring)."""
        total = bar[1] + bar[2] + bar[3] + bar[4]
        volume = bar[5]
        if total - total != 0 or (volume is not None and volume - volume != 0):
            return False  # NaN or infinity (x - x is 0 for every finite number)
        timestamp = bar[0]
        if self.grid and timestamp % self.grid:
            return False
        clock = self.clock
        return clock is None or timestamp <= clock() + MAX_AHEAD

    def update(self, bar: Bar) -> tuple[Bar | None, Bar | None]:
        """Apply one update (live ``du`` or a history row); the lean form of :meth:`apply`.

        Returns:
            ``(closed, forming)``: the bar this update closed (at most one: a later open time
            closes the forming bar, or with ``grace`` releases the closing one), and the
            forming bar if it was created or revised; each is ``None`` otherwise.
        """
        if bar[8]:  # the forming bar is never marked closed, whatever came in
            bar = _new_tuple(Bar, bar[:8] + _FORMING)
        forming = self._forming
        timestamp = bar[0]
        if forming is not None and timestamp == forming[0]:
            # A revision (nearly every live update). The same values? A revision nearly
            # always changes the close, so that is compared first: the two [:6] slices are
            # only built when it is equal.
            if forming[4] == bar[4] and forming[:6] == bar[:6]:
                return _NOTHING
            total = bar[1] + bar[2] + bar[3] + bar[4]
            if total - total != 0:
                self.rejected += 1
                return _NOTHING
            self._forming = bar
            return None, bar
        return self._new_time(bar, forming, timestamp)

    def _new_time(
        self, bar: Bar, forming: Bar | None, timestamp: int
    ) -> tuple[Bar | None, Bar | None]:
        """An update whose open time is not the forming bar's (the rare path of update)."""
        closing = self._closing
        if closing is not None and timestamp <= closing[0]:
            if timestamp == closing[0]:
                if self.plausible(bar):
                    self._closing = bar  # a late revision within the grace time
                else:
                    self.rejected += 1
            return _NOTHING
        if forming is not None and timestamp < forming[0]:
            if timestamp == self._last_closed and bar[:6] != self._closed_values:
                self.late_revisions += 1
            return _NOTHING
        if forming is None and self._last_closed is not None and timestamp <= self._last_closed:
            return _NOTHING
        if not self.plausible(bar):
            self.rejected += 1
            return _NOTHING
        self._forming = bar
        if forming is None:
            return None, bar
        if self.grace:
            released = self._release_closing()
            self._closing = forming
            return released, bar
        self._last_closed = forming[0]
        self._closed_values = forming[:6]
        return _new_tuple(Bar, forming[:8] + _CLOSED), bar

    def _release_closing(self) -> Bar | None:
        closing = self._closing
        if closing is None:
            return None
        self._closing = None
        self._last_closed = closing[0]
        self._closed_values = closing[:6]
        return _new_tuple(Bar, closing[:8] + _CLOSED)

    def release(self) -> Bar | None:
        """End the grace time: the closing bar, now closed (None if there is none)."""
        return self._release_closing()

    def apply(self, bar: Bar, result: MergeResult | None = None) -> MergeResult:
        """Apply one update (live ``du`` or a history row).

        Returns:
            ``result`` (or a new one) with newly closed bars appended and ``forming`` set when
            the forming bar changed.
        """
        if result is None:
            result = MergeResult()
        closed, forming = self.update(bar)
        if closed is not None:
            result.closed.append(closed)
        if forming is not None:
            result.forming = forming
        return result

    def apply_many(self, bars: Iterable[Bar], *, overlap_expected: bool = False) -> MergeResult:
        """Apply a batch of bars in ascending time order (history, backfill after reconnect).

        Args:
            bars: bars sorted by open time (duplicates allowed).
            overlap_expected: set for a backfill after a reconnect: the batch is then expected to
                reach back to the newest bar already known, and a :class:`Gap` is reported when
                its oldest bar is newer than that (bars in between may be missing).
        """
        result = MergeResult()
        ordered = sorted(bars, key=lambda bar: bar.timestamp)
        known = self.newest_time
        if overlap_expected and known is not None and ordered and ordered[0].timestamp > known:
            result.gap = Gap(after=known, before=ordered[0].timestamp)
        for bar in ordered:
            self.apply(bar, result)
        return result

    def discard_forming(self) -> Bar | None:
        """Forget the forming bar without reporting it closed (its final values are unknown,
        e.g. after an outage the history could not cover); return what it was."""
        forming, self._forming = self._forming, None
        return forming

    def close_forming(self) -> Bar | None:
        """Declare the forming bar closed (e.g. history is final); return it closed, or None.

        A bar held in its grace time is released first (call :meth:`release` for it)."""
        forming = self._forming
        if forming is None:
            return None
        self._forming = None
        self._last_closed = forming.timestamp
        self._closed_values = forming[:6]
        return _new_tuple(Bar, forming[:8] + _CLOSED)
