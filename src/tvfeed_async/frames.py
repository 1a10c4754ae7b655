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
under the time JSON parsing of the packet takes (``benchmarks/codec_throughput.py``). Each
column is one list comprehension over the parsed values, handed to Polars as one Series:
attribute reads allocate nothing the garbage collector tracks, so no collection runs while a
frame is built; ``pl.DataFrame(orient="row")`` is about 3x slower.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import polars as pl

from .errors import InvalidRequest
from .protocol.bars import Bar
from .protocol.messages import BarValues

__all__ = [
    "FRAME_COLUMNS",
    "FRAME_SCHEMA",
    "empty_frame",
    "finalize",
    "frame_from_bars",
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


def frame_from_bars(bars: Sequence[Bar]) -> pl.DataFrame:
    """Build a frame from :class:`~tvfeed_async.Bar` values (each row keeps its bar's symbol)."""
    if not bars:
        return empty_frame()
    # One comprehension per column (as in frame_from_wire_bars): no per-row iterator for
    # the garbage collector to track, unlike zip(*bars).
    return _assemble(
        _utc(pl.Series("time", [bar.timestamp for bar in bars], dtype=pl.Int64)),
        pl.Series("symbol", [bar.symbol for bar in bars], dtype=pl.String),
        (
            [bar.open for bar in bars],
            [bar.high for bar in bars],
            [bar.low for bar in bars],
            [bar.close for bar in bars],
        ),
        [bar.volume for bar in bars],
    )


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
