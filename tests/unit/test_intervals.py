"""Interval parsing, in every spelling users write."""

from __future__ import annotations

import pytest

from tvfeed_async.errors import InvalidInterval, InvalidRequest, TvFeedError
from tvfeed_async.protocol.intervals import Interval


@pytest.mark.parametrize(
    ("given", "code", "seconds"),
    [
        ("1", "1", 60),
        ("3", "3", 180),
        ("5", "5", 300),
        ("15", "15", 900),
        ("30", "30", 1800),
        ("45", "45", 2700),
        ("60", "60", 3600),
        ("120", "120", 7200),
        ("180", "180", 10800),
        ("240", "240", 14400),
        (15, "15", 900),
        ("1H", "60", 3600),
        ("2H", "120", 7200),
        ("3H", "180", 10800),
        ("4H", "240", 14400),
        ("1h", "60", 3600),
        ("1D", "1D", 86400),
        ("D", "1D", 86400),
        ("d", "1D", 86400),
        ("2D", "2D", 172800),
        ("1W", "1W", 604800),
        ("W", "1W", 604800),
        ("1M", "1M", 2592000),
        ("M", "1M", 2592000),
        ("3M", "3M", 7776000),
        ("12M", "12M", 31104000),
        ("1S", "1S", 1),
        ("5S", "5S", 5),
        ("10S", "10S", 10),
        ("15S", "15S", 15),
        ("30S", "30S", 30),
        (" 15 ", "15", 900),
    ],
)
def test_tradingview_codes(given: str | int, code: str, seconds: int) -> None:
    interval = Interval(given)
    assert interval.code == code
    assert interval.value == code
    assert str(interval) == code
    assert interval.seconds == seconds
    assert Interval(interval.code) == interval  # the wire code parses back to itself


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("in_1_minute", "1"),
        ("in_3_minute", "3"),
        ("in_5_minute", "5"),
        ("in_15_minute", "15"),
        ("in_30_minute", "30"),
        ("in_45_minute", "45"),
        ("in_1_hour", "60"),
        ("in_2_hour", "120"),
        ("in_3_hour", "180"),
        ("in_4_hour", "240"),
        ("in_daily", "1D"),
        ("in_weekly", "1W"),
        ("in_monthly", "1M"),
    ],
)
def test_tvdatafeed_enum_names(name: str, code: str) -> None:
    member = getattr(Interval, name)
    assert isinstance(member, Interval)
    assert member.code == code
    assert member.value == code  # tvdatafeed code reads Interval.in_1_hour.value
    assert Interval(name) == member
    assert Interval(f"Interval.{name}") == member


def test_in_1_hour_string_and_equivalent_spellings() -> None:
    assert Interval("in_1_hour") == Interval.in_1_hour == Interval("1H") == Interval(60)
    assert Interval.in_1_hour == "60"
    assert Interval.in_1_hour == "1H"
    assert Interval.in_1_hour != "2H"
    assert Interval.in_1_hour != "nonsense"
    assert hash(Interval("1H")) == hash(Interval("60"))
    assert len({Interval("1H"), Interval("60"), Interval.in_1_hour}) == 1
    assert repr(Interval("1H")) == "Interval('60')"


def test_parse_returns_the_same_interval() -> None:
    interval = Interval("5")
    assert Interval.parse(interval) is interval
    assert Interval.parse("5") == interval
    assert Interval(interval) == interval


def test_units_and_intraday() -> None:
    assert Interval("5S").unit == "S"
    assert Interval("5").unit == ""
    assert Interval("5").multiplier == 5
    assert Interval("1D").unit == "D"
    assert Interval("5S").is_intraday
    assert Interval("240").is_intraday
    assert not Interval("1D").is_intraday
    assert not Interval("1W").is_intraday


@pytest.mark.parametrize("value", ["15m", "1m", "m", "240m"])
def test_lowercase_m_is_refused_with_an_explanation(value: str) -> None:
    with pytest.raises(InvalidInterval) as caught:
        Interval(value)
    message = str(caught.value)
    assert "ambiguous" in message
    assert "minutes" in message
    assert "months" in message
    digits = value[:-1] or "1"
    assert f"'{digits}'" in message
    assert f"'{digits}M'" in message


@pytest.mark.parametrize(
    "value",
    [
        "",
        "XX",
        "1X",
        "abc",
        "0",
        "-5",
        "1.5",
        "1441",
        "61S",
        "25H",
        "366D",
        "53W",
        "13M",
        "S",
        "H",
        "0D",
        "1 D 2",
    ],
)
def test_nonsense_raises_invalid_interval(value: str) -> None:
    with pytest.raises(InvalidInterval):
        Interval(value)


@pytest.mark.parametrize("value", [None, 1.5, True, [1], b"15"])
def test_wrong_types_raise_invalid_interval(value: object) -> None:
    with pytest.raises(InvalidInterval, match="interval must be a string"):
        Interval(value)  # type: ignore[arg-type]


def test_invalid_interval_is_a_value_error_and_a_tvfeed_error() -> None:
    with pytest.raises(ValueError, match="not a TradingView interval"):
        Interval("1.5")
    with pytest.raises(TvFeedError):
        Interval("XX")
    assert issubclass(InvalidInterval, InvalidRequest)


def test_error_messages_say_what_to_write() -> None:
    with pytest.raises(InvalidInterval, match=r"unknown unit 'X'"):
        Interval("1X")
    with pytest.raises(InvalidInterval, match="between 1 and 1440"):
        Interval("1441")
    with pytest.raises(InvalidInterval, match="needs a number"):
        Interval("S")


@pytest.mark.parametrize(
    "value",
    [
        "\u0661\u0665",  # Arabic-Indic fifteen: str.isdigit() and \d accept it; TradingView not
        "\u0967\u096b",  # Devanagari fifteen
        "\uff11\uff15",  # fullwidth fifteen
        "15\u00a0",  # a no-break space is not ASCII whitespace either
        "\u0661D",
    ],
)
def test_digits_of_other_scripts_are_refused(value: str) -> None:
    with pytest.raises(InvalidInterval, match="ASCII"):
        Interval(value)


@pytest.mark.parametrize(
    "value",
    ["1" * 5000, "1" * 33, " " * 10_000 + "1", "9" * 4301 + "D"],
    ids=["5000 ones", "33 ones", "10000 spaces", "4301 nines D"],
)
def test_very_long_text_is_refused_without_parsing_it(value: str) -> None:
    with pytest.raises(InvalidInterval) as caught:
        Interval(value)
    assert len(str(caught.value)) < 300  # the message quotes the start, not 5,000 characters


@pytest.mark.parametrize(
    "value", [10**4400, -(10**4400), 0, -15, 1441], ids=["huge", "-huge", "0", "-15", "1441"]
)
def test_integers_out_of_range_are_invalid_intervals(value: int) -> None:
    with pytest.raises(InvalidInterval, match="between 1 and 1440") as caught:
        Interval(value)
    assert len(str(caught.value)) < 300
