"""``--study`` for ``tvfeed-async hist``: Pine studies as extra columns (``get_hist(studies=)``).

``--study "STD;RSI:length=14"`` adds a study; repeat it for more. After the script id, a
colon and ``name=value`` pairs separated by commas set inputs by the names of the script's
metadata (``"STD;MACD:fast_length=8,slow_length=21"``). Values are read as int, then float,
then ``true``/``false``, else kept as text; the script's metadata decides whether the type
is right.
"""

from __future__ import annotations

import argparse

from .errors import InvalidRequest

__all__ = ["add_study_argument", "parse_study_option"]

Study = str | tuple[str, dict[str, object]]


def add_study_argument(parser: argparse.ArgumentParser) -> None:
    """Add the repeatable ``--study`` option to ``parser``."""
    parser.add_argument(
        "--study",
        action="append",
        default=[],
        metavar="ID[:NAME=VALUE,...]",
        help='a Pine study as extra columns, e.g. "STD;RSI:length=14" (repeatable)',
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
