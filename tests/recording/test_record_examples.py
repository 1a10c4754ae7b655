"""The recording examples compile; each runs when its framework is installed (FastAPI,
Django Channels are not test dependencies, so here they are only compiled)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("name", ["record_fastapi_service.py", "record_django_channels.py"])
def test_example_compiles_and_uses_the_recording_api(name: str) -> None:
    source = (EXAMPLES / name).read_text()
    tree = ast.parse(source, filename=name)
    compile(tree, name, "exec")
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    if name == "record_fastapi_service.py":
        assert {"tvfeed_async.recorder", "tvfeed_async.sinks"} <= imported
    else:
        assert "tv:bars:{symbol}:{interval}" in source
