"""Fixtures of the simulator tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tvfeed_async.testing.pytest_plugin import SimulatorFactory
from tvfeed_async.testing.simulator import TvSimulator
from tvfeed_async.testing.ws_server import ServerConfig

from .helpers import RawClient


@pytest.fixture
async def sim(tv_simulator_factory: SimulatorFactory) -> TvSimulator:
    """A simulator without the HTTP side and without real-time heartbeats."""
    return await tv_simulator_factory(http_port=None, config=ServerConfig(heartbeat_interval=None))


@pytest.fixture
async def client(sim: TvSimulator) -> AsyncIterator[RawClient]:
    """An anonymous, authenticated raw client of ``sim``."""
    raw = await RawClient.open(sim)
    await raw.start()
    yield raw
    await raw.close()
