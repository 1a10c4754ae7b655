"""A short seeded schedule of every fault type (issues #14, #15) in the default suite; the
long one runs in ``nox -s soak`` (TVFEED_SOAK_SECONDS, TVFEED_SOAK_SEED)."""

from __future__ import annotations

import pytest

from ..soak.schedule import FAULTS, run_fault_schedule

pytestmark = pytest.mark.timeout(180)


@pytest.mark.parametrize("seed", [11])
async def test_every_fault_type_once_then_at_random(lively_simulator, seed: int) -> None:
    fired = await run_fault_schedule(lively_simulator, seconds=8.0, seed=seed)
    assert set(FAULTS) <= set(fired)
