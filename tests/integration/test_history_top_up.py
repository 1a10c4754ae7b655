"""A request whose only remaining page is a top-up (a few bars: usually the one closed bar
the forming newest bar displaced) gives its in-flight slot to the next request
(``tvfeed_async.slots``): the server, which answers pages after everything queued before
them, is never left idle while one small page is on its way."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from tvfeed_async import Limits
from tvfeed_async.slots import TOP_UP_BARS
from tvfeed_async.testing import ws_server
from tvfeed_async.testing.simulator import TvSimulator
from tvfeed_async.testing.ws_server import SimConnection

from ..support.feeds import open_feed
from .test_history import assert_same

SYMBOLS = ["BINANCE:BTCUSDT", "BINANCE:ETHUSDT", "FX:EURUSD"]


def _hold_the_first_top_up(monkeypatch: pytest.MonkeyPatch, events: list[str]) -> None:
    """The simulator keeps the first top-up page unanswered until another series request
    arrives on the socket; with the slot held for that page, none ever would."""
    answer_page = SimConnection._request_more_data
    held: list[list[Any]] = []

    def request_more_data(self: SimConnection, params: list[Any], out: list[str]) -> None:
        if params[2] <= TOP_UP_BARS and not events:
            events.append("top-up held")
            held.append(params)
            return
        answer_page(self, params, out)

    def series_request(original: Any) -> Any:
        def handle(self: SimConnection, params: list[Any], out: list[str]) -> None:
            original(self, params, out)
            if held:
                events.append("next request arrived")
                answer_page(self, held.pop(), out)

        return handle

    monkeypatch.setitem(ws_server._HANDLERS, "request_more_data", request_more_data)
    for method in ("create_series", "modify_series"):
        handler = series_request(ws_server._HANDLERS[method])
        monkeypatch.setitem(ws_server._HANDLERS, method, handler)


async def test_the_next_request_starts_while_a_top_up_page_is_on_its_way(
    tv_simulator: TvSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    _hold_the_first_top_up(monkeypatch, events)
    async with open_feed(tv_simulator, limits=Limits(max_in_flight=1)) as feed:
        with anyio.fail_after(20):
            frames = await feed.get_hist_many(SYMBOLS, interval="1", n_bars=5_000)
    assert events == ["top-up held", "next request arrived"]
    for symbol in SYMBOLS:
        assert_same(frames[symbol], tv_simulator.truth(symbol, "1", n_bars=5_000))  # type: ignore[arg-type]
    # Every request topped up (5,000 bars asked at a cap of 5,000, the newest forming).
    assert tv_simulator.stats.methods["request_more_data"] == len(SYMBOLS)


async def test_a_large_page_keeps_the_slot(
    tv_simulator: TvSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 7,000 bars: the second page asks for 2,001, not a top-up. With one slot the second
    # request starts only after the first has ended, so its create_series comes after every
    # page of the first.
    order: list[str] = []
    for method in ("create_series", "modify_series", "request_more_data"):

        def record(original: Any, name: str = method) -> Any:
            def handle(self: SimConnection, params: list[Any], out: list[str]) -> None:
                order.append(name)
                original(self, params, out)

            return handle

        monkeypatch.setitem(ws_server._HANDLERS, method, record(ws_server._HANDLERS[method]))
    async with open_feed(tv_simulator, limits=Limits(max_in_flight=1)) as feed:
        frames = await feed.get_hist_many(SYMBOLS[:2], interval="1", n_bars=7_000)
    for symbol in SYMBOLS[:2]:
        assert_same(frames[symbol], tv_simulator.truth(symbol, "1", n_bars=7_000))  # type: ignore[arg-type]
    first_request_of_second = next(
        index for index, name in enumerate(order) if index > 0 and name != "request_more_data"
    )
    assert "request_more_data" in order[1:first_request_of_second]
    assert all(name == "request_more_data" for name in order[1:first_request_of_second])


async def test_every_session_a_burst_of_top_ups_opened_is_kept_for_reuse(
    tv_simulator: TvSimulator,
) -> None:
    # Up to 2 x max_in_flight sessions are open at once (half of them topping up); all of
    # them are kept idle, so later calls create none: without that, every call would open
    # sessions again, paced by the governor's session rate.
    symbols = [f"BINANCE:SIM{number:03d}USDT" for number in range(1, 9)]
    limits = Limits(max_in_flight=2)
    async with open_feed(tv_simulator, limits=limits) as feed:
        for _ in range(3):
            frames = await feed.get_hist_many(symbols, interval="1", n_bars=5_000)
            for symbol in symbols:
                truth = tv_simulator.truth(symbol, "1", n_bars=5_000)
                assert_same(frames[symbol], truth)  # type: ignore[arg-type]
    assert tv_simulator.stats.methods["request_more_data"] == 3 * len(symbols)
    created = tv_simulator.stats.methods["chart_create_session"]
    assert limits.max_in_flight < created <= 2 * limits.max_in_flight
