"""The Polars frame every historical call returns, and the fast ways to build it.

Schema (:data:`FRAME_SCHEMA`), one row per bar::

    time    Datetime("us", "UTC")   bar open time
    symbol  String                  EXCHANGE:TICKER
    open    Float64
    high    Float64
    low     Float64
    close   Float64
    volume  Float64, nullable       null when the symbol has no volume (indices)

This module is deliberately outside the pure ``protocol`` package, which must not import
Polars. Speed matters here: a 5,000-bar ``timescale_update`` should become a frame in well
under the time JSON parsing of the packet takes. Measured alternatives (see
``benchmarks/codec_throughput.py``): transposing the raw ``v`` lists with ``zip(*rows)`` and
handing each column to Polars is the fastest correct way; ``pl.DataFrame(orient="row")`` is
about 3x slower, and building one flat list then slicing it with ``gather_every`` or
``reshape`` is about 2x slower.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from .errors import FramingError, InvalidRequest
from .protocol.bars import Bar
from .protocol.messages import BarValues

__all__ = [
    "FRAME_COLUMNS",
    "FRAME_SCHEMA",
    "empty_frame",
    "finalize",
    "frame_from_bars",
    "frame_from_rows",
    "frame_from_wire_bars",
]

#: Column names, in order.
FRAME_COLUMNS: tuple[str, ...] = ("time", "symbol", "open", "high", "low", "close", "volume")

#: The schema of every historical frame.
FRAME_SCHEMA: pl.Schema = pl.Schema(
    {
        "time": pl.Datetime("us", "UTC"),
        "symbol": pl.String(),
        "open": pl.Float64(),
        "high": pl.Float64(),
        "low": pl.Float64(),
        "close": pl.Float64(),
        "volume": pl.Float64(),
    }
)

_PRICE_COLUMNS = ("open", "high", "low", "close")
_MICROSECONDS = 1_000_000
_UTC_MICROSECONDS = pl.Datetime("us", "UTC")


def empty_frame() -> pl.DataFrame:
    """A frame with the schema and no rows."""
    return pl.DataFrame(schema=FRAME_SCHEMA)


def _time_column(times: Sequence[Any]) -> pl.Series:
    # Wire times are floats such as 1558194300.0; casting to Int64 truncates like int() does in
    # bar_from_values, so a frame and the Bar values built from the same rows agree.
    return _utc(pl.Series("time", times, dtype=pl.Float64).cast(pl.Int64))


def _utc(seconds: pl.Series) -> pl.Series:
    return (seconds * _MICROSECONDS).cast(_UTC_MICROSECONDS)


def _constant(name: str, value: Any, dtype: pl.DataType, size: int) -> pl.Series:
    # new_from_index repeats one value natively: measured 4x faster than [value] * size,
    # extend_constant or pl.repeat for a 5,000-row column.
    return pl.Series(name, [value], dtype=dtype).new_from_index(0, size)


def _assemble(
    time: pl.Series,
    symbols: pl.Series,
    prices: Sequence[Sequence[Any]],
    volume: pl.Series | Sequence[Any],
) -> pl.DataFrame:
    # One Series per column straight from the Python sequences: measured faster than building
    # a frame first and deriving time/symbol with expressions (pl.DataFrame(orient="row") is
    # about 3x slower still).
    columns = [time, symbols]
    columns.extend(
        pl.Series(name, values, dtype=pl.Float64)
        for name, values in zip(_PRICE_COLUMNS, prices, strict=True)
    )
    columns.append(
        volume if isinstance(volume, pl.Series) else pl.Series("volume", volume, dtype=pl.Float64)
    )
    return pl.DataFrame(columns)


def frame_from_rows(values: Sequence[Sequence[Any]], symbol: str) -> pl.DataFrame:
    """Build a frame from raw wire bars, as ``SeriesPayload.values()`` returns them.

    Args:
        values: ``[time, open, high, low, close(, volume)]`` lists in server order; times may
            be floats, volume may be absent (5 elements) or null. Order and duplicates are
            kept; pass the result to :func:`finalize` to sort and de-duplicate.
        symbol: ``EXCHANGE:TICKER`` for the ``symbol`` column.

    Raises:
        FramingError: a row is not a list of at least five numbers.
    """
    if not values:
        return empty_frame()
    return _frame(values, lambda: values, len(values), symbol)


def frame_from_wire_bars(bars: Sequence[BarValues], symbol: str) -> pl.DataFrame:
    """Build a frame of ``symbol`` from bar values as the parser gives them (``Row.v``).

    Order and duplicates are kept; pass the result to :func:`finalize` to sort and
    de-duplicate.
    """
    if not bars:
        return empty_frame()
    # One comprehension per column: attribute reads of the gc=False structs allocate nothing
    # the garbage collector tracks, unlike zip(*rows), which makes an iterator per row.
    return _assemble(
        _utc(pl.Series("time", [bar.timestamp for bar in bars], dtype=pl.Int64)),
        _constant("symbol", symbol, pl.String(), len(bars)),
        (
            [bar.open for bar in bars],
            [bar.high for bar in bars],
            [bar.low for bar in bars],
            [bar.close for bar in bars],
        ),
        [bar.volume for bar in bars],
    )


def _frame(
    values: Iterable[Sequence[Any]],
    materialize: Callable[[], Sequence[Sequence[Any]]],
    size: int,
    symbol: str,
) -> pl.DataFrame:
    try:
        columns = _transpose(values)
        width = len(columns)
        if width < 5:
            raise FramingError(f"bar rows need at least 5 values, one has {width}")
        volume: pl.Series | Sequence[Any]
        if width >= 6:
            volume = columns[5]
        else:
            rows = materialize()
            if any(len(row) > 5 for row in rows):
                # Mixed 5- and 6-element rows: zip() stopped at 5, so pick volume row by row.
                volume = [row[5] if len(row) > 5 else None for row in rows]
            else:
                volume = _constant("volume", None, pl.Float64(), size)
        symbols = _constant("symbol", symbol, pl.String(), size)
        return _assemble(_time_column(columns[0]), symbols, columns[1:5], volume)
    except FramingError:
        raise
    except (TypeError, ValueError, OverflowError, pl.exceptions.PolarsError) as exc:
        raise FramingError(f"malformed bar rows for {symbol!r}: {exc}") from exc


def _transpose(rows: Iterable[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Columns of ``rows``: one C-level ``zip`` is the cheapest transpose from Python lists.

    ``zip(*rows)`` allocates one iterator per row. Right after parsing a large packet those
    allocations trigger garbage collections that walk every freshly parsed object, so
    collection is paused for the transpose, which creates no reference cycles (measured:
    about 0.25 ms less per 5,000 bars).
    """
    if not gc.isenabled():
        return list(zip(*rows, strict=False))
    gc.disable()
    try:
        return list(zip(*rows, strict=False))
    finally:
        gc.enable()


