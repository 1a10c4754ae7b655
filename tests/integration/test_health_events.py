"""feed.health() and feed.events(): what a service's dashboard polls and watches (#22)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from tvfeed_async import Limits, RetryPolicy, Timeouts
from tvfeed_async.events import EVENT_QUEUE, Event, EventHub

from ..scripted import wait_for
from ..support.feeds import open_feed

pytestmark = pytest.mark.timeout(60)
MINUTE = 60
FAST: dict[str, Any] = {
    "timeouts": Timeouts(request=30.0, page=2.0, idle=30.0),
    "retry": RetryPolicy(initial=0.01, maximum=0.05),
}


async def next_of(events: Any, kind: str, seconds: float = 10.0) -> Event:
    """The next event of ``kind`` (earlier ones of other kinds are skipped)."""
    async with asyncio.timeout(seconds):
        async for event in events:
            if event.kind == kind:
                return event
    raise AssertionError(f"the events ended before a {kind!r} one")


async def test_a_reconnect_is_told_and_the_health_follows(tv_simulator) -> None:
    sim = tv_simulator
    async with open_feed(sim, **FAST) as feed:
        events = feed.events()
        stream = feed.stream("BINANCE:BTCUSDT", interval="1")
        await sim.wait_subscribed("BINANCE:BTCUSDT", "1")
        await sim.clock.advance(2 * MINUTE)
        await asyncio.wait_for(anext(stream), 5)
        before = feed.health()
        assert before.connected
        assert before.connected_since is not None
        assert before.reconnects == 0
        assert before.symbols_monitored == 1
        (series,) = before.streams
        assert (series.symbol, series.interval, series.live) == ("BINANCE:BTCUSDT", "1", True)
        assert series.last_closed_time is not None
        assert before.last_data_age is not None
        assert before.last_data_age < 5

        assert sim.faults.drop_open() == 1
        disconnected = await next_of(events, "disconnected")
        reconnected = await next_of(events, "reconnected")
        await sim.clock.advance(3 * MINUTE)
        backfilled = await next_of(events, "backfilled")
        after = feed.health()
        await stream.aclose()
        await events.aclose()
    assert disconnected.time <= reconnected.time <= datetime.now(UTC)
    assert (backfilled.symbol, backfilled.interval) == ("BINANCE:BTCUSDT", "1")
    assert after.reconnects == 1
    assert after.connected
    assert after.last_error is not None


async def test_a_gap_is_an_event_and_counted_in_the_health(tv_simulator) -> None:
    sim = tv_simulator
    async with open_feed(sim, limits=Limits(max_backfill_bars=50), **FAST) as feed:
        events = feed.events()
        stream = feed.stream("BINANCE:BTCUSDT", interval="1", on_gap=lambda gap: None)
        await sim.wait_subscribed("BINANCE:BTCUSDT", "1")
        sim.faults.refuse_upgrades(1_000)
        assert sim.faults.drop_open() == 1
        await sim.clock.advance(600 * MINUTE)
        sim.faults.refuse_upgrades(0)
        gap = await next_of(events, "gap", seconds=20)
        await wait_for(lambda: feed.health().streams[0].gaps == 1)
        await stream.aclose()
    assert gap.symbol == "BINANCE:BTCUSDT"


async def test_the_events_end_when_the_feed_closes(tv_simulator) -> None:
    async with open_feed(tv_simulator, **FAST) as feed:
        events = feed.events()
    assert [event async for event in events] == []


def test_a_lagging_watcher_loses_the_oldest_and_is_told() -> None:
    async def run() -> list[Event]:
        hub = EventHub()
        watcher = hub.watch()
        for n in range(EVENT_QUEUE + 500):
            hub.emit("backfilled", f"{n}", bars=n)
        hub.close()
        return [event async for event in watcher]

    got = asyncio.run(run())
    assert len(got) == EVENT_QUEUE
    assert got[0].bars == 500
    assert got[0].dropped_before == 500
    assert all(event.dropped_before == 0 for event in got[1:])
