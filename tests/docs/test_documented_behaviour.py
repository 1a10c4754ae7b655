"""What docs/testing.md promises a newcomer, checked directly (the snippets run too, in
test_snippets.py): the ``TVFEED_*`` variables reach ``TvFeed()``, the names the docs import
exist, and ``wait_subscribed`` makes advancing the clock safe."""

from __future__ import annotations

import contextlib
from pathlib import Path

import anyio
import pytest

import tvfeed_async.testing as testing
from tvfeed_async import Endpoints, TvFeed
from tvfeed_async.testing import TvSimulator


def _point_env_at(monkeypatch: pytest.MonkeyPatch, sim: TvSimulator) -> None:
    monkeypatch.setenv("TVFEED_WS_URL", sim.endpoints.ws_url)
    monkeypatch.setenv("TVFEED_WWW_URL", sim.endpoints.www_url)
    monkeypatch.setenv("TVFEED_SYMBOL_SEARCH_URL", sim.endpoints.symbol_search_url)


async def test_feed_without_endpoints_follows_the_environment(monkeypatch, tv_simulator):
    _point_env_at(monkeypatch, tv_simulator)
    async with TvFeed(session_cache=False) as feed:
        assert feed.endpoints.ws_url == tv_simulator.endpoints.ws_url
        frame = await feed.get_hist("BINANCE:BTCUSDT", interval="60", n_bars=50)
        found = await feed.search_symbol("AAPL")
    assert frame.equals(tv_simulator.truth("BINANCE:BTCUSDT", "60", n_bars=50))
    assert "NASDAQ:AAPL" in [result.full_name for result in found]
    assert tv_simulator.stats.connections_opened == 1


def test_use_env_false_and_explicit_endpoints_ignore_the_environment(monkeypatch):
    monkeypatch.setenv("TVFEED_WS_URL", "ws://127.0.0.1:9/socket.io/websocket")
    assert TvFeed(use_env=False).endpoints == Endpoints()
    chosen = Endpoints(ws_url="ws://127.0.0.1:10/x")
    assert TvFeed(endpoints=chosen).endpoints == chosen
    assert TvFeed().endpoints.ws_url == "ws://127.0.0.1:9/socket.io/websocket"


def test_names_the_docs_import_from_tvfeed_async_testing():
    from tvfeed_async.testing.http_app import Account

    assert testing.Account is Account
    for name in testing.__all__:
        assert getattr(testing, name) is not None


async def _collect(feed: TvFeed, bars: list, count: int) -> None:
    async with contextlib.aclosing(feed.stream("BINANCE:ETHUSDT", interval="1")) as live:
        async for bar in live:
            bars.append(bar)
            if len(bars) == count:
                return


async def test_wait_subscribed_then_advance_delivers_every_bar(tv_simulator):
    bars: list = []
    async with TvFeed(endpoints=tv_simulator.endpoints, session_cache=False) as feed:
        with anyio.fail_after(30):
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(_collect, feed, bars, 4)
                found = await tv_simulator.wait_subscribed("binance:ethusdt", "1")
                assert found == 1
                await tv_simulator.clock.advance(4 * 60)
    truth = tv_simulator.truth("BINANCE:ETHUSDT", "1", n_bars=4)
    assert [bar.time for bar in bars] == truth["time"].to_list()
    assert [bar.close for bar in bars] == truth["close"].to_list()


async def test_wait_subscribed_filters_and_times_out(tv_simulator):
    bars: list = []
    async with (
        TvFeed(endpoints=tv_simulator.endpoints, session_cache=False) as feed,
        anyio.create_task_group() as tasks,
    ):
        tasks.start_soon(_collect, feed, bars, 1)
        assert await tv_simulator.wait_subscribed() == 1
        with pytest.raises(TimeoutError):
            await tv_simulator.wait_subscribed("BINANCE:ETHUSDT", "5", timeout=0.2)
        with pytest.raises(TimeoutError):
            await tv_simulator.wait_subscribed("BINANCE:BTCUSDT", timeout=0.2)
        with pytest.raises(TimeoutError):
            await tv_simulator.wait_subscribed(count=2, timeout=0.2)
        await tv_simulator.clock.advance(60)
    assert len(bars) == 1
    with pytest.raises(KeyError):
        await tv_simulator.wait_subscribed("NASDAQ:NOSUCH")


def test_the_pandas_extra_is_declared_and_documented():
    import tomllib

    root = Path(__file__).resolve().parents[2]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    extra = [
        requirement.split(">")[0] for requirement in project["optional-dependencies"]["pandas"]
    ]
    assert sorted(extra) == ["pandas", "pyarrow"]
    assert 'pip install "tvfeed-async[pandas]"' in (root / "README.md").read_text()


async def test_to_pandas_works_with_the_extra_installed(tv_simulator):
    pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    async with TvFeed(endpoints=tv_simulator.endpoints, session_cache=False) as feed:
        frame = await feed.get_hist("NASDAQ:AAPL", interval="1D", n_bars=5)
    converted = frame.to_pandas()
    assert list(converted["close"]) == frame["close"].to_list()
    assert str(converted["time"].dt.tz) == "UTC"
