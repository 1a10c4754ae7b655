"""The supervisor's reader during a backlog: it must let other tasks run every few dozen
packets, even though receiving a queued message never suspends.

Without that, every consumer's bar would wait behind the whole backlog (forming bars then
coalesce, and the garbage collector runs over hundreds of handed-over bars at once).
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from typing import Any, cast

import anyio
import pytest

from tvfeed_async import connection as connection_module
from tvfeed_async.config import Endpoints, RetryPolicy, Timeouts
from tvfeed_async.errors import ConnectionLost, TvFeedError
from tvfeed_async.protocol import ClientProtocol
from tvfeed_async.protocol.framing import encode_packet
from tvfeed_async.protocol.messages import ServerMessage
from tvfeed_async.supervisor import Link, Supervisor
from tvfeed_async.websocket import WebSocketTransport


def du(minute: int) -> str:
    return encode_packet(
        f'{{"m":"du","p":["cs_a",{{"sds_1":{{"s":[{{"i":{minute},"v":'
        f"[{1_700_000_000 + 60 * minute}.0,1.5,2.25,1.0,1.75,{minute}.5]}}],"
        '"ns":{"d":"","indexes":"nochange"},"t":"s1","lbs":{"bar_close_time":1}}}]}'
    )


class BacklogTransport:
    """Messages that already arrived: ``receive()`` returns at once, as aiohttp's does while
    its queue holds messages. Ends with ConnectionLost when the backlog is drained."""

    def __init__(self, messages: list[str]) -> None:
        self._messages = deque(messages)

    async def receive(self) -> str:
        if not self._messages:
            raise ConnectionLost("backlog drained")
        return self._messages.popleft()

    async def send(self, text: str) -> None:
        raise AssertionError(f"nothing to send here, got {text!r}")


class Counter:
    """A route that counts the packets routed to it."""

    def __init__(self) -> None:
        self.routed = 0

    def handle(self, message: ServerMessage) -> None:
        self.routed += 1

    def connection_lost(self, error: TvFeedError) -> None:
        pass


async def packets_between_turns(messages: list[str]) -> list[int]:
    """Read ``messages`` as one backlog; how many packets were routed between the turns that
    another task got in the meantime."""
    supervisor = Supervisor(Endpoints(), Timeouts(), RetryPolicy(), token=_no_token)
    route = Counter()
    supervisor.add_route("cs_a", route)
    transport = BacklogTransport(messages)
    link = Link(cast(WebSocketTransport, transport), generation=1)
    seen: list[int] = []
    done = False

    async def other_task() -> None:
        while not done:
            seen.append(route.routed)
            await asyncio.sleep(0)

    observer = asyncio.create_task(other_task())
    await asyncio.sleep(0)  # let it take its first sample
    with pytest.raises(ConnectionLost, match="backlog drained"):
        with anyio.CancelScope(deadline=anyio.current_time() + 60) as watchdog:
            await supervisor._read_messages(
                cast(Any, transport), ClientProtocol(), link, False, watchdog
            )
    done = True
    await observer
    seen.append(route.routed)
    assert route.routed == sum(message.count("~m~") // 2 for message in messages)
    return [after - before for before, after in itertools.pairwise(seen)]


async def _no_token(refresh: bool) -> str:
    raise AssertionError("no token is needed here")


async def test_batches_of_twenty_packets_yield_every_few_messages() -> None:
    messages = ["".join(du(minute) for minute in range(n, n + 20)) for n in range(0, 4000, 20)]
    gaps = await packets_between_turns(messages)
    budget = connection_module._YIELD_AFTER
    # A message of 20 packets costs 21 of the budget: the reader yields after 4 of them.
    assert max(gaps) <= budget
    assert len(gaps) >= 4000 // budget


async def test_one_packet_messages_yield_every_few_dozen() -> None:
    messages = [du(minute) for minute in range(2000)]
    gaps = await packets_between_turns(messages)
    # One packet per message costs 2 of the budget.
    assert max(gaps) <= connection_module._YIELD_AFTER // 2
    assert min(gaps[1:-1]) >= connection_module._YIELD_AFTER // 2 - 1
