"""Deterministic ground-truth bars for the simulator.

Every (symbol, interval, session, adjustment, back-adjustment) has exactly one history, a pure
function of the simulator seed: identical across connections, simulator instances and
restarts, and any window can be computed in O(bars) without starting from the beginning of
time. No global random state is used.

How prices are made:

* A :class:`BarGrid` lists the bar slots ``(key, open_time, close_time)`` of an interval
  within a :class:`~tvfeed_async.testing.catalogue.TradingSession`: crypto bars tile UTC time;
  stock bars start at the session open in the exchange time zone (so daily AAPL bars are
  stamped 13:30 or 14:30 UTC), skip weekends and the holidays of the
  session's calendar (:func:`~tvfeed_async.testing.catalogue.holiday_ordinals`) and close
  early at the session end; daily/weekly/monthly bars span their trading days. ``key``
  numbers the slots in time order (with holes) and drives the price path.
* Each symbol has one price path, a function of time shared by all its intervals
  (:class:`_BasePath`): value noise every 256 days, then Brownian bridges on finer lattices
  (a day, 30 minutes, a minute, a second), each drawn from a :class:`random.Random` seeded by
  a hash of (seed, symbol, level, segment), so any instant is computed on its own. A bar of
  any interval opens at the path's value at its open time and closes at its value at its
  close time: at the same instant every interval shows the same price, and a stock's first
  bar of a day opens where the path went overnight.
* Every lattice segment also has an envelope (a high and a low, :meth:`_BasePath.envelope`):
  a day's comes from its ends plus a random wick; below that, a segment's children get wicks
  of their own kept inside it, the highest child is raised to the segment's high and the
  lowest lowered to its low, and finer path values are clamped inside it. A bar's high and
  low are those of the largest segments tiling its trading hours, so every bar is exactly
  the shorter bars inside it aggregated (high the highest high, low the lowest low), for
  seconds up to months.
* Keys are cut into blocks of 256 bars; volumes are drawn per grid (they are not sums of
  the finer bars' volumes).
* Each bar has ``revisions`` sub-steps; revision ``j`` of a forming bar shows the extremes
  of the whole seconds elapsed by sub-step ``j`` and the path's value at it; the final
  values (open, high >= every revision's high, low <= every revision's low, close, volume)
  are the ground truth.
* Adjustments are applied per bar from its open time: ``"dividends"`` scales older prices by
  each later quarterly dividend, ``"none"`` undoes splits (older prices times the split
  ratio), and continuous futures with back-adjustment add every later roll gap. Prices are
  then rounded to the tick size.
"""

from __future__ import annotations

import hashlib
import math
import random
from bisect import bisect_left
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from itertools import accumulate, chain, pairwise
from operator import itemgetter
from zoneinfo import ZoneInfo

from ..protocol.intervals import Interval
from .catalogue import Catalogue, Instrument, TradingSession

__all__ = [
    "BLOCK_BARS",
    "BarGrid",
    "BlockColumns",
    "Row",
    "Slot",
    "Truth",
    "TruthRow",
    "TruthSeries",
]

#: ``(key, open_time, close_time)`` of one bar; times are unix seconds.
Slot = tuple[int, int, int]
#: ``(open_time, open, high, low, close, volume)``; volume None for symbols without volume.
TruthRow = tuple[int, float, float, float, float, float | None]
#: The old name of :data:`TruthRow` (not the client's ``protocol.messages.Row``, a wire row).
Row = TruthRow
#: Final ``(opens, highs, lows, closes, volumes)`` of the keys of one block, rounded to the
#: tick, unadjusted (volumes all None for symbols without volume).
BlockColumns = tuple[list[float], list[float], list[float], list[float], list[float | None]]

_UNIX_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DAY = 86_400
#: Bar keys per block: key ``k`` is bar ``k % BLOCK_BARS`` of block ``k // BLOCK_BARS``.
BLOCK_BARS = 256
_OCTAVES = 8
# Log deviations from the base price are squashed into +-_RANGE (prices stay in
# base * [0.3, 3.3]), so decades of history never drift to absurd levels.
_RANGE = 1.2
# Dividends and futures rolls every quarter, counted up to this fixed instant so that
# adjusted prices do not depend on the clock.
_ADJUSTMENT_REFERENCE = int(datetime(2035, 1, 1, tzinfo=UTC).timestamp())
_QUARTER = 91 * _DAY
# Intraday slots a grid keeps cached (whole days, least recently used dropped first): a few
# weeks of one-minute bars, years of hourly ones.
_DAY_CACHE_SLOTS = 50_000
_OPEN = itemgetter(1)


