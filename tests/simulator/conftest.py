"""Fixtures of the simulator tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tvfeed_async.testing.simulator import TvSimulator
from tvfeed_async.testing.ws_server import ServerConfig

from .helpers import RawClient


@pytest.fixture
async def sim() -> AsyncIterator[TvSimulator]:
    """A simulator without the HTTP side and without real-time heartbeats."""
    async with TvSimulator(
        http_port=None, config=ServerConfig(heartbeat_interval=None)
    ) as simulator:
        yield simulator


@pytest.fixture
async def client(sim: TvSimulator) -> AsyncIterator[RawClient]:
    """An anonymous, authenticated raw client of ``sim``."""
    raw = await RawClient.open(sim)
    await raw.start()
    yield raw
    await raw.close()
