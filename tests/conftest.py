"""Shared test configuration and simulator fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest
import pytest_asyncio

from tvfeed_async.testing import TvSimulator
from tvfeed_async.testing.pytest_plugin import SimulatorFactory
from tvfeed_async.testing.ws_server import ServerConfig

#: ../shared next to the project root; tests that read recordings skip when it is absent.
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
RECORDINGS = SHARED / "recordings"


@pytest.fixture
def recordings_dir() -> Path:
    if not RECORDINGS.is_dir():
        pytest.skip("../shared/recordings is not present")
    return RECORDINGS


@pytest_asyncio.fixture
async def lively_simulator(tv_simulator_factory: SimulatorFactory) -> TvSimulator:
    """Heartbeats every 100 ms (so a short idle watchdog is meaningful; a busy client may take
    up to 5 s to echo one) and room for 1,000 chart sessions on one socket."""
    config = ServerConfig(
        heartbeat_interval=0.1, max_missed_heartbeats=50, max_chart_sessions=1_000
    )
    return await tv_simulator_factory(config=config)
