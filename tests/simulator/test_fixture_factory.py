"""``tv_simulator_factory``: the one way the suite's simulator fixtures start simulators."""

from __future__ import annotations

from tvfeed_async.testing.pytest_plugin import SimulatorFactory
from tvfeed_async.testing.simulator import TvSimulator


async def test_the_factory_starts_simulators_with_any_settings(
    tv_simulator_factory: SimulatorFactory,
) -> None:
    first = await tv_simulator_factory(http_port=None, seed=1)
    second = await tv_simulator_factory(http_port=None, seed=2)
    assert isinstance(first, TvSimulator)
    assert first.endpoints.ws_url != second.endpoints.ws_url
    one = first.truth("BINANCE:BTCUSDT", "1D", n_bars=5)["close"].to_list()
    two = second.truth("BINANCE:BTCUSDT", "1D", n_bars=5)["close"].to_list()
    assert one != two  # each has its own seed, so its own prices