def _hash64(*parts: object) -> int:
    text = "\x1f".join(str(part) for part in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def _unit_noise(*parts: object) -> float:
    """A hash mapped to [-1, 1)."""
    return _hash64(*parts) / 2**63 - 1.0


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


class BarGrid:
    """Bar slots of one interval within one trading session.

    Args:
        session: when the instrument trades.
        interval: the bar interval.
    """

    def __init__(self, session: TradingSession, interval: Interval) -> None:
        self.session = session
        self.interval = interval
        self.intraday = interval.unit in ("S", "")
        self.step = interval.seconds
        self._utc = session.timezone in ("Etc/UTC", "UTC")
        self._zone = _zone(session.timezone)
        self.continuous = self.intraday and session.is_continuous_utc and _DAY % self.step == 0
        # Room for every slot of a day, DST changes of overnight sessions included.
        self._per_day = -(-(session.length_seconds + 7_200) // self.step) + 1
        self._bounds: dict[int, tuple[int, int]] = {}
        self._day_slots: OrderedDict[int, list[Slot]] = OrderedDict()
        self._day_slots_size = 0
        self._groups: dict[int, Slot] = {}
        weekdays = sorted(session.weekdays)
        self._weekdays = frozenset(weekdays)
        self._is_holiday = session.is_holiday
        self._days_per_week = len(weekdays)
        self._days_before = [sum(1 for day in weekdays if day < weekday) for weekday in range(7)]

    # -- calendar ---------------------------------------------------------------------------

    def _is_trading(self, ordinal: int) -> bool:
        return (ordinal - 1) % 7 in self._weekdays and not self._is_holiday(ordinal)

    def _ordinal(self, when: float) -> int:
        if self._utc:
            return int(when // _DAY) + _UNIX_EPOCH_ORDINAL
        return datetime.fromtimestamp(when, self._zone).toordinal()

    def bounds(self, ordinal: int) -> tuple[int, int]:
        """Session start and end (unix seconds) of the trading day ``ordinal``."""
        found = self._bounds.get(ordinal)
        if found is not None:
            return found
        session = self.session
        start_day = ordinal - 1 if session.overnight else ordinal
        if self._utc:
            start = (start_day - _UNIX_EPOCH_ORDINAL) * _DAY + session.open_minute * 60
            end = (ordinal - _UNIX_EPOCH_ORDINAL) * _DAY + session.close_minute * 60
        else:

            def wall(day: int, minute: int) -> int:
                midnight = datetime.combine(date.fromordinal(day), datetime.min.time(), self._zone)
                return int((midnight + timedelta(minutes=minute)).timestamp())

            start, end = wall(start_day, session.open_minute), wall(ordinal, session.close_minute)
        self._bounds[ordinal] = (start, end)
        return start, end

    def _trading_ordinal(self, ordinal: int) -> int:
        weeks, weekday = divmod(ordinal - 1, 7)
        return weeks * self._days_per_week + self._days_before[weekday]

    def _group_key(self, ordinal: int) -> int:
        multiplier = self.interval.multiplier
        if self.interval.unit == "D":
            return self._trading_ordinal(ordinal) // multiplier
        if self.interval.unit == "W":
            return ((ordinal - 1) // 7) // multiplier
        day = date.fromordinal(ordinal)
        return (day.year * 12 + day.month - 1) // multiplier

    # -- slots ------------------------------------------------------------------------------

    def _intraday_slots(self, ordinal: int) -> list[Slot]:
        cached = self._day_slots.get(ordinal)
        if cached is not None:
            self._day_slots.move_to_end(ordinal)
            return cached
        start, end = self.bounds(ordinal)
        step = self.step
        base = ordinal * self._per_day
        count = min(-(-(end - start) // step), self._per_day)
        slots = [
            (base + index, start + index * step, min(start + (index + 1) * step, end))
            for index in range(count)
        ]
        self._day_slots[ordinal] = slots
        self._day_slots_size += len(slots)
        while self._day_slots_size > _DAY_CACHE_SLOTS and len(self._day_slots) > 1:
            self._day_slots_size -= len(self._day_slots.popitem(last=False)[1])
        return slots

    def _group_slot(self, ordinal: int) -> Slot:
        key = self._group_key(ordinal)
        found = self._groups.get(key)
        if found is not None:
            return found
        first = last = ordinal
        probe = ordinal - 1
        while self._group_key(probe) == key:
            if self._is_trading(probe):
                first = probe
            probe -= 1
        probe = ordinal + 1
        while self._group_key(probe) == key:
            if self._is_trading(probe):
                last = probe
            probe += 1
        slot = (key, self.bounds(first)[0], self.bounds(last)[1])
        self._groups[key] = slot
        return slot

    def key_span(self, key: int) -> tuple[int, int]:
        """Open and close time of the slot numbered ``key``; for a key without a slot (a
        hole: a weekend, a holiday, past the session end) the span it would have."""
        if self.continuous:
            return key * self.step, key * self.step + self.step
        if self.intraday:
            ordinal, index = divmod(key, self._per_day)
            start, end = self.bounds(ordinal)
            opening = start + index * self.step
            if opening >= end:  # a hole: keep its span on the lattice, it is never shown
                return opening, opening + self.step
            return opening, min(opening + self.step, end)
        ordinals = self._group_ordinals(key)
        for ordinal in ordinals:
            if self._is_trading(ordinal):
                slot = self._group_slot(ordinal)
                return slot[1], slot[2]
        return self.bounds(ordinals[0])[0], self.bounds(ordinals[-1])[1]

    def trading_spans(self, key: int) -> list[tuple[int, int]]:
        """The trading hours inside slot ``key``: one span for intraday bars, the sessions of
        its trading days for daily, weekly and monthly bars (what its finer bars cover)."""
        if self.intraday or self.session.is_continuous_utc:
            return [self.key_span(key)]
        spans = [
            self.bounds(ordinal)
            for ordinal in self._group_ordinals(key)
            if self._is_trading(ordinal)
        ]
        return spans or [self.key_span(key)]

    def _group_ordinals(self, key: int) -> list[int]:
        """The calendar days (proleptic ordinals) that ``_group_key`` maps to ``key``."""
        multiplier = self.interval.multiplier
        if self.interval.unit == "D":
            weekdays = sorted(self._weekdays)
            days = []
            for trading in range(key * multiplier, key * multiplier + multiplier):
                weeks, rest = divmod(trading, self._days_per_week)
                days.append(weeks * 7 + weekdays[rest] + 1)
            return days
        if self.interval.unit == "W":
            first = key * multiplier * 7 + 1
            return list(range(first, first + multiplier * 7))
        months = range(key * multiplier, key * multiplier + multiplier)
        first = date(months[0] // 12, months[0] % 12 + 1, 1).toordinal()
        following = months[-1] + 1
        return list(range(first, date(following // 12, following % 12 + 1, 1).toordinal()))

    def iter_desc(self, before: float) -> Iterator[Slot]:
        """Slots whose open time is earlier than ``before``, newest first (endless)."""
        if self.continuous:
            step = self.step
            key = math.ceil(before / step) - 1
            while True:
                yield key, key * step, key * step + step
                key -= 1
        if self.intraday:
            for day in self.days_desc(before):
                yield from reversed(day)
        ordinal = self._ordinal(before) + 1
        last_key: int | None = None
        while True:
            if self._is_trading(ordinal):
                key = self._group_key(ordinal)
                if key != last_key:
                    last_key = key
                    slot = self._group_slot(ordinal)
                    if slot[1] < before:
                        yield slot
            ordinal -= 1

    def continuous_slots(self, oldest: int, last: int) -> list[Slot]:
        """Continuous grids: the slots of keys ``oldest`` .. ``last``, oldest first."""
        step, stop = self.step, last + 1
        # (key, key * step, key * step + step) for each key, built in C.
        return list(
            zip(
                range(oldest, stop),
                range(oldest * step, stop * step, step),
                range(oldest * step + step, stop * step + step, step),
                strict=True,
            )
        )

    def days_desc(self, before: float) -> Iterator[list[Slot]]:
        """Intraday grids: the slots of each trading day that open earlier than ``before``,
        oldest first, one list per day, newest day first (endless; do not modify the lists).
        """
        ordinal = self._ordinal(before) + 1
        while True:
            if self._is_trading(ordinal):
                day = self._intraday_slots(ordinal)
                if day and day[-1][1] >= before:
                    day = day[: bisect_left(day, before, key=_OPEN)]
                if day:
                    yield day
            ordinal -= 1

    def iter_asc(self, after: float) -> Iterator[Slot]:
        """Slots that close later than ``after`` (the forming one first), oldest first."""
        if self.continuous:
            step = self.step
            key = math.floor(after / step)
            while True:
                yield key, key * step, key * step + step
                key += 1
        ordinal = self._ordinal(after) - 1
        last_key: int | None = None
        while True:
            if self._is_trading(ordinal):
                if self.intraday:
                    for slot in self._intraday_slots(ordinal):
                        if slot[2] > after:
                            yield slot
                else:
                    key = self._group_key(ordinal)
                    if key != last_key:
                        last_key = key
                        slot = self._group_slot(ordinal)
                        if slot[2] > after:
                            yield slot
            ordinal += 1

    def slot_at_or_after(self, when: float) -> Slot:
        """The slot forming at ``when``, or the next one to open."""
        return next(self.iter_asc(when))

    @property
    def nominal_seconds(self) -> int:
        """Bar length used for volatility and volume scaling."""
        if self.intraday:
            return self.step
        days = {"D": 1, "W": self._days_per_week, "M": self._days_per_week * 4.35}[
            self.interval.unit
        ]
        return int(days * self.interval.multiplier * self.session.length_seconds)


@dataclass(slots=True)
class _Block:
    """One block of bars: each bar's open, close, extremes and volume, unrounded."""

    opens: list[float]
    highs: list[float]
    lows: list[float]
    closes: list[float]
    volumes: list[float]


#: Lattice spacings of the base path, coarsest first; each divides the one before. Values at
#: the coarsest level are value noise; every finer level is a Brownian bridge between the two
#: values of the coarser level around it, so a value depends only on its ancestors.
_LEVELS = (256 * _DAY, _DAY, 1_800, 60, 1)
_CHUNK_CACHE = 4_096
#: A lattice segment's high reaches above the higher of its two ends by up to this many
#: standard deviations of the path over the segment (and its low as far below the lower).
_WICK = 0.8


class _BasePath:
    """The one price path of a symbol, a function of time shared by every interval.

    A bar of any interval opens at the path's value at its open time and closes at the value
    at its close time, so at the same instant every interval shows the same price. Session
    opens and closes fall on the lattice (multiples of 30 minutes in UTC, of a minute for
    intraday bars), so evaluating a bar boundary never needs more than the levels above it.
    """

    def __init__(self, seed: int, symbol: Instrument) -> None:
        self._id = _hash64(seed, symbol.full_name, "base")
        self.base_price = symbol.base_price
        self._sigma_day = symbol.daily_volatility
        self._anchors: dict[int, float] = {}
        self._chunks: list[OrderedDict[int, list[float]]] = [OrderedDict() for _ in _LEVELS]
        self._envelopes: list[OrderedDict[int, tuple[list[float], list[float]]]] = [
            OrderedDict() for _ in _LEVELS
        ]

    def _anchor(self, index: int) -> float:
        found = self._anchors.get(index)
        if found is not None:
            return found
        sigma_anchor = self._sigma_day * math.sqrt(_LEVELS[0] / _DAY)
        total = 0.0
        for octave in range(_OCTAVES):
            span = 4**octave
            cell, offset = divmod(index, span)
            fraction = offset / span
            smooth = fraction * fraction * (3 - 2 * fraction)
            left = _unit_noise(self._id, octave, cell)
            right = _unit_noise(self._id, octave, cell + 1)
            total += min(sigma_anchor * 2**octave, 0.3) * (left + (right - left) * smooth)
        if len(self._anchors) > _CHUNK_CACHE:
            self._anchors.clear()
        self._anchors[index] = total
        return total

    def _chunk(self, level: int, index: int) -> list[float]:
        """Values at the level-``level`` lattice points of one level-``level - 1`` segment
        (both ends included)."""
        cache = self._chunks[level]
        found = cache.get(index)
        if found is not None:
            return found
        parent, step = _LEVELS[level - 1], _LEVELS[level]
        count = parent // step
        start = self._lattice(level - 1, index * parent)
        end = self._lattice(level - 1, (index + 1) * parent)
        draw = random.Random(_hash64(self._id, level, index)).random
        # Uniform increments with the variance of the step (sqrt(12) * sigma * (u - 0.5)).
        scale = self._sigma_day * math.sqrt(step / _DAY) * math.sqrt(12.0)
        walk = [0.0, *accumulate((draw() - 0.5) * scale for _ in range(count))]
        drift = (walk[-1] - (end - start)) / count
        values = [start + value - drift * position for position, value in enumerate(walk)]
        values[-1] = end
        if level >= 2:
            # Inside the segment's envelope, so that no finer value escapes the extremes the
            # coarser bars show (the ends already lie inside it).
            high, low = self.envelope(level - 1, index)
            values = [high if v > high else low if v < low else v for v in values]
        cache[index] = values
        if len(cache) > _CHUNK_CACHE:
            cache.popitem(last=False)
        return values

    def _lattice(self, level: int, when: int) -> float:
        """The log level at ``when``, a multiple of ``_LEVELS[level]``."""
        while level > 0 and when % _LEVELS[level - 1] == 0:
            level -= 1
        if level == 0:
            return self._anchor(when // _LEVELS[0])
        parent = _LEVELS[level - 1]
        index, rest = divmod(when, parent)
        return self._chunk(level, index)[rest // _LEVELS[level]]

    def _children(self, level: int, parent: int) -> tuple[list[float], list[float]]:
        """Highs and lows (log) of the level-``level`` segments inside segment ``parent`` of
        level ``level - 1``: each reaches beyond its ends by a random wick; below the top
        level they are kept inside the parent's envelope and the highest (lowest) is raised
        (lowered) to the parent's, so a parent's extremes are exactly its children's."""
        cache = self._envelopes[level]
        found = cache.get(parent)
        if found is not None:
            return found
        values = self._chunk(level, parent)
        draw = random.Random(_hash64(self._id, "envelope", level, parent)).random
        wick = _WICK * self._sigma_day * math.sqrt(_LEVELS[level] / _DAY)
        highs: list[float] = []
        lows: list[float] = []
        for left, right in pairwise(values):
            if left > right:
                left, right = right, left
            highs.append(right + wick * draw())
            lows.append(left - wick * draw())
        if level >= 2:
            top, bottom = self.envelope(level - 1, parent)
            highs = [min(value, top) for value in highs]
            lows = [max(value, bottom) for value in lows]
            highs[highs.index(max(highs))] = top
            lows[lows.index(min(lows))] = bottom
        found = (highs, lows)
        cache[parent] = found
        if len(cache) > _CHUNK_CACHE:
            cache.popitem(last=False)
        return found

    def envelope(self, level: int, index: int) -> tuple[float, float]:
        """(high, low) in log of lattice segment ``index`` of level ``level``, which spans
        ``[index * _LEVELS[level], (index + 1) * _LEVELS[level])``. A top-level segment's
        extremes are those of its days."""
        if level == 0:
            highs, lows = self._children(1, index)
            return max(highs), min(lows)
        parent, offset = divmod(index, _LEVELS[level - 1] // _LEVELS[level])
        highs, lows = self._children(level, parent)
        return highs[offset], lows[offset]

    def extremes(self, start: int, end: int) -> tuple[float, float]:
        """(high, low) in log of the path over ``[start, end)`` (whole seconds): the
        extremes of the largest lattice segments that tile it. Any bar's high is therefore
        the highest high of the shorter bars inside it, and its low the lowest low."""
        high = -math.inf
        low = math.inf
        when = start
        envelope = self.envelope
        while when < end:
            for level, spacing in enumerate(_LEVELS):
                if when % spacing == 0 and when + spacing <= end:
                    top, bottom = envelope(level, when // spacing)
                    if top > high:
                        high = top
                    if bottom < low:
                        low = bottom
                    when += spacing
                    break
        return high, low

    def log_level(self, when: float) -> float:
        """The unsquashed log deviation from the base price at ``when`` (unix seconds)."""
        whole = math.floor(when)
        if whole == when:
            for level, spacing in enumerate(_LEVELS):
                if whole % spacing == 0:
                    return self._lattice(level, whole)
        left = self._lattice(len(_LEVELS) - 1, whole)
        right = self._lattice(len(_LEVELS) - 1, whole + 1)
        return left + (right - left) * (when - whole)

    def price(self, log_level: float) -> float:
        """The price of a log level; deviations are squashed into +-_RANGE."""
        return self.base_price * math.exp(_RANGE * math.tanh(log_level / _RANGE))


class _PathModel:
    """The raw (split-adjusted, unrounded) bars of one grid of one symbol.

    Opens and closes come from the symbol's :class:`_BasePath`; the sub-steps in between
    (what a forming bar shows), the wicks and the volumes are drawn per grid.
    """

    def __init__(
        self,
        seed: int,
        symbol: Instrument,
        grid: BarGrid,
        revisions: int,
        grid_name: str,
        base: _BasePath,
    ) -> None:
        self._id = _hash64(seed, symbol.full_name, grid.interval.code, grid_name)
        self._grid = grid
        self._base_path = base
        self._revisions = revisions
        self._sigma_day = symbol.daily_volatility
        fraction = grid.nominal_seconds / grid.session.length_seconds
        self._volume_bar = symbol.volume_scale * fraction
        self._round_volume = 4 if symbol.type == "spot" else 0
        self._blocks: OrderedDict[int, _Block] = OrderedDict()

    def block(self, block: int) -> _Block:
        found = self._blocks.get(block)
        if found is not None:
            self._blocks.move_to_end(block)
            return found
        draw = random.Random(_hash64(self._id, "block", block)).random
        base = self._base_path
        level = base.log_level
        extremes = base.extremes
        squash = _RANGE
        base_price = base.base_price
        exp, tanh = math.exp, math.tanh
        first = block * BLOCK_BARS
        grid = self._grid
        keys = range(first, first + BLOCK_BARS)
        spans = [grid.key_span(key) for key in keys]
        sessions = [grid.trading_spans(key) for key in keys]
        volume_bar, round_volume = self._volume_bar, self._round_volume
        opens: list[float] = []
        highs: list[float] = []
        lows: list[float] = []
        closes: list[float] = []
        volumes: list[float] = []
        closing: float | None = None
        previous_close = None
        for (open_time, close_time), trading in zip(spans, sessions, strict=True):
            start = closing if previous_close == open_time and closing is not None else None
            if start is None:
                start = base_price * exp(squash * tanh(level(open_time) / squash))
            if len(trading) == 1:
                high, low = extremes(open_time, close_time)
            else:
                parts = [extremes(begin, end) for begin, end in trading]
                high = max(part[0] for part in parts)
                low = min(part[1] for part in parts)
            closing = base_price * exp(squash * tanh(level(close_time) / squash))
            previous_close = close_time
            opens.append(start)
            highs.append(base_price * exp(squash * tanh(high / squash)))
            lows.append(base_price * exp(squash * tanh(low / squash)))
            closes.append(closing)
            volumes.append(round(volume_bar * (0.3 + 1.4 * draw()), round_volume))
        result = _Block(opens, highs, lows, closes, volumes)
        self._blocks[block] = result
        if len(self._blocks) > 256:
            self._blocks.popitem(last=False)
        return result

    def forming(self, open_time: int, close_time: int, step: int) -> tuple[float, float, float]:
        """(high, low, close), unrounded, of a bar after ``step`` of its sub-steps: the
        extremes of the whole seconds elapsed and the path's value now."""
        base = self._base_path
        now = open_time + (close_time - open_time) * step / self._revisions
        current = base.log_level(now)
        elapsed = math.floor(now)
        high = low = current
        if elapsed > open_time:
            top, bottom = base.extremes(open_time, elapsed)
            high, low = max(high, top), min(low, bottom)
        else:
            opening = base.log_level(open_time)
            high, low = max(high, opening), min(low, opening)
        price = base.price
        return price(high), price(low), price(current)


class TruthSeries:
    """The ground truth of one (symbol, interval, session, adjustment, back-adjustment).

    Attributes:
        symbol: the instrument.
        interval: the bar interval.
        grid: its bar slots.
        first_open: open time of the oldest bar that exists (history depth).
        revisions: forming-bar revisions per bar (live updates).
    """

    def __init__(
        self,
        symbol: Instrument,
        interval: Interval,
        grid: BarGrid,
        path: _PathModel,
        *,
        adjustment: str,
        back_adjusted: bool,
        first_open: int,
        revisions: int,
    ) -> None:
        self.symbol = symbol
        self.interval = interval
        self.grid = grid
        self.revisions = revisions
        self.first_open = first_open
        self._path = path
        self._float_tails = symbol.float_tails
        self._tick = symbol.tick_size
        self._minmov = symbol.minmov
        self._pricescale = symbol.pricescale
        self._has_volume = symbol.has_volume
        self._rows: dict[int, TruthRow] = {}
        self._rounded: dict[int, BlockColumns] = {}
        self._adjust_dividends = adjustment == "dividends" and symbol.dividend_ratio != 1.0
        self._undo_splits = adjustment == "none" and bool(symbol.splits)
        self._back_adjusted = back_adjusted and symbol.roll_gap != 0.0
        first_event = symbol.listed_since + _QUARTER // 2
        self._events_first = first_event
        self._events_total = max(0, (_ADJUSTMENT_REFERENCE - first_event) // _QUARTER + 1)
        if self._back_adjusted:
            gaps = [
                symbol.roll_gap * _unit_noise("roll", symbol.full_name, index)
                for index in range(self._events_total)
            ]
            # later_gaps[n] = sum of the gaps of rolls n, n+1, ... (those after a bar).
            self._later_gaps = [*reversed([*accumulate(reversed(gaps))]), 0.0]

    # -- adjustment and rounding -----------------------------------------------------------

    def _events_until(self, when: int) -> int:
        """Quarterly events (dividends, rolls) at or before ``when``."""
        if when < self._events_first:
            return 0
        return min(self._events_total, (when - self._events_first) // _QUARTER + 1)

    def _transform(self, when: int) -> tuple[float, float]:
        factor, offset = 1.0, 0.0
        if self._adjust_dividends:
            later = self._events_total - self._events_until(when)
            factor *= self.symbol.dividend_ratio**later
        if self._undo_splits:
            for split_time, ratio in self.symbol.splits:
                if when < split_time:
                    factor *= ratio
        if self._back_adjusted:
            offset = self._later_gaps[self._events_until(when)]
        return factor, offset

    def _price(self, value: float) -> float:
        ticks = round(value / self._tick)
        if self._float_tails:
            return ticks * self._tick
        return ticks * self._minmov / self._pricescale

    # -- bars -------------------------------------------------------------------------------

    def _raw(self, key: int) -> tuple[_Block, int]:
        block, offset = divmod(key, BLOCK_BARS)
        return self._path.block(block), offset

    def final(self, slot: Slot) -> TruthRow:
        """The closed bar of ``slot`` (the ground truth)."""
        key, open_time = slot[0], slot[1]
        row = self._rows.get(key)
        if row is not None:
            return row
        block, offset = self._raw(key)
        factor, shift = self._transform(open_time)
        price = self._price
        row = (
            open_time,
            price(block.opens[offset] * factor + shift),
            price(block.highs[offset] * factor + shift),
            price(block.lows[offset] * factor + shift),
            price(block.closes[offset] * factor + shift),
            block.volumes[offset] if self._has_volume else None,
        )
        if len(self._rows) > 200_000:
            self._rows.clear()
        self._rows[key] = row
        return row

    @property
    def plain(self) -> bool:
        """True when final bars are :meth:`block_columns` values as they are (no dividend,
        split or roll adjustment depends on the bar's time)."""
        return not (self._adjust_dividends or self._undo_splits or self._back_adjusted)

    def finals(self, slots: list[Slot]) -> list[TruthRow]:
        """:meth:`final` of many slots (fast path for series without adjustments)."""
        if not self.plain:
            return [self.final(slot) for slot in slots]
        rows: list[TruthRow] = []
        position = 0
        while position < len(slots):
            block_index = slots[position][0] // BLOCK_BARS
            opens, highs, lows, closes, volumes = self.block_columns(block_index)
            base = block_index * BLOCK_BARS
            stop = position
            limit = base + BLOCK_BARS
            while stop < len(slots) and slots[stop][0] < limit:
                stop += 1
            rows.extend(
                [
                    (
                        slot[1],
                        opens[key - base],
                        highs[key - base],
                        lows[key - base],
                        closes[key - base],
                        volumes[key - base],
                    )
                    for slot in slots[position:stop]
                    for key in (slot[0],)
                ]
            )
            position = stop
        return rows

    def block_columns(self, block_index: int) -> BlockColumns:
        """The final bars of every key of one block (:data:`BLOCK_BARS` keys), rounded to the
        tick but not adjusted (see :attr:`plain`). Cached; do not modify the lists."""
        found = self._rounded.get(block_index)
        if found is not None:
            return found
        block = self._path.block(block_index)
        tick = self._tick
        if self._float_tails:

            def rounded(values: list[float]) -> list[float]:
                return [round(value / tick) * tick for value in values]
        else:
            minmov, pricescale = self._minmov, self._pricescale

            def rounded(values: list[float]) -> list[float]:
                return [round(value / tick) * minmov / pricescale for value in values]

        opens = rounded(block.opens)
        closes = rounded(block.closes)
        volumes: list[float | None] = (
            list(block.volumes) if self._has_volume else [None] * BLOCK_BARS
        )
        result = (opens, rounded(block.highs), rounded(block.lows), closes, volumes)
        if len(self._rounded) > 512:
            self._rounded.clear()
        self._rounded[block_index] = result
        return result

    def revision(self, slot: Slot, step: int) -> TruthRow:
        """The forming bar of ``slot`` after ``step`` sub-steps (0: just opened); the final
        bar when ``step`` equals :attr:`revisions`."""
        if step >= self.revisions:
            return self.final(slot)
        key, open_time, close_time = slot
        block, offset = self._raw(key)
        revisions = self.revisions
        factor, shift = self._transform(open_time)
        high, low, close = self._path.forming(open_time, close_time, step)
        opening = block.opens[offset]
        price = self._price
        volume = round(block.volumes[offset] * step / revisions, 4) if self._has_volume else None
        return (
            open_time,
            price(opening * factor + shift),
            price(max(high, opening) * factor + shift),
            price(min(low, opening) * factor + shift),
            price(close * factor + shift),
            volume,
        )

    def step_at(self, slot: Slot, now: float) -> int:
        """Which revision of ``slot`` is current at ``now`` (``revisions`` once closed)."""
        open_time, close_time = slot[1], slot[2]
        if now >= close_time:
            return self.revisions
        if now < open_time:
            return 0
        return min(
            self.revisions - 1, int((now - open_time) * self.revisions / (close_time - open_time))
        )

    def revision_time(self, slot: Slot, step: int) -> float:
        """When revision ``step`` of ``slot`` appears (``revisions``: the close time)."""
        open_time, close_time = slot[1], slot[2]
        if step >= self.revisions:
            return float(close_time)
        return open_time + (close_time - open_time) * step / self.revisions

    def at(self, slot: Slot, now: float) -> TruthRow:
        """The bar of ``slot`` as it looks at ``now``."""
        return self.revision(slot, self.step_at(slot, now))

    # -- windows ----------------------------------------------------------------------------

    def slots_before(self, before: float, count: int) -> list[Slot]:
        """Up to ``count`` slots opening before ``before`` (and not before the history
        start), oldest first."""
        slots: list[Slot] = []
        if count <= 0:
            return slots
        first = self.first_open
        grid = self.grid
        if grid.continuous:
            step = grid.step
            last = math.ceil(before / step) - 1
            return grid.continuous_slots(max(last - count + 1, -(-first // step)), last)
        if grid.intraday:
            # Whole days at a time: the newest ``count`` of the slots opening at or after
            # ``first``.
            days: list[list[Slot]] = []
            wanted = count
            for day in grid.days_desc(before):
                complete = day[0][1] >= first
                if not complete:
                    day = [slot for slot in day if slot[1] >= first]
                day = day[-wanted:]
                days.append(day)
                wanted -= len(day)
                if wanted <= 0 or not complete:
                    break
            days.reverse()
            return list(chain.from_iterable(days))
        for slot in grid.iter_desc(before):
            if slot[1] < first:
                break
            slots.append(slot)
            if len(slots) >= count:
                break
        slots.reverse()
        return slots

    def slots_between(self, start: float, end: float) -> list[Slot]:
        """Slots with ``start <= open_time <= end`` (history start respected), oldest first."""
        slots: list[Slot] = []
        floor = max(start, self.first_open)
        before = math.floor(end) + 1
        if self.grid.continuous:
            step = self.grid.step
            return self.grid.continuous_slots(int(-(-floor // step)), math.ceil(before / step) - 1)
        if self.grid.intraday:
            days: list[list[Slot]] = []
            for day in self.grid.days_desc(before):
                if day[0][1] < floor:
                    days.append([slot for slot in day if slot[1] >= floor])
                    break
                days.append(day)
            days.reverse()
            return list(chain.from_iterable(days))
        for slot in self.grid.iter_desc(before):
            if slot[1] < floor:
                break
            slots.append(slot)
        slots.reverse()
        return slots

    def slots_after(self, start: float, count: int, until: float) -> list[Slot]:
        """Up to ``count`` slots with ``start <= open_time <= until``, oldest first."""
        slots: list[Slot] = []
        for slot in self.grid.iter_asc(start):
            if slot[1] > until or len(slots) >= count:
                break
            if slot[1] >= start:
                slots.append(slot)
        return slots

    def closed_rows(
        self,
        *,
        now: float,
        start: float | None = None,
        end: float | None = None,
        n_bars: int | None = None,
    ) -> list[TruthRow]:
        """Closed bars (close time <= ``now``), ``start <= open_time < end``, the last
        ``n_bars`` of them when given, oldest first."""
        # The slot forming at ``now`` (or the next to open) is not closed; everything
        # opening before it is.
        before = float(self.grid.slot_at_or_after(now)[1])
        if end is not None:
            before = min(before, end)
        if n_bars is not None and start is None:
            slots = self.slots_before(before, n_bars)
        else:
            slots = self.slots_between(
                start if start is not None else self.first_open, math.ceil(before) - 1
            )
            slots = [slot for slot in slots if slot[1] < before]
            if n_bars is not None:
                slots = slots[-n_bars:] if n_bars > 0 else []
        return self.finals([slot for slot in slots if slot[2] <= now])


class Truth:
    """Ground truth for every symbol of a catalogue.

    Args:
        catalogue: the symbols.
        seed: the history seed (same seed, same bars).
        revisions: forming-bar revisions per bar.
        history_bars: history depth, in nominal bars of the interval, counted back from
            ``reference_time`` (and never before the symbol's listing).
        reference_time: the instant history depth is counted from (the clock's start).
    """

    def __init__(
        self,
        catalogue: Catalogue,
        *,
        seed: int = 0,
        revisions: int = 4,
        history_bars: int = 50_000,
        reference_time: float,
    ) -> None:
        if revisions < 1:
            raise ValueError("revisions must be at least 1")
        self.catalogue = catalogue
        self.seed = seed
        self.revisions = revisions
        self.history_bars = history_bars
        self.reference_time = reference_time
        self._series: dict[tuple[str, str, str, str, bool], TruthSeries] = {}
        self._paths: dict[tuple[str, str, str], _PathModel] = {}
        self._bases: dict[str, _BasePath] = {}

    def series(
        self,
        symbol: str | Instrument,
        interval: Interval | str,
        *,
        session: str = "regular",
        adjustment: str = "splits",
        back_adjusted: bool = False,
    ) -> TruthSeries:
        """The ground truth of one series.

        Raises:
            KeyError: unknown symbol.
            InvalidInterval: bad interval.
        """
        info = symbol if isinstance(symbol, Instrument) else self.catalogue.get(symbol)
        if info is None:
            raise KeyError(f"unknown symbol {symbol!r}")
        parsed = Interval.parse(interval)
        session_name = "extended" if session == "extended" and info.extended else "regular"
        if info.type != "stock":
            adjustment = "splits"
        back_adjusted = back_adjusted and info.roll_gap != 0.0
        cache_key = (info.full_name, parsed.code, session_name, adjustment, back_adjusted)
        found = self._series.get(cache_key)
        if found is not None:
            return found
        trading_session = info.session(session_name)
        grid_name = self._grid_name(info, parsed, session_name)
        path_key = (info.full_name, parsed.code, grid_name)
        path = self._paths.get(path_key)
        if path is None:
            # The walk of the extended grid also serves regular hours when the two grids
            # line up, so regular-session bars equal the extended ones at the same times.
            path_session = (
                info.extended if grid_name == "extended" and info.extended else trading_session
            )
            base = self._bases.get(info.full_name)
            if base is None:
                base = self._bases[info.full_name] = _BasePath(self.seed, info)
            path = _PathModel(
                self.seed, info, BarGrid(path_session, parsed), self.revisions, grid_name, base
            )
            self._paths[path_key] = path
        grid = BarGrid(trading_session, parsed)
        if grid_name == "extended" and session_name == "regular":
            grid = _AlignedGrid(trading_session, parsed, info.extended)  # type: ignore[arg-type]
        depth_start = int(self.reference_time - self.history_bars * parsed.seconds)
        series = TruthSeries(
            info,
            parsed,
            grid,
            path,
            adjustment=adjustment,
            back_adjusted=back_adjusted,
            first_open=max(info.listed_since, depth_start),
            revisions=self.revisions,
        )
        self._series[cache_key] = series
        return series

    @staticmethod
    def _grid_name(info: Instrument, interval: Interval, session_name: str) -> str:
        extended = info.extended
        if extended is None or not interval.is_intraday:
            return session_name
        lead = (info.regular.open_minute - extended.open_minute) * 60
        if lead % interval.seconds == 0:
            return "extended"
        return session_name


class _AlignedGrid(BarGrid):
    """A regular-hours grid whose slot keys are those of the extended grid (same walk)."""

    def __init__(
        self, session: TradingSession, interval: Interval, extended: TradingSession
    ) -> None:
        super().__init__(session, interval)
        self._extended = BarGrid(extended, interval)
        self._lead = (session.open_minute - extended.open_minute) * 60 // interval.seconds

    def _intraday_slots(self, ordinal: int) -> list[Slot]:
        cached = self._day_slots.get(ordinal)
        if cached is not None:
            return cached
        slots = super()._intraday_slots(ordinal)
        base = ordinal * self._extended._per_day + self._lead
        slots = [(base + index, start, end) for index, (_, start, end) in enumerate(slots)]
        self._day_slots[ordinal] = slots
        return slots
