"""The bundled TradingView simulator, for tests, demos and benchmarks.

``TvSimulator`` runs a local server that speaks TradingView's WebSocket protocol and HTTP
APIs with deterministic ground-truth bars, a virtual clock and scriptable
faults. The pytest plugin (``tvfeed_async.testing.pytest_plugin``, registered as a
``pytest11`` entry point) provides the ``tv_simulator`` fixture.

Names are imported lazily so that loading the pytest plugin stays cheap.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .catalogue import Catalogue, Instrument, SymbolInfo, TradingSession, default_catalogue
    from .clock import DEFAULT_START, SimulatorClock
    from .faults import Faults, FaultScript
    from .http_app import Account
    from .simulator import TvSimulator, rows_to_frame, serve_forever
    from .ws_server import ServerConfig, SimulatorStats

__all__ = [
    "DEFAULT_START",
    "Account",
    "Catalogue",
    "FaultScript",
    "Faults",
    "ServerConfig",
    "SimulatorClock",
    "SimulatorStats",
    "Instrument",
    "SymbolInfo",
    "TradingSession",
    "TvSimulator",
    "default_catalogue",
    "rows_to_frame",
    "serve_forever",
]

_WHERE = {
    "Account": "http_app",
    "Catalogue": "catalogue",
    "Instrument": "catalogue",
    "SymbolInfo": "catalogue",
    "TradingSession": "catalogue",
    "default_catalogue": "catalogue",
    "DEFAULT_START": "clock",
    "SimulatorClock": "clock",
    "FaultScript": "faults",
    "Faults": "faults",
    "TvSimulator": "simulator",
    "rows_to_frame": "simulator",
    "serve_forever": "simulator",
    "ServerConfig": "ws_server",
    "SimulatorStats": "ws_server",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
