"""Parquet dataset sink (Polars; no extra dependency).

Layout under ``root``::

    bars/symbol=<EXCHANGE:TICKER, percent-encoded>/interval=<code>/date=<YYYY-MM-DD>/bars.parquet
    latest/symbol=.../interval=.../latest.parquet      (forming bars)
    gaps.ndjson                                         (unfillable gaps, one JSON per line)

``pl.scan_parquet(root / "bars", hive_partitioning=True)`` reads every series back with the
``symbol``, ``interval`` and ``date`` columns (Polars decodes the percent-encoding); a file
holds ``time`` (Datetime us, UTC), ``open``, ``high``, ``low``, ``close``, ``volume``, one row
per open time, sorted. ``date`` is the UTC date of the bar's open time.

A write merges the new bars into each day file they belong to and replaces the file
atomically: the merged file is written next to it, flushed to disk (``fsync``), renamed over
the old one, and the directory is flushed, so a crash leaves either the old or the new file,
never a torn one. Day files are replaced oldest first, so what a crash leaves of a series is
a prefix of what was written.

The file work happens on the event loop (the library starts no threads): one write costs
about as long as rewriting the day files it touches, a few milliseconds for 1-minute bars.
A disk that stalls stalls the loop; put the dataset on a local disk.
"""

from __future__ import annotations

import io
import json
import os
import urllib.parse
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Self

import polars as pl

from ..protocol.bars import Bar, Gap
from ._base import SeriesKey, SinkError, group_by_series

__all__ = ["ParquetSink"]

_SCHEMA: dict[str, pl.DataType] = {
    "time": pl.Datetime("us", "UTC"),
    "open": pl.Float64(),
    "high": pl.Float64(),
    "low": pl.Float64(),
    "close": pl.Float64(),
    "volume": pl.Float64(),
}
_FILE = "bars.parquet"


def _frame(bars: Sequence[Bar]) -> pl.DataFrame:
    times = pl.Series("time", [bar.timestamp * 1_000_000 for bar in bars], dtype=pl.Int64)
    return pl.DataFrame(
        {
            "time": times.cast(pl.Datetime("us")).dt.replace_time_zone("UTC"),
            "open": pl.Series([bar.open for bar in bars], dtype=pl.Float64),
            "high": pl.Series([bar.high for bar in bars], dtype=pl.Float64),
            "low": pl.Series([bar.low for bar in bars], dtype=pl.Float64),
            "close": pl.Series([bar.close for bar in bars], dtype=pl.Float64),
            "volume": pl.Series([bar.volume for bar in bars], dtype=pl.Float64),
        },
        schema=_SCHEMA,
    )


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _read(path: Path, columns: list[str] | None = None) -> pl.DataFrame:
    """Read one file of the dataset from its bytes, read in one call.

    The files are replaced (renamed over) while other processes read them; reading the bytes
    of one open file gives one whole version of it, never parts of two (polars reading by
    path can map the file, or reuse what it read of an earlier version of that path: seen
    once as "The page header reported the wrong page size" in the crash test)."""
    return pl.read_parquet(io.BytesIO(path.read_bytes()), columns=columns)


def _replace_atomically(frame: pl.DataFrame, path: Path) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    frame.write_parquet(temporary)
    descriptor = os.open(temporary, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(temporary, path)
    _fsync_directory(path.parent)


class ParquetSink:
    """Closed bars into a Parquet dataset partitioned by symbol, interval and date.

    Args:
        root: the dataset's directory (created when missing).
    """

    supports_latest = True

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.name = str(self.root)

    def __repr__(self) -> str:
        return f"<ParquetSink {self.root}>"

    def series_directory(self, key: SeriesKey) -> Path:
        """The directory of ``key``'s day partitions."""
        return (
            self.root
            / "bars"
            / f"symbol={urllib.parse.quote(key.symbol, safe='')}"
            / f"interval={urllib.parse.quote(key.interval, safe='')}"
        )

    async def __aenter__(self) -> Self:
        """Create the dataset directory.

        Raises:
            SinkError: it cannot be created.
        """
        try:
            (self.root / "bars").mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise SinkError(f"{self.name}: {error}") from error
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    async def last_stored(self, key: SeriesKey) -> int | None:
        """The newest open time in the newest day file of ``key``.

        Raises:
            SinkError: the files cannot be read.
        """
        directory = self.series_directory(key)
        try:
            days = sorted(
                entry.name for entry in directory.iterdir() if entry.name.startswith("date=")
            )
        except FileNotFoundError:
            return None
        except OSError as error:
            raise SinkError(f"{self.name}: {error}") from error
        for day in reversed(days):
            path = directory / day / _FILE
            try:
                newest = _read(path, columns=["time"]).get_column("time").max()
            except FileNotFoundError:
                continue
            except (OSError, pl.exceptions.PolarsError) as error:
                raise SinkError(f"{self.name}: {path}: {error}") from error
            if isinstance(newest, datetime):
                return int(newest.timestamp())
        return None

    async def write(self, bars: Sequence[Bar]) -> None:
        """Merge ``bars`` into their day files (oldest day first) and replace each atomically.

        Raises:
            SinkError: a file could not be read or written.
        """
        for key, group in group_by_series(bars).items():
            days: dict[str, list[Bar]] = {}
            for bar in group:
                day = datetime.fromtimestamp(bar.timestamp, UTC).date().isoformat()
                days.setdefault(day, []).append(bar)
            directory = self.series_directory(key)
            for day in sorted(days):
                path = directory / f"date={day}" / _FILE
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    frame = _frame(days[day])
                    if path.exists():
                        frame = pl.concat([_read(path), frame])
                    frame = frame.unique(subset="time", keep="last").sort("time")
                    _replace_atomically(frame, path)
                except (OSError, pl.exceptions.PolarsError) as error:
                    raise SinkError(f"{self.name}: {path}: {error}") from error

    async def write_latest(self, bars: Sequence[Bar]) -> None:
        """Replace each series' ``latest.parquet`` with its forming bar.

        Raises:
            SinkError: a file could not be written.
        """
        for bar in bars:
            key = SeriesKey.of(bar)
            path = (
                self.root
                / "latest"
                / f"symbol={urllib.parse.quote(key.symbol, safe='')}"
                / f"interval={urllib.parse.quote(key.interval, safe='')}"
                / "latest.parquet"
            )
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                _replace_atomically(_frame([bar]), path)
            except (OSError, pl.exceptions.PolarsError) as error:
                raise SinkError(f"{self.name}: {path}: {error}") from error

    async def record_gap(self, key: SeriesKey, gap: Gap) -> None:
        """Append one line to ``gaps.ndjson`` and flush it to disk.

        Raises:
            SinkError: the file could not be written.
        """
        line = json.dumps(
            {
                "symbol": key.symbol,
                "interval": key.interval,
                "after": gap.after,
                "before": gap.before,
            }
        )
        try:
            with (self.root / "gaps.ndjson").open("a", encoding="utf-8") as file:
                file.write(line + "\n")
                file.flush()
                os.fsync(file.fileno())
        except OSError as error:
            raise SinkError(f"{self.name}: {error}") from error
