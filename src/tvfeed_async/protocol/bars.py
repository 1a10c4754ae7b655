"""Bars and the rules that make a bar stream "nothing lost" (STYLE.md).

A bar is identified by (symbol, interval, open time). The server never says "this bar closed":
a bar is closed when a bar with a later open time arrives (PROTOCOL.md §6). Updates for the
forming bar revise it; updates older than the forming bar (re-sent history, late duplicates)
are dropped, because the bar they belong to has already been delivered as closed.

:class:`BarMerger` applies those rules to one series and reports, for each update, which bars
became closed, what the forming bar now is, and whether history handed to it after a
reconnect leaves a hole (a gap) that it cannot fill.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import NamedTuple

__all__ = ["Bar", "BarMerger", "Gap", "MergeResult"]

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


class BarMerger:
    """Merges updates of one series into closed bars and one forming bar.

    Rules (STYLE.md "Nothing lost"): upsert by open time; a later open time closes the
    forming bar; updates older than the forming bar are dropped; identical updates are ignored.

    Args:
        last_closed: open time of the last bar already delivered as closed, when resuming a
            stream (bars at or before it are never reported again).
    """

    __slots__ = ("_forming", "_last_closed")

    def __init__(self, last_closed: int | None = None) -> None:
        self._forming: Bar | None = None
        self._last_closed = last_closed

    @property
    def forming(self) -> Bar | None:
        """The current forming (not yet closed) bar, if any."""
        return self._forming

    @property
    def last_closed(self) -> int | None:
        """Open time of the newest bar reported closed, if any."""
        return self._last_closed

    @property
    def newest_time(self) -> int | None:
        """Open time of the newest bar seen (forming or closed)."""
        if self._forming is not None:
            return self._forming.timestamp
        return self._last_closed

    def update(self, bar: Bar) -> tuple[Bar | None, Bar | None]:
        """Apply one update (live ``du`` or a history row); the lean form of :meth:`apply`.

        Returns:
            ``(closed, forming)``: the bar this update closed (at most one: a later open time
            closes the forming bar), and the forming bar if it was created or revised; each
            is ``None`` otherwise.
        """
        if bar[8]:  # the forming bar is never marked closed, whatever came in
            bar = _new_tuple(Bar, bar[:8] + _FORMING)
        forming = self._forming
        timestamp = bar[0]
        if forming is None:
            if self._last_closed is not None and timestamp <= self._last_closed:
                return _NOTHING
            self._forming = bar
            return None, bar
        forming_time = forming[0]
        if timestamp == forming_time:
            # The same values? A revision nearly always changes the close, so that is
            # compared first: the two [:6] slices are only built when it is equal (this runs
            # for every live update).
            if forming[4] == bar[4] and forming[:6] == bar[:6]:
                return _NOTHING
            self._forming = bar
            return None, bar
        if timestamp < forming_time:
            return _NOTHING
        self._last_closed = forming_time
        self._forming = bar
        return _new_tuple(Bar, forming[:8] + _CLOSED), bar

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
        """Declare the forming bar closed (e.g. history is final); return it closed, or None."""
        forming = self._forming
        if forming is None:
            return None
        self._forming = None
        self._last_closed = forming.timestamp
        return _new_tuple(Bar, forming[:8] + _CLOSED)
