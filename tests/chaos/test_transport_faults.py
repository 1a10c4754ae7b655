"""Transport faults between the client and the simulator, through the loopback chaos proxy."""

from __future__ import annotations

import contextlib
import dataclasses

import anyio
import pytest

from tvfeed_async import RetryPolicy, Timeouts, TvFeed
from tvfeed_async.testing.chaos import ChaosProxy

from ..support.streams import MINUTE, as_tuples, collect_closed, first_forming, truth_bars

pytestmark = pytest.mark.chaos

OPTIONS = {
    "timeouts": Timeouts(request=60.0, idle=0.5, connect=1.0),
    "retry": RetryPolicy(initial=0.01, maximum=0.05, max_attempts=100),
    "session_cache": False,
    "use_env": False,
}


@contextlib.asynccontextmanager
async def proxied_feed(sim, **proxy_options):
    async with ChaosProxy("127.0.0.1", sim.port, **proxy_options) as proxy:
        endpoints = dataclasses.replace(
            sim.endpoints, ws_url=f"ws://127.0.0.1:{proxy.port}/socket.io/websocket"
        )
        async with TvFeed(endpoints=endpoints, **OPTIONS) as feed:
            yield feed, proxy


async def test_history_through_tiny_chunks_and_latency(lively_simulator):
    sim = lively_simulator
    async with proxied_feed(sim, latency=0.01, chunk_size=7) as (feed, _):
        frame = await feed.get_hist("KRX:005930", interval="1D", n_bars=300)
        other = await feed.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=6_000)
    assert frame.equals(sim.truth("KRX:005930", "1D", n_bars=300))
    assert other.equals(sim.truth("BINANCE:BTCUSDT", "1", n_bars=6_000))


async def test_black_hole_and_resets_lose_no_bar(lively_simulator):
    sim = lively_simulator
    async with proxied_feed(sim, latency=0.002) as (feed, proxy):
        stream = feed.stream("BINANCE:ETHUSDT", interval="1", partial=True)
        async with contextlib.aclosing(stream):
            start = (await first_forming(stream)).timestamp
            await sim.clock.advance(3 * MINUTE)
            proxy.blackhole()  # sockets stay open, nothing passes: only the watchdog can tell
            await sim.clock.advance(4 * MINUTE)
            await anyio.sleep(1.5)  # the 0.5 s idle watchdog fires; reconnects hang in the hole
            proxy.restore()
            with anyio.fail_after(15):
                while feed.connections_opened < 2:  # noqa: ASYNC110 (reconnect has no event)
                    await anyio.sleep(0.05)
            await sim.clock.advance(2 * MINUTE)
            proxy.reset_all()  # RST both ways
            await sim.clock.advance(3 * MINUTE)
            closed = await collect_closed(stream, 12)
    assert as_tuples(closed) == truth_bars(sim, "BINANCE:ETHUSDT", "1", start, start + 12 * MINUTE)
