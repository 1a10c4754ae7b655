"""How the batches one history request received become its frame (history._build_frame)."""

from __future__ import annotations

import json

from tvfeed_async.history import HistoryRequest, _build_frame, _ChartRoute
from tvfeed_async.protocol import Interval, SeriesData, parse_message
from tvfeed_async.protocol.symbols import parse_symbol

SYMBOL = parse_symbol("BINANCE:BTCUSDT")
T0 = 1_700_000_040  # a minute boundary


def batch(route: _ChartRoute, method: str, bars: list[tuple[int, float]]) -> None:
    rows = [{"i": 0, "v": [float(t), close, close, close, close, 1.0]} for t, close in bars]
    text = json.dumps(
        {"m": method, "p": ["cs_a", {"sds_1": {"s": rows, "t": "s1"}}], "t": 10**10},
        separators=(",", ":"),
    )
    message = parse_message(text)
    assert isinstance(message, SeriesData)
    route.handle(message)


def test_pages_are_put_in_time_order_and_a_late_revision_wins() -> None:
    route = _ChartRoute(SYMBOL.full, "test")
    newest = [(T0 + 60 * k, 1.0) for k in range(5)]
    batch(route, "timescale_update", newest)  # the first batch: the newest bars
    batch(route, "timescale_update", [(T0 - 60 * k, 0.5) for k in range(3, 0, -1)])  # a page
    batch(route, "du", [(T0 + 240, 2.0)])  # a live revision of the newest bar, after both
    request = HistoryRequest(SYMBOL, Interval("1"), n_bars=100, include_partial=True)
    frame = _build_frame(request, route)
    seconds = frame["time"].dt.epoch("s").to_list()
    assert seconds == [T0 + 60 * k for k in range(-3, 5)]
    assert frame["close"].to_list() == [0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0, 2.0]
