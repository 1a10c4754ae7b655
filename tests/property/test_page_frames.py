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
    then), and whether the batches are what count mode produces (each answer older than the
    ones before)."""
    total = draw(st.integers(min_value=1, max_value=60))
    times = [T0 + MINUTE * k for k in range(total)]
    answers = draw(st.integers(min_value=1, max_value=4))
    cuts = sorted(draw(st.lists(st.integers(1, total), min_size=answers - 1, max_size=answers - 1)))
    bounds = [total, *reversed(cuts), 0]  # newest answer first
    chunks: list[list[Row]] = []
    ends: list[tuple[int, bool]] = []
    newer: list[int] = []
    for n in range(len(bounds) - 1):
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
            chunks.append(rows([part[-1]], 7.0))  # a live revision of the newest bar
        if part:
            ends.append((len(chunks), draw(st.booleans())))
        newer = times[low:high] + newer
    clean = True
    if draw(st.booleans()):
        chunks.append(rows([times[-1]], 9.0))  # a live update after the last answer
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
