"""The pure chart session, driven synchronously: scripted server messages in, client messages
and events out; then paired with the bundled simulator's connection state in memory (no
socket, no event loop)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tvfeed_async.errors import SymbolNotFound
from tvfeed_async.protocol import ANONYMOUS_TOKEN, Bar, ClientProtocol, Gap, parse_message
from tvfeed_async.protocol.chart_session import (
    SERIES_ID,
    SYMBOL_REF,
    Answered,
    Backfill,
    ChartFailed,
    ChartSession,
    CountJob,
    JobDone,
    RangeJob,
    Resolved,
    StudyCompleted,
    StudyFailed,
)
from tvfeed_async.protocol.messages import ClientMessage, set_auth_token

CS = "cs_aaaaaaaaaaaa"
T0 = 1_767_225_600  # 2026-01-01 00:00 UTC, a minute boundary
MINUTE = 60


def packet(method: str, params: list[Any]) -> Any:
    return parse_message(json.dumps({"m": method, "p": params}, separators=(",", ":")))


def bars_message(
    method: str, series: dict[str, list[int]], turnaround: str = "s1", studies: Any = None
) -> Any:
    body: dict[str, Any] = {
        sid: {
            "s": [{"i": n, "v": [t, 1.0, 2.0, 0.5, 1.5, 10.0]} for n, t in enumerate(times)],
            "t": turnaround,
        }
        for sid, times in series.items()
    }
    for study_id, times in (studies or {}).items():
        body[study_id] = {"st": [{"i": n, "v": [t, 42.0]} for n, t in enumerate(times)]}
    return packet(method, [CS, body])


def completed(series_id: str = SERIES_ID, turnaround: str = "s1", limit: bool = False) -> Any:
    extra: dict[str, Any] = {"rt_update_period": 0}
    if limit:
        extra["data_completed"] = "limit"
    return packet("series_completed", [CS, series_id, "streaming", turnaround, extra])


def minutes(first: int, count: int) -> list[int]:
    return [T0 + MINUTE * (first + k) for k in range(count)]


def opened() -> ChartSession:
    chart = ChartSession(CS, "BINANCE:BTCUSDT", "test")
    assert [m.method for m in chart.open()] == ["chart_create_session"]
    ref, resolve = chart.resolve("BINANCE:BTCUSDT", trading_session="regular")
    assert ref == SYMBOL_REF
    assert resolve[0].params[:2] == [CS, SYMBOL_REF]
    return chart


def test_count_paging_asks_for_what_is_missing_and_drops_resent_bars() -> None:
    chart = opened()
    series = chart.new_series(SYMBOL_REF, "1")
    job = CountJob(wanted=8, bar_limit=5)
    first = chart.start(series, job)
    assert [(m.method, m.params[1], m.params[2], m.params[5]) for m in first] == [
        ("create_series", SERIES_ID, "s1", 5)
    ]
    assert chart.receive(bars_message("timescale_update", {SERIES_ID: minutes(10, 5)})) == []
    page = chart.receive(completed())
    assert [(m.method, m.params) for m in page] == [("request_more_data", [CS, SERIES_ID, 3])]
    # The page re-sends the oldest bar it had (servers do): only the three older ones count.
    chart.receive(bars_message("timescale_update", {SERIES_ID: minutes(7, 4)}))
    assert chart.receive(completed()) == []
    assert job.done
    assert not job.exhausted
    assert len(job.seen) == 8
    assert JobDone(SERIES_ID, False) in chart.take_events()
    assert series.requests == 2
    assert series.answers == 2


def test_a_page_that_brings_nothing_older_means_the_history_is_exhausted() -> None:
    chart = opened()
    series = chart.new_series(SYMBOL_REF, "1")
    job = CountJob(wanted=10, bar_limit=5)
    chart.start(series, job)
    chart.receive(bars_message("timescale_update", {SERIES_ID: minutes(0, 5)}))
    assert chart.receive(completed())[0].method == "request_more_data"
    chart.receive(bars_message("timescale_update", {SERIES_ID: minutes(0, 2)}))  # re-sent only
    assert chart.receive(completed()) == []
    assert job.done
    assert job.exhausted


def test_range_windows_probe_then_walk_back_and_continue_a_limit_cut_window() -> None:
    chart = opened()
    series = chart.new_series(SYMBOL_REF, "1")
    start, end = T0, T0 + 20 * MINUTE
    job = RangeJob(start, end, MINUTE, bar_limit=5)
    assert chart.start(series, job)[0].params[5] == 1  # the 1-bar probe
    chart.receive(bars_message("timescale_update", {SERIES_ID: minutes(19, 1)}))
    window = chart.receive(completed())
    # A window of bar_limit bars spans (bar_limit - 1) minutes, ending after the newest bar.
    assert [(m.method, m.params[2], m.params[5]) for m in window] == [
        ("modify_series", "s2", f"r,{T0 + 16 * MINUTE}:{end}")
    ]
    assert series.chunks == []  # the probe's batch is not part of the range
    chart.receive(bars_message("timescale_update", {SERIES_ID: minutes(16, 4)}, "s2"))
    window = chart.receive(completed(turnaround="s2"))
    assert window[0].params[2:] == [
        "s3",
        SYMBOL_REF,
        "1",
        f"r,{T0 + 12 * MINUTE}:{T0 + 16 * MINUTE}",
    ]
    # The bar limit cut this window to its newest two bars: the rest of it is asked for next.
    chart.receive(bars_message("timescale_update", {SERIES_ID: minutes(14, 2)}, "s3"))
    window = chart.receive(completed(turnaround="s3", limit=True))
    assert window[0].params[5] == f"r,{T0 + 10 * MINUTE}:{T0 + 14 * MINUTE}"
    # An empty window doubles the span of the next one.
    window = chart.receive(completed(turnaround="s4"))
    assert window[0].params[5] == f"r,{T0 + 2 * MINUTE}:{T0 + 10 * MINUTE}"
    chart.receive(bars_message("timescale_update", {SERIES_ID: minutes(2, 8)}, "s5"))
    window = chart.receive(completed(turnaround="s5"))
    assert window[0].params[5] == f"r,{T0}:{T0 + 2 * MINUTE}"
    chart.receive(bars_message("timescale_update", {SERIES_ID: minutes(0, 2)}, "s6"))
    assert chart.receive(completed(turnaround="s6")) == []
    assert job.done
    assert not job.exhausted
    assert job.collected == set(minutes(0, 20)) - set(minutes(10, 4))


def test_a_late_answer_of_an_earlier_turnaround_is_ignored() -> None:
    chart = opened()
    series = chart.new_series(SYMBOL_REF, "1")
    job = RangeJob(T0, T0 + 20 * MINUTE, MINUTE, bar_limit=5)
    chart.start(series, job)
    chart.receive(bars_message("timescale_update", {SERIES_ID: minutes(19, 1)}))
    chart.receive(completed())
    chart.take_events()
    assert series.turnaround == "s2"
    # A late batch and completion of the probe (s1): neither is taken for the window's answer.
    assert chart.receive(bars_message("timescale_update", {SERIES_ID: minutes(0, 3)})) == []
    assert chart.receive(completed(turnaround="s1")) == []
    assert series.stale == 2
    assert series.chunks == []
    assert not any(isinstance(e, Answered) for e in chart.take_events())


def test_several_series_and_a_study_share_one_session() -> None:
    chart = opened()
    second_ref, _ = chart.resolve("NASDAQ:AAPL")
    assert second_ref == "sds_sym_2"
    btc = chart.new_series(SYMBOL_REF, "1")
    aapl = chart.new_series(second_ref, "5")
    assert (btc.series_id, aapl.series_id) == ("sds_1", "sds_2")
    btc_job, aapl_job = CountJob(3, 100), CountJob(2, 100)
    create = chart.start(btc, btc_job) + chart.start(aapl, aapl_job)
    assert [m.params[1:5] for m in create] == [
        ["sds_1", "s1", SYMBOL_REF, "1"],
        ["sds_2", "s1", "sds_sym_2", "5"],
    ]
    study, create_study = chart.add_study(btc, {"pineId": "STD;RSI"})
    assert study.study_id == "st1"
    assert create_study[0].params[:4] == [CS, "st1", "st1", "sds_1"]
    chart.receive(
        bars_message(
            "timescale_update",
            {"sds_1": minutes(0, 3), "sds_2": minutes(0, 2)},
            studies={"st1": minutes(0, 3)},
        )
    )
    chart.receive(completed("sds_2"))
    assert aapl_job.done
    assert not btc_job.done
    chart.receive(completed("sds_1"))
    chart.receive(packet("study_completed", [CS, "st1", "sds_1_s1"]))
    events = chart.take_events()
    assert JobDone("sds_2", False) in events
    assert JobDone("sds_1", False) in events
    assert StudyCompleted("st1") in events
    assert [len(rows) for rows in btc.chunks] == [3]
    assert [len(rows) for rows in aapl.chunks] == [2]
    assert [row.v[0] for row in study.rows] == minutes(0, 3)


def test_errors_are_typed_events() -> None:
    chart = opened()
    chart.receive(packet("symbol_error", [CS, SYMBOL_REF, "invalid symbol"]))
    (event,) = chart.take_events()
    assert isinstance(event, ChartFailed)
    assert isinstance(event.error, SymbolNotFound)
    assert chart.error is event.error
    study, _ = chart.add_study(chart.new_series(), {})
    chart.receive(packet("study_error", [CS, study.study_id, "st1", "bad input: length"]))
    assert [type(e) for e in chart.take_events()] == [StudyFailed]
    chart.receive(packet("symbol_resolved", [CS, SYMBOL_REF, {"name": "BTCUSDT"}]))
    assert chart.take_events() == [Resolved(SYMBOL_REF, {"name": "BTCUSDT"})]


def closed_bars(times: list[int]) -> list[Bar]:
    return [Bar(t, 1.0, 1.0, 1.0, 1.0, 1.0, "X", "1", False) for t in times]


def test_backfill_pages_back_to_the_last_known_bar() -> None:
    known = T0 + 10 * MINUTE
    backfill = Backfill(known, max_bars=1_000, page=5)
    pending = closed_bars(minutes(14, 6))  # the new series starts after the last known bar
    assert backfill.next_page(pending) == 5
    pending = pending + closed_bars(minutes(9, 5))  # the page reaches back past it
    assert backfill.next_page(pending) is None
    assert backfill.gap(pending, known - MINUTE) is None


def test_backfill_reports_the_gap_when_the_history_ends_short() -> None:
    known = T0
    backfill = Backfill(known, max_bars=1_000, page=5)
    pending = closed_bars(minutes(20, 5))
    assert backfill.next_page(pending) == 5
    pending = pending + closed_bars(minutes(16, 4))  # a page's bars come after the others
    assert backfill.next_page(pending) == 5
    # The next page brings nothing older: the history ends at minute 16.
    assert backfill.next_page(pending + closed_bars(minutes(16, 1))) is None
    assert backfill.gap(pending, T0 - MINUTE) == Gap(after=T0 - MINUTE, before=T0 + 16 * MINUTE)
    assert backfill.pages == 2


def test_backfill_stops_at_its_bar_budget() -> None:
    backfill = Backfill(T0, max_bars=10, page=5)
    assert backfill.next_page(closed_bars(minutes(100, 10))) is None


# --------------------------------------------------------------------------- in memory


@pytest.fixture
def simulator() -> Any:
    from tvfeed_async.testing import TvSimulator

    return TvSimulator(seed=7, http_port=None)


def exchange(connection: Any, chart: ChartSession, outgoing: list[ClientMessage]) -> int:
    """Hand client messages to the simulator's connection state and its answers back to the
    chart session, until the session asks for nothing more; returns the messages sent."""
    protocol = ClientProtocol()
    sent = 0
    while outgoing:
        connection.receive("".join(message.encode() for message in outgoing))
        sent += len(outgoing)
        outgoing = []
        while connection.outbox:
            for message in protocol.receive_data(connection.outbox.popleft()):
                if getattr(message, "session", None) == chart.session_id:
                    outgoing += chart.receive(message)
    return sent


async def test_history_against_the_simulator_in_memory(simulator: Any) -> None:
    """Two series on one chart session, a count with a page and a date range in windows,
    answered by the simulator's per-connection state without a socket (the test is async
    only because the simulator holds ``symbol_resolved`` back on a loop timer)."""
    connection = simulator.hub.open_connection()
    chart = ChartSession(CS, "BINANCE:BTCUSDT", "in memory")
    btc_ref, resolve_btc = chart.resolve("BINANCE:BTCUSDT", trading_session="regular")
    eth_ref, resolve_eth = chart.resolve("BINANCE:ETHUSDT", trading_session="regular")
    btc = chart.new_series(btc_ref, "1")
    eth = chart.new_series(eth_ref, "5")
    count = CountJob(7_001, 5_000)  # more than one request returns: one page
    end = T0 + 3 * 86_400
    window = RangeJob(T0, end, 300, 5_000)
    outgoing = [
        set_auth_token(ANONYMOUS_TOKEN),
        *chart.open(),
        *resolve_btc,
        *resolve_eth,
        *chart.start(btc, count),
        *chart.start(eth, window),
    ]
    exchange(connection, chart, outgoing)
    assert chart.error is None
    assert count.done
    assert not count.exhausted
    assert window.done
    assert not window.exhausted
    assert btc.requests == 2
    assert btc.answers == 2
    truth = simulator.truth_rows("BINANCE:BTCUSDT", "1", n_bars=7_000)
    got = sorted({row.v.timestamp: row.v for rows in btc.chunks for row in rows}.items())
    closed = [values for _, values in got][-7_001:-1]  # the newest is forming
    assert [(v.timestamp, v.close, v.volume) for v in closed] == [(r[0], r[4], r[5]) for r in truth]
    eth_truth = simulator.truth_rows("BINANCE:ETHUSDT", "5", start=T0, end=end)
    eth_times = {t for rows in eth.chunks for t in (row.v.timestamp for row in rows)}
    assert sorted(t for t in eth_times if T0 <= t < end) == [r[0] for r in eth_truth]


def test_a_count_job_stops_when_its_caller_says_nothing_is_missing() -> None:
    chart = opened()
    series = chart.new_series(SYMBOL_REF, "1")
    # One bar more than kept is asked for; the caller's test says the newest came closed.
    job = CountJob(6, 5, lambda seen, _series: len(seen) >= 5)
    assert chart.start(series, job)[0].params[5] == 5
    chart.receive(bars_message("timescale_update", {SERIES_ID: minutes(0, 5)}))
    assert chart.receive(completed()) == []
    assert job.done
    assert not job.exhausted
    assert series.requests == 1


@pytest.mark.parametrize("study_id", [[], {}, 7, None])
@pytest.mark.parametrize("method", ["study_loading", "study_completed", "study_error"])
def test_a_study_message_with_a_malformed_id_is_ignored(method: str, study_id: Any) -> None:
    """The receive-path fuzz test found ``study_loading [cs, []]`` raising TypeError (an
    unhashable dict key) inside the reader."""
    chart = ChartSession(CS, "BINANCE:BTCUSDT")
    assert chart.receive(packet(method, [CS, study_id, "s1_st1", "reason"])) == []
    assert chart.take_events() == []
    assert chart.error is None
