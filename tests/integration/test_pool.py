"""FeedPool against the simulator: series spread over sockets and accounts, one socket's
failure leaves the others alone, every closed bar once (checked with the simulator's truth)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import random
import time

import anyio
import polars as pl
import pytest

from tvfeed_async import Bar, InvalidRequest, RetryPolicy, Timeouts, TvFeedError
from tvfeed_async.events import EVENT_QUEUE
from tvfeed_async.pool import FeedPool, PoolEvent
from tvfeed_async.testing import TvSimulator
from tvfeed_async.testing.http_app import Account

from ..support.streams import as_tuples, first_forming, truth_bars

MINUTE = 60
FAST = {
    "timeouts": Timeouts(request=30.0, idle=30.0),
    "retry": RetryPolicy(initial=0.01, maximum=0.05, max_attempts=50),
}


def pool_on(sim: TvSimulator, accounts=(), **options) -> FeedPool:
    options.setdefault("session_cache", False)
    options.setdefault("use_env", False)
    for name, value in FAST.items():
        options.setdefault(name, value)
    return FeedPool(accounts, endpoints=sim.endpoints, **options)


def connection_holding(sim: TvSimulator, symbol: str):
    """The simulator's connection whose chart sessions stream ``symbol``."""
    for connection in sim.hub.connections.values():
        for chart in connection._charts.values():
            for series in chart.series.values():
                if series.truth.symbol.full_name == symbol and not series.cancelled:
                    return connection
    raise LookupError(symbol)


async def closed_bars(stream, count: int, limit: float = 30) -> list[Bar]:
    bars: list[Bar] = []
    with anyio.fail_after(limit):
        async for bar in stream:
            if bar.closed:
                bars.append(bar)
                if len(bars) == count:
                    break
    return bars


SYMBOLS = ["BINANCE:BTCUSDT", "BINANCE:ETHUSDT", "BINANCE:SIM001USDT", "BINANCE:SIM002USDT"]


async def test_a_socket_opens_when_one_holds_series_per_socket(tv_simulator):
    async with pool_on(tv_simulator, series_per_socket=2) as pool:
        assert pool.sockets == 1
        streams = [pool.stream(symbol, interval="1", partial=True) for symbol in SYMBOLS[:3]]
        # The same series again shares its socket and takes no new place.
        again = pool.stream(SYMBOLS[0], interval="1", partial=True)
        async with contextlib.AsyncExitStack() as stack:
            for stream in [*streams, again]:
                await stack.enter_async_context(contextlib.aclosing(stream))
            starts = [(await first_forming(stream)).timestamp for stream in streams]
            await first_forming(again)
            assert pool.sockets == 2
            assert pool.series_count == 3
            assert [pool.socket_of(symbol, interval="1") for symbol in SYMBOLS[:3]] == [0, 0, 1]
            assert tv_simulator.stats.active_connections == 2
            await tv_simulator.clock.advance(5 * MINUTE)
            got = [await closed_bars(stream, 5) for stream in streams]
        assert pool.series_count == 0  # closing the streams freed their places
    for symbol, start, bars in zip(SYMBOLS, starts, got, strict=False):
        assert as_tuples(bars) == truth_bars(tv_simulator, symbol, "1", start, start + 5 * MINUTE)


