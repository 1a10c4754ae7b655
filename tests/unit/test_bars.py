"""Bar and BarMerger: forming vs closed bars, "nothing lost"."""

from __future__ import annotations

from datetime import UTC, datetime

from tvfeed_async.protocol.bars import Bar, BarMerger, Gap, MergeResult

MINUTE = 60
T0 = 1663050540


def bar(minute: int, close: float = 100.0, volume: float | None = 1.0) -> Bar:
    return Bar(
        T0 + minute * MINUTE,
        100.0,
        max(100.0, close),
        min(100.0, close),
        close,
        volume,
        "BINANCE:ETHUSDT",
        "1",
    )


def test_bar_time_is_aware_utc() -> None:
    assert bar(0).time == datetime(2022, 9, 13, 6, 29, tzinfo=UTC)
    assert bar(0).time.tzinfo is UTC


def test_same_values_ignores_identity_fields() -> None:
    assert bar(0).same_values(bar(0)._replace(symbol="X:Y", interval="5", closed=True))
    assert not bar(0).same_values(bar(0, close=101.0))
    assert not bar(0).same_values(bar(0, volume=2.0))


def test_first_bar_is_forming() -> None:
    merger = BarMerger()
    result = merger.apply(bar(0)._replace(closed=True))
    assert result.closed == []
    assert result.forming == bar(0)
    assert result.forming is not None
    assert result.forming.closed is False
    assert merger.forming == bar(0)
    assert merger.last_closed is None
    assert merger.newest_time == T0


def test_upsert_by_open_time_revises_the_forming_bar() -> None:
    merger = BarMerger()
    merger.apply(bar(0, close=100.0))
    result = merger.apply(bar(0, close=101.5, volume=3.0))
    assert result.closed == []
    assert result.forming == bar(0, close=101.5, volume=3.0)
    assert merger.forming == bar(0, close=101.5, volume=3.0)


def test_identical_update_is_ignored() -> None:
    merger = BarMerger()
    merger.apply(bar(0, close=101.0))
    result = merger.apply(bar(0, close=101.0)._replace(symbol="other"))
    assert result == MergeResult()
    assert merger.forming is not None
    assert merger.forming.symbol == "BINANCE:ETHUSDT"


def test_later_bar_closes_the_forming_one() -> None:
    merger = BarMerger()
    merger.apply(bar(0, close=100.0))
    merger.apply(bar(0, close=102.0))
    result = merger.apply(bar(1, close=103.0))
    assert result.closed == [bar(0, close=102.0)._replace(closed=True)]
    assert result.closed[0].closed is True
    assert result.forming == bar(1, close=103.0)
    assert merger.last_closed == T0
    assert merger.newest_time == T0 + MINUTE


def test_a_jump_closes_only_the_forming_bar() -> None:
    # Missing minutes in live data are not invented; the forming bar closes, that is all.
    merger = BarMerger()
    merger.apply(bar(0))
    result = merger.apply(bar(5))
    assert [b.timestamp for b in result.closed] == [T0]
    assert result.gap is None


def test_older_and_duplicate_updates_are_dropped() -> None:
    merger = BarMerger()
    merger.apply(bar(0, close=100.0))
    merger.apply(bar(1, close=101.0))
    merger.apply(bar(2, close=102.0))
    # A re-sent closed bar with different values, and an exact duplicate of a closed bar.
    assert merger.apply(bar(1, close=999.0)) == MergeResult()
    assert merger.apply(bar(0, close=100.0)) == MergeResult()
    assert merger.forming == bar(2, close=102.0)
    assert merger.last_closed == T0 + MINUTE


def test_each_closed_bar_is_reported_once_in_order() -> None:
    merger = BarMerger()
    closed: list[Bar] = []
    updates = [
        bar(0, 1),
        bar(0, 2),
        bar(1, 3),
        bar(0, 9),
        bar(1, 4),
        bar(2, 5),
        bar(2, 5),
        bar(1, 7),
        bar(3, 6),
    ]
    for update in updates:
        closed.extend(merger.apply(update).closed)
    assert closed == [
        bar(0, 2)._replace(closed=True),
        bar(1, 4)._replace(closed=True),
        bar(2, 5)._replace(closed=True),
    ]
    assert merger.forming == bar(3, 6)


