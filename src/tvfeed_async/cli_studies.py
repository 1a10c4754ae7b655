"""``--study`` for ``tvfeed-async hist`` (Pine studies as extra columns, ``get_hist(studies=)``)
and ``tvfeed-async stream`` (live study rows instead of bars, ``stream_study``).

``--study "STD;RSI:length=14"`` adds a study; repeat it for more. After the script id, a
colon and ``name=value`` pairs separated by commas set inputs by the names of the script's
metadata (``"STD;MACD:fast_length=8,slow_length=21"``). Values are read as int, then float,
then ``true``/``false``, else kept as text; the script's metadata decides whether the type
is right.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
from typing import TYPE_CHECKING

from .errors import InvalidRequest

if TYPE_CHECKING:
    from .feed import TvFeed
    from .study_stream import StudyPoint, StudyStream

__all__ = [
    "add_study_argument",
    "parse_study_option",
    "stream_studies",
    "study_point_json",
    "study_point_line",
]

Study = str | tuple[str, dict[str, object]]


def add_study_argument(
    parser: argparse.ArgumentParser,
    what: str = "a Pine study as extra columns",
) -> None:
    """Add the repeatable ``--study`` option to ``parser``."""
    parser.add_argument(
        "--study",
        action="append",
        default=[],
        metavar="ID[:NAME=VALUE,...]",
        help=f'{what}, e.g. "STD;RSI:length=14" (repeatable)',
    )


def _value(text: str) -> object:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    return text


def parse_study_option(text: str) -> Study:
    """``"STD;RSI:length=14"`` -> ``("STD;RSI", {"length": 14})``; ``"STD;RSI"`` as is.

    Raises:
        InvalidRequest: an empty id or an input without ``=``.
    """
    script, _, settings = text.partition(":")
    script = script.strip()
    if not script:
        raise InvalidRequest(f"--study {text!r}: give a script id such as STD;RSI")
    if not settings.strip():
        return script
    inputs: dict[str, object] = {}
    for pair in settings.split(","):
        name, equals, value = pair.partition("=")
        if not equals or not name.strip():
            raise InvalidRequest(f"--study {text!r}: inputs are name=value pairs, not {pair!r}")
        inputs[name.strip()] = _value(value.strip())
    return script, inputs


def hist_studies(args: argparse.Namespace) -> list[Study] | None:
    """The ``studies`` argument of ``get_hist`` from ``hist``'s options (None without any).

    Raises:
        InvalidRequest: a malformed ``--study``, or studies with several symbols.
    """
    options: list[str] = getattr(args, "study", None) or []
    if not options:
        return None
    if len(args.symbols) != 1:
        raise InvalidRequest("--study works with one symbol at a time")
    return [parse_study_option(text) for text in options]


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.6g}" if math.isfinite(value) else str(value)


def study_point_line(row: StudyPoint) -> str:
    """One study row as a line: time, symbol, interval, study, state, then ``plot=value``."""
    state = "closed " if row.closed else "forming"
    values = " ".join(f"{name}={_number(value)}" for name, value in row.as_dict().items())
    return (
        f"{row.time:%Y-%m-%d %H:%M:%S} {row.symbol:<22} {row.interval:>4} {row.study} {state} "
        f"{values}"
    )


def study_point_json(row: StudyPoint) -> str:
    """One study row as a JSON object (``values``: plot name -> value or null)."""
    return json.dumps(
        {
            "symbol": row.symbol,
            "interval": row.interval,
            "study": row.study,
            "time": row.time.isoformat(),
            "closed": row.closed,
            "values": row.as_dict(),
        }
    )


async def stream_studies(feed: TvFeed, args: argparse.Namespace) -> None:
    """``stream --study``: every study on every symbol, printed as rows arrive (the first
    rows of each are its values over the last ``--history`` bars).

    Raises:
        InvalidRequest: a malformed ``--study``; and what the streams end with.
    """
    import anyio

    studies = [parse_study_option(text) for text in args.study]
    if args.history < 1:
        raise InvalidRequest(f"--history must be at least 1, not {args.history}")
    streams: list[StudyStream] = []
    for symbol in args.symbols:
        for study in studies:
            script, inputs = (study, {}) if isinstance(study, str) else study
            streams.append(
                feed.stream_study(
                    symbol,
                    interval=args.interval,
                    study=script,
                    inputs=inputs,
                    history=args.history,
                    partial=args.partial,
                )
            )
    show = study_point_json if args.ndjson else study_point_line

    async def pump(stream: StudyStream) -> None:
        async with contextlib.aclosing(stream):
            async for row in stream:
                print(show(row), flush=True)

    async with anyio.create_task_group() as group:
        for stream in streams:
            group.start_soon(pump, stream)