async def test_one_socket_failing_leaves_the_other_streams_whole(tv_simulator):
    minutes_before, minutes_down, minutes_after = 5, 10, 10
    async with pool_on(tv_simulator, series_per_socket=2) as pool:
        streams = {symbol: pool.stream(symbol, interval="1", partial=True) for symbol in SYMBOLS}
        async with contextlib.AsyncExitStack() as stack:
            for stream in streams.values():
                await stack.enter_async_context(contextlib.aclosing(stream))
            starts = {s: (await first_forming(stream)).timestamp for s, stream in streams.items()}
            events = await stack.enter_async_context(pool.events())
            placement = {symbol: pool.socket_of(symbol, interval="1") for symbol in SYMBOLS}
            assert sorted(placement.values()) == [0, 0, 1, 1]
            await tv_simulator.clock.advance(minutes_before * MINUTE)
            got = {s: await closed_bars(stream, minutes_before) for s, stream in streams.items()}
            # Kill the TCP connection of socket 1 only (no closing handshake).
            victim = connection_holding(tv_simulator, SYMBOLS[2])
            assert victim is not connection_holding(tv_simulator, SYMBOLS[0])
            # It stays down (every reconnect refused) while bars close: the other socket's
            # streams get them live meanwhile.
            tv_simulator.faults.refuse_upgrades(10**9)
            victim.abort()
            seen: list[PoolEvent] = []
            with anyio.fail_after(10):
                async for event in events:
                    seen.append(event)
                    if event.kind == "disconnected":
                        break
            await tv_simulator.clock.advance(minutes_down * MINUTE)
            for symbol in [s for s in SYMBOLS if placement[s] == placement[SYMBOLS[0]]]:
                got[symbol] += await closed_bars(streams[symbol], minutes_down)
            down = pool.health()
            tv_simulator.faults.refuse_upgrades(0)  # let it come back: it backfills
            await tv_simulator.clock.advance(minutes_after * MINUTE)
            for symbol, stream in streams.items():
                on_failed = placement[symbol] != placement[SYMBOLS[0]]
                count = minutes_after + (minutes_down if on_failed else 0)
                got[symbol] += await closed_bars(stream, count)
            with anyio.fail_after(10):
                async for event in events:
                    seen.append(event)
                    if event.kind == "reconnected":
                        break
            health = pool.health()
        failed = placement[SYMBOLS[2]]
        intact = placement[SYMBOLS[0]]
        assert pool.feed_of(failed).connections_opened == 2
        assert pool.feed_of(intact).connections_opened == 1
        assert pool.feed_of(intact).stats.reconnects == 0
    # Every event of the outage came from the failed socket.
    assert {event.socket for event in seen} == {failed}
    assert {"disconnected", "reconnected"} <= {event.kind for event in seen}
    assert health.reconnects == 1
    assert health.connected
    assert health.sockets_connected == 2
    assert [entry.health.reconnects for entry in health.sockets] == [
        1 if entry.socket == failed else 0 for entry in health.sockets
    ]
    assert health.symbols_monitored == 4
    assert len(health.streams) == 4
    assert not down.connected
    assert down.sockets_connected == 1
    assert [entry.health.connected for entry in down.sockets] == [
        entry.socket != failed for entry in down.sockets
    ]
    total = minutes_before + minutes_down + minutes_after
    for symbol in SYMBOLS:
        start = starts[symbol]
        expected = truth_bars(tv_simulator, symbol, "1", start, start + total * MINUTE)
        assert len(expected) == total
        assert as_tuples(got[symbol]) == expected, symbol


@pytest.mark.parametrize("seed", [1, 2])
async def test_random_faults_on_random_sockets_exactly_once(lively_simulator, seed):
    """A seeded schedule of drops and stalls of one socket at a time, and server restarts
    (every socket), under six streams on three sockets."""
    sim = lively_simulator
    rng = random.Random(seed)
    symbols = [f"BINANCE:SIM{n:03d}USDT" for n in range(10, 16)]
    options = dict(FAST, timeouts=Timeouts(request=30.0, idle=0.3))
    minutes = 0
    async with pool_on(sim, series_per_socket=2, **options) as pool:
        streams = {symbol: pool.stream(symbol, interval="1", partial=True) for symbol in symbols}
        closed: dict[str, list[Bar]] = {symbol: [] for symbol in symbols}
        async with contextlib.AsyncExitStack() as stack:
            for stream in streams.values():
                await stack.enter_async_context(contextlib.aclosing(stream))
            starts = {s: (await first_forming(stream)).timestamp for s, stream in streams.items()}
            assert pool.sockets == 3

            async def consume(symbol: str) -> None:
                async for bar in streams[symbol]:
                    if bar.closed:
                        closed[symbol].append(bar)

            async with anyio.create_task_group() as task_group:
                for symbol in symbols:
                    task_group.start_soon(consume, symbol)
                for _ in range(10):
                    action = rng.choice(["drop", "stall", "restart", "none"])
                    try:
                        victim = connection_holding(sim, rng.choice(symbols))
                    except LookupError:  # that socket is reconnecting right now
                        victim = None
                    if action == "drop" and victim is not None:
                        victim.abort()
                    elif action == "stall" and victim is not None:
                        victim.stall()
                    elif action == "restart":
                        await sim.restart()
                    step = rng.randint(1, 20)
                    await sim.clock.advance(step * MINUTE)
                    minutes += step
                    await anyio.sleep(rng.random() * 0.2)
                with anyio.fail_after(30):
                    while min(len(bars) for bars in closed.values()) < minutes:  # noqa: ASYNC110
                        await anyio.sleep(0.02)
                task_group.cancel_scope.cancel()
    for symbol in symbols:
        start = starts[symbol]
        expected = truth_bars(sim, symbol, "1", start, start + minutes * MINUTE)
        assert as_tuples(closed[symbol]) == expected, symbol


