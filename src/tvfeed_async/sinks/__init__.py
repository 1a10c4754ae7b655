"""Stores that :class:`~tvfeed_async.recorder.Recorder` writes closed bars to, exactly once.

* :class:`PostgresSink`: a PostgreSQL / TimescaleDB table (``pip install
  "tvfeed-async[postgres]"``, asyncpg);
* :class:`RedisSink`: one Redis stream per series, entry id = open time (``pip install
  "tvfeed-async[redis]"``, redis-py);
* :class:`ParquetSink`: a Parquet dataset partitioned by symbol, interval and date (Polars).

Any object that follows the :class:`Sink` protocol can be recorded to as well.
:func:`sink_from_url` picks one from a URL or path (what ``tvfeed-async record --to`` does).

The store drivers are imported only when their sink is used, so a missing extra costs
nothing until then.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._base import SeriesKey, Sink, SinkError

if TYPE_CHECKING:
    from .parquet import ParquetSink
    from .postgresql import PostgresSink
    from .redis_streams import RedisSink

__all__ = [
    "Sink",
    "SinkError",
    "SeriesKey",
    "ParquetSink",
    "PostgresSink",
    "RedisSink",
    "sink_from_url",
]

_WHERE = {
    "ParquetSink": ("parquet", None),
    "PostgresSink": ("postgresql", "postgres"),
    "RedisSink": ("redis_streams", "redis"),
}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, extra = where
    try:
        loaded = importlib.import_module(f"{__name__}.{module}")
    except ModuleNotFoundError as missing:
        raise ImportError(
            f'{name} needs {missing.name}: pip install "tvfeed-async[{extra}]"'
        ) from missing
    return getattr(loaded, name)


def sink_from_url(target: str) -> Sink:
    """The sink a URL or path names (not opened yet: use it with ``async with``).

    * ``postgresql://...`` or ``postgres://...``: :class:`PostgresSink` (tables created);
    * ``redis://...``, ``rediss://...`` or ``unix://...``: :class:`RedisSink`;
    * anything else is a directory: :class:`ParquetSink`.

    Raises:
        ImportError: the sink's extra is not installed.
    """
    scheme = target.split("://", 1)[0].lower() if "://" in target else ""
    if scheme in ("postgresql", "postgres"):
        sink: Sink = __getattr__("PostgresSink")(target)
    elif scheme in ("redis", "rediss", "unix"):
        sink = __getattr__("RedisSink")(target)
    elif scheme in ("", "file"):
        sink = __getattr__("ParquetSink")(target.removeprefix("file://"))
    else:
        raise ValueError(
            f"--to {target!r}: use postgresql://..., redis://... or a directory for Parquet"
        )
    return sink
