"""The in-flight bound of a feed's historical requests (``Limits.max_in_flight``).

A request holds one of ``limit`` slots while it waits for its answers. A count request
usually ends with a *top-up*: a page of a few bars (most often one: the newest bar was still
forming, so one closed bar is missing). The server answers that page after everything
already queued on the socket, so a request that held its slot for it would keep the next
request from starting for a whole queue's time, and the server would idle between waves.
So a request whose only remaining page is a top-up moves to a second set of ``limit``
slots, and its first slot goes to the next request at once. At most ``2 * limit`` requests
(and chart sessions) are thus open, and at most ``limit`` of them wait for a full answer.

anyio's ``CapacityLimiter`` does the counting; the borrower of both slots is the request's
:class:`Slot`, so a request that moved releases the right one when it ends.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio

#: A page asking for at most this many bars is a top-up (a full page is the per-request
#: cap, 5,000 bars on the free plan).
TOP_UP_BARS = 100


class Slot:
    """One request's place in an :class:`InFlight` bound."""

    __slots__ = ("_bound", "_topping_up")

    def __init__(self, bound: InFlight) -> None:
        self._bound = bound
        self._topping_up = False

    @property
    def topping_up(self) -> bool:
        """Whether the request moved to the top-up slots."""
        return self._topping_up

    def top_up(self) -> None:
        """The request's only remaining page is a top-up: give its slot to the next
        request if a top-up slot is free (else keep it: the bound still holds)."""
        if self._topping_up:
            return
        bound = self._bound
        try:
            bound.topping_up.acquire_on_behalf_of_nowait(self)
        except anyio.WouldBlock:
            return
        bound.waiting.release_on_behalf_of(self)
        self._topping_up = True

    def release(self) -> None:
        """Give back whichever slot the request holds (:meth:`InFlight.slot` calls it)."""
        bound = self._bound
        if self._topping_up:
            bound.topping_up.release_on_behalf_of(self)
        else:
            bound.waiting.release_on_behalf_of(self)


class InFlight:
    """At most ``limit`` requests waiting for full answers, and ``limit`` more finishing
    with a top-up page."""

    __slots__ = ("topping_up", "waiting")

    def __init__(self, limit: int) -> None:
        self.waiting = anyio.CapacityLimiter(limit)
        self.topping_up = anyio.CapacityLimiter(limit)

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[Slot]:
        """Wait for a slot; it is released when the block ends (however it ends)."""
        slot = Slot(self)
        await self.waiting.acquire_on_behalf_of(slot)
        try:
            yield slot
        finally:
            slot.release()