async def test_stream_many_merges_series_of_several_sockets(tv_simulator):
    async with pool_on(tv_simulator, series_per_socket=1) as pool:
        stream = pool.stream_many(SYMBOLS[:3], interval="1", partial=True)
        received: dict[str, list[Bar]] = {symbol: [] for symbol in SYMBOLS[:3]}
        starts: dict[str, int] = {}
        async with contextlib.aclosing(stream):
            with anyio.fail_after(20):
                async for bar in stream:
                    starts.setdefault(bar.symbol, bar.timestamp)
                    if len(starts) == 3:
                        break
            assert pool.sockets == 3
            await tv_simulator.wait_subscribed(count=3)
            await tv_simulator.clock.advance(4 * MINUTE)
            with anyio.fail_after(30):
                async for bar in stream:
                    if bar.closed and bar.timestamp >= starts[bar.symbol]:
                        received[bar.symbol].append(bar)
                    if all(len(bars) == 4 for bars in received.values()):
                        break
    for symbol, bars in received.items():
        start = starts[symbol]
        assert as_tuples(bars) == truth_bars(tv_simulator, symbol, "1", start, start + 4 * MINUTE)


async def test_a_timeout_while_the_socket_opens_does_not_end_the_stream(tv_simulator, monkeypatch):
    from tvfeed_async.feed import TvFeed

    gate = asyncio.Event()
    enter = TvFeed.__aenter__

    async def held_enter(self):
        await gate.wait()
        return await enter(self)

    async with pool_on(tv_simulator, series_per_socket=1) as pool:
        first = pool.stream(SYMBOLS[0], interval="1", partial=True)
        monkeypatch.setattr(TvFeed, "__aenter__", held_enter)  # socket 1 opens when let
        second = pool.stream(SYMBOLS[1], interval="1", partial=True)
        async with contextlib.aclosing(first), contextlib.aclosing(second):
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(anext(second), 0.1)
            gate.set()
            start = (await first_forming(second)).timestamp
            await first_forming(first)
            assert pool.socket_of(SYMBOLS[1], interval="1") == 1
            await tv_simulator.clock.advance(3 * MINUTE)
            bars = await closed_bars(second, 3)
    assert as_tuples(bars) == truth_bars(tv_simulator, SYMBOLS[1], "1", start, start + 3 * MINUTE)


async def test_a_socket_that_fails_to_open_fails_only_its_streams(tv_simulator):
    async with pool_on(tv_simulator, series_per_socket=1) as pool:
        first = pool.stream(SYMBOLS[0], interval="1", partial=True)
        async with contextlib.aclosing(first):
            start = (await first_forming(first)).timestamp
            tv_simulator.faults.refuse_upgrades(1)  # socket 1's upgrade gets HTTP 429
            second = pool.stream(SYMBOLS[1], interval="1", partial=True)
            with pytest.raises(TvFeedError):
                await anext(second)
            failed = [entry for entry in pool.health().sockets if entry.error is not None]
            assert [entry.socket for entry in failed] == [1]
            # The next stream gets a new socket in place of the failed one.
            third = pool.stream(SYMBOLS[1], interval="1", partial=True)
            async with contextlib.aclosing(third):
                await first_forming(third)
                assert pool.socket_of(SYMBOLS[1], interval="1") == 2
                assert [entry.socket for entry in pool.health().sockets] == [0, 2]
            await tv_simulator.clock.advance(3 * MINUTE)
            bars = await closed_bars(first, 3)
        assert pool.feed_of(0).connections_opened == 1
    assert as_tuples(bars) == truth_bars(tv_simulator, SYMBOLS[0], "1", start, start + 3 * MINUTE)


