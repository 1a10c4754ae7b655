"""Docstrings and comments state facts a reader can check in this repository.

The protocol notes, user surveys and style guide the project was written from live outside
it; a comment that only points at one of them ("see §3.4") tells a reader nothing here.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = re.compile(r"PROTOCOL\.md|USERS\.md|STYLE\.md|§\s*\d")
ALLOWED = re.compile(r"RFC \d+ §\s*\d")  # public standards are cited by section


def test_no_source_or_test_points_at_a_file_outside_the_repository() -> None:
    offenders = []
    for folder in ("src", "tests", "benchmarks"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if path == Path(__file__).resolve():
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if OUTSIDE.search(ALLOWED.sub("", line)):
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []
