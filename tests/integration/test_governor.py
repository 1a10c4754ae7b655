"""The governor against a simulator that enforces the service's limits: session creation
rate ("max sessions rate reached") and the token's max_connections. The client stays inside
them when its pace is below the server's, and slows down by itself when it is not."""

from __future__ import annotations

import contextlib

import anyio
import pytest

from tvfeed_async import Limits, RetryPolicy, TvFeed, TvFeedError
from tvfeed_async.governor import Governor
from tvfeed_async.testing import TvSimulator
from tvfeed_async.testing.ws_server import ServerConfig

from ..support.feeds import open_feed
from ..support.streams import FAST, first_forming
from .test_history import assert_same
from .test_pool import _token, pool_on

SYMBOLS = [f"BINANCE:SIM{index:03d}USDT" for index in range(1, 41)]
RETRY = RetryPolicy(initial=0.01, maximum=0.05, max_attempts=50, history_attempts=10)


@contextlib.asynccontextmanager
async def live(source, symbols):
    """Partial streams of ``symbols`` (1-minute), each past its first forming bar."""
    streams = [source.stream(symbol, interval="1", partial=True) for symbol in symbols]
    async with contextlib.AsyncExitStack() as stack:
        for stream in streams:
            await stack.enter_async_context(contextlib.aclosing(stream))
        with anyio.fail_after(30):
            for stream in streams:
                await first_forming(stream)
        yield streams


async def poll(condition) -> None:
    """Wait until ``condition()`` holds (the simulator's counters have no event to wait on)."""
    while not condition():  # noqa: ASYNC110
        await anyio.sleep(0.05)


def limited(rate: float, burst: int) -> ServerConfig:
    return ServerConfig(session_rate=rate, session_burst=burst)


async def test_paced_history_stays_within_the_session_rate(tv_simulator_factory):
    sim = await tv_simulator_factory(config=limited(20.0, 5))
    limits = Limits(chart_sessions_per_second=15.0, session_burst=5, max_in_flight=40)
    async with open_feed(sim, limits=limits) as feed:
        frames = await feed.get_hist_many(SYMBOLS, interval="1", n_bars=30)
        governor = feed.governor
    assert sim.stats.sessions_rate_limited == 0
    assert sim.stats.protocol_errors == 0
    assert governor.stats.chart_sessions == len(SYMBOLS)
    assert governor.stats.waits > 0  # 40 at once is past the burst: the governor paced them
    for symbol in SYMBOLS:
        assert_same(frames[symbol], sim.truth(symbol, "1", n_bars=30))


async def test_an_unpaced_client_is_rate_limited(tv_simulator_factory):
    """The limit the other tests stay inside is real: without the governor the same requests
    make the simulator close the socket with "max sessions rate reached"."""
    sim = await tv_simulator_factory(config=limited(20.0, 5))
    limits = Limits(chart_sessions_per_second=None, max_in_flight=40)
    async with open_feed(sim, limits=limits, retry=RETRY) as feed:
        events = feed.events()
        with contextlib.suppress(TvFeedError):
            await feed.get_hist_many(SYMBOLS[:20], interval="1", n_bars=30)
        with anyio.fail_after(5):
            kinds = set()
            while "rate_limited" not in kinds:
                kinds.add((await events.__anext__()).kind)
    assert sim.stats.sessions_rate_limited >= 1


async def test_too_fast_a_setting_is_slowed_down_by_the_servers_answers(tv_simulator_factory):
    sim = await tv_simulator_factory(config=limited(8.0, 4))
    limits = Limits(
        chart_sessions_per_second=40.0, session_burst=4, max_in_flight=40, rate_limit_recovery=600
    )
    async with open_feed(sim, limits=limits, retry=RETRY) as feed:
        frames = await feed.get_hist_many(SYMBOLS[:30], interval="1", n_bars=30)
        governor = feed.governor
    for symbol in SYMBOLS[:30]:
        assert_same(frames[symbol], sim.truth(symbol, "1", n_bars=30))
    # 40/s halves to 20, 10, then 5/s, below the server's 8/s: a few rate limits, then none.
    assert 1 <= governor.stats.rate_limited <= 4
    assert governor.factor <= 0.25
    assert sim.stats.sessions_rate_limited == governor.stats.rate_limited


async def test_streams_resubscribe_within_the_rate_after_a_restart(tv_simulator_factory):
    sim = await tv_simulator_factory(config=limited(10.0, 5))
    limits = Limits(chart_sessions_per_second=8.0, session_burst=5)
    async with open_feed(sim, limits=limits, **FAST) as feed, live(feed, SYMBOLS[:20]) as streams:
        with anyio.fail_after(30):
            created = sim.stats.chart_sessions_created
            assert await sim.restart() == 1
            # Every stream makes its chart session again, paced: none is refused.
            await poll(lambda: sim.stats.chart_sessions_created >= created + len(streams))
            await poll(lambda: all(entry.live for entry in feed.health().streams))
            health = feed.health()
    assert sim.stats.sessions_rate_limited == 0
    assert len(health.streams) == 20


