"""``--study`` of ``tvfeed-async hist``: parsing the option text."""

from __future__ import annotations

import argparse

import pytest

from tvfeed_async.cli_studies import add_study_argument, hist_studies, parse_study_option
from tvfeed_async.errors import InvalidRequest


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("STD;RSI", "STD;RSI"),
        ("STD;RSI:", "STD;RSI"),
        ("STD;RSI:length=14", ("STD;RSI", {"length": 14})),
        (
            "STD;Bollinger_Bands: length = 10 , stddev=2.5",
            ("STD;Bollinger_Bands", {"length": 10, "stddev": 2.5}),
        ),
        ("PUB;x:show=TRUE,mode=fast", ("PUB;x", {"show": True, "mode": "fast"})),
    ],
)
def test_parse_study_option(text: str, expected: object) -> None:
    assert parse_study_option(text) == expected


@pytest.mark.parametrize("text", ["", ":length=3", "STD;RSI:length", "STD;RSI:=3"])
def test_parse_study_option_refuses(text: str) -> None:
    with pytest.raises(InvalidRequest, match="--study"):
        parse_study_option(text)


def test_hist_studies_from_repeated_options() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("symbols", nargs="+")
    add_study_argument(parser)
    assert hist_studies(parser.parse_args(["X:Y"])) is None
    args = parser.parse_args(["X:Y", "--study", "STD;RSI:length=5", "--study", "STD;EMA"])
    assert hist_studies(args) == [("STD;RSI", {"length": 5}), "STD;EMA"]
    with pytest.raises(InvalidRequest, match="one symbol"):
        hist_studies(parser.parse_args(["X:Y", "A:B", "--study", "STD;RSI"]))
