"""The scale soak's core (benchmarks/scale_soak.py) at a tiny size, in-process: series spread
over two sockets of a FeedPool, quotes, the simulator's session rate and max_connections
enforced, a dropped socket and a restart in 15 virtual minutes; every closed bar once, equal
to the simulator's truth."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(90)

BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "scale_soak.py"


def load_benchmark():
    name = "_tvfeed_scale_soak"
    if name in sys.modules:
        return sys.modules[name]
    # The benchmark imports its folder's shared helpers (benchmarks/_child.py), as a
    # script run from there finds them.
    if str(BENCHMARK.parent) not in sys.path:
        sys.path.insert(0, str(BENCHMARK.parent))
    spec = importlib.util.spec_from_file_location(name, BENCHMARK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def test_compare_counts_lost_duplicated_and_wrong_bars():
    soak = load_benchmark()
    truth = [[60 * n, 1.0, 2.0, 0.5, 1.5, 10.0] for n in range(5)]
    got = [tuple(row) for row in truth]
    assert soak.compare(got, truth, end=300) == (0, 0, 0)
    assert soak.compare(got[:2] + got[3:], truth, end=300) == (1, 0, 0)
    assert soak.compare([*got, got[4]], truth, end=300) == (0, 1, 0)
    changed = [*got[:4], (240, 1.0, 2.0, 0.5, 1.25, 10.0)]
    assert soak.compare(changed, truth, end=300) == (0, 0, 1)
    # A bar that closed after the window is not counted.
    assert soak.compare([*got, (300, 1.0, 1.0, 1.0, 1.0, 1.0)], truth, end=300) == (0, 0, 0)


async def test_tiny_scale_soak_loses_and_duplicates_nothing():
    soak = load_benchmark()
    settings = soak.Settings(
        symbols=5,
        quotes=20,
        virtual_seconds=900.0,
        step=60.0,
        faults=("drop", "restart"),
        # A 15-minute series' one bar closes right at the end: its window is empty.
        intervals=("1", "5", "15"),
        quote_chunk=10,
        session_rate=40.0,
        session_burst=10,
        series_per_socket=8,  # the 15 series need two sockets
    )
    sim = await soak.LocalSim.start(
        settings.symbols, settings.quotes, settings.session_rate, settings.session_burst
    )
    try:
        figures = await soak.run_soak(sim, settings, log=lambda line: None)
    finally:
        await sim.stop()
    bars = figures["bars"]
    assert bars["total"]["lost"] == 0
    assert bars["total"]["duplicated"] == 0
    assert bars["total"]["wrong"] == 0
    assert figures["failed_series_count"] == 0
    for interval in ("1", "5"):
        assert bars["by_interval"][interval]["expected"] > 0
    assert bars["by_interval"]["15"] == {
        "lost": 0,
        "duplicated": 0,
        "wrong": 0,
        "expected": 0,
        "series": 5,
    }
    assert figures["sockets"] == 2
    assert [entry["fault"] for entry in figures["recoveries"]] == ["drop", "restart"]
    assert all(entry["sockets"] >= 2 for entry in figures["recoveries"])
    assert figures["simulator"]["sessions_rate_limited"] == 0
    assert figures["quote_errors"] == []
    assert figures["quote_updates"] >= settings.quotes
