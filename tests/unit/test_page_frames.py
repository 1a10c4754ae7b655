"""history.PageFrames on the path of every count request: what it builds and what it leaves
for the garbage collector."""

from __future__ import annotations

import gc

from tvfeed_async.history import PageFrames, reference_frame
from tvfeed_async.protocol.messages import BarValues, Row

SYMBOL = "BINANCE:BTCUSDT"
T0 = 1_767_225_600


def rows(first: int, count: int, price: float) -> list[Row]:
    return [
        Row(BarValues(T0 + 60 * (first + k), price, price, price, price, 1.0), k)
        for k in range(count)
    ]


def test_a_page_is_framed_without_a_tracked_object_per_bar() -> None:
    chunks = [rows(5_000, 5_000, 1.0), rows(0, 5_003, 2.0)]  # the page re-sends 3 bars
    pages = PageFrames(SYMBOL)
    pages.take(chunks, 1)
    gc.collect()
    gc.disable()
    try:
        before = gc.get_count()[0]
        pages.take(chunks, 2)
        allocated = gc.get_count()[0] - before
    finally:
        gc.enable()
    assert allocated < 500  # a few dozen objects per page, not one per bar
    frame = pages.finish(chunks)
    assert frame is not None
    assert frame.height == 10_000
    assert frame.equals(reference_frame(chunks, SYMBOL))
    # The first answer wins over the bars the page re-sent.
    assert frame["close"][5_000:5_003].to_list() == [1.0, 1.0, 1.0]


def test_live_updates_between_answers_are_laid_over_the_head() -> None:
    """What a count request gets from a live market: the first answer, a ``du`` revising its
    forming bar (after that answer, so it comes with the next page's batches), then the
    page. They are framed without the reference's sort and de-duplication (which cost 1.5-2
    ms a request), the revision and a new bar replacing and following the head."""
    chunks = [rows(10, 5, 1.0), rows(14, 1, 3.0), rows(0, 13, 2.0), rows(15, 1, 4.0)]
    pages = PageFrames(SYMBOL)
    pages.take(chunks, 1)
    pages.take(chunks, 3)
    frame = pages.finish(chunks)
    assert frame is not None
    assert frame.equals(reference_frame(chunks, SYMBOL))
    assert frame["close"][-3:].to_list() == [1.0, 3.0, 4.0]


def test_a_revision_that_came_with_its_answer_is_laid_over_the_head() -> None:
    chunks = [rows(10, 5, 1.0), rows(14, 1, 3.0), rows(0, 13, 2.0)]
    pages = PageFrames(SYMBOL)
    pages.take(chunks, 2)
    frame = pages.finish(chunks)
    assert frame is not None
    assert frame.equals(reference_frame(chunks, SYMBOL))


def test_a_live_batch_reaching_into_the_framed_part_leaves_the_frame_to_the_reference() -> None:
    # It starts at the newest bar (14) but also revises 12, and not 13 between them.
    revision = [
        Row(BarValues(T0 + 60 * t, 5.0, 5.0, 5.0, 5.0, 1.0), n) for n, t in enumerate((14, 12))
    ]
    chunks = [rows(10, 5, 1.0), revision]
    pages = PageFrames(SYMBOL)
    pages.take(chunks, 1)
    assert pages.finish(chunks) is None


def test_a_batch_inside_the_framed_part_leaves_the_frame_to_the_reference() -> None:
    chunks = [rows(10, 5, 1.0), rows(0, 10, 2.0), rows(12, 1, 3.0)]  # revises a framed bar
    pages = PageFrames(SYMBOL)
    pages.take(chunks, 1)
    pages.take(chunks, 2)
    assert pages.finish(chunks) is None
