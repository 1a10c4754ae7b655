"""Batched wake-ups: one event-loop callback wakes every consumer a burst of bars reached;
and :class:`Flag`, a set-once event that costs no memory while nobody waits on it.

A stream's consumer waits on a plain :class:`asyncio.Future`. Completing it with
``set_result()`` schedules each of its callbacks (the waiting task's wake-up) with
``loop.call_soon()``: on CPython a Python-level method that builds a ``Handle``, which the loop
then runs through another Python-level method, once per live update. Batching them cut the
client's instructions per update by 11% at 1,000 live streams (benchmarks/README.md).

:class:`Waker` completes the future the same way but takes its callback off first, and queues
the ``(context, callback, future)`` triple; a single ``call_soon()`` per burst then runs every
queued callback in its own context, in the order they were queued: what the ``Handle``\\ s
would have done, one by one.

This reads ``Future._callbacks``, which asyncio's own futures keep as ``(callback, context)``
pairs. :func:`waker_for` checks that once per loop, and gives None where it does not
hold (another Future implementation): callers then use :data:`DIRECT`, which calls
``set_result()`` as usual.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["DIRECT", "DirectWaker", "Flag", "Waker", "waker_for"]

_Callback = Callable[[Any], object]

_wakers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Waker | None] = (
    weakref.WeakKeyDictionary()
)


def waker_for(loop: asyncio.AbstractEventLoop) -> Waker | None:
    """The loop's waker, or None if its futures do not expose their callbacks as expected."""
    try:
        return _wakers[loop]
    except KeyError:
        waker = Waker(loop) if _callbacks_readable(loop) else None
        _wakers[loop] = waker
        return waker


def _callbacks_readable(loop: asyncio.AbstractEventLoop) -> bool:
    """True when a future of ``loop`` lists its callbacks as ``(callback, context)`` pairs and
    can have one removed (asyncio's C and Python futures, CPython 3.7 and later)."""
    probe: asyncio.Future[None] = asyncio.Future(loop=loop)
    context = contextvars.copy_context()
    probe.add_done_callback(_probe, context=context)
    try:
        entries = getattr(probe, "_callbacks", None)
        return (
            entries.__class__ is list
            and len(entries) == 1
            and entries[0].__class__ is tuple
            and len(entries[0]) == 2
            and entries[0][0] is _probe
            and entries[0][1] is context
            and probe.remove_done_callback(_probe) == 1
            and not getattr(probe, "_callbacks", None)
        )
    finally:
        probe.remove_done_callback(_probe)
        probe.cancel()


def _probe(future: object) -> None:
    raise AssertionError("the probe future's callback was called")  # pragma: no cover


class Waker:
    """Completes futures and runs their callbacks in batches (see the module's docstring).

    Only for futures of its loop, completed from that loop's thread (the socket reader).
    """

    __slots__ = ("_loop", "_queued")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        # Weak: the registry's value must not keep its key (the loop) alive.
        self._loop = weakref.ref(loop)
        self._queued: deque[tuple[contextvars.Context, _Callback, asyncio.Future[Any]]] = deque()

    def set_result(self, future: asyncio.Future[Any], result: object) -> None:
        """Like ``future.set_result(result)`` (the future must be pending), with its callback
        run by the next batch. A future with other than one callback is completed the usual
        way."""
        # None when the future has no callback (asyncio's C Future).
        callbacks: list[tuple[_Callback, contextvars.Context]] | None = future._callbacks
        if callbacks is None or len(callbacks) != 1:
            future.set_result(result)
            return
        callback, context = callbacks[0]
        future.remove_done_callback(callback)
        future.set_result(result)  # no callback left: nothing scheduled
        queued = self._queued
        if not queued:
            future.get_loop().call_soon(self._run)  # this waker's loop
        queued.append((context, callback, future))

    def _run(self) -> None:
        """Run every queued callback, oldest first, each in its own context."""
        queued = self._queued
        take = queued.popleft
        try:
            while queued:
                context, callback, future = take()
                context.run(callback, future)
        except BaseException as exc:
            # As the loop treats a Handle's callback: report it, and run the rest as usual.
            loop = self._loop()
            if loop is None:  # pragma: no cover - it is running this very callback
                raise
            if queued:
                loop.call_soon(self._run)
            if isinstance(exc, SystemExit | KeyboardInterrupt):
                raise
            loop.call_exception_handler(
                {"message": "Exception in a stream's wake-up callback", "exception": exc}
            )


class DirectWaker:
    """The same interface without batching: ``set_result()`` as is (see :func:`waker_for`)."""

    __slots__ = ()

    def set_result(self, future: asyncio.Future[Any], result: object) -> None:
        """``future.set_result(result)``."""
        future.set_result(result)


#: The one :class:`DirectWaker` (it has no state).
DIRECT = DirectWaker()


class Flag:
    """A set-once event, as ``anyio.Event`` on asyncio, that holds no waiter queue while idle.

    ``anyio.Event`` wraps an ``asyncio.Event``, which allocates a ``collections.deque`` for its
    waiters on creation: 0.76 KB under tracemalloc on CPython 3.11 (see
    ``benchmarks/stream_throughput.py --memory``). Each live stream keeps three such events
    for its whole life while at most one task waits on each, so a :class:`Flag` keeps
    ``None`` until a task waits, then a list of the waiting tasks' futures.

    ``wait()`` on a set flag still yields to the loop once (``anyio.Event.wait`` checkpoints
    the same way), so a loop around it cannot starve other tasks; a cancelled waiter leaves
    no future behind.
    """

    __slots__ = ("_is_set", "_waiters")

    def __init__(self) -> None:
        self._is_set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        """True once :meth:`set` was called."""
        return self._is_set

    def set(self) -> None:
        """Set the flag and wake every task waiting on it (again: nothing happens)."""
        if self._is_set:
            return
        self._is_set = True
        waiters, self._waiters = self._waiters, None
        if waiters:
            for future in waiters:
                if not future.done():
                    future.set_result(None)

    async def wait(self) -> None:
        """Return once the flag is set (at once, after one yield, if it already is)."""
        if self._is_set:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters
        if waiters is None:
            waiters = self._waiters = []
        waiters.append(future)
        try:
            await future
        finally:
            waiters = self._waiters
            if waiters is not None and future in waiters:
                waiters.remove(future)
                if not waiters:
                    self._waiters = None