async def test_feeds_sharing_a_governor_share_its_pace(tv_simulator_factory):
    """Two feeds of one account given one governor together keep its rate: the second
    feed's sessions wait behind the first's."""
    sim = await tv_simulator_factory(config=limited(10.0, 4))
    governor = Governor(chart_sessions_per_second=8.0, session_burst=4)
    async with (
        open_feed(sim, governor=governor) as first,
        open_feed(sim, governor=governor) as second,
        anyio.create_task_group() as group,
    ):
        group.start_soon(first.get_hist_many, SYMBOLS[:10], "1")
        group.start_soon(second.get_hist_many, SYMBOLS[10:20], "1")
    assert governor.stats.chart_sessions == 20
    assert sim.stats.sessions_rate_limited == 0


async def test_the_simulator_refuses_a_socket_past_max_connections():
    secret = b"max-connections-secret"
    config = ServerConfig(enforce_max_connections=True)
    token = _token(secret, 9, max_connections=1)
    async with TvSimulator(token_secret=secret, config=config) as sim:
        async with open_feed(sim, auth_token=token) as first:
            await first.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=5)
            retry = RetryPolicy(initial=0.01, maximum=0.02, max_attempts=0)
            second = TvFeed(
                endpoints=sim.endpoints,
                auth_token=token,
                session_cache=False,
                use_env=False,
                retry=retry,
            )
            with pytest.raises(TvFeedError, match="too many connections"):
                async with second:
                    await second.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=5)
            # The first socket was left alone.
            frame = await first.get_hist("BINANCE:ETHUSDT", interval="1", n_bars=5)
            assert frame.height == 5
        assert sim.stats.protocol_errors >= 1


async def test_a_pool_stays_within_the_tokens_max_connections():
    secret = b"pool-limit-secret"
    config = ServerConfig(enforce_max_connections=True, session_rate=10.0, session_burst=5)
    async with TvSimulator(token_secret=secret, config=config) as sim:
        accounts = [{"auth_token": _token(secret, 7, max_connections=2)}]
        limits = Limits(chart_sessions_per_second=8.0, session_burst=5, max_chart_sessions=200)
        async with pool_on(sim, accounts, series_per_socket=3, limits=limits) as pool:
            async with live(pool, SYMBOLS[:6]):
                assert pool.sockets == 2
            # Both sockets of the one account draw on one governor.
            assert pool.governors[0].stats.chart_sessions >= 6
        assert sim.stats.protocol_errors == 0
        assert sim.stats.sessions_rate_limited == 0


async def test_a_refused_upgrade_does_not_slow_session_creation(tv_simulator_factory):
    """HTTP 429 on the upgrade is about connections: the reconnect back-off handles it, and
    the governor keeps its pace (only "max sessions rate reached" halves it)."""
    sim = await tv_simulator_factory()
    async with open_feed(sim, **FAST) as feed:
        events = feed.events()
        sim.faults.refuse_upgrades(2, status=429)
        await sim.restart()
        with anyio.fail_after(10):
            kinds = []
            while "reconnected" not in kinds:
                kinds.append((await events.__anext__()).kind)
        frame = await feed.get_hist("BINANCE:BTCUSDT", interval="1", n_bars=5)
        governor = feed.governor
    assert "rate_limited" in kinds
    assert frame.height == 5
    assert governor.stats.rate_limited == 0
    assert governor.factor == 1.0


async def test_a_request_failed_by_a_rate_limit_finds_it_counted(tv_simulator_factory):
    """The governor hears of a rate limit before the requests it failed do: a caller that
    sees its request fail and then reads ``governor.stats`` finds the limit counted (it
    used to be counted only after the socket's close handshake, when the request had gone)."""
    sim = await tv_simulator_factory(config=limited(0.01, 0))  # no session allowed
    retry = RetryPolicy(initial=0.01, maximum=0.05, max_attempts=50, history_attempts=1)
    limits = Limits(chart_sessions_per_second=None)
    async with open_feed(sim, limits=limits, retry=retry) as feed:
        with pytest.raises(TvFeedError):
            await feed.get_hist(SYMBOLS[0], interval="1", n_bars=5)
        counted = feed.governor.stats.rate_limited
    assert sim.stats.sessions_rate_limited >= 1
    assert counted >= 1
