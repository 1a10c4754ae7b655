"""Opening a TvFeed on the bundled simulator, the same way in every test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tvfeed_async import Timeouts, TvFeed

__all__ = ["open_feed"]


@asynccontextmanager
async def open_feed(simulator: Any, **options: Any) -> AsyncIterator[TvFeed]:
    """A TvFeed on the simulator: no session cache, no credentials from the environment."""
    options.setdefault("timeouts", Timeouts(request=60.0, idle=30.0))
    options.setdefault("session_cache", False)
    options.setdefault("use_env", False)
    async with TvFeed(endpoints=simulator.endpoints, **options) as feed:
        yield feed
