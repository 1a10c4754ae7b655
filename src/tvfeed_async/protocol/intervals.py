"""Bar intervals.

TradingView codes: minutes as plain numbers (``"1"``, ``"15"``, ``"240"``), hours as
``"1H"``..``"24H"`` (sent as minutes, as the web chart does), days/weeks/months as ``"1D"`` or
``"D"``, ``"1W"``/``"W"``, ``"1M"``/``"M"`` and multiples, seconds as ``"1S"``..``"30S"``.
tvdatafeed's enum names (``Interval.in_1_hour``...) are available as class attributes.

``"15m"`` is refused on purpose: in TradingView ``M`` means *months* and minutes have no
suffix, so a lowercase ``m`` is ambiguous.
"""

from __future__ import annotations

import re
from typing import ClassVar

from ..errors import InvalidInterval

__all__ = ["Interval", "IntervalLike"]

# ASCII only: str.isdigit and \d also take other scripts' digits (Arabic-Indic
# "\u0661\u0665"), which TradingView does not.
_PATTERN = re.compile(r"^\s*([0-9]*)\s*([a-zA-Z]?)\s*$", re.ASCII)
# The longest valid code is a few characters ("1440", "365D", " 12M "); a bound keeps int()
# away from thousands of digits (which raises ValueError past 4,300 of them).
_MAX_TEXT_LENGTH = 32
_UNIT_SECONDS = {"S": 1, "": 60, "D": 86_400, "W": 604_800, "M": 2_592_000}
_LIMITS = {"S": 60, "": 1440, "H": 24, "D": 365, "W": 52, "M": 12}
_TVDATAFEED_NAMES = {
    "in_1_minute": "1",
    "in_3_minute": "3",
    "in_5_minute": "5",
    "in_15_minute": "15",
    "in_30_minute": "30",
    "in_45_minute": "45",
    "in_1_hour": "60",
    "in_2_hour": "120",
    "in_3_hour": "180",
    "in_4_hour": "240",
    "in_daily": "1D",
    "in_weekly": "1W",
    "in_monthly": "1M",
}


class Interval:
    """A validated bar interval.

    ``Interval("1H")``, ``Interval(60)``, ``Interval("60")`` and ``Interval.in_1_hour`` are the
    same interval; ``code`` is what goes on the wire (``"60"``).

    Attributes:
        code: the normalised TradingView code (``"1"``, ``"60"``, ``"1D"``, ``"5S"``...).
        unit: ``"S"`` seconds, ``""`` minutes, ``"D"``, ``"W"`` or ``"M"``.
        multiplier: how many units one bar spans.

    Raises:
        InvalidInterval: (a ``ValueError``) for anything TradingView would not accept.
    """

    __slots__ = ("code", "multiplier", "unit")

    in_1_minute: ClassVar[Interval]
    in_3_minute: ClassVar[Interval]
    in_5_minute: ClassVar[Interval]
    in_15_minute: ClassVar[Interval]
    in_30_minute: ClassVar[Interval]
    in_45_minute: ClassVar[Interval]
    in_1_hour: ClassVar[Interval]
    in_2_hour: ClassVar[Interval]
    in_3_hour: ClassVar[Interval]
    in_4_hour: ClassVar[Interval]
    in_daily: ClassVar[Interval]
    in_weekly: ClassVar[Interval]
    in_monthly: ClassVar[Interval]

    code: str
    unit: str
    multiplier: int

    def __init__(self, value: IntervalLike) -> None:
        if isinstance(value, Interval):
            self.code, self.unit, self.multiplier = value.code, value.unit, value.multiplier
            return
        self.unit, self.multiplier = _parse(value)
        self.code = f"{self.multiplier}" if self.unit == "" else f"{self.multiplier}{self.unit}"

    @classmethod
    def parse(cls, value: IntervalLike) -> Interval:
        """Same as ``Interval(value)``; returns ``value`` itself when it already is one."""
        return value if isinstance(value, Interval) else cls(value)

    @property
    def value(self) -> str:
        """The wire code (tvdatafeed's enum members had ``.value``)."""
        return self.code

    @property
    def seconds(self) -> int:
        """Nominal bar length in seconds (a month counts as 30 days)."""
        return self.multiplier * _UNIT_SECONDS[self.unit]

    @property
    def is_intraday(self) -> bool:
        """True for seconds and minute intervals."""
        return self.unit in ("S", "")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Interval):
            return self.code == other.code
        if isinstance(other, str | int):
            try:
                return self.code == Interval(other).code
            except InvalidInterval:
                return False
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.code)

    def __str__(self) -> str:
        return self.code

    def __repr__(self) -> str:
        return f"Interval({self.code!r})"


IntervalLike = Interval | str | int


def _shown(value: object) -> str:
    """``repr(value)``, shortened: a message quotes the input, not kilobytes of it."""
    if isinstance(value, int) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"  # repr() refuses 4,300+ digits
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:30]}...({len(text)} characters)"


def _parse(value: str | int) -> tuple[str, int]:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise InvalidInterval(
            f"interval must be a string like '15' or '1D', not {_shown(value)} "
            f"({type(value).__name__})"
        )
    if isinstance(value, int):
        if not 1 <= value <= _LIMITS[""]:
            raise InvalidInterval(f"{_shown(value)}: minutes must be between 1 and {_LIMITS['']}")
        text = str(value)
    else:
        text = _TVDATAFEED_NAMES.get(value.strip().removeprefix("Interval."), value)
    match = _PATTERN.match(text) if len(text) <= _MAX_TEXT_LENGTH else None
    if match is None:
        raise InvalidInterval(
            f"{_shown(value)} is not a TradingView interval; use minutes ('1', '15', '240'), "
            "hours ('1H'), days ('1D'), weeks ('1W'), months ('1M') or seconds ('5S'), "
            "in ASCII digits"
        )
    digits, suffix = match.groups()
    if suffix == "m":
        raise InvalidInterval(
            f"{_shown(value)} is ambiguous: TradingView writes minutes without a suffix "
            f"('{digits or 1}') and 'M' means months ('{digits or 1}M'); say which you mean"
        )
    unit = suffix.upper()
    if unit not in _LIMITS:
        raise InvalidInterval(
            f"{_shown(value)} has an unknown unit {suffix!r}; use S (seconds), H (hours), "
            "D (days), W (weeks), M (months) or no suffix for minutes"
        )
    if not digits:
        if unit in ("", "S", "H"):
            raise InvalidInterval(f"{_shown(value)} needs a number, e.g. '1{unit}'")
        multiplier = 1
    else:
        multiplier = int(digits)
    limit = _LIMITS[unit]
    if not 1 <= multiplier <= limit:
        name = {
            "S": "seconds",
            "": "minutes",
            "H": "hours",
            "D": "days",
            "W": "weeks",
            "M": "months",
        }[unit]
        raise InvalidInterval(f"{_shown(value)}: {name} must be between 1 and {limit}")
    if unit == "H":
        return "", multiplier * 60
    return unit, multiplier


for _name, _code in _TVDATAFEED_NAMES.items():
    setattr(Interval, _name, Interval(_code))