async def test_a_lagging_event_watcher_is_told_what_it_missed(tv_simulator):
    async with pool_on(tv_simulator) as pool:
        hub = pool.feed_of(0)._supervisor.events  # the socket's own event hub
        async with pool.events() as events:
            for batch in range(3):
                for n in range(EVENT_QUEUE // 2):
                    hub.emit("rate_limited", f"{batch}-{n}")
                # Let the socket's watcher hand them over to the pool's watcher.
                for _ in range(EVENT_QUEUE):
                    await asyncio.sleep(0)
            got = []
            with anyio.fail_after(5):
                async for event in events:
                    got.append(event)
                    if len(got) == EVENT_QUEUE:
                        break
    assert got[0].dropped_before == EVENT_QUEUE // 2
    assert got[0].detail == "1-0"
    assert all(event.dropped_before == 0 for event in got[1:])
    assert {event.socket for event in got} == {0}


async def test_stream_frames_on_a_second_socket(tv_simulator):
    async with pool_on(tv_simulator, series_per_socket=1) as pool:
        live = pool.stream(SYMBOLS[0], interval="1")
        frames = pool.stream_frames(SYMBOLS[1], interval="1", window=50)
        async with contextlib.aclosing(live), contextlib.aclosing(frames):
            with anyio.fail_after(20):
                first = await anext(frames)
            assert first.height == 50
            assert pool.socket_of(SYMBOLS[1], interval="1") == 1
            await tv_simulator.clock.advance(3 * MINUTE)
            with anyio.fail_after(20):
                later = [await anext(frames) for _ in range(3)]
        assert pool.series_count == 0
    last = later[-1]
    end = int(last.get_column("time").dt.epoch("s")[-1]) + 1
    expected = tv_simulator.truth(SYMBOLS[1], "1").filter(pl.col("time").dt.epoch("s") < end)
    columns = ["time", "symbol", "open", "high", "low", "close", "volume"]
    assert last.select(columns).equals(expected.tail(50).select(columns))


async def test_history_is_dealt_over_the_sockets(tv_simulator):
    async with pool_on(tv_simulator, series_per_socket=1) as pool:
        live = pool.stream(SYMBOLS[0], interval="1")
        other = pool.stream(SYMBOLS[1], interval="1")
        async with contextlib.aclosing(live), contextlib.aclosing(other):
            assert pool.sockets == 2
            with anyio.fail_after(10):
                await pool.wait_open()
            assert all(entry.health for entry in pool.health().sockets)
            frames = await pool.get_hist_many(
                ["BINANCE:BTCUSDT", "NOSUCH", "BINANCE:ETHUSDT"], interval="60", n_bars=20
            )
            assert list(frames) == ["BINANCE:BTCUSDT", "NOSUCH", "BINANCE:ETHUSDT"]
            assert isinstance(frames["NOSUCH"], InvalidRequest)
            one = await pool.get_hist("BINANCE:BTCUSDT", interval="60", n_bars=20)
            assert one.equals(frames["BINANCE:BTCUSDT"])
            result = await pool.fetch_history("BINANCE:BTCUSDT", interval="60", n_bars=20)
            assert result.frame.equals(one)
            info = await pool.resolve("BINANCE:BTCUSDT")
            assert info.full_name == "BINANCE:BTCUSDT"
            found = await pool.search_symbol("BTCUSDT")
            assert "BINANCE:BTCUSDT" in {f"{hit.exchange}:{hit.symbol}" for hit in found}
            rsi = await pool.get_study("BINANCE:BTCUSDT", interval="60", study="STD;RSI", n_bars=30)
            assert rsi.height == 30
            assert any(summary.id == "STD;RSI" for summary in await pool.search_studies("rsi"))
            quote = await pool.get_quote("BINANCE:BTCUSDT")
            assert quote.symbol == "BINANCE:BTCUSDT"
            assert pool.connections_opened == 2
            assert pool.stats.connections_opened == 2


async def test_streams_end_when_the_pool_closes(tv_simulator, monkeypatch):
    from tvfeed_async.feed import TvFeed

    gate = asyncio.Event()  # never set: socket 1 never opens
    enter = TvFeed.__aenter__

    async def held_enter(self):
        await gate.wait()
        return await enter(self)

    pool = pool_on(tv_simulator, series_per_socket=1)
    async with pool:
        live = pool.stream(SYMBOLS[0], interval="1", partial=True)
        await first_forming(live)
        monkeypatch.setattr(TvFeed, "__aenter__", held_enter)
        waiting = pool.stream(SYMBOLS[1], interval="1", partial=True)
        pending = asyncio.ensure_future(anext(waiting))
        await asyncio.sleep(0.05)
        assert not pending.done()
    with anyio.fail_after(5):
        with pytest.raises(StopAsyncIteration):
            await pending  # its socket was still opening
        rest = [bar async for bar in live]  # what was queued, then the end
    assert all(bar.symbol == SYMBOLS[0] for bar in rest)
    with pytest.raises(RuntimeError):
        pool.stream(SYMBOLS[2], interval="1")


def _token(secret: bytes, user_id: int, max_connections: int) -> str:
    """A token the simulator accepts, with a chosen ``max_connections`` claim (the shape of
    ``TokenIssuer.issue``)."""

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    now = int(time.time())
    claims = {
        "user_id": user_id,
        "exp": now + 3600,
        "iat": now,
        "plan": "pro",
        "max_connections": max_connections,
    }
    head = b64(json.dumps({"alg": "RS512", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha512).digest()
    return f"{head}.{body}.{b64(signature)}"


async def test_the_tokens_max_connections_caps_the_sockets():
    secret = b"pool-test-secret"
    async with TvSimulator(token_secret=secret) as sim:
        accounts = [{"auth_token": _token(secret, 7, max_connections=2)}]
        async with pool_on(sim, accounts, series_per_socket=1) as pool:
            first = pool.stream(SYMBOLS[0], interval="1")
            second = pool.stream(SYMBOLS[1], interval="1")
            with pytest.raises(InvalidRequest, match="pool is full"):
                pool.stream(SYMBOLS[2], interval="1")
            await first.aclose()
            # The place freed is taken again, on the same two sockets.
            third = pool.stream(SYMBOLS[2], interval="1")
            assert pool.sockets == 2
            await second.aclose()
            await third.aclose()


async def test_accounts_each_get_their_sockets():
    accounts = [
        Account("alice", "pw-a", 11, plan="pro"),
        Account("bob", "pw-b", 12, plan="pro_premium"),
    ]
    async with TvSimulator(accounts=accounts) as sim:
        credentials = [{"username": a.username, "password": a.password} for a in accounts]
        async with pool_on(sim, credentials, series_per_socket=1) as pool:
            assert pool.sockets == 2  # one per account at once
            streams = [pool.stream(symbol, interval="1", partial=True) for symbol in SYMBOLS]
            async with contextlib.AsyncExitStack() as stack:
                for stream in streams:
                    await stack.enter_async_context(contextlib.aclosing(stream))
                for stream in streams:
                    await first_forming(stream)
                health = pool.health()
                plans = sorted(c.plan for c in sim.hub.connections.values())
    assert [entry.account for entry in health.sockets] == [0, 1, 0, 1]
    assert all(entry.series == 1 for entry in health.sockets)
    assert plans == ["pro", "pro", "pro_premium", "pro_premium"]


def test_bad_arguments_fail_at_once():
    with pytest.raises(InvalidRequest):
        FeedPool(series_per_socket=0)
    with pytest.raises(InvalidRequest):
        FeedPool([{"user": "x"}])
    with pytest.raises(InvalidRequest):
        FeedPool(series_per_socket=500)  # above limits.max_chart_sessions (200)


async def test_quote_watchlists_spread_over_the_open_sockets(tv_simulator):
    """Quote streams go to the socket watching the fewest quote symbols, not all to the one
    with the fewest series (the scale soak found 10,000 quotes on one socket)."""
    watchlists = [[f"BINANCE:SIM{10 + 5 * n + k:03d}USDT" for k in range(5)] for n in range(4)]
    async with pool_on(tv_simulator, series_per_socket=1) as pool:
        series = [pool.stream(symbol, interval="1", partial=True) for symbol in SYMBOLS[:2]]
        async with contextlib.AsyncExitStack() as stack:
            for stream in series:
                await stack.enter_async_context(contextlib.aclosing(stream))
                await first_forming(stream)
            assert pool.sockets == 2
            quotes = [pool.stream_quotes(symbols) for symbols in watchlists]
            for stream in quotes:
                await stack.enter_async_context(stream)
                with anyio.fail_after(30):
                    await stream.snapshot()
            per_connection = sorted(
                sum(len(quote.symbols) for quote in connection._quotes.values())
                for connection in tv_simulator.hub.connections.values()
            )
            assert per_connection == [10, 10]
            # A closed watchlist frees its place: the next one goes where it was.
            await quotes[0].aclose()
            assert quotes[0].closed
            extra = pool.stream_quotes(["BINANCE:SIM040USDT"])
            await stack.enter_async_context(extra)
            with anyio.fail_after(30):
                (quote,) = await extra.snapshot()
            assert quote.symbol == "BINANCE:SIM040USDT"
            assert [s.quote_symbols for s in pool._sockets] in ([6, 10], [10, 6])
