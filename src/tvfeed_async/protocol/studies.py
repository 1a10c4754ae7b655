"""Pine studies, without I/O: script metadata, inputs, ``create_study``, rows and errors.

A study runs in three steps:

1. pine-facade's ``translate/<id>/<version>`` answers the script's metadata (``metaInfo``:
   inputs ``in_0``..., plots and their titles in ``styles``) and its IL (``ilTemplate``):
   :func:`parse_translate` reads it into :class:`ScriptMetadata`;
2. ``create_study [cs, studyId, turnaround, seriesId, "Script@tv-scripting-101!", inputs]``
   with ``inputs = {text, pineId, pineVersion, in_<n>: {"v", "f", "t"}}``:
   :func:`study_inputs` checks the caller's inputs by name and builds that object,
   :func:`create_study` the message;
3. ``study_loading``, rows under ``"st"`` of the study id in ``du``/``timescale_update``
   (:class:`~tvfeed_async.protocol.messages.StudyRow`, ``1e100`` = no value), then
   ``study_completed``, or ``study_error`` (:func:`study_error`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import EntitlementError, InvalidRequest, ProtocolError, TvFeedError
from .messages import ClientMessage, StudyRow

__all__ = [
    "NO_VALUE",
    "SCRIPT_STUDY",
    "ScriptInput",
    "ScriptMetadata",
    "ScriptSummary",
    "create_study",
    "input_key",
    "parse_script_list",
    "parse_translate",
    "study_error",
    "study_inputs",
    "row_values",
    "study_values",
]

#: TradingView's "no value" in study rows.
NO_VALUE = 1e100
#: The study name every Pine script runs under.
SCRIPT_STUDY = "Script@tv-scripting-101!"
#: Inputs of the metadata that carry the script itself, not user settings.
_HIDDEN_INPUTS = frozenset({"text", "pineId", "pineVersion"})
_NOT_KEY = re.compile(r"[^0-9a-z]+")


@dataclass(frozen=True, slots=True)
class ScriptInput:
    """One user input of a script (``in_<n>``).

    Attributes:
        key: the name callers use: :func:`input_key` of ``name`` (``"Fast Length"`` ->
            ``"fast_length"``).
        type: ``integer``, ``float``, ``bool``, ``text``, ``source``, ``resolution``...
        options: the allowed values, when the input is a choice.
    """

    id: str
    name: str
    key: str
    type: str
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    options: tuple[Any, ...] = ()
    fake: bool = False


@dataclass(frozen=True, slots=True)
class ScriptMetadata:
    """What pine-facade says about a script.

    Attributes:
        pine_id: ``STD;RSI``, ``PUB;...``, ``USER;...``.
        version: the ``pineVersion`` to send.
        text: the IL (``ilTemplate``), sent back as ``text`` in ``create_study``.
        plots: one column name per value of a study row after the time, in row order
            (the plot's title, made unique with ``_2``, ``_3``...).
    """

    pine_id: str
    version: str
    description: str
    short_description: str
    text: str
    inputs: tuple[ScriptInput, ...]
    plots: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ScriptSummary:
    """One script of pine-facade's ``list`` (``id`` is what ``study=`` takes)."""

    id: str
    version: str
    name: str
    short_description: str
    kind: str


def parse_script_list(document: object) -> list[ScriptSummary]:
    """Read a ``list?filter=...`` answer (a JSON array); entries without an id are skipped.

    Raises:
        ProtocolError: the answer is not an array.
    """
    if not isinstance(document, list):
        raise ProtocolError("pine-facade's script list is not a JSON array")
    scripts: list[ScriptSummary] = []
    for item in document:
        if not isinstance(item, dict) or not isinstance(item.get("scriptIdPart"), str):
            continue
        extra = item.get("extra") if isinstance(item.get("extra"), dict) else {}
        assert isinstance(extra, dict)
        scripts.append(
            ScriptSummary(
                id=item["scriptIdPart"],
                version=str(item.get("version", "last")),
                name=str(item.get("scriptName", "")),
                short_description=str(extra.get("shortDescription", "")),
                kind=str(extra.get("kind") or "study"),
            )
        )
    return scripts


def input_key(name: str) -> str:
    """The key of an input named ``name``: lower case, runs of other characters as ``_``."""
    return _NOT_KEY.sub("_", name.lower()).strip("_")


def _unique(names: Iterable[str]) -> tuple[str, ...]:
    seen: set[str] = set()
    out: list[str] = []
    for name in names:
        candidate, suffix = name, 2
        while candidate in seen or candidate == "time":
            candidate, suffix = f"{name}_{suffix}", suffix + 1
        seen.add(candidate)
        out.append(candidate)
    return tuple(out)


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def parse_translate(document: object, script: str) -> ScriptMetadata:
    """Read a translate answer.

    Raises:
        InvalidRequest: the service does not know the script (``success`` false), or the
            answer has no metadata.
    """
    if not isinstance(document, dict):
        raise InvalidRequest(f"pine-facade answered something other than an object for {script}")
    result = document.get("result")
    meta = result.get("metaInfo") if isinstance(result, dict) else None
    if document.get("success") is not True or not isinstance(meta, dict):
        reason = document.get("reason") or "no metadata"
        raise InvalidRequest(f"unknown or unsupported script {script!r}: {reason}")
    assert isinstance(result, dict)
    inputs: list[ScriptInput] = []
    for item in meta.get("inputs") or []:
        if not isinstance(item, dict) or item.get("id") in _HIDDEN_INPUTS:
            continue
        name = str(item.get("name") or item.get("id"))
        options = item.get("options")
        inputs.append(
            ScriptInput(
                id=str(item.get("id")),
                name=name,
                key=input_key(str(item.get("inline") or name)),
                type=str(item.get("type", "")),
                default=item.get("defval"),
                minimum=_number(item.get("min")),
                maximum=_number(item.get("max")),
                options=tuple(options) if isinstance(options, list) else (),
                fake=bool(item.get("isFake", False)),
            )
        )
    styles = meta.get("styles") if isinstance(meta.get("styles"), dict) else {}
    assert isinstance(styles, dict)
    titles: list[str] = []
    for plot in meta.get("plots") or []:
        plot_id = str(plot.get("id")) if isinstance(plot, dict) else str(plot)
        style = styles.get(plot_id)
        title = style.get("title") if isinstance(style, dict) else None
        if not title and isinstance(plot, dict) and plot.get("target"):
            title = f"{plot['target']}_{plot.get('type', 'plot')}"
        titles.append(str(title or plot_id))
    pine = meta.get("pine")
    version = pine.get("version") if isinstance(pine, dict) else None
    text = result.get("ilTemplate")
    return ScriptMetadata(
        pine_id=str(meta.get("scriptIdPart") or script),
        version=str(version or "last"),
        description=str(meta.get("description", "")),
        short_description=str(meta.get("shortDescription", "")),
        text=text if isinstance(text, str) else "",
        inputs=tuple(inputs),
        plots=_unique(titles),
    )


def _checked(item: ScriptInput, value: object, script: str) -> object:
    def wrong(expected: str) -> InvalidRequest:
        return InvalidRequest(
            f"input {item.key!r} ({item.name}) of {script} must be {expected}, not {value!r}"
        )

    if item.type == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise wrong("an int")
    elif item.type == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise wrong("a number")
        value = float(value)
    elif item.type == "bool":
        if not isinstance(value, bool):
            raise wrong("a bool")
    elif not isinstance(value, str):
        raise wrong("a str")
    if item.options and value not in item.options:
        raise wrong(f"one of {list(item.options)}")
    if isinstance(value, int | float) and not isinstance(value, bool):
        if item.minimum is not None and value < item.minimum:
            raise wrong(f">= {item.minimum:g}")
        if item.maximum is not None and value > item.maximum:
            raise wrong(f"<= {item.maximum:g}")
    return value


def study_inputs(meta: ScriptMetadata, given: Mapping[str, object]) -> dict[str, Any]:
    """The ``inputs`` object of ``create_study``: the script and every input, ``given``
    ones (by key, name or ``in_<n>``) over the defaults.

    Raises:
        InvalidRequest: an input the script does not have, or a value of the wrong type
            or outside the input's range or options.
    """
    by_key: dict[str, ScriptInput] = {}
    for item in meta.inputs:
        by_key.setdefault(item.id, item)
        by_key.setdefault(item.key, item)
        by_key.setdefault(input_key(item.name), item)
    values = {item.id: item.default for item in meta.inputs}
    for key, value in given.items():
        found = by_key.get(key) if key.startswith("in_") else by_key.get(input_key(key))
        if found is None:
            names = ", ".join(item.key for item in meta.inputs) or "none"
            raise InvalidRequest(f"{meta.pine_id} has no input {key!r} (its inputs: {names})")
        values[found.id] = _checked(found, value, meta.pine_id)
    body: dict[str, Any] = {"text": meta.text, "pineId": meta.pine_id, "pineVersion": meta.version}
    for item in meta.inputs:
        body[item.id] = {"v": values[item.id], "f": item.fake, "t": item.type}
    return body


def create_study(
    session: str, study_id: str, turnaround: str, series_id: str, inputs: dict[str, Any]
) -> ClientMessage:
    """``create_study [cs, studyId, turnaround, seriesId, "Script@tv-scripting-101!",
    inputs]``."""
    return ClientMessage(
        "create_study", [session, study_id, turnaround, series_id, SCRIPT_STUDY, inputs]
    )


def study_values(rows: Iterable[StudyRow], plots: int) -> dict[int, tuple[float | None, ...]]:
    """Open time (unix seconds) -> the row's ``plots`` values, ``1e100`` as None; a later
    row of the same time replaces an earlier one; missing trailing values are None."""
    out: dict[int, tuple[float | None, ...]] = {}
    for row in rows:
        parsed = row_values(row, plots)
        if parsed is not None:
            out[parsed[0]] = parsed[1]
    return out


def row_values(row: StudyRow, plots: int) -> tuple[int, tuple[float | None, ...]] | None:
    """One row's open time (unix seconds) and its ``plots`` values, ``1e100`` as None and
    missing trailing values None; None for a row without values."""
    values = row.v
    if not values:
        return None
    plotted = [None if v >= NO_VALUE or math.isnan(v) else v for v in values[1 : plots + 1]]
    plotted += [None] * (plots - len(plotted))
    return int(values[0]), tuple(plotted)


def study_error(params: list[Any], name: str) -> TvFeedError:
    """The typed error of ``study_error [cs, studyId, turnaround, reason, ...]``.

    Not authorised (``study_not_auth:...``, invite-only) is an :class:`EntitlementError`,
    bad inputs an :class:`InvalidRequest`, anything else a :class:`ProtocolError`.
    """
    texts = [str(value) for value in params[3:] if value is not None]
    reason = texts[0] if texts else ""
    lowered = reason.lower()
    if "not_auth" in lowered or "invite" in lowered or "not auth" in lowered:
        return EntitlementError(
            f"{name}: TradingView says {reason!r}: the account may not run this script "
            "(an invite-only or pro script needs access granted to the signed-in user)",
            reason,
        )
    if "input" in lowered:
        return InvalidRequest(f"{name}: TradingView refused the inputs: {reason}")
    return ProtocolError(f"{name}: study error {'; '.join(texts) or 'without a reason'}")
