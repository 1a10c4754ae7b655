"""What a sink is: the store side of :class:`~tvfeed_async.recorder.Recorder`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self, runtime_checkable

from ..errors import TvFeedError
from ..protocol.bars import Bar, Gap

__all__ = ["SeriesKey", "Sink", "SinkError", "group_by_series"]


@dataclass(frozen=True, slots=True, order=True)
class SeriesKey:
    """One recorded series.

    Attributes:
        symbol: ``EXCHANGE:TICKER`` (``Bar.symbol``).
        interval: the TradingView interval code (``Bar.interval``: ``"1"``, ``"60"``, ``"1D"``).
    """

    symbol: str
    interval: str

    @classmethod
    def of(cls, bar: Bar) -> SeriesKey:
        """The series ``bar`` belongs to."""
        return cls(bar.symbol, bar.interval)

    def __str__(self) -> str:
        return f"{self.symbol} {self.interval}"


class SinkError(TvFeedError):
    """The store failed or could not be reached.

    A write that raised it may or may not have been stored; sinks store idempotently (a bar
    whose (symbol, interval, open time) is already stored is not stored again), so the
    recorder simply writes the same bars again once the store is back.
    """


@runtime_checkable
class Sink(Protocol):
    """A store of closed bars, used by the recorder.

    Contract:

    * ``last_stored`` reads the store itself (never a cache that a crash could lose), so a
      restarted recorder resumes from what is durable.
    * ``write`` returns only once every bar given is durable in the store. Bars of one series
      are given oldest first; if it raises, what it stored of each series is a prefix of that
      series' bars (nothing after a missing bar), so the store never holds a hole. A bar
      already stored is not stored twice.
    * ``write_latest`` keeps the forming bar of each series apart from the closed bars (a
      separate row or key); it is optional for the recorder (``supports_latest``).
    * ``record_gap`` durably notes that the server could not provide the bars between two
      open times.

    Every method raises :class:`SinkError` when the store fails; cancelling one leaves the
    store as a failed call would.
    """

    #: A short description for logs and metrics (e.g. ``postgresql://host/db``).
    name: str
    #: False when the sink keeps no forming bars (``write_latest`` does nothing).
    supports_latest: bool

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    async def last_stored(self, key: SeriesKey) -> int | None:
        """Open time (unix seconds) of the newest stored closed bar of ``key``, or None."""
        ...

    async def write(self, bars: Sequence[Bar]) -> None:
        """Store closed bars durably (see the class docstring)."""
        ...

    async def write_latest(self, bars: Sequence[Bar]) -> None:
        """Store the newest forming bar of each series (one per series)."""
        ...

    async def record_gap(self, key: SeriesKey, gap: Gap) -> None:
        """Note durably that bars of ``key`` between ``gap.after`` and ``gap.before`` (open
        times, exclusive) could not be fetched."""
        ...


def group_by_series(bars: Iterable[Bar]) -> dict[SeriesKey, list[Bar]]:
    """Bars grouped by series, each group in the order given."""
    groups: dict[SeriesKey, list[Bar]] = {}
    for bar in bars:
        key = SeriesKey(bar.symbol, bar.interval)
        group = groups.get(key)
        if group is None:
            groups[key] = [bar]
        else:
            group.append(bar)
    return groups
