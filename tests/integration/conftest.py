"""Simulator fixtures for the client's integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from tvfeed_async.testing import TvSimulator
from tvfeed_async.testing.ws_server import ServerConfig


@pytest_asyncio.fixture
async def lively_simulator() -> AsyncIterator[TvSimulator]:
    """Heartbeats every 100 ms (so a short idle watchdog is meaningful; a busy client may take
    up to 5 s to echo one) and room for 1,000 chart sessions on one socket."""
    config = ServerConfig(
        heartbeat_interval=0.1, max_missed_heartbeats=50, max_chart_sessions=1_000
    )
    async with TvSimulator(config=config) as simulator:
        yield simulator
