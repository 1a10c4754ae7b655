"""pytest plugin (``pytest11`` entry point ``tvfeed_async``): simulator fixtures.

``tv_simulator`` yields a started :class:`~tvfeed_async.testing.simulator.TvSimulator`
(default settings, virtual clock) and stops it after the test. ``tv_simulator_factory``
yields an async function that starts one with any ``TvSimulator`` arguments
(``await tv_simulator_factory(http_port=None, config=...)``); every simulator it started is
stopped after the test, newest first. It is an async fixture and
needs pytest-asyncio; without it the plugin still loads and the fixture skips the test
with a message. The simulator module is imported only when the fixture is used, so the
plugin costs nothing to projects that never use it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from .simulator import TvSimulator

__all__ = ["tv_simulator", "tv_simulator_factory"]

#: What ``tv_simulator_factory`` yields: keyword arguments of ``TvSimulator`` -> a started one.
SimulatorFactory = Callable[..., Awaitable["TvSimulator"]]

try:
    import pytest_asyncio
except ImportError:  # pytest-asyncio is a test dependency, not a runtime one
    _HAVE_PYTEST_ASYNCIO = False
else:
    _HAVE_PYTEST_ASYNCIO = True

if _HAVE_PYTEST_ASYNCIO:

    @pytest_asyncio.fixture
    async def tv_simulator() -> AsyncIterator[TvSimulator]:
        """A started simulator on 127.0.0.1 (free ports), stopped after the test."""
        from .simulator import TvSimulator

        async with TvSimulator() as simulator:
            yield simulator

    @pytest_asyncio.fixture
    async def tv_simulator_factory() -> AsyncIterator[SimulatorFactory]:
        """Start simulators with any settings; all are stopped after the test."""
        from .simulator import TvSimulator

        async with contextlib.AsyncExitStack() as stack:

            async def start(**options: Any) -> TvSimulator:
                return await stack.enter_async_context(TvSimulator(**options))

            yield start

else:

    @pytest.fixture
    def tv_simulator() -> None:
        """Skips: the fixture is async and needs pytest-asyncio."""
        pytest.skip("the tv_simulator fixture needs pytest-asyncio (pip install pytest-asyncio)")

    @pytest.fixture
    def tv_simulator_factory() -> None:
        """Skips: the fixture is async and needs pytest-asyncio."""
        pytest.skip("tv_simulator_factory needs pytest-asyncio (pip install pytest-asyncio)")
