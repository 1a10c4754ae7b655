"""The simulator's study engine: script metadata (as pine-facade serves it) and values.

Six built-in scripts are known, each with the inputs and plots listed in :data:`SCRIPTS`:
``STD;RSI`` (Wilder), ``STD;SMA``, ``STD;EMA``, ``STD;MACD`` (12/26/9),
``STD;Bollinger_Bands`` (20, 2) and ``STD;Volume``. ``PUB;simulated-invite-only`` exists but
is invite-only: the translate endpoint and ``create_study`` refuse it.

Values are computed over the bars a chart series has loaded (oldest first), the way the
chart computes a study over the bars it holds. The simulator's definitions (the client's
tests recompute them independently in tests/integration/test_studies.py):

* SMA: the mean of the last ``length`` closes (none before ``length`` bars);
* EMA: ``alpha = 2 / (length + 1)``, seeded with the first close;
* RSI: gains and losses of the close, each smoothed with Wilder's moving average (seeded with
  the simple mean of the first ``length`` changes); ``100 - 100 / (1 + gain / loss)``, 100
  when the loss is 0 and 0 when the gain is 0;
* MACD: ``EMA(fast) - EMA(slow)``, its signal the EMA of the MACD, histogram the difference;
* Bollinger: the SMA as basis, plus/minus ``mult`` population standard deviations;
* Volume: the bar's volume.

``None`` stands for "no value" (sent on the wire as ``1e100``).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tvfeed_async.testing.truth import TruthRow

__all__ = [
    "MAX_STUDIES_PER_CHART",
    "NO_VALUE",
    "SCRIPTS",
    "InputSpec",
    "ScriptSpec",
    "StudyInputError",
    "compute",
    "resolve_inputs",
    "list_body",
    "translate_body",
]

#: TradingView's "no value" in study rows.
NO_VALUE = 1e100
#: Studies one chart session may hold: the ``max_studies`` claim of the simulator's tokens
#: (:mod:`tvfeed_async.testing.tokens`); the next one gets ``study_error``.
MAX_STUDIES_PER_CHART = 25
#: The ``pineVersion`` every simulated script is at.
VERSION = "1.0"

Values = Mapping[str, int | float]
Column = list[float | None]


class StudyInputError(ValueError):
    """An input id, value or type the script does not accept."""


@dataclass(frozen=True, slots=True)
class InputSpec:
    """One user input of a script (``in_<n>`` in metadata and ``create_study``)."""

    id: str
    name: str
    type: str  # "integer" or "float"
    default: int | float
    minimum: int | float
    maximum: int | float


@dataclass(frozen=True, slots=True)
class ScriptSpec:
    """A script pine-facade knows."""

    pine_id: str
    description: str
    short_description: str
    inputs: tuple[InputSpec, ...]
    plots: tuple[str, ...]
    formula: Callable[[Sequence[TruthRow], Values], list[Column]]
    invite_only: bool = False
    #: A user's own script (``USER;...``): pine-facade translates and lists it only for the
    #: signed-in accounts whose ``Account.scripts`` name it; create_study runs it only on a
    #: signed-in connection.
    private: bool = False

    @property
    def text(self) -> str:
        """The script's IL, as pine-facade's ``ilTemplate`` (opaque to clients)."""
        return "bmI9Kz" + base64.b64encode(f"{self.pine_id}@{VERSION}".encode()).decode()


def _closes(rows: Sequence[TruthRow]) -> list[float]:
    return [row[4] for row in rows]


def _sma(values: Sequence[float], length: int) -> Column:
    out: Column = []
    total = 0.0
    for index, value in enumerate(values):
        total += value
        if index >= length:
            total -= values[index - length]
        out.append(total / length if index >= length - 1 else None)
    return out


def _ema(values: Sequence[float | None], length: int) -> Column:
    alpha = 2.0 / (length + 1)
    out: Column = []
    previous: float | None = None
    for value in values:
        if value is None:
            out.append(None)
            continue
        previous = value if previous is None else alpha * value + (1 - alpha) * previous
        out.append(previous)
    return out


def _rma_seeded(values: Sequence[float], length: int) -> Column:
    """Wilder's average of ``values`` (the first is the change of bar 1)."""
    out: Column = []
    average: float | None = None
    for index, value in enumerate(values):
        if index + 1 < length:
            out.append(None)
        elif average is None:
            average = sum(values[: index + 1]) / length
            out.append(average)
        else:
            average = (average * (length - 1) + value) / length
            out.append(average)
    return out


