"""Issue #14's cases against the bundled simulator's faults (each opt-in through
``sim.faults``), with TvFeed checked against the simulator's truth."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tvfeed_async import EntitlementError, Limits, RetryPolicy, SymbolNotFound, Timeouts, TvFeed
from tvfeed_async.testing import TvSimulator

from ..scripted import wait_for
from ..support.feeds import open_feed

pytestmark = pytest.mark.timeout(90)
MINUTE = 60
FAST: dict[str, Any] = {
    "timeouts": Timeouts(request=30.0, page=1.0, idle=30.0),
    "retry": RetryPolicy(initial=0.01, maximum=0.05),
}


def times(frame: Any) -> list[int]:
    return frame["time"].dt.epoch("s").to_list()


async def test_stale_completions_do_not_end_a_range(tv_simulator: TvSimulator) -> None:
    tv_simulator.faults.next_connection(stale_completion=True)
    now = int(tv_simulator.clock.now()) // MINUTE * MINUTE
    start, end = now - 20_000 * MINUTE, now - 1_000 * MINUTE
    async with open_feed(tv_simulator, **FAST) as feed:
        frame = await feed.get_hist("BINANCE:BTCUSDT", interval="1", start=start, end=end)
    truth = tv_simulator.truth("BINANCE:BTCUSDT", "1", start=start, end=end)
    assert frame.height == truth.height > 10_000
    assert frame["time"].to_list() == truth["time"].to_list()


async def test_silent_paging_returns_the_bars_that_came(tv_simulator: TvSimulator) -> None:
    tv_simulator.faults.next_connection(more_data_silent_after_bars=50)
    async with open_feed(tv_simulator, **FAST) as feed:
        result = await feed.fetch_history("BINANCE:BTCUSDT", interval="1", n_bars=100)
    truth = tv_simulator.truth("BINANCE:BTCUSDT", "1", n_bars=100)
    assert result.cut_short
    assert 48 <= result.frame.height <= 50
    assert times(result.frame) == times(truth)[-result.frame.height :]


async def test_permission_denied_is_an_entitlement_error(tv_simulator: TvSimulator) -> None:
    tv_simulator.faults.next_connection(denied_symbols={"NASDAQ:AAPL": "economics_paid"})
    async with open_feed(tv_simulator, **FAST) as feed:
        with pytest.raises(EntitlementError, match="economics_paid"):
            await feed.get_hist("NASDAQ:AAPL", interval="1D", n_bars=5)
        frame = await feed.get_hist("BINANCE:BTCUSDT", interval="1D", n_bars=5)
    assert frame.height == 5


@pytest.mark.parametrize(
    "reason",
    ["custom_resolution", "study_not_auth:BarSetRenko@tv-prostudies-40", "unsupported resolution"],
)
async def test_series_errors_of_entitlement(tv_simulator: TvSimulator, reason: str) -> None:
    tv_simulator.faults.next_connection(series_errors={"BINANCE:BTCUSDT": reason})
    async with open_feed(tv_simulator, **FAST) as feed:
        with pytest.raises(EntitlementError) as caught:
            await feed.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=5)
    assert caught.value.reason == reason


async def test_unknown_symbols_stay_symbol_not_found(tv_simulator: TvSimulator) -> None:
    async with open_feed(tv_simulator, **FAST) as feed:
        with pytest.raises(SymbolNotFound):
            await feed.get_hist("BINANCE:NOSUCHCOIN", interval="1", n_bars=5)


async def test_critical_error_with_an_unknown_session_fails_a_waiting_request_at_once(
    tv_simulator: TvSimulator,
) -> None:
    tv_simulator.faults.next_connection(more_data_silent_after_bars=10)
    async with open_feed(tv_simulator, timeouts=Timeouts(request=30.0, page=20.0)) as feed:
        task = asyncio.create_task(feed.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=100))
        await wait_for(lambda: tv_simulator.stats.methods["request_more_data"] == 1)
        assert tv_simulator.faults.critical_error("unexpected error", session="") == 1
        with pytest.raises(Exception, match="unexpected error"):
            await asyncio.wait_for(task, 5)  # long before the page (20 s) or request deadline


async def test_2019_symbol_resolved_has_volume_from_its_bars(tv_simulator: TvSimulator) -> None:
    tv_simulator.faults.next_connection(legacy_resolved_symbols=frozenset({"BINANCE:BTCUSDT"}))
    async with open_feed(tv_simulator, **FAST) as feed:
        result = await feed.fetch_history("BINANCE:BTCUSDT", interval="1", n_bars=10)
    assert result.symbol_info is not None
    assert "visible_plots_set" not in result.symbol_info.raw
    assert result.symbol_info.has_volume


async def test_study_pointset_depth_and_protocol_switched_are_counted(
    tv_simulator: TvSimulator,
) -> None:
    async with open_feed(tv_simulator, **FAST) as feed:
        stream = feed.stream("BINANCE:BTCUSDT", interval="1")
        await wait_for(lambda: tv_simulator.stats.methods["create_series"] == 1)
        await asyncio.sleep(0.1)
        for kind in ("study", "pointset", "depth", "protocol_switched"):
            assert tv_simulator.faults.inject_chart_packets(kind) == 1
        await wait_for(lambda: "protocol_switched" in feed.stats.unknown_messages)
        await tv_simulator.clock.advance(2 * MINUTE)
        bar = await asyncio.wait_for(anext(stream), 5)
        await stream.aclose()
        assert feed.connections_opened == 1
    assert bar.closed


async def test_late_final_revisions_reach_the_consumer_with_a_close_grace(
    tv_simulator: TvSimulator,
) -> None:
    tv_simulator.faults.next_connection(late_final_every_bar=True)
    limits = Limits(close_grace=0.2)
    async with open_feed(tv_simulator, limits=limits, **FAST) as feed:
        stream = feed.stream("BINANCE:BTCUSDT", interval="1")
        await wait_for(lambda: tv_simulator.stats.methods["create_series"] == 1)
        await asyncio.sleep(0.1)
        bars = []
        while len(bars) < 4:
            await tv_simulator.clock.advance(MINUTE)
            try:
                bars.append(await asyncio.wait_for(anext(stream), 1.0))
            except TimeoutError:
                continue
        await stream.aclose()
        assert feed.stats.late_revisions == 0
    for bar in bars:
        truth = tv_simulator.truth(
            "BINANCE:BTCUSDT", "1", start=bar.timestamp, end=bar.timestamp + 1
        )
        assert (bar.open, bar.high, bar.low, bar.close) == (
            truth["open"][0],
            truth["high"][0],
            truth["low"][0],
            truth["close"][0],
        )


async def test_impossible_bars_on_a_live_stream_are_dropped(tv_simulator: TvSimulator) -> None:
    async with open_feed(tv_simulator, **FAST) as feed:
        stream = feed.stream("BINANCE:BTCUSDT", interval="1")
        await wait_for(lambda: tv_simulator.stats.methods["create_series"] == 1)
        await asyncio.sleep(0.1)
        assert tv_simulator.faults.bad_du(1e12) == 1
        bars = []
        while len(bars) < 3:
            await tv_simulator.clock.advance(MINUTE)
            try:
                bars.append(await asyncio.wait_for(anext(stream), 1.0))
            except TimeoutError:
                continue
        await stream.aclose()
        assert feed.stats.rejected_bars >= 1
    truth = tv_simulator.truth(
        "BINANCE:BTCUSDT", "1", start=bars[0].timestamp, end=bars[-1].timestamp + 1
    )
    assert [bar.timestamp for bar in bars] == times(truth)
    assert [bar.close for bar in bars] == truth["close"].to_list()


async def test_a_series_error_on_a_live_stream_ends_its_consumers(
    tv_simulator: TvSimulator,
) -> None:
    async with open_feed(tv_simulator, **FAST) as feed:
        stream = feed.stream("BINANCE:BTCUSDT", interval="1")
        await wait_for(lambda: tv_simulator.stats.methods["create_series"] == 1)
        await asyncio.sleep(0.1)
        assert tv_simulator.faults.symbol_error("invalid symbol") == 1
        with pytest.raises(SymbolNotFound):
            await asyncio.wait_for(anext(stream), 5)
        assert feed.stream_count == 0


async def test_bad_auth_token_again_soon_after_a_refresh_is_not_fatal() -> None:
    """Every connection's token is rejected 3 s after it was accepted: the feed refreshes
    each time (within its budget per time window), instead of giving up at the second."""
    from tvfeed_async.testing.faults import FaultScript
    from tvfeed_async.testing.http_app import Account

    accounts = [Account("trader", "pw-123456", 1001, plan="pro_premium")]
    async with TvSimulator(accounts=accounts) as sim:
        sim.faults.default = FaultScript(bad_token_offsets=(3.0,))
        async with TvFeed(
            endpoints=sim.endpoints,
            username="trader",
            password="pw-123456",
            session_cache=False,
            use_env=False,
            **FAST,
        ) as feed:
            for connections in (2, 3):
                # A request first: the connection's token was accepted (the fault is armed).
                await feed.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=5)
                await sim.clock.advance(4)
                await wait_for(lambda n=connections: feed.connections_opened >= n)
            sim.faults.default = FaultScript()
            frame = await feed.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=5)
            assert feed.stats.token_rejections == 2
    assert frame.height == 5


async def test_a_backfill_answered_by_silence_reports_a_gap_and_goes_on(
    tv_simulator: TvSimulator,
) -> None:
    """After a reconnect the stream pages back with request_more_data; the server stays
    silent: the backfill ends after Timeouts.page, the hole is reported, live goes on."""
    gaps: list[Any] = []
    async with open_feed(tv_simulator, **FAST) as feed:
        stream = feed.stream("BINANCE:BTCUSDT", interval="1", on_gap=gaps.append)
        await wait_for(lambda: tv_simulator.stats.methods["create_series"] == 1)
        await asyncio.sleep(0.1)
        tv_simulator.faults.next_connection(more_data_silent_after_bars=300)
        assert tv_simulator.faults.drop_open() == 1
        await tv_simulator.clock.advance(400 * MINUTE)  # more than the 300 bars asked for
        await wait_for(lambda: tv_simulator.stats.methods["request_more_data"] >= 1)
        await wait_for(lambda: bool(gaps), seconds=15)
        await tv_simulator.clock.advance(2 * MINUTE)
        bar = await asyncio.wait_for(anext(stream), 10)
        await stream.aclose()
    assert gaps
    assert bar.closed
