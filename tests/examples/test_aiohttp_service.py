"""examples/aiohttp_service.py against the simulator: JSON history and Server-Sent Events."""

from __future__ import annotations

import importlib.util
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path

import anyio
from aiohttp.test_utils import TestClient, TestServer

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "aiohttp_service.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("aiohttp_service_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


async def test_history_and_live_events(tv_simulator):
    example = _load_example()
    app = example.create_app(tv_simulator.endpoints)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        response = await client.get(
            "/history", params={"symbol": "BINANCE:BTCUSDT", "interval": "60", "bars": "20"}
        )
        assert response.status == 200
        rows = await response.json()
        truth = tv_simulator.truth("BINANCE:BTCUSDT", "60", n_bars=20)
        assert [row["close"] for row in rows] == truth.get_column("close").to_list()
        assert rows[0]["time"] == truth.get_column("time")[0].isoformat()

        bad = await client.get("/history", params={"symbol": "NASDAQ:NOSUCH", "bars": "5"})
        assert bad.status == 400
        assert "NOSUCH" in (await bad.json())["error"]

        live = await client.get("/live", params={"symbol": "BINANCE:ETHUSDT", "interval": "1"})
        assert live.status == 200
        with anyio.fail_after(20):
            while tv_simulator.stats.methods["create_series"] < 2:  # noqa: ASYNC110 (server counter)
                await anyio.sleep(0.02)
            await anyio.sleep(0.3)
            await tv_simulator.clock.advance(3 * 60)
            events = []
            async for line in live.content:
                if line.startswith(b"data: "):
                    events.append(json.loads(line[6:]))
                    if len(events) == 3:
                        break
        live.close()
    start = datetime.fromisoformat(events[0]["time"])
    expected = tv_simulator.truth(
        "BINANCE:ETHUSDT", "1", start=start, end=start + timedelta(minutes=3)
    )
    assert [event["close"] for event in events] == expected.get_column("close").to_list()
