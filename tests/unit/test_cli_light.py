"""``tvfeed-async --help`` and ``--version`` answer without loading the feed.

The commands import polars, aiohttp, anyio, pyotp and the feed only when they run, so the
help text costs a fraction of the package's full import (tvfeed_async/cli.py says so).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("polars", "aiohttp", "anyio", "pyotp", "tvfeed_async.feed", "tvfeed_async.history")

PROBE = """
import contextlib, io, json, sys
from tvfeed_async.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
    main(sys.argv[1:])
print(json.dumps({"out": out.getvalue(), "loaded": sorted(sys.modules)}))
"""


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["--version"],
        ["hist", "--help"],
        ["stream", "--help"],
        ["quote", "--help"],
        ["record", "--help"],
    ],
)
def test_help_loads_no_heavy_module(argv: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, check=True
    )
    report = json.loads(done.stdout.splitlines()[-1])
    assert report["out"].strip(), "the command printed nothing"
    loaded = set(report["loaded"])
    assert [name for name in HEAVY if name in loaded] == []
