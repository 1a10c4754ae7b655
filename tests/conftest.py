"""Shared test configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

#: ../shared next to the project root; tests that read recordings skip when it is absent.
SHARED = Path(__file__).resolve().parents[1].parent / "shared"
RECORDINGS = SHARED / "recordings"


@pytest.fixture
def recordings_dir() -> Path:
    if not RECORDINGS.is_dir():
        pytest.skip("../shared/recordings is not present")
    return RECORDINGS