def _rsi(rows: Sequence[TruthRow], values: Values) -> list[Column]:
    length = int(values["in_0"])
    closes = _closes(rows)
    changes = [closes[n] - closes[n - 1] for n in range(1, len(closes))]
    gains = _rma_seeded([max(change, 0.0) for change in changes], length)
    losses = _rma_seeded([max(-change, 0.0) for change in changes], length)
    out: Column = [None] if rows else []
    for gain, loss in zip(gains, losses, strict=True):
        if gain is None or loss is None:
            out.append(None)
        elif loss == 0:
            out.append(100.0)
        elif gain == 0:
            out.append(0.0)
        else:
            out.append(100.0 - 100.0 / (1.0 + gain / loss))
    return [out]


def _sma_study(rows: Sequence[TruthRow], values: Values) -> list[Column]:
    return [_sma(_closes(rows), int(values["in_0"]))]


def _ema_study(rows: Sequence[TruthRow], values: Values) -> list[Column]:
    return [_ema(_closes(rows), int(values["in_0"]))]


def _macd(rows: Sequence[TruthRow], values: Values) -> list[Column]:
    closes = _closes(rows)
    fast = _ema(closes, int(values["in_0"]))
    slow = _ema(closes, int(values["in_1"]))
    macd: Column = [
        None if a is None or b is None else a - b for a, b in zip(fast, slow, strict=True)
    ]
    signal = _ema(macd, int(values["in_2"]))
    histogram: Column = [
        None if a is None or b is None else a - b for a, b in zip(macd, signal, strict=True)
    ]
    return [macd, signal, histogram]


def _bollinger(rows: Sequence[TruthRow], values: Values) -> list[Column]:
    length, mult = int(values["in_0"]), float(values["in_1"])
    closes = _closes(rows)
    basis = _sma(closes, length)
    upper: Column = []
    lower: Column = []
    for index, mean in enumerate(basis):
        if mean is None:
            upper.append(None)
            lower.append(None)
            continue
        window = closes[index - length + 1 : index + 1]
        deviation = math.sqrt(sum((value - mean) ** 2 for value in window) / length)
        upper.append(mean + mult * deviation)
        lower.append(mean - mult * deviation)
    return [basis, upper, lower]


def _volume(rows: Sequence[TruthRow], values: Values) -> list[Column]:
    return [[row[5] for row in rows]]


def _length(default: int, name: str = "Length", index: int = 0) -> InputSpec:
    return InputSpec(f"in_{index}", name, "integer", default, 1, 5000)


SCRIPTS: dict[str, ScriptSpec] = {
    spec.pine_id: spec
    for spec in (
        ScriptSpec("STD;RSI", "Relative Strength Index", "RSI", (_length(14),), ("RSI",), _rsi),
        ScriptSpec("STD;SMA", "Moving Average Simple", "SMA", (_length(9),), ("MA",), _sma_study),
        ScriptSpec(
            "STD;EMA", "Moving Average Exponential", "EMA", (_length(9),), ("EMA",), _ema_study
        ),
        ScriptSpec(
            "STD;MACD",
            "Moving Average Convergence Divergence",
            "MACD",
            (
                _length(12, "Fast Length", 0),
                _length(26, "Slow Length", 1),
                _length(9, "Signal Smoothing", 2),
            ),
            ("MACD", "Signal", "Histogram"),
            _macd,
        ),
        ScriptSpec(
            "STD;Bollinger_Bands",
            "Bollinger Bands",
            "BB",
            (_length(20), InputSpec("in_1", "StdDev", "float", 2.0, 0.001, 50.0)),
            ("Basis", "Upper", "Lower"),
            _bollinger,
        ),
        ScriptSpec("STD;Volume", "Volume", "Vol", (), ("Volume",), _volume),
        ScriptSpec(
            "PUB;simulated-invite-only",
            "An invite-only script",
            "INV",
            (_length(10),),
            ("Value",),
            _sma_study,
            invite_only=True,
        ),
        ScriptSpec(
            "USER;6f1d2c3b4a5e4d3c2b1a",
            "My RSI",
            "MyRSI",
            (_length(14),),
            ("Plot",),
            _rsi,
            private=True,
        ),
    )
}
#: The private script the simulator knows (an account owns it when its ``scripts`` say so).
USER_SCRIPT = "USER;6f1d2c3b4a5e4d3c2b1a"