def test_last_closed_resume_never_repeats_delivered_bars() -> None:
    merger = BarMerger(last_closed=T0 + 2 * MINUTE)
    assert merger.last_closed == T0 + 2 * MINUTE
    assert merger.newest_time == T0 + 2 * MINUTE
    assert merger.apply(bar(1)) == MergeResult()
    assert merger.apply(bar(2)) == MergeResult()
    assert merger.forming is None
    result = merger.apply(bar(3))
    assert result.forming == bar(3)
    assert result.closed == []


def test_apply_many_sorts_and_closes_all_but_the_newest() -> None:
    merger = BarMerger()
    result = merger.apply_many([bar(2), bar(0), bar(1), bar(1)])
    assert [b.timestamp for b in result.closed] == [T0, T0 + MINUTE]
    assert all(b.closed for b in result.closed)
    assert result.forming == bar(2)
    assert result.gap is None


def test_apply_many_overlapping_backfill_has_no_gap() -> None:
    merger = BarMerger()
    merger.apply_many([bar(0), bar(1), bar(2)])
    # Reconnect: history reaches back to the forming bar (minute 2) and beyond.
    result = merger.apply_many([bar(1), bar(2, close=105.0), bar(3), bar(4)], overlap_expected=True)
    assert result.gap is None
    assert [b.timestamp for b in result.closed] == [T0 + 2 * MINUTE, T0 + 3 * MINUTE]
    assert result.closed[0].close == 105.0  # the revised final values of the forming bar
    assert result.forming == bar(4)


def test_apply_many_reports_a_gap_when_history_does_not_reach_back() -> None:
    merger = BarMerger()
    merger.apply_many([bar(0), bar(1), bar(2)])
    result = merger.apply_many([bar(10), bar(11)], overlap_expected=True)
    assert result.gap == Gap(after=T0 + 2 * MINUTE, before=T0 + 10 * MINUTE)
    # The bars are still merged: the old forming bar closes, minute 10 closes, 11 is forming.
    assert [b.timestamp for b in result.closed] == [T0 + 2 * MINUTE, T0 + 10 * MINUTE]
    assert result.forming == bar(11)


def test_apply_many_gap_after_resume_point() -> None:
    merger = BarMerger(last_closed=T0)
    result = merger.apply_many([bar(5), bar(6)], overlap_expected=True)
    assert result.gap == Gap(after=T0, before=T0 + 5 * MINUTE)


def test_apply_many_without_overlap_expected_reports_no_gap() -> None:
    merger = BarMerger()
    merger.apply(bar(0))
    assert merger.apply_many([bar(10)]).gap is None


def test_apply_many_on_an_empty_merger_reports_no_gap() -> None:
    assert BarMerger().apply_many([bar(10)], overlap_expected=True).gap is None
    assert BarMerger().apply_many([], overlap_expected=True) == MergeResult()


def test_close_forming() -> None:
    merger = BarMerger()
    assert merger.close_forming() is None
    merger.apply(bar(0, close=101.0))
    closed = merger.close_forming()
    assert closed == bar(0, close=101.0)._replace(closed=True)
    assert merger.forming is None
    assert merger.last_closed == T0
    # The closed bar is never reported again.
    assert merger.apply(bar(0, close=200.0)) == MergeResult()


def test_update_reports_the_bar_it_closed_and_the_new_forming_one() -> None:
    merger = BarMerger()
    assert merger.update(bar(0, close=100.0)) == (None, bar(0, close=100.0))
    assert merger.update(bar(0, close=100.0)) == (None, None)  # identical: nothing changed
    assert merger.update(bar(0, close=101.0)) == (None, bar(0, close=101.0))
    closed, forming = merger.update(bar(1, close=102.0))
    assert closed == bar(0, close=101.0)._replace(closed=True)
    assert forming == bar(1, close=102.0)
    assert merger.update(bar(0, close=999.0)) == (None, None)  # older than the forming bar
    assert merger.last_closed == T0


def test_update_never_reports_a_bar_at_or_before_the_resume_point() -> None:
    merger = BarMerger(last_closed=T0 + MINUTE)
    assert merger.update(bar(1)) == (None, None)
    assert merger.update(bar(2)) == (None, bar(2))


def test_update_and_apply_agree_on_any_sequence() -> None:
    updates = [bar(m % 7, close=100.0 + (m * 37) % 11) for m in range(60)]
    updates += [bar(7 + m // 3, close=100.0 + m % 5) for m in range(30)]
    by_update, by_apply = BarMerger(), BarMerger()
    for update in updates:
        closed, forming = by_update.update(update)
        result = by_apply.apply(update)
        assert result.closed == ([] if closed is None else [closed])
        assert result.forming == forming
