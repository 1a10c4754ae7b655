"""The simulator's clock: virtual by default, optionally tied to wall time.

Virtual mode (the default) starts at :data:`DEFAULT_START`, Monday 2026-01-05 14:00 UTC
(09:00 in New York: US stocks open half an hour later, crypto trades, FX and futures are in
session). Time only moves when a test calls :meth:`SimulatorClock.advance`, which delivers,
in time order, every event (live ``du`` updates, quote deltas, virtual heartbeats, timed
faults) due in the span, and returns once they have been handed to the sockets.

Real-time mode (``realtime=True``) lets virtual time run at ``speed`` times wall time from the
start instant; the simulator then runs a task that fires events as they fall due.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

__all__ = ["DEFAULT_START", "SimulatorClock"]

#: Where virtual time starts: Monday 2026-01-05 14:00:00 UTC.
DEFAULT_START = datetime(2026, 1, 5, 14, 0, tzinfo=UTC).timestamp()

#: Called by :meth:`SimulatorClock.advance` to fire every event up to the given time.
Driver = Callable[[float], Awaitable[None]]


class SimulatorClock:
    """Virtual time for the simulator.

    Args:
        start: the initial instant (unix seconds).
        realtime: let time follow the event loop's clock (times ``speed``).
        speed: virtual seconds per wall-clock second in real-time mode.
    """

    def __init__(
        self, start: float = DEFAULT_START, *, realtime: bool = False, speed: float = 1.0
    ) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.start = float(start)
        self.realtime = realtime
        self.speed = speed
        self._now = float(start)
        self._wall_origin: float | None = None
        self._driver: Driver | None = None
        self._lock = asyncio.Lock()

    def now(self) -> float:
        """Current virtual time, unix seconds."""
        if self.realtime:
            if self._wall_origin is None:
                return self._now
            return self._now + (_loop_time() - self._wall_origin) * self.speed
        return self._now

    def _attach(self, driver: Driver) -> None:
        """Install the simulator's event driver (one per clock)."""
        self._driver = driver

    def _start_running(self) -> None:
        """Real-time mode: virtual time starts following the event loop from now on."""
        if self.realtime and self._wall_origin is None:
            self._wall_origin = _loop_time()

    def _set(self, when: float) -> None:
        """Move virtual time forward to ``when`` (drivers only; never backwards)."""
        if not self.realtime and when > self._now:
            self._now = when

    async def advance(self, seconds: float) -> None:
        """Move virtual time forward by ``seconds`` and deliver every event in that span.

        Each live update due in the span is sent, in time order, to every subscription;
        the call returns when they have all been written to the sockets.

        Raises:
            RuntimeError: in real-time mode (time follows the wall clock there).
            ValueError: ``seconds`` is negative.
        """
        if self.realtime:
            raise RuntimeError("advance() is for virtual time; this clock runs in real time")
        if seconds < 0:
            raise ValueError("time does not go backwards")
        async with self._lock:
            target = self._now + seconds
            if self._driver is not None:
                await self._driver(target)
            self._now = max(self._now, target)

    async def advance_to(self, when: float) -> None:
        """:meth:`advance` to the absolute instant ``when`` (no-op if already past it)."""
        await self.advance(max(0.0, when - self.now()))

    def __repr__(self) -> str:
        mode = f"realtime x{self.speed:g}" if self.realtime else "virtual"
        return f"SimulatorClock({datetime.fromtimestamp(self.now(), UTC).isoformat()}, {mode})"


def _loop_time() -> float:
    return asyncio.get_running_loop().time()
