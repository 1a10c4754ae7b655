"""examples/quotes_sse.py against the simulator: a JSON snapshot and a watchlist over SSE."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import anyio
from aiohttp.test_utils import TestClient, TestServer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "quotes_sse.py"
SYMBOLS = "BINANCE:BTCUSDT,NASDAQ:NOPE,BINANCE:ETHUSDT"


def _load_example():
    spec = importlib.util.spec_from_file_location("quotes_sse_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_snapshot_and_watchlist_events(tv_simulator):
    example = _load_example()
    app = example.create_app(tv_simulator.endpoints)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.get("/quotes", params={"symbols": SYMBOLS})
        assert response.status == 200
        rows = await response.json()
        assert [row["symbol"] for row in rows] == SYMBOLS.split(",")
        assert rows[1]["error"]
        for row in (rows[0], rows[2]):
            forming = tv_simulator.forming_bar(row["symbol"], "1")
            assert row["last"] == forming.close

        bad = await client.get("/watch", params={"symbols": "A:B:C"})
        assert bad.status == 400

        live = await client.get("/watch", params={"symbols": SYMBOLS})
        assert live.status == 200
        events: list[dict] = []
        with anyio.fail_after(20):
            lines = live.content.__aiter__()
            while len(events) < 3:  # the three snapshots (one of them an error)
                line = await anext(lines)
                if line.startswith(b"data: "):
                    events.append(json.loads(line[6:]))
            await tv_simulator.clock.advance(15)  # one delta per known symbol
            latest = {}
            while len(latest) < 2:
                line = await anext(lines)
                if line.startswith(b"data: "):
                    event = json.loads(line[6:])
                    latest[event["symbol"]] = event
        live.close()
    assert {event["symbol"] for event in events} == set(SYMBOLS.split(","))
    assert next(event for event in events if event["error"])["symbol"] == "NASDAQ:NOPE"
    assert set(latest) == {"BINANCE:BTCUSDT", "BINANCE:ETHUSDT"}
    for symbol, event in latest.items():
        assert event["last"] == tv_simulator.forming_bar(symbol, "1").close
