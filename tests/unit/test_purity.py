"""The protocol core is pure (no I/O or Polars imports) and the library uses no threads.

``protocol/`` imports none of asyncio, aiohttp, websockets, anyio or polars, and
nothing anywhere uses threads (no ``threading``, ``concurrent.futures``, ``to_thread`` or
``run_in_executor``).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import tvfeed_async

PACKAGE = Path(tvfeed_async.__file__).resolve().parent
PROTOCOL = PACKAGE / "protocol"
IMPURE = ("asyncio", "aiohttp", "websockets", "anyio", "polars", "pyotp")
# _thread is always loaded by the interpreter itself, so only the AST scan looks for it.
THREAD_MODULES = ("threading", "_thread", "concurrent.futures", "multiprocessing")
THREAD_CALLS = ("to_thread", "run_in_executor", "run_sync_in_worker_thread")


def run_python(code: str) -> object:
    """Run ``code`` in a fresh interpreter; it prints one JSON value, which is returned."""
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])


def test_protocol_package_imports_nothing_impure() -> None:
    # A plain import, parent package included: the package __init__ imports the client's
    # heavy modules only on first use, so nothing here needs stubbing.
    code = f"""
import json, sys
import tvfeed_async.protocol
import tvfeed_async.protocol.framing, tvfeed_async.protocol.messages, tvfeed_async.protocol.bars
banned = {(*IMPURE, "threading", "concurrent.futures")!r}
loaded = sorted(
    name for name in sys.modules if any(name == b or name.startswith(b + ".") for b in banned)
)
ours = sorted(name for name in sys.modules if name.startswith("tvfeed_async"))
print(json.dumps({{"loaded": loaded, "ours": ours}}))
"""
    result = run_python(code)
    assert isinstance(result, dict)
    assert result["loaded"] == []
    # Only the protocol package, the error tree and the package's light values were needed.
    light = {
        "tvfeed_async",
        "tvfeed_async.errors",
        "tvfeed_async.config",
        "tvfeed_async.stats",
        "tvfeed_async.events",
    }
    assert set(result["ours"]) <= light | {
        f"tvfeed_async.protocol.{path.stem}" for path in PROTOCOL.glob("*.py")
    } | {"tvfeed_async.protocol"}
    assert "tvfeed_async.protocol.messages" in result["ours"]


def imports_of(path: Path) -> list[tuple[str, int]]:
    """Every imported module of a file as (absolute-ish name, relative level)."""
    found: list[tuple[str, int]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.extend((alias.name, 0) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            found.append((module, node.level))
            found.extend((f"{module}.{alias.name}".lstrip("."), node.level) for alias in node.names)
    return found


@pytest.mark.parametrize("path", sorted(PROTOCOL.glob("*.py")), ids=lambda p: p.name)
def test_protocol_sources_import_only_pure_modules(path: Path) -> None:
    for name, level in imports_of(path):
        if level == 0:
            top = name.split(".")[0]
            assert top not in IMPURE, f"{path.name} imports {name}"
            assert top != "tvfeed_async", f"{path.name} should import the core relatively"
        elif level == 2:
            # Outside the protocol package only the error tree may be used.
            assert name.split(".")[0] == "errors", f"{path.name} imports ..{name}"
        else:
            assert level == 1, f"{path.name} reaches {level} packages up"


def library_sources() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def test_no_thread_imports_anywhere() -> None:
    offenders = []
    for path in library_sources():
        for name, level in imports_of(path):
            if level == 0 and any(
                name == banned or name.startswith(banned + ".") for banned in THREAD_MODULES
            ):
                offenders.append(f"{path.relative_to(PACKAGE)}: {name}")
            if name in ("concurrent", "concurrent.futures") or name.endswith(".to_thread"):
                offenders.append(f"{path.relative_to(PACKAGE)}: {name}")
    assert offenders == []


def test_no_thread_calls_anywhere() -> None:
    offenders = []
    for path in library_sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = None
            if isinstance(node, ast.Attribute):
                name = node.attr
            elif isinstance(node, ast.Name):
                name = node.id
            if name in THREAD_CALLS:
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {name}")
    assert offenders == []


def test_the_scans_would_catch_a_thread() -> None:
    # Guard against a scan that silently passes: run it on a snippet that does use threads.
    tree = ast.parse(
        "import threading\nfrom concurrent.futures import ThreadPoolExecutor\n"
        "async def f(loop):\n    await loop.run_in_executor(None, print)\n"
        "    await asyncio.to_thread(print)\n"
    )
    names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert {"run_in_executor", "to_thread"} <= names
    modules = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert modules == ["threading"]


def test_importing_the_package_starts_no_thread() -> None:
    code = """
import json, sys, threading
before = threading.active_count()
import tvfeed_async
import tvfeed_async.frames
import tvfeed_async.protocol
after = threading.active_count()
print(json.dumps({"before": before, "after": after,
                  "names": [t.name for t in threading.enumerate()]}))
"""
    result = run_python(code)
    assert isinstance(result, dict)
    assert result["before"] == 1
    assert result["after"] == 1, result["names"]