def translate_body(spec: ScriptSpec) -> dict[str, Any]:
    """The JSON pine-facade's translate endpoint answers for ``spec``: ``metaInfo`` with the
    hidden ``text``/``pineId``/``pineVersion`` inputs first, then ``in_<n>``, the plots and
    their titles (``styles``), the defaults; and the IL as ``ilTemplate``."""
    hidden = [
        {"id": key, "name": name, "defval": value, "type": "text", "isHidden": True}
        for key, name, value in (
            ("text", "ILScript", spec.text),
            ("pineId", "pineId", spec.pine_id),
            ("pineVersion", "pineVersion", VERSION),
        )
    ]
    inputs = [
        {
            "id": item.id,
            "name": item.name,
            "defval": item.default,
            "type": item.type,
            "min": item.minimum,
            "max": item.maximum,
        }
        for item in spec.inputs
    ]
    plot_ids = [f"plot_{n}" for n in range(len(spec.plots))]
    return {
        "success": True,
        "result": {
            "metaInfo": {
                "id": f"Script${spec.pine_id}@tv-scripting-101",
                "scriptIdPart": spec.pine_id,
                "description": spec.description,
                "shortDescription": spec.short_description,
                "pine": {"version": VERSION},
                "is_price_study": False,
                "inputs": hidden + inputs,
                "plots": [{"id": plot, "type": "line"} for plot in plot_ids],
                "styles": {
                    plot: {"title": title} for plot, title in zip(plot_ids, spec.plots, strict=True)
                },
                "defaults": {
                    "inputs": {item.id: item.default for item in spec.inputs},
                    "styles": {plot: {"visible": True} for plot in plot_ids},
                },
            },
            "ilTemplate": spec.text,
        },
    }


def list_body(filter_name: str, saved: Sequence[str] = ()) -> list[dict[str, Any]]:
    """What pine-facade's ``list?filter=<filter_name>`` answers: the built-in scripts for
    ``standard``, the scripts named by ``saved`` (the signed-in user's own) for ``saved``,
    none for ``candlestick``/``fundamental``."""
    if filter_name == "saved":
        return [
            {
                "scriptIdPart": spec.pine_id,
                "scriptName": spec.description,
                "version": VERSION,
                "extra": {"kind": "study", "shortDescription": spec.short_description},
            }
            for spec in SCRIPTS.values()
            if spec.private and spec.pine_id in saved
        ]
    if filter_name != "standard":
        return []
    return [
        {
            "scriptIdPart": spec.pine_id,
            "scriptName": spec.description,
            "version": VERSION,
            "userId": 1,
            "extra": {"kind": "study", "shortDescription": spec.short_description},
        }
        for spec in SCRIPTS.values()
        if spec.pine_id.startswith("STD;")
    ]


def resolve_inputs(spec: ScriptSpec, given: Mapping[str, Any]) -> dict[str, int | float]:
    """The value of each input of ``spec``: ``given`` (``create_study``'s inputs object, with
    ``in_<n>: {"v": value, "f": bool, "t": type}`` items) over the defaults.

    Raises:
        StudyInputError: an unknown ``in_<n>``, a value of the wrong type or out of range.
    """
    known = {item.id: item for item in spec.inputs}
    values: dict[str, int | float] = {item.id: item.default for item in spec.inputs}
    for key, raw in given.items():
        if not key.startswith("in_"):
            continue
        item = known.get(key)
        if item is None:
            raise StudyInputError(f"unknown input {key}")
        value = raw.get("v") if isinstance(raw, dict) else raw
        wanted = int if item.type == "integer" else (int, float)
        if isinstance(value, bool) or not isinstance(value, wanted):
            raise StudyInputError(f"input {key} ({item.name}) must be of type {item.type}")
        if not item.minimum <= value <= item.maximum:
            raise StudyInputError(
                f"input {key} ({item.name}) must be in [{item.minimum}, {item.maximum}]"
            )
        values[key] = value
    return values


def compute(spec: ScriptSpec, values: Values, rows: Sequence[TruthRow]) -> list[list[float | None]]:
    """One list per bar of ``rows``: the plot values of ``spec`` at that bar."""
    columns = spec.formula(rows, values)
    return [list(bar) for bar in zip(*columns, strict=True)] if columns else []