def frame_from_bars(bars: Sequence[Bar]) -> pl.DataFrame:
    """Build a frame from :class:`~tvfeed_async.Bar` values (each row keeps its bar's symbol)."""
    if not bars:
        return empty_frame()
    columns = _transpose(bars)
    symbols = pl.Series("symbol", columns[6], dtype=pl.String)
    return _assemble(_time_column(columns[0]), symbols, columns[1:5], columns[5])


def finalize(frame: pl.DataFrame, *, timezone: str | None = None) -> pl.DataFrame:
    """Sort by time and keep one row per (symbol, time): the last one given wins.

    Later rows win because they are newer information (a live update of the last history bar,
    a re-sent bar after ``request_more_data``).

    Args:
        frame: a frame with :data:`FRAME_SCHEMA`.
        timezone: an IANA name such as ``"America/New_York"`` to show ``time`` in that zone;
            the instants are unchanged, only the column's time zone is converted.

    Raises:
        InvalidRequest: ``timezone`` is not a known IANA time zone.
    """
    if timezone is not None:
        _check_timezone(timezone)
    if frame.height > 1 and not _strictly_increasing(frame["time"]):
        frame = frame.unique(subset=["symbol", "time"], keep="last", maintain_order=True).sort(
            ["time", "symbol"], maintain_order=True
        )
    if timezone is not None:
        frame = frame.with_columns(pl.col("time").dt.convert_time_zone(timezone))
    return frame


def _strictly_increasing(times: pl.Series) -> bool:
    # The common case (server order, no duplicates) needs neither a sort nor a unique pass;
    # strictly increasing times also make (symbol, time) unique whatever the symbols are.
    return times.null_count() == 0 and times.is_sorted() and times.n_unique() == times.len()


def _check_timezone(timezone: str) -> None:
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidRequest(
            f"unknown time zone {timezone!r}; use an IANA name such as 'America/New_York'"
        ) from exc
