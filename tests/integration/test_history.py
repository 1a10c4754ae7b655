"""TvFeed history against the bundled simulator, compared bar for bar with its ground truth."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import polars as pl
import pytest

from tvfeed_async import (
    ConnectionLost,
    EntitlementError,
    Interval,
    InvalidInterval,
    InvalidRequest,
    InvalidSymbol,
    RequestTimeout,
    SymbolNotFound,
    Timeouts,
    TvFeed,
)
from tvfeed_async.frames import FRAME_SCHEMA

from ..support.feeds import open_feed

COLUMNS = ["time", "symbol", "open", "high", "low", "close", "volume"]


def assert_same(frame: pl.DataFrame, truth: pl.DataFrame) -> None:
    assert frame.schema == FRAME_SCHEMA
    assert frame.height == truth.height
    assert frame.select(COLUMNS).equals(truth.select(COLUMNS)), (
        frame.head(3),
        truth.head(3),
    )


async def test_small_count_matches_truth(tv_simulator):
    async with open_feed(tv_simulator) as feed:
        frame = await feed.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=50)
    assert_same(frame, tv_simulator.truth("BINANCE:BTCUSDT", "1", n_bars=50))
    assert frame.get_column("time").is_sorted()
    assert frame.get_column("time").n_unique() == 50


async def test_tvdatafeed_style_arguments(tv_simulator):
    async with open_feed(tv_simulator) as feed:
        frame = await feed.get_hist("BTCUSDT", "BINANCE", Interval.in_1_hour, n_bars=30)
        same = await feed.get_hist(("BTCUSDT", "BINANCE"), interval="1H", n_bars=30)
    assert frame.equals(same)
    assert_same(frame, tv_simulator.truth("BINANCE:BTCUSDT", "60", n_bars=30))


async def test_paging_beyond_several_caps(tv_simulator):
    async with open_feed(tv_simulator) as feed:
        result = await feed.fetch_history("BINANCE:ETHUSDT", interval="1", n_bars=12_345)
    assert result.chunks >= 3  # 5,000 bars per request anonymously
    assert not result.exhausted
    assert_same(result.frame, tv_simulator.truth("BINANCE:ETHUSDT", "1", n_bars=12_345))


async def test_history_exhausted_is_reported(tv_simulator):
    truth_all = tv_simulator.truth("NASDAQ:AAPL", "1M")
    async with open_feed(tv_simulator) as feed:
        result = await feed.fetch_history("NASDAQ:AAPL", interval="1M", n_bars=100_000)
    assert result.exhausted
    assert_same(result.frame, truth_all)


async def test_date_range_is_exact(tv_simulator):
    now = tv_simulator.clock.now()
    start = datetime.fromtimestamp(now, UTC) - timedelta(days=20)
    end = start + timedelta(days=9, hours=5)
    truth = tv_simulator.truth("BINANCE:BTCUSDT", "5").filter(
        (pl.col("time") >= start) & (pl.col("time") < end)
    )
    async with open_feed(tv_simulator) as feed:
        frame = await feed.get_hist("BINANCE:BTCUSDT", interval="5", start=start, end=end)
    assert truth.height > 2_000  # wider than one request: the range is chunked
    assert_same(frame, truth)


async def test_naive_datetimes_are_utc(tv_simulator):
    now = tv_simulator.clock.now()
    aware = datetime.fromtimestamp(now, UTC) - timedelta(days=3)
    async with open_feed(tv_simulator) as feed:
        a = await feed.get_hist(
            "FX:EURUSD", interval="60", start=aware, end=aware + timedelta(days=1)
        )
        b = await feed.get_hist(
            "FX:EURUSD",
            interval="60",
            start=aware.replace(tzinfo=None),
            end=(aware + timedelta(days=1)).replace(tzinfo=None),
        )
    assert a.equals(b)


async def test_extended_session_and_adjustments(tv_simulator):
    async with open_feed(tv_simulator) as feed:
        regular = await feed.get_hist("NASDAQ:AAPL", interval="15", n_bars=200)
        extended = await feed.get_hist(
            "NASDAQ:AAPL", interval="15", n_bars=200, extended_session=True
        )
        dividends = await feed.get_hist(
            "NASDAQ:AAPL", interval="1D", n_bars=400, adjustment="dividends"
        )
        splits = await feed.get_hist("NASDAQ:AAPL", interval="1D", n_bars=400)
    assert_same(regular, tv_simulator.truth("NASDAQ:AAPL", "15", n_bars=200))
    assert_same(extended, tv_simulator.truth("NASDAQ:AAPL", "15", n_bars=200, session="extended"))
    assert not regular.equals(extended)
    assert_same(
        dividends, tv_simulator.truth("NASDAQ:AAPL", "1D", n_bars=400, adjustment="dividends")
    )
    assert_same(splits, tv_simulator.truth("NASDAQ:AAPL", "1D", n_bars=400))
    assert not dividends.get_column("close").equals(splits.get_column("close"))


async def test_continuous_futures(tv_simulator):
    async with open_feed(tv_simulator) as feed:
        front = await feed.get_hist("NQ", "CME_MINI", "60", n_bars=300, fut_contract=1)
        back = await feed.get_hist("CME_MINI:NQ1!", interval="60", n_bars=300, back_adjusted=True)
    assert front.get_column("symbol")[0] == "CME_MINI:NQ1!"
    assert_same(front, tv_simulator.truth("CME_MINI:NQ1!", "60", n_bars=300))
    assert_same(back, tv_simulator.truth("CME_MINI:NQ1!", "60", n_bars=300, back_adjusted=True))


async def test_index_without_volume(tv_simulator):
    async with open_feed(tv_simulator) as feed:
        frame = await feed.get_hist("SP:SPX", interval="1D", n_bars=100)
    assert frame.get_column("volume").null_count() == frame.height == 100
    assert_same(frame, tv_simulator.truth("SP:SPX", "1D", n_bars=100))


async def test_non_ascii_symbol(tv_simulator):
    async with open_feed(tv_simulator) as feed:
        info = await feed.resolve("KRX:005930")
        frame = await feed.get_hist("KRX:005930", interval="1D", n_bars=60)
    assert not info.description.isascii()
    assert_same(frame, tv_simulator.truth("KRX:005930", "1D", n_bars=60))


async def test_resolve_returns_symbol_info(tv_simulator):
    async with open_feed(tv_simulator) as feed:
        info = await feed.resolve("BINANCE:BTCUSDT")
        result = await feed.fetch_history("SP:SPX", interval="1D", n_bars=5)
    assert info.full_name == "BINANCE:BTCUSDT"
    assert info.timezone
    assert info.pricescale
    assert result.symbol_info is not None
    assert result.symbol_info.has_volume is False


async def test_timezone_converts_display_only(tv_simulator):
    async with open_feed(tv_simulator) as feed:
        utc = await feed.get_hist("NASDAQ:AAPL", interval="60", n_bars=20)
        local = await feed.get_hist(
            "NASDAQ:AAPL", interval="60", n_bars=20, timezone="America/New_York"
        )
    assert str(local.schema["time"]) == "Datetime(time_unit='us', time_zone='America/New_York')"
    assert local.get_column("time").dt.epoch("us").equals(utc.get_column("time").dt.epoch("us"))


async def test_include_partial_adds_the_forming_bar(tv_simulator):
    async with open_feed(tv_simulator) as feed:
        closed = await feed.get_hist("BINANCE:BTCUSDT", interval="60", n_bars=10)
        partial = await feed.get_hist(
            "BINANCE:BTCUSDT", interval="60", n_bars=10, include_partial=True
        )
    assert closed.get_column("time")[-1] < partial.get_column("time")[-1]
    assert partial.get_column("time")[-2] == closed.get_column("time")[-1]


async def test_bad_symbol_fails_fast(tv_simulator):
    async with open_feed(tv_simulator) as feed:
        with pytest.raises(SymbolNotFound) as caught:
            await feed.get_hist("NASDAQ:NOSUCHTHING", interval="1D", n_bars=10)
    assert caught.value.symbol == "NASDAQ:NOSUCHTHING"
    assert caught.value.reason


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"interval": "15m"}, InvalidInterval),
        ({"interval": "XX"}, InvalidInterval),
        ({"n_bars": 0}, InvalidRequest),
        ({"n_bars": -5}, InvalidRequest),
        ({"adjustment": "weird"}, InvalidRequest),
        ({"timezone": "Mars/Olympus"}, InvalidRequest),
        (
            {"start": datetime(2025, 2, 1, tzinfo=UTC), "end": datetime(2025, 1, 1, tzinfo=UTC)},
            InvalidRequest,
        ),
    ],
)
async def test_bad_arguments_raise_before_sending(tv_simulator, kwargs, error):
    async with open_feed(tv_simulator) as feed:
        with pytest.raises(error):
            await feed.get_hist("BINANCE:BTCUSDT", **kwargs)
        with pytest.raises(InvalidSymbol):
            await feed.get_hist("BTCUSDT")  # no exchange


async def test_seconds_interval_needs_a_paid_plan(tv_simulator):
    async with open_feed(tv_simulator) as feed:
        with pytest.raises(EntitlementError) as caught:
            await feed.get_hist("BINANCE:BTCUSDT", interval="5S", n_bars=10)
    assert "seconds" in caught.value.reason


async def test_many_symbols_with_isolated_failures(tv_simulator):
    symbols = [
        "BINANCE:BTCUSDT",
        ("ETHUSDT", "BINANCE"),
        "NASDAQ:NOSUCHTHING",
        "nonsense",
        "FX:EURUSD",
    ]
    async with open_feed(tv_simulator) as feed:
        results = await feed.get_hist_many(symbols, interval="5", n_bars=300)
    assert list(results) == [
        "BINANCE:BTCUSDT",
        "BINANCE:ETHUSDT",
        "NASDAQ:NOSUCHTHING",
        "nonsense",
        "FX:EURUSD",
    ]
    assert isinstance(results["NASDAQ:NOSUCHTHING"], SymbolNotFound)
    assert isinstance(results["nonsense"], InvalidSymbol)
    for symbol in ("BINANCE:BTCUSDT", "BINANCE:ETHUSDT", "FX:EURUSD"):
        frame = results[symbol]
        assert isinstance(frame, pl.DataFrame)
        assert_same(frame, tv_simulator.truth(symbol, "5", n_bars=300))


async def test_hundred_concurrent_requests_share_one_socket(tv_simulator):
    symbols = [f"BINANCE:SIM{number:03d}USDT" for number in range(1, 26)]
    jobs = [(symbol, interval) for symbol in symbols for interval in ("1", "5", "15", "60")]
    results: dict[tuple[str, str], pl.DataFrame] = {}
    async with open_feed(tv_simulator) as feed:

        async def one(symbol: str, interval: str) -> None:
            results[(symbol, interval)] = await feed.get_hist(symbol, interval=interval, n_bars=500)

        async with anyio.create_task_group() as task_group:
            for symbol, interval in jobs:
                task_group.start_soon(one, symbol, interval)
        assert feed.connections_opened == 1
    assert tv_simulator.stats.connections_opened == 1
    assert len(results) == 100
    for (symbol, interval), frame in results.items():
        assert_same(frame, tv_simulator.truth(symbol, interval, n_bars=500))


async def test_stalled_server_times_out_with_a_named_error(tv_simulator):
    async with open_feed(tv_simulator, timeouts=Timeouts(request=1.0, idle=30.0)) as feed:
        assert tv_simulator.faults.stall_open() == 1
        with pytest.raises(RequestTimeout) as caught:
            await feed.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=10)
    assert "BINANCE:BTCUSDT" in str(caught.value)


async def test_drop_mid_history_is_retried_not_truncated(tv_simulator):
    tv_simulator.faults.next_connection(drop_after_packets=4)
    async with open_feed(tv_simulator) as feed:
        frame = await feed.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=9_000)
        assert feed.connections_opened == 2
    assert_same(frame, tv_simulator.truth("BINANCE:BTCUSDT", "1", n_bars=9_000))


async def test_history_attempts_bounds_the_retries_of_a_request(tv_simulator):
    from tvfeed_async import RetryPolicy

    # The drop the default policy retries through (see above) ends a one-attempt request.
    tv_simulator.faults.next_connection(drop_after_packets=4)
    async with open_feed(tv_simulator, retry=RetryPolicy(history_attempts=1)) as feed:
        with pytest.raises(ConnectionLost):
            await feed.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=9_000)
        assert feed.connections_opened == 1


async def test_history_fails_with_connection_lost_when_server_keeps_dropping(tv_simulator):
    from tvfeed_async import RetryPolicy
    from tvfeed_async.testing.faults import FaultScript

    tv_simulator.faults.default = FaultScript(drop_after_packets=4)
    async with open_feed(
        tv_simulator, retry=RetryPolicy(initial=0.01, maximum=0.02, max_attempts=20)
    ) as feed:
        with pytest.raises(ConnectionLost):
            await feed.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=9_000)


async def test_feed_is_single_use_and_needs_async_with(tv_simulator):
    feed = TvFeed(endpoints=tv_simulator.endpoints, session_cache=False, use_env=False)
    with pytest.raises(RuntimeError):
        await feed.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=5)
    async with feed:
        pass
    with pytest.raises(RuntimeError):
        async with feed:
            pass
