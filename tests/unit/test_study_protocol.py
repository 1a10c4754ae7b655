"""The pure study part: translate metadata, inputs by name, create_study, rows, errors."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tvfeed_async.errors import EntitlementError, InvalidRequest, ProtocolError
from tvfeed_async.protocol.framing import decode_packets
from tvfeed_async.protocol.messages import LiveData, SeriesData, parse_message
from tvfeed_async.protocol.studies import (
    NO_VALUE,
    create_study,
    input_key,
    parse_translate,
    study_error,
    study_inputs,
    study_values,
)

# A translate answer in the shape pine-facade sends (TVAPI's getIndicator reads these keys).
DOCUMENT: dict[str, Any] = {
    "success": True,
    "result": {
        "metaInfo": {
            "scriptIdPart": "PUB;abc",
            "pine": {"version": "3.0"},
            "description": "Two lines",
            "shortDescription": "TL",
            "inputs": [
                {"id": "text", "name": "ILScript", "defval": "IL", "type": "text"},
                {"id": "pineId", "name": "pineId", "defval": "PUB;abc", "type": "text"},
                {"id": "pineVersion", "name": "pineVersion", "defval": "3.0", "type": "text"},
                {"id": "in_0", "name": "Fast Length", "defval": 5, "type": "integer", "min": 1},
                {"id": "in_1", "name": "Factor (x)", "defval": 1.5, "type": "float", "max": 9},
                {"id": "in_2", "name": "Show", "defval": True, "type": "bool", "isFake": True},
                {
                    "id": "in_3",
                    "name": "Mode",
                    "defval": "fast",
                    "type": "text",
                    "options": ["fast", "slow"],
                },
            ],
            "plots": [
                {"id": "plot_0", "type": "line"},
                {"id": "plot_1", "type": "line"},
                {"id": "plot_2", "type": "colorer", "target": "plot_0"},
            ],
            "styles": {"plot_0": {"title": "Line"}, "plot_1": {"title": "Line"}},
        },
        "ilTemplate": "IL",
    },
}


def test_parse_translate_reads_inputs_and_unique_plot_names() -> None:
    meta = parse_translate(DOCUMENT, "PUB;abc")
    assert (meta.pine_id, meta.version, meta.text) == ("PUB;abc", "3.0", "IL")
    assert [item.id for item in meta.inputs] == ["in_0", "in_1", "in_2", "in_3"]
    assert [item.key for item in meta.inputs] == ["fast_length", "factor_x", "show", "mode"]
    assert meta.plots == ("Line", "Line_2", "plot_0_colorer")
    assert meta.inputs[0].minimum == 1
    assert meta.inputs[1].maximum == 9


@pytest.mark.parametrize(
    "document",
    [{"success": False, "reason": "Script not found"}, {"success": True}, [], None],
)
def test_parse_translate_refuses(document: object) -> None:
    with pytest.raises(InvalidRequest, match="PUB;x"):
        parse_translate(document, "PUB;x")


def test_input_key() -> None:
    assert input_key("Fast Length") == "fast_length"
    assert input_key("  StdDev ") == "stddev"
    assert input_key("Source (close)") == "source_close"


def test_study_inputs_by_key_name_or_id_over_defaults() -> None:
    meta = parse_translate(DOCUMENT, "PUB;abc")
    body = study_inputs(meta, {"fast_length": 8, "Factor (x)": 2, "in_3": "slow"})
    assert body == {
        "text": "IL",
        "pineId": "PUB;abc",
        "pineVersion": "3.0",
        "in_0": {"v": 8, "f": False, "t": "integer"},
        "in_1": {"v": 2.0, "f": False, "t": "float"},
        "in_2": {"v": True, "f": True, "t": "bool"},
        "in_3": {"v": "slow", "f": False, "t": "text"},
    }


@pytest.mark.parametrize(
    ("given", "text"),
    [
        ({"slow_length": 3}, "has no input 'slow_length'"),
        ({"in_9": 3}, "has no input 'in_9'"),
        ({"fast_length": 2.0}, "must be an int"),
        ({"fast_length": False}, "must be an int"),
        ({"fast_length": 0}, "must be >= 1"),
        ({"factor_x": "2"}, "must be a number"),
        ({"factor_x": 10}, "must be <= 9"),
        ({"show": 1}, "must be a bool"),
        ({"mode": "medium"}, "must be one of"),
        ({"mode": 3}, "must be a str"),
    ],
)
def test_study_inputs_refuses(given: dict[str, object], text: str) -> None:
    meta = parse_translate(DOCUMENT, "PUB;abc")
    with pytest.raises(InvalidRequest, match=text):
        study_inputs(meta, given)


def test_create_study_message() -> None:
    message = create_study("cs_1", "st1", "st1", "sds_1", {"text": "IL"})
    sent = json.loads(str(decode_packets(message.encode())[0]))
    assert sent == {
        "m": "create_study",
        "p": ["cs_1", "st1", "st1", "sds_1", "Script@tv-scripting-101!", {"text": "IL"}],
    }


def _du(study: dict[str, Any]) -> str:
    return json.dumps({"m": "du", "p": ["cs_1", {"st1": study}]}, separators=(",", ":"))


@pytest.mark.parametrize("spaced", [False, True])
def test_st_rows_parsed_on_both_paths(spaced: bool) -> None:
    study = {"st": [{"i": 0, "v": [60, NO_VALUE, 2]}, {"i": 1, "v": [120, 1.5, 3]}], "t": "s"}
    text = _du(study)
    if spaced:
        # Not the exact shape the fast path expects: the general path parses it.
        text = text.replace('{"m":"du",', '{"m": "du", ')
    message = parse_message(text)
    assert isinstance(message, SeriesData)
    assert isinstance(message, LiveData)
    rows = message.series["st1"].study_rows
    assert [(row.i, row.v) for row in rows] == [(0, [60.0, NO_VALUE, 2.0]), (1, [120.0, 1.5, 3.0])]
    assert message.series["st1"].rows == []
    assert study_values(rows, 2) == {60: (None, 2.0), 120: (1.5, 3.0)}
    assert study_values(rows, 3) == {60: (None, 2.0, None), 120: (1.5, 3.0, None)}


def test_malformed_st_rows_are_skipped_by_the_general_path() -> None:
    text = _du({"st": [{"i": 0, "v": [60, "x"]}, {"v": [120, 1]}, 5], "t": "s"})
    message = parse_message(text)
    assert isinstance(message, SeriesData)
    assert [row.v for row in message.series["st1"].study_rows] == [[120.0, 1.0]]


@pytest.mark.parametrize(
    ("reason", "kind"),
    [
        ("study_not_auth:PUB;abc", EntitlementError),
        ("invite-only script", EntitlementError),
        ("invalid input: in_0", InvalidRequest),
        ("Script compilation error", ProtocolError),
    ],
)
def test_study_error_is_typed(reason: str, kind: type[Exception]) -> None:
    error = study_error(["cs_1", "st1", "sds_1_st1", reason], "STD;RSI on X")
    assert type(error) is kind
    assert reason in str(error)


def test_parse_script_list() -> None:
    from tvfeed_async.protocol.studies import ScriptSummary, parse_script_list

    document = [
        {
            "scriptIdPart": "STD;RSI",
            "scriptName": "Relative Strength Index",
            "version": "30.0",
            "extra": {"kind": "study", "shortDescription": "RSI"},
        },
        {"scriptName": "no id"},
        {"scriptIdPart": "STD;X", "version": 2},
    ]
    assert parse_script_list(document) == [
        ScriptSummary("STD;RSI", "30.0", "Relative Strength Index", "RSI", "study"),
        ScriptSummary("STD;X", "2", "", "", "study"),
    ]
    with pytest.raises(ProtocolError):
        parse_script_list({"scripts": []})


def _jwt(claims: dict[str, Any]) -> str:
    import base64

    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")

    return f"{part({'alg': 'RS512'})}.{part(claims)}.c2ln"


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        (_jwt({"max_studies": 3, "plan": "pro"}), 3),
        (_jwt({"max_studies": 0}), 25),
        (_jwt({"max_studies": True}), 25),
        (_jwt({"plan": "free"}), 25),
        ("unauthorized_user_token", 25),
    ],
)
def test_studies_per_chart_reads_the_max_studies_claim(token: str, expected: int) -> None:
    from tvfeed_async.studies import studies_per_chart

    assert studies_per_chart(token) == expected
