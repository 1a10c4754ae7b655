"""Every ```python block of README.md and docs/*.md runs, as written, against the simulator.

How a block runs depends on what it is:

* a block that defines ``test_*`` functions is a pytest file: it is written to a temporary
  directory and run by pytest in a subprocess, in pytest-asyncio's default *strict* mode and
  with the ``tv_simulator`` fixture of the installed plugin, as a user's project would run it;
* a block with top-level ``await`` (or ``async with``) is a fragment of a session: it runs as
  in ``python -m asyncio``, with ``feed`` already bound to an open ``TvFeed()`` (the name the
  README's tour uses), so fragments that continue the tour work;
* any other block is executed as a script (``asyncio.run(main())`` included).

Every block runs with ``TVFEED_WS_URL``, ``TVFEED_WWW_URL``, ``TVFEED_SYMBOL_SEARCH_URL`` and
``TVFEED_PINE_FACADE_URL``
pointing at a simulator started with ``tvfeed-async simulate`` (fast real-time clock, so live
streams produce bars), exactly as docs/testing.md tells a user to do, and with no ``TV_*``
credentials. A block whose first line is a comment starting with :data:`OPT_OUT` is not run;
the rest of that comment says why (placeholder credentials, a framework that is not a
dependency). The list of such blocks is pinned below, so a new one is a visible decision.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import CodeType

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
OPT_OUT = "# not run by tests/docs:"
#: (document, first line of the block) of every block that opts out.
EXPECTED_OPT_OUTS = {
    ("README.md", "async with TvFeed(username="),
    ("docs/embedding.md", "import contextlib"),
    ("docs/recording.md", "from tvfeed_async import TvFeed"),
    ("docs/recording.md", 'pl.scan_parquet(root / "bars", hive_partitioning=True,'),
    ("docs/studies.md", "async with TvFeed(username="),
    ("docs/studies.md", "import asyncio"),
}
#: Virtual seconds per wall-clock second: a 1-minute bar closes every 50 ms.
SPEED = 1200
BLOCK_TIMEOUT = 60


@dataclass(frozen=True)
class Snippet:
    document: str
    line: int
    code: str

    @property
    def name(self) -> str:
        return f"{self.document}:{self.line}"

    @property
    def opted_out(self) -> bool:
        return self.code.lstrip().startswith(OPT_OUT)


def _snippets() -> Iterator[Snippet]:
    fence = re.compile(r"^```(\w*)\s*$")
    for path in DOCUMENTS:
        lines = path.read_text(encoding="utf-8").splitlines()
        index = 0
        while index < len(lines):
            match = fence.match(lines[index])
            if match is None:
                index += 1
                continue
            language, start = match.group(1), index + 1
            index = start
            while index < len(lines) and not lines[index].startswith("```"):
                index += 1
            if language == "python":
                code = "\n".join(lines[start:index]) + "\n"
                yield Snippet(str(path.relative_to(ROOT)), start + 1, code)
            index += 1


SNIPPETS = list(_snippets())


def _is_pytest_file(code: str) -> bool:
    tree = ast.parse(code)
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")
        for node in tree.body
    )


@pytest.fixture(scope="module")
def simulator_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment of a user who ran ``tvfeed-async simulate`` and exported its lines."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TV_", "TVFEED_"))}
    env["TVFEED_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    command = [sys.executable, "-m", "tvfeed_async.cli", "simulate", "--speed", str(SPEED)]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            for line in process.stdout:
                found = re.search(
                    r"TVFEED_WS_URL=(\S+) TVFEED_WWW_URL=(\S+) "
                    r"TVFEED_SYMBOL_SEARCH_URL=(\S+) TVFEED_PINE_FACADE_URL=(\S+)",
                    line,
                )
                if found:
                    env["TVFEED_WS_URL"], env["TVFEED_WWW_URL"] = found.group(1, 2)
                    env["TVFEED_SYMBOL_SEARCH_URL"] = found.group(3)
                    env["TVFEED_PINE_FACADE_URL"] = found.group(4)
                    break
            else:
                pytest.fail("tvfeed-async simulate printed no TVFEED_* line")
            yield env
        finally:
            process.terminate()
            process.wait(10)


def _run_pytest_file(snippet: Snippet, env: dict[str, str], directory: Path) -> None:
    (directory / "test_snippet.py").write_text(snippet.code, encoding="utf-8")
    # A user's project with pytest-asyncio installed and nothing configured: strict mode.
    (directory / "pytest.ini").write_text("[pytest]\nasyncio_mode = strict\n", encoding="utf-8")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--rootdir",
            str(directory),
            "-c",
            str(directory / "pytest.ini"),
            str(directory),
        ],
        env=env,
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"{snippet.name}:\n{output}"
    assert re.search(r"\b\d+ passed\b", output), output
    assert " skipped" not in output, output


async def _run_fragment(code: CodeType, namespace: dict[str, object]) -> None:
    from tvfeed_async import TvFeed

    async with TvFeed() as feed:
        namespace.setdefault("feed", feed)
        result = eval(code, namespace)
        if inspect.iscoroutine(result):
            async with asyncio.timeout(BLOCK_TIMEOUT):
                await result


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.name for s in SNIPPETS])
def test_snippet_runs(snippet, simulator_env, tmp_path, monkeypatch, capsys):
    if snippet.opted_out:
        pytest.skip(snippet.code.lstrip().splitlines()[0])
    if _is_pytest_file(snippet.code):
        _run_pytest_file(snippet, simulator_env, tmp_path)
        return
    for name in [name for name in os.environ if name.startswith(("TV_", "TVFEED_"))]:
        monkeypatch.delenv(name)
    for name, value in simulator_env.items():
        if name.startswith("TVFEED_"):
            monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    code = compile(snippet.code, snippet.name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    namespace: dict[str, object] = {"__name__": "__main__"}
    if code.co_flags & inspect.CO_COROUTINE:
        asyncio.run(_run_fragment(code, namespace))
    else:
        exec(code, namespace)


def test_every_document_has_snippets_and_opt_outs_are_the_known_ones():
    documents = {snippet.document for snippet in SNIPPETS}
    assert "README.md" in documents
    assert "docs/testing.md" in documents
    opted_out = [s for s in SNIPPETS if s.opted_out]
    starts = [(s.document, s.code.lstrip().splitlines()[1]) for s in opted_out]
    assert len(starts) == len(EXPECTED_OPT_OUTS), starts
    for document, start in EXPECTED_OPT_OUTS:
        assert any(d == document and line.startswith(start) for d, line in starts), starts
