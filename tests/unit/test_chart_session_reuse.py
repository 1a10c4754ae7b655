"""A chart session switched to another request (:meth:`ChartSession.reuse`): a new symbol
alias, ``modify_series`` under a new turnaround, and nothing of the previous request taken."""

from __future__ import annotations

import pytest

from tvfeed_async.errors import SymbolNotFound
from tvfeed_async.protocol.chart_session import (
    SERIES_ID,
    SYMBOL_REF,
    Answered,
    ChartSession,
    CountJob,
    JobDone,
    RangeJob,
    Series,
)

from .test_chart_session import CS, MINUTE, T0, bars_message, completed, minutes, opened, packet


def _finished_count_session() -> tuple[ChartSession, Series]:
    chart = opened()
    series = chart.new_series(SYMBOL_REF, "1")
    sent = chart.start(series, CountJob(3, bar_limit=100))
    assert [m.method for m in sent] == ["create_series"]
    chart.receive(packet("symbol_resolved", [CS, SYMBOL_REF, {"full_name": "BINANCE:BTCUSDT"}]))
    chart.receive(bars_message("timescale_update", {SERIES_ID: minutes(0, 3)}))
    chart.receive(completed())
    assert series.job is not None
    assert series.job.done
    chart.accepting = False
    chart.take_events()
    return chart, series


def test_reuse_resolves_a_new_alias_and_modifies_the_series_under_a_new_turnaround() -> None:
    chart, series = _finished_count_session()
    resolve = chart.reuse(series, "BINANCE:ETHUSDT", "eth", "60", trading_session="regular")
    assert [(m.method, m.params[:2]) for m in resolve] == [("resolve_symbol", [CS, "sds_sym_2"])]
    assert '"symbol":"BINANCE:ETHUSDT"' in resolve[0].params[2]
    sent = chart.start(series, CountJob(2, bar_limit=100))
    assert [(m.method, m.params) for m in sent] == [
        ("modify_series", [CS, SERIES_ID, "s2", "sds_sym_2", "60", 2])
    ]
    assert series.chunks == []
    assert series.answers == 0
    assert series.requests == 1
    assert chart.resolved == {}
    # Late data and a late completion of the previous symbol (turnaround s1) are not taken.
    chart.receive(bars_message("du", {SERIES_ID: minutes(2, 1)}, turnaround="s1"))
    chart.receive(completed(turnaround="s1"))
    assert series.chunks == []
    assert series.stale == 2
    assert chart.take_events() == []
    chart.receive(packet("symbol_resolved", [CS, "sds_sym_2", {"full_name": "BINANCE:ETHUSDT"}]))
    chart.receive(bars_message("timescale_update", {SERIES_ID: minutes(10, 2)}, turnaround="s2"))
    chart.receive(completed(turnaround="s2"))
    events = chart.take_events()
    assert any(isinstance(e, Answered) for e in events)
    assert any(isinstance(e, JobDone) for e in events)
    assert [row.v.timestamp for rows in series.chunks for row in rows] == minutes(10, 2)
    assert list(chart.resolved) == ["sds_sym_2"]
    # And once more: the numbering goes on.
    chart.accepting = False
    resolve = chart.reuse(series, "FX:EURUSD", "eur", "1D")
    assert resolve[0].params[1] == "sds_sym_3"
    sent = chart.start(series, CountJob(5, bar_limit=100))
    assert sent[0].params[2:5] == ["s3", "sds_sym_3", "1D"]


def test_a_range_after_reuse_probes_with_modify_series() -> None:
    chart, series = _finished_count_session()
    chart.reuse(series, "BINANCE:ETHUSDT", "eth", "1")
    job = RangeJob(T0, T0 + 20 * MINUTE, MINUTE, bar_limit=50)
    sent = chart.start(series, job)
    assert [(m.method, m.params[2:]) for m in sent] == [
        ("modify_series", ["s2", "sds_sym_2", "1", 1])
    ]
    chart.receive(bars_message("timescale_update", {SERIES_ID: minutes(30, 1)}, turnaround="s2"))
    window = chart.receive(completed(turnaround="s2"))
    assert [(m.method, m.params[2]) for m in window] == [("modify_series", "s3")]


def test_a_failed_session_is_not_reused() -> None:
    chart, series = _finished_count_session()
    chart.receive(packet("symbol_error", [CS, SYMBOL_REF, "invalid symbol"]))
    assert isinstance(chart.error, SymbolNotFound)
    with pytest.raises(ValueError, match="ended with"):
        chart.reuse(series, "BINANCE:ETHUSDT", "eth", "1")
