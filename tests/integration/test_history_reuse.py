"""History requests reuse idle chart sessions (issue #22): the next request on the socket
switches a finished request's session to its own symbol and series (``resolve_symbol`` under
a new alias, ``modify_series`` under a new turnaround) instead of creating one; the frames
still equal the simulator's truth."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import polars as pl
import pytest

from tvfeed_async import Limits, SymbolNotFound, Timeouts, TvFeed, history
from tvfeed_async.testing import ws_server
from tvfeed_async.testing.simulator import TvSimulator
from tvfeed_async.testing.ws_server import SimConnection, _plain

from ..support.feeds import open_feed
from .test_history import assert_same


def _truth(sim: TvSimulator, request: dict[str, Any]) -> pl.DataFrame:
    symbol, interval = request["symbol"], request["interval"]
    if "start" in request:
        return sim.truth(symbol, interval).filter(
            (pl.col("time") >= request["start"]) & (pl.col("time") < request["end"])
        )
    return sim.truth(symbol, interval, n_bars=request["n_bars"])


def _mixed_requests(sim: TvSimulator) -> list[dict[str, Any]]:
    now = datetime.fromtimestamp(sim.clock.now(), UTC)
    start = now - timedelta(days=20)
    return [
        {"symbol": "BINANCE:BTCUSDT", "interval": "1", "n_bars": 50},
        {"symbol": "BINANCE:ETHUSDT", "interval": "60", "n_bars": 300},
        {"symbol": "NASDAQ:AAPL", "interval": "1D", "n_bars": 100},
        {"symbol": "BINANCE:BTCUSDT", "interval": "1", "n_bars": 12_345},  # pages 3 times
        {"symbol": "BINANCE:BTCUSDT", "interval": "5", "start": start, "end": start + timedelta(9)},
        {"symbol": "NASDAQ:NOSUCHTHING", "interval": "1", "n_bars": 10},  # fails
        {"symbol": "BINANCE:ETHUSDT", "interval": "1", "n_bars": 7_000},
        {"symbol": "FX:EURUSD", "interval": "15", "start": start, "end": start + timedelta(3)},
        {"symbol": "NASDAQ:AAPL", "interval": "1", "n_bars": 500},
        {"symbol": "BINANCE:BTCUSDT", "interval": "1W", "n_bars": 20},
    ]


def _methods(sim: TvSimulator) -> dict[str, int]:
    return dict(sim.stats.methods)


def _open_charts(sim: TvSimulator) -> int:
    """Chart sessions the simulator holds on its open connections."""
    return sum(
        len(connection._charts)
        for connection in sim._hub.connections.values()
        if not connection.closing
    )


async def _eventually(check: Any, seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await anyio.sleep(0.02)


async def _run(feed: TvFeed, request: dict[str, Any]) -> pl.DataFrame:
    options = {key: value for key, value in request.items() if key != "symbol"}
    return await feed.get_hist(request["symbol"], **options)


async def _run_all(feed: TvFeed, sim: TvSimulator, requests: list[dict[str, Any]]) -> None:
    """Each request in turn: the unknown symbol raises, every other frame equals the truth."""
    for request in requests:
        if "NOSUCHTHING" in request["symbol"]:
            with pytest.raises(SymbolNotFound):
                await _run(feed, request)
            continue
        assert_same(await _run(feed, request), _truth(sim, request))


async def test_a_long_mixed_sequence_reuses_one_session(tv_simulator: TvSimulator) -> None:
    requests = _mixed_requests(tv_simulator)
    async with open_feed(tv_simulator) as feed:
        await _run_all(feed, tv_simulator, requests)
        # The first request and each date range open a session (ranges open their own); the
        # unknown symbol takes the newest idle one, which is then deleted; every other count
        # request takes an idle one.
        ranges = sum("start" in request for request in requests)
        await _eventually(lambda: tv_simulator.stats.methods["chart_delete_session"] == 1)
        methods = _methods(tv_simulator)
        assert methods["chart_create_session"] == 1 + ranges
        assert methods["chart_delete_session"] == 1
        assert methods["resolve_symbol"] == len(requests)
        assert _open_charts(tv_simulator) == ranges


async def test_date_ranges_on_reused_sessions_when_switched_on(
    tv_simulator: TvSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # history._REUSE_FOR_RANGES: ranges take idle sessions too (probe and windows all
    # modify_series); the simulator answers that flow as well.
    monkeypatch.setattr(history, "_REUSE_FOR_RANGES", True)
    requests = _mixed_requests(tv_simulator)
    async with open_feed(tv_simulator) as feed:
        await _run_all(feed, tv_simulator, requests)
        await _eventually(lambda: tv_simulator.stats.methods["chart_delete_session"] == 1)
        # One session before the unknown symbol, whose session is deleted, one after.
        assert tv_simulator.stats.methods["chart_create_session"] == 2
        assert _open_charts(tv_simulator) == 1


async def test_reuse_off_creates_a_session_per_request(tv_simulator: TvSimulator) -> None:
    requests = [r for r in _mixed_requests(tv_simulator) if "NOSUCH" not in r["symbol"]]
    timeouts = Timeouts(request=60.0, idle=30.0, idle_chart_session=0)
    async with open_feed(tv_simulator, timeouts=timeouts) as feed:
        for request in requests:
            assert_same(await _run(feed, request), _truth(tv_simulator, request))
        await _eventually(lambda: _open_charts(tv_simulator) == 0)
        methods = _methods(tv_simulator)
        assert methods["chart_create_session"] == len(requests)
        assert methods["chart_delete_session"] == len(requests)
        assert "modify_series" not in methods or methods["modify_series"] < len(requests)


async def test_get_hist_many_creates_at_most_max_in_flight(tv_simulator: TvSimulator) -> None:
    symbols = [f"BINANCE:SIM{number:03d}USDT" for number in range(1, 21)]
    limits = Limits(max_in_flight=4)
    async with open_feed(tv_simulator, limits=limits) as feed:
        for interval in ("1", "5", "60"):
            results = await feed.get_hist_many(symbols, interval=interval, n_bars=300)
            for symbol in symbols:
                frame = results[symbol]
                assert isinstance(frame, pl.DataFrame)
                assert_same(frame, tv_simulator.truth(symbol, interval, n_bars=300))
        methods = _methods(tv_simulator)
        assert methods["chart_create_session"] <= limits.max_in_flight
        assert methods.get("chart_delete_session", 0) == 0
        assert methods["resolve_symbol"] == 3 * len(symbols)
        assert feed._supervisor.link is not None
        assert feed._supervisor.link.chart_sessions == methods["chart_create_session"]


async def test_a_late_du_of_the_previous_symbol_does_not_reach_the_next_request(
    tv_simulator: TvSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before answering each modify_series, the simulator sends a du of the series' previous
    # symbol under its previous turnaround (a late update of it), at an open time the new
    # request returns, with impossible prices; and a late series_completed of it too.
    tv_simulator.faults.next_connection(stale_completion=True)
    original = SimConnection._modify_series
    sent: list[str] = []

    def modify_with_a_late_du(self: SimConnection, params: list[Any], out: list[str]) -> None:
        chart = self._charts.get(params[0])
        previous = chart.series.get(params[1]) if chart is not None else None
        if previous is not None:
            closed = int(tv_simulator.clock.now()) // 60 * 60 - 3 * 60
            row = {"i": 0, "v": [closed, 1e9, 1e9, 1e9, 1e9, 1e9]}
            body = {"s": [row], "ns": {"d": "", "indexes": "nochange"}, "t": previous.turnaround}
            sent.append(previous.turnaround)
            self.emit([_plain("du", [params[0], {params[1]: body}])])
        original(self, params, out)

    monkeypatch.setitem(ws_server._HANDLERS, "modify_series", modify_with_a_late_du)
    async with open_feed(tv_simulator) as feed:
        for symbol in ("BINANCE:BTCUSDT", "BINANCE:ETHUSDT", "BINANCE:SIM001USDT"):
            frame = await feed.get_hist(symbol, interval="1", n_bars=100)
            assert_same(frame, tv_simulator.truth(symbol, "1", n_bars=100))
            assert frame.get_column("high").max() < 1e9  # type: ignore[operator]
        assert tv_simulator.stats.methods["chart_create_session"] == 1
    assert sent == ["s1", "s2"]


async def test_idle_sessions_are_deleted_after_the_idle_timeout(tv_simulator: TvSimulator) -> None:
    timeouts = Timeouts(request=60.0, idle=30.0, idle_chart_session=0.3)
    async with open_feed(tv_simulator, timeouts=timeouts, limits=Limits(max_in_flight=3)) as feed:
        symbols = ["BINANCE:BTCUSDT", "BINANCE:ETHUSDT", "FX:EURUSD"]
        await feed.get_hist_many(symbols, interval="5", n_bars=10)
        created = tv_simulator.stats.methods["chart_create_session"]
        assert 1 <= created <= 3
        assert _open_charts(tv_simulator) == created  # idle, not deleted yet
        await _eventually(lambda: _open_charts(tv_simulator) == 0)
        assert tv_simulator.stats.methods["chart_delete_session"] == created
        link = feed._supervisor.link
        assert link is not None
        assert link.chart_sessions == 0
        # The next request creates a session again, and it is reused and deleted as before.
        frame = await feed.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=20)
        assert_same(frame, tv_simulator.truth("BINANCE:BTCUSDT", "1", n_bars=20))
        assert tv_simulator.stats.methods["chart_create_session"] == created + 1
        await _eventually(lambda: link.chart_sessions == 0)


async def test_idle_sessions_are_deleted_when_the_feed_closes(tv_simulator: TvSimulator) -> None:
    symbols = [f"BINANCE:SIM{number:03d}USDT" for number in range(1, 9)]
    async with open_feed(tv_simulator, limits=Limits(max_in_flight=8)) as feed:
        await feed.get_hist_many(symbols, interval="5", n_bars=10)
        created = tv_simulator.stats.methods["chart_create_session"]
        assert _open_charts(tv_simulator) == created
        assert tv_simulator.stats.methods.get("chart_delete_session", 0) == 0
    await _eventually(lambda: tv_simulator.stats.methods["chart_delete_session"] == created)


async def test_a_stream_takes_the_slot_of_an_idle_history_session(
    tv_simulator: TvSimulator,
) -> None:
    limits = Limits(max_in_flight=2, max_chart_sessions=2)
    async with open_feed(tv_simulator, limits=limits) as feed:
        await feed.get_hist_many(["BINANCE:BTCUSDT", "BINANCE:ETHUSDT"], interval="1", n_bars=5)
        link = feed._supervisor.link
        assert link is not None
        assert link.chart_sessions == 2  # both idle: every slot is taken
        with anyio.fail_after(10):
            stream = feed.stream("BINANCE:BTCUSDT", interval="1", partial=True)
            async with contextlib.aclosing(stream):
                bar = await anext(stream)
                assert bar.symbol == "BINANCE:BTCUSDT"
                # One idle session was deleted for it; history goes on beside it.
                assert tv_simulator.stats.methods["chart_delete_session"] == 1
                frame = await feed.get_hist("FX:EURUSD", interval="15", n_bars=40)
                assert_same(frame, tv_simulator.truth("FX:EURUSD", "15", n_bars=40))
                assert link.chart_sessions == 2


async def test_failed_requests_delete_their_session(tv_simulator: TvSimulator) -> None:
    tv_simulator.faults.next_connection(series_errors={"BINANCE:ETHUSDT": "custom_resolution"})
    async with open_feed(tv_simulator) as feed:
        assert_same(
            await feed.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=10),
            tv_simulator.truth("BINANCE:BTCUSDT", "1", n_bars=10),
        )
        with pytest.raises(Exception, match="custom_resolution"):
            await feed.get_hist("BINANCE:ETHUSDT", interval="1", n_bars=10)
        await _eventually(lambda: tv_simulator.stats.methods["chart_delete_session"] == 1)
        with pytest.raises(SymbolNotFound):
            await feed.get_hist("NASDAQ:NOSUCHTHING", interval="1", n_bars=10)
        await _eventually(lambda: tv_simulator.stats.methods["chart_delete_session"] == 2)
        # Cancelled mid-request: deleted too, never reused.
        with anyio.move_on_after(0.05):
            await feed.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=200_000)
        await _eventually(lambda: tv_simulator.stats.methods["chart_delete_session"] == 3)
        assert _open_charts(tv_simulator) == 0
        # And the next request is still right.
        assert_same(
            await feed.get_hist("BINANCE:SIM002USDT", interval="60", n_bars=30),
            tv_simulator.truth("BINANCE:SIM002USDT", "60", n_bars=30),
        )
        assert tv_simulator.stats.methods["chart_create_session"] == 4


async def test_reconnects_in_the_middle_still_give_the_truth(tv_simulator: TvSimulator) -> None:
    requests = [r for r in _mixed_requests(tv_simulator) if "NOSUCH" not in r["symbol"]]
    async with open_feed(tv_simulator) as feed:
        for number, request in enumerate(requests):
            if number in (3, 6):
                assert await tv_simulator.restart() == 1  # idle sessions die with the socket
            assert_same(await _run(feed, request), _truth(tv_simulator, request))
        assert feed.connections_opened == 3
        # On each socket: one session for its first request, one for each later date range
        # (ranges open their own); every other request reuses one of them.
        expected = 0
        for segment in (requests[:3], requests[3:6], requests[6:]):
            expected += 1 + sum("start" in request for request in segment[1:])
        assert tv_simulator.stats.methods["chart_create_session"] == expected
        link = feed._supervisor.link
        assert link is not None
        assert link.chart_sessions == 1 + sum("start" in request for request in requests[7:])


async def test_a_drop_mid_request_on_a_reused_session_is_retried(
    tv_simulator: TvSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = SimConnection._request_more_data
    drops: list[str] = []

    def drop_at_the_first_page(self: SimConnection, params: list[Any], out: list[str]) -> None:
        if not drops:
            drops.append(params[0])
            assert tv_simulator.faults.drop_open() == 1
            return
        original(self, params, out)

    monkeypatch.setitem(ws_server._HANDLERS, "request_more_data", drop_at_the_first_page)
    async with open_feed(tv_simulator) as feed:
        await feed.get_hist("BINANCE:ETHUSDT", interval="1", n_bars=10)
        # The socket drops while the next request pages on the reused session.
        frame = await feed.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=9_000)
        assert feed.connections_opened == 2
        assert tv_simulator.stats.methods["chart_create_session"] == 2
        assert tv_simulator.stats.methods["modify_series"] == 1
    assert len(drops) == 1
    assert_same(frame, tv_simulator.truth("BINANCE:BTCUSDT", "1", n_bars=9_000))


async def test_a_stream_waiting_for_a_slot_gets_the_session_a_request_leaves_idle(
    tv_simulator: TvSimulator,
) -> None:
    # One slot: the stream waits while the request pages; when the request ends its session
    # goes idle, and the waiting stream takes the slot at once (not after the idle timeout).
    tv_simulator.faults.next_connection(send_latency=0.02)
    limits = Limits(max_in_flight=1, max_chart_sessions=1)
    async with open_feed(tv_simulator, limits=limits) as feed:
        results: list[pl.DataFrame] = []

        async def history() -> None:
            results.append(await feed.get_hist("BINANCE:ETHUSDT", interval="1", n_bars=30_000))

        async with anyio.create_task_group() as task_group:
            task_group.start_soon(history)
            await _eventually(lambda: tv_simulator.stats.methods["create_series"] == 1)
            with anyio.fail_after(10):
                stream = feed.stream("BINANCE:BTCUSDT", interval="1", partial=True)
                async with contextlib.aclosing(stream):
                    bar = await anext(stream)
                    assert results  # the stream waited for the request's slot
        assert bar.symbol == "BINANCE:BTCUSDT"
        assert tv_simulator.stats.methods["chart_create_session"] == 2
        assert tv_simulator.stats.methods["chart_delete_session"] >= 1
        assert_same(results[0], tv_simulator.truth("BINANCE:ETHUSDT", "1", n_bars=30_000))


async def test_a_request_cut_short_by_a_quiet_page_deletes_its_session(
    tv_simulator: TvSimulator,
) -> None:
    # The server stops answering pages: the request returns what came (cut_short), and its
    # session, which may still answer that page later, is deleted rather than reused.
    tv_simulator.faults.next_connection(more_data_silent_after_bars=50)
    timeouts = Timeouts(request=30.0, idle=30.0, page=0.3)
    async with open_feed(tv_simulator, timeouts=timeouts) as feed:
        result = await feed.fetch_history("BINANCE:BTCUSDT", interval="1", n_bars=100)
        assert result.cut_short
        await _eventually(lambda: tv_simulator.stats.methods["chart_delete_session"] == 1)
        frame = await feed.get_hist("BINANCE:ETHUSDT", interval="1", n_bars=40)
        assert_same(frame, tv_simulator.truth("BINANCE:ETHUSDT", "1", n_bars=40))
        assert tv_simulator.stats.methods["chart_create_session"] == 2
