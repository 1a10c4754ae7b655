"""``import tvfeed_async`` is light: the heavy dependencies load only when a name needs them.

Each check runs in a fresh interpreter, since this test process has imported everything.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import tvfeed_async

HEAVY = ("aiohttp", "polars", "anyio", "pyotp", "websockets", "asyncio")
# The public names whose modules need the heavy dependencies.
LAZY = (
    "TvFeed",
    "SessionCache",
    "HistoryResult",
    "SymbolInfo",
    "SearchResult",
    "Quote",
    "FeedPool",
    "StudyPoint",
)


def run_python(code: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; it prints one JSON object, which is returned."""
    prelude = f"""
import json, sys
HEAVY = {HEAVY!r}
def heavy_loaded():
    return sorted(
        name for name in sys.modules if any(name == h or name.startswith(h + ".") for h in HEAVY)
    )
"""
    completed = subprocess.run(
        [sys.executable, "-c", prelude + code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert isinstance(result, dict)
    return result


@pytest.mark.parametrize(
    "statement",
    [
        "import tvfeed_async",
        "import tvfeed_async.protocol",
        "from tvfeed_async import Bar, Interval, Symbol, parse_symbol, TvFeedError, Timeouts",
        "import tvfeed_async.protocol.messages, tvfeed_async.protocol.framing",
    ],
)
def test_importing_the_values_loads_no_heavy_dependency(statement: str) -> None:
    result = run_python(f"{statement}\nprint(json.dumps({{'heavy': heavy_loaded()}}))")
    assert result["heavy"] == []


@pytest.mark.parametrize("name", LAZY)
def test_a_lazy_name_loads_its_module_on_first_use(name: str) -> None:
    code = f"""
import tvfeed_async
before = heavy_loaded()
value = getattr(tvfeed_async, {name!r})
from tvfeed_async import {name} as imported
print(json.dumps({{
    "before": before,
    "after": heavy_loaded(),
    "module": value.__module__,
    "same": imported is value,
    "cached": {name!r} in vars(tvfeed_async),
}}))
"""
    result = run_python(code)
    assert result["before"] == []
    assert result["after"] != []
    assert result["module"] == tvfeed_async._LAZY_NAMES[name].replace(".", "tvfeed_async.", 1)
    assert result["same"] is True
    assert result["cached"] is True


def test_every_public_name_resolves_to_its_defining_object() -> None:
    from tvfeed_async import auth, feed, history, search

    for name in tvfeed_async.__all__:
        assert getattr(tvfeed_async, name) is not None
    assert tvfeed_async.TvFeed is feed.TvFeed
    assert tvfeed_async.SessionCache is auth.SessionCache
    assert tvfeed_async.HistoryResult is history.HistoryResult
    assert tvfeed_async.SymbolInfo is history.SymbolInfo
    assert tvfeed_async.SearchResult is search.SearchResult
    assert set(LAZY) == set(tvfeed_async._LAZY_NAMES)


def test_star_import_gives_all_of_all() -> None:
    result = run_python(
        "from tvfeed_async import *\n"
        "import tvfeed_async\n"
        "names = [n for n in tvfeed_async.__all__ if n not in globals()]\n"
        "print(json.dumps({'missing': names}))"
    )
    assert result["missing"] == []


def test_dir_lists_the_lazy_names() -> None:
    assert set(tvfeed_async.__all__) <= set(dir(tvfeed_async))


def test_an_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = tvfeed_async.no_such_name  # type: ignore[attr-defined]
    assert not hasattr(tvfeed_async, "no_such_name")
