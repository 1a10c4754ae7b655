"""Opening a TvFeed on the bundled simulator, the same way in every test."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tvfeed_async import Timeouts, TvFeed

__all__ = ["cli_env", "open_feed"]


@asynccontextmanager
async def open_feed(simulator: Any, **options: Any) -> AsyncIterator[TvFeed]:
    """A TvFeed on the simulator: no session cache, no credentials from the environment."""
    options.setdefault("timeouts", Timeouts(request=60.0, idle=30.0))
    options.setdefault("session_cache", False)
    options.setdefault("use_env", False)
    async with TvFeed(endpoints=simulator.endpoints, **options) as feed:
        yield feed


def cli_env(simulator: Any, tmp_path: Path) -> dict[str, str]:
    """The environment of a ``tvfeed-async`` subprocess pointed at the simulator: no ``TV_*``
    or ``TVFEED_*`` of the caller's, a session cache of its own under ``tmp_path``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TV_", "TVFEED_"))}
    env["TVFEED_WS_URL"] = simulator.endpoints.ws_url
    env["TVFEED_WWW_URL"] = simulator.endpoints.www_url
    env["TVFEED_CACHE_DIR"] = str(tmp_path / "cache")
    return env
