"""Every interval of a symbol is one price path: a bar's high is the highest high of the
shorter bars inside it, its low the lowest low, its open the first open and its close the
last close. The test aggregates the finer bars itself and compares."""

from __future__ import annotations

import pytest

from tvfeed_async.testing.catalogue import default_catalogue
from tvfeed_async.testing.truth import Truth

NOW = 1_796_000_000  # a Friday in December 2026


def _truth() -> Truth:
    return Truth(default_catalogue(), seed=3, reference_time=NOW)


def _aggregate(fine: list[tuple], start: int, end: int) -> tuple | None:
    inside = [row for row in fine if start <= row[0] < end]
    if not inside:
        return None
    return (
        inside[0][1],
        max(row[2] for row in inside),
        min(row[3] for row in inside),
        inside[-1][4],
    )


@pytest.mark.parametrize(
    ("symbol", "fine", "coarse", "count"),
    [
        ("BINANCE:BTCUSDT", "1", "5", 300),
        ("BINANCE:BTCUSDT", "1", "60", 48),
        ("BINANCE:BTCUSDT", "60", "1D", 40),
        ("BINANCE:BTCUSDT", "1D", "1W", 20),
        ("BINANCE:BTCUSDT", "1D", "1M", 12),
        ("BINANCE:BTCUSDT", "1S", "1", 30),
        ("NASDAQ:AAPL", "1", "5", 300),
        ("NASDAQ:AAPL", "1", "60", 40),
        ("NASDAQ:AAPL", "60", "1D", 30),
        ("NASDAQ:AAPL", "1D", "1W", 20),
        ("NASDAQ:AAPL", "1D", "1M", 12),
    ],
)
def test_coarser_bars_are_the_finer_bars_aggregated(
    symbol: str, fine: str, coarse: str, count: int
) -> None:
    truth = _truth()
    coarse_series = truth.series(symbol, coarse)
    slots = coarse_series.slots_before(coarse_series.grid.slot_at_or_after(NOW)[1], count)
    assert len(slots) == count
    fine_series = truth.series(symbol, fine)
    fine_rows = fine_series.closed_rows(now=NOW, start=slots[0][1], end=slots[-1][2])
    compared = 0
    for slot in slots:
        row = coarse_series.final(slot)
        expected = _aggregate(fine_rows, slot[1], slot[2])
        if expected is None:
            continue  # no finer bar inside (beyond the finer series' history)
        assert row[1:5] == pytest.approx(expected, rel=1e-12), (slot, row, expected)
        compared += 1
    assert compared >= count // 2


def test_a_forming_bar_shows_the_extremes_of_the_finer_bars_so_far() -> None:
    truth = _truth()
    hourly = truth.series("BINANCE:BTCUSDT", "60")
    minutes = truth.series("BINANCE:BTCUSDT", "1")
    slot = hourly.grid.slot_at_or_after(NOW)
    for step in range(1, hourly.revisions):
        when = hourly.revision_time(slot, step)
        forming = hourly.revision(slot, step)
        done = minutes.closed_rows(now=when, start=slot[1], end=when)
        if not done:
            continue
        assert forming[2] >= max(row[2] for row in done)
        assert forming[3] <= min(row[3] for row in done)
        final = hourly.final(slot)
        assert final[3] <= forming[3] <= forming[2] <= final[2]
