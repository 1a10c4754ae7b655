"""Hypothesis properties of BarMerger: any interleaving of revisions, duplicates and re-sent
history yields exactly the reference bars, closed once each, in order.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tvfeed_async.protocol.bars import Bar, BarMerger, Gap

SETTINGS = settings(max_examples=150, deadline=None)
START = 1_700_000_000

PRICE = st.floats(min_value=1, max_value=1e6, allow_nan=False, allow_infinity=False)
VOLUME = st.one_of(st.none(), st.floats(min_value=0, max_value=1e9, allow_nan=False))


@st.composite
def bar_values(draw: st.DrawFn, timestamp: int) -> Bar:
    low, high = sorted((draw(PRICE), draw(PRICE)))
    return Bar(
        timestamp,
        draw(st.floats(low, high)),
        high,
        low,
        draw(st.floats(low, high)),
        draw(VOLUME),
        "BINANCE:BTCUSDT",
        "1",
    )


@st.composite
def references(draw: st.DrawFn) -> list[Bar]:
    """Final bars with strictly increasing open times (irregular steps, like real holes)."""
    steps = draw(st.lists(st.integers(1, 5), min_size=1, max_size=25))
    times = [START]
    for step in steps[1:]:
        times.append(times[-1] + 60 * step)
    return [draw(bar_values(t)) for t in times]


@st.composite
def streams(draw: st.DrawFn, reference: list[Bar]) -> list[Bar]:
    """Every bar appears as a few revisions ending with its final values; closed bars (final
    values) are re-sent anywhere after they closed, and final values may repeat."""
    stream: list[Bar] = []
    for index, final in enumerate(reference):
        updates = [draw(bar_values(final.timestamp)) for _ in range(draw(st.integers(0, 3)))]
        updates.append(final)
        updates.extend([final] * draw(st.integers(0, 2)))  # identical repeats of the final
        for update in updates:
            stream.append(update)
            # Bars before this one are closed now: re-send some of them, in any order.
            if index and draw(st.booleans()):
                resent = draw(st.lists(st.integers(0, index - 1), max_size=3))
                stream.extend(reference[i] for i in resent)
    return stream


def expected_closed(reference: list[Bar]) -> list[Bar]:
    return [bar._replace(closed=True) for bar in reference[:-1]]


@SETTINGS
@given(st.data())
def test_any_interleaving_yields_the_reference_bars(data: st.DataObject) -> None:
    reference = data.draw(references())
    stream = data.draw(streams(reference))
    merger = BarMerger()
    closed: list[Bar] = []
    for update in stream:
        result = merger.apply(update)
        closed.extend(result.closed)
        assert result.gap is None
    assert closed == expected_closed(reference)
    assert merger.forming == reference[-1]
    assert merger.forming is not None
    assert merger.forming.closed is False
    assert merger.last_closed == (reference[-2].timestamp if len(reference) > 1 else None)


@SETTINGS
@given(st.data())
def test_batches_through_apply_many_yield_the_same(data: st.DataObject) -> None:
    reference = data.draw(references())
    stream = data.draw(streams(reference))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    merger = BarMerger()
    closed: list[Bar] = []
    previous = 0
    for cut in [*cuts, len(stream)]:
        closed.extend(merger.apply_many(stream[previous:cut]).closed)
        previous = cut
    assert closed == expected_closed(reference)
    assert merger.forming == reference[-1]


@SETTINGS
@given(st.data())
def test_resume_after_reconnect_with_overlapping_history(data: st.DataObject) -> None:
    reference = data.draw(references())
    stream = data.draw(streams(reference))
    split = data.draw(st.integers(1, len(stream)))
    before = BarMerger()
    closed: list[Bar] = []
    for update in stream[:split]:
        closed.extend(before.apply(update).closed)
    forming = before.forming
    assert forming is not None
    forming_index = next(i for i, bar in enumerate(reference) if bar.timestamp == forming.timestamp)

    # A new connection: resume from the last closed bar; the backfill (final values, as the
    # server's history has them) starts somewhere at or before it and runs to the forming bar.
    after = BarMerger(last_closed=before.last_closed)
    start = data.draw(st.integers(0, max(0, forming_index - 1)))
    backfill = after.apply_many(reference[start : forming_index + 1], overlap_expected=True)
    assert backfill.gap is None
    closed.extend(backfill.closed)
    for update in stream[split:]:
        closed.extend(after.apply(update).closed)
    assert closed == expected_closed(reference)
    assert after.forming == reference[-1]


@SETTINGS
@given(st.data())
def test_backfill_that_does_not_reach_back_reports_the_gap(data: st.DataObject) -> None:
    reference = data.draw(references().filter(lambda bars: len(bars) >= 3))
    known = data.draw(st.integers(0, len(reference) - 3))
    merger = BarMerger()
    merger.apply_many(reference[: known + 1])
    first = data.draw(st.integers(known + 1, len(reference) - 1))
    result = merger.apply_many(reference[first:], overlap_expected=True)
    assert result.gap == Gap(after=reference[known].timestamp, before=reference[first].timestamp)
    # Nothing is invented or repeated around the hole.
    assert [bar.timestamp for bar in result.closed] == [
        bar.timestamp for bar in [reference[known], *reference[first:-1]]
    ]
