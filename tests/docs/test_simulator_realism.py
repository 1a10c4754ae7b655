"""What docs/testing.md says about the simulator's data: sessions follow their exchange's
holiday calendar, so a client sees no equity bars on 1 January or at Christmas."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from tvfeed_async import TvFeed
from tvfeed_async.testing import TvSimulator
from tvfeed_async.testing.catalogue import holiday_ordinals

# The NYSE's published full-day closures (nyse.com, "Holidays & Trading Hours").
NYSE_2026 = [
    "2026-01-01", "2026-01-19", "2026-02-16", "2026-04-03", "2026-05-25",
    "2026-06-19", "2026-07-03", "2026-09-07", "2026-11-26", "2026-12-25",
]  # fmt: skip
NYSE_2027 = [
    "2027-01-01", "2027-01-18", "2027-02-15", "2027-03-26", "2027-05-31",
    "2027-06-18", "2027-07-05", "2027-09-06", "2027-11-25", "2027-12-24",
]  # fmt: skip


def _dates(calendar: str, year: int) -> list[str]:
    return sorted(date.fromordinal(day).isoformat() for day in holiday_ordinals(calendar, year))


def test_nyse_calendar_matches_the_published_one():
    assert _dates("NYSE", 2026) == NYSE_2026
    assert _dates("NYSE", 2027) == NYSE_2027
    # New Year's Day on a Saturday is not moved to the Friday before (2022).
    assert "2021-12-31" not in _dates("NYSE", 2021)
    assert "2022-01-01" not in _dates("NYSE", 2022)


def _days(sim: TvSimulator, symbol: str, interval: str, start: datetime, end: datetime) -> set:
    """The trading days with bars: the local date each session ends on (FX and futures
    sessions open the evening before)."""
    frame = sim.truth(symbol, interval, start=start, end=end)
    info = sim.catalogue.get(symbol)
    assert info is not None
    local = frame["time"].dt.convert_time_zone(info.timezone)
    if info.regular.overnight:
        local = local.dt.offset_by("1d")
    return set(local.dt.date().to_list())


@pytest.mark.parametrize("symbol", ["NASDAQ:AAPL", "SP:SPX"])
@pytest.mark.parametrize("interval", ["1D", "60"])
def test_us_equities_have_no_bars_on_holidays(symbol, interval):
    sim = TvSimulator(http_port=None)
    start, end = datetime(2025, 12, 20, tzinfo=UTC), datetime(2026, 1, 5, tzinfo=UTC)
    days = _days(sim, symbol, interval, start, end)
    assert date(2025, 12, 25) not in days
    assert date(2026, 1, 1) not in days
    assert {date(2025, 12, 24), date(2025, 12, 26), date(2026, 1, 2)} <= days


def test_crypto_trades_on_holidays_and_other_calendars_close():
    sim = TvSimulator(http_port=None)
    start, end = datetime(2025, 12, 20, tzinfo=UTC), datetime(2026, 1, 5, tzinfo=UTC)
    assert date(2026, 1, 1) in _days(sim, "BINANCE:BTCUSDT", "1D", start, end)
    futures = _days(sim, "CME_MINI:NQ1!", "1D", start, end)
    assert date(2025, 12, 25) not in futures
    assert date(2026, 1, 2) in futures
    fx = _days(sim, "FX:EURUSD", "1D", start, end)
    assert date(2026, 1, 1) not in fx
    assert date(2025, 12, 31) in fx


async def test_the_client_sees_the_holiday_gap(tv_simulator):
    async with TvFeed(endpoints=tv_simulator.endpoints, session_cache=False) as feed:
        frame = await feed.get_hist("NASDAQ:AAPL", interval="1D", n_bars=5)
    days = [moment.date() for moment in frame["time"]]
    # The clock starts on Monday 2026-01-05 14:00 UTC, before the open: the last five closed
    # sessions skip 1 January.
    assert days == [date(2025, 12, 26), date(2025, 12, 29), date(2025, 12, 30),
                    date(2025, 12, 31), date(2026, 1, 2)]  # fmt: skip


def _closes_at(sim: TvSimulator, symbol: str, interval: str, end: datetime) -> dict:
    """Close time -> close price of the last 400 bars of the ground truth before ``end``."""
    series = sim.truth_series(symbol, interval)
    slots = series.slots_before(end.timestamp(), 400)
    return {slot[2]: row[4] for slot, row in zip(slots, series.finals(slots), strict=True)}


@pytest.mark.parametrize("symbol", ["BINANCE:BTCUSDT", "BINANCE:SIM007USDT", "NASDAQ:AAPL"])
def test_every_interval_follows_one_price_path(symbol):
    """At an instant where bars of several intervals close, they close at the same price
    (issue #21: BTC was 55,916 hourly and 90,067 on one minute at the same time)."""
    sim = TvSimulator(http_port=None)
    end = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)
    intervals = ["1", "5", "15", "60", "1D"]
    closes = {interval: _closes_at(sim, symbol, interval, end) for interval in intervals}
    shared = 0
    for coarse in intervals[1:]:
        for moment, close in closes[coarse].items():
            if moment in closes["1"]:
                assert closes["1"][moment] == close, (coarse, moment)
                shared += 1
    assert shared >= 20
    # Opens too: the daily bar opens where the one-minute bar at the same time opens.
    daily = sim.truth(symbol, "1D", end=end, n_bars=3)
    for moment, opening in zip(daily["time"], daily["open"], strict=True):
        minute = sim.truth(symbol, "1", start=moment, end=moment + timedelta(minutes=1))
        assert minute["time"][0] == moment
        assert minute["open"][0] == opening


def test_coarse_bars_contain_their_open_and_close_and_have_believable_ranges():
    sim = TvSimulator(http_port=None)
    end = datetime(2026, 1, 5, tzinfo=UTC)
    minutes = sim.truth("BINANCE:BTCUSDT", "1", start=datetime(2026, 1, 4, tzinfo=UTC), end=end)
    day = sim.truth("BINANCE:BTCUSDT", "1D", n_bars=1, end=end)
    assert minutes.height == 1440
    assert day["open"][0] == minutes["open"][0]
    assert day["close"][0] == minutes["close"][-1]
    # The day's range is the same order as the range its minutes span (not a separate walk).
    minute_range = minutes["high"].max() - minutes["low"].min()
    day_range = day["high"][0] - day["low"][0]
    assert 0.3 < day_range / minute_range < 3
