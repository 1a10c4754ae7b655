"""The frame built answer by answer (history.PageFrames) is the reference frame of all the
batches (history.reference_frame), whatever pages re-send, revise or interleave."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tvfeed_async.history import PageFrames, reference_frame
from tvfeed_async.protocol.messages import BarValues, Row

SYMBOL = "BINANCE:BTCUSDT"
T0 = 1_767_225_600
MINUTE = 60


def rows(times: list[int], price: float) -> list[Row]:
    return [
        Row(BarValues(t, price, price + 1, price - 1, price, 1.0), n) for n, t in enumerate(times)
    ]


@st.composite
def requests(draw: st.DrawFn) -> tuple[list[list[Row]], list[tuple[int, bool]], bool]:
    """Batches in arrival order, the batch counts at each answer (with whether it is framed
    then), and whether the batches are what count mode produces from a live market (each
    answer older than the ones before; live updates of the newest bar, or of a bar after it,
    with an answer or between answers)."""
    total = draw(st.integers(min_value=1, max_value=60))
    times = [T0 + MINUTE * k for k in range(total)]
    answers = draw(st.integers(min_value=1, max_value=4))
    cuts = sorted(draw(st.lists(st.integers(1, total), min_size=answers - 1, max_size=answers - 1)))
    bounds = [total, *reversed(cuts), 0]  # newest answer first
    chunks: list[list[Row]] = []
    ends: list[tuple[int, bool]] = []
    newer: list[int] = []
    live = 0.0  # live updates' prices: 7.0, 8.0, ... in arrival order
    head = times[-1]  # the market's newest bar: the only one a live update revises

    def live_update(times_of: list[int]) -> None:
        nonlocal live, head
        live += 1.0
        chunks.append(rows(times_of, 6.0 + live))
        head = max(head, *times_of)

    for n in range(len(bounds) - 1):
        if newer and draw(st.booleans()):
            # A du between answers, once history has bars (it arrives with the next page's
            # batches): the newest bar revised, the next one opened, or both.
            opened = head + MINUTE
            live_update(draw(st.sampled_from([[head], [opened], [head, opened]])))
        low, high = bounds[n + 1], bounds[n]
        part = times[low:high]
        resend = newer[: draw(st.integers(0, min(3, len(newer))))]
        packets = draw(st.integers(1, 3))
        size = max(1, -(-len(part) // packets))
        starts = list(range(0, len(part), size))
        for start in starts:  # one answer's packets, oldest first
            packet = part[start : start + size]
            if start == starts[-1]:
                packet = packet + resend  # re-sent bars (other prices) end a page's last packet
            chunks.append(rows(packet, 100.0 + n))
        if n == 0 and part and draw(st.booleans()):
            live_update([part[-1]])  # a live revision of the newest bar, with its answer
        if part:
            ends.append((len(chunks), draw(st.booleans())))
        newer = times[low:high] + newer
    clean = True
    if draw(st.booleans()):
        live_update([head])  # a live update after the last answer
    if total > 1 and draw(st.booleans()):
        # A batch revising a bar before the newest: no count-mode answer sends one.
        chunks.append(rows([times[-2]], 20.0))
        clean = False
    return [chunk for chunk in chunks if chunk], ends, clean


class FramesEveryAnswer(PageFrames):
    SMALL = 1  # every answer becomes a frame of its own


class FramesAnswersOfEight(PageFrames):
    SMALL = 8


@settings(max_examples=300, deadline=None)
@given(requests(), st.sampled_from([PageFrames, FramesEveryAnswer, FramesAnswersOfEight]))
def test_page_frames_equal_the_reference(
    request: tuple[list[list[Row]], list[tuple[int, bool]], bool], kind: type[PageFrames]
) -> None:
    chunks, ends, clean = request
    pages = kind(SYMBOL)
    for end, build in ends:
        pages.take(chunks, end, build=build)
    frame = pages.finish(chunks)
    reference = reference_frame(chunks, SYMBOL)
    if clean:
        assert frame is not None  # what count mode produces is framed page by page
    if frame is not None:
        assert frame.equals(reference), (frame, reference)
