"""What the benchmarks share about their helper processes: a process driven by JSON lines on
its stdin and stdout (the simulator processes of ``stream_throughput.py`` and
``scale_soak.py``), and Linux ``/proc`` readings of a process's CPU time and memory.

Imported by the benchmark scripts from their own folder (a script's folder is first on
``sys.path``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from typing import Any, Self

__all__ = ["JsonChild", "process_cpu", "rss_bytes"]


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (``/proc/<pid>/stat``).

    Raises:
        OSError: there is no such process (any more).
    """
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes() -> int:
    """This process's resident set size now (``/proc/self/statm``)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class JsonChild:
    """A helper process that prints one JSON line (its hello) when ready, then answers each
    JSON command line on its stdin with one JSON line, and stops on ``{"cmd": "quit"}``."""

    #: Seconds :meth:`stop` gives it to exit before killing it.
    quit_wait = 10.0

    def __init__(self, process: asyncio.subprocess.Process, hello: dict[str, Any]) -> None:
        self.process = process
        self.hello = hello
        self._lock = asyncio.Lock()

    @classmethod
    async def start(cls, *command: str, ready_timeout: float, limit: int = 2**16) -> Self:
        """Start ``command`` and wait up to ``ready_timeout`` seconds for its hello line
        (``limit``: the longest line it may print)."""
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=limit,
        )
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), ready_timeout)
        return cls(process, json.loads(line))

    async def call(self, **command: Any) -> dict[str, Any]:
        """Send one command and return its answer (one at a time).

        Raises:
            RuntimeError: the answer is an error.
        """
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        async with self._lock:
            self.process.stdin.write(json.dumps(command).encode() + b"\n")
            await self.process.stdin.drain()
            answer: dict[str, Any] = json.loads(await self.process.stdout.readline())
        if "error" in answer:
            raise RuntimeError(f"simulator: {answer['error']}")
        return answer

    def cpu_seconds(self) -> float | None:
        """The process's CPU seconds so far (None once it is gone)."""
        try:
            return process_cpu(self.process.pid)
        except OSError:
            return None

    async def stop(self) -> None:
        """Ask it to quit; kill it if it has not exited within :attr:`quit_wait` seconds."""
        assert self.process.stdin is not None
        with contextlib.suppress(ConnectionError):
            self.process.stdin.write(b'{"cmd": "quit"}\n')
            await self.process.stdin.drain()
        try:
            await asyncio.wait_for(self.process.wait(), self.quit_wait)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
