"""pytest plugin (``pytest11`` entry point ``tvfeed_async``): the ``tv_simulator`` fixture.

``tv_simulator`` yields a started :class:`~tvfeed_async.testing.simulator.TvSimulator`
(default settings, virtual clock) and stops it after the test. It is an async fixture and
needs pytest-asyncio; without it the plugin still loads and the fixture skips the test
with a message. The simulator module is imported only when the fixture is used, so the
plugin costs nothing to projects that never use it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from .simulator import TvSimulator

__all__ = ["tv_simulator"]

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

else:

    @pytest.fixture
    def tv_simulator() -> None:
        """Skips: the fixture is async and needs pytest-asyncio."""
        pytest.skip("the tv_simulator fixture needs pytest-asyncio (pip install pytest-asyncio)")
