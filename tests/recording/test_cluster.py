"""Three ``tvfeed-async record --cluster`` processes share six series through Redis leases; one
is killed with SIGKILL, a survivor takes its shard over and backfills it from the store's
checkpoint. The store is then compared with the simulator's truth: no bar lost, none twice.

The simulator runs in this process on its virtual clock; Redis (leases, and one of the
stores) and PostgreSQL are real servers (conftest.py).
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import time
from pathlib import Path

import anyio
import pytest
import redis.asyncio as redis_asyncio

from tvfeed_async.cluster import ClusterRecorder, shard_series
from tvfeed_async.errors import InvalidRequest
from tvfeed_async.sinks import SeriesKey
from tvfeed_async.testing import TvSimulator

from .conftest import Store
from .helpers import MINUTE, assert_exactly_truth, truth, wait_for_store

SYMBOLS = [f"BINANCE:SIM{n:03d}USDT" for n in range(1, 7)]
KEYS = [SeriesKey(symbol, "1") for symbol in SYMBOLS]
BACKFILL = 40
SHARDS = 3
LEASE = 1.5
NAME = "test:cluster"

pytestmark = pytest.mark.slow


class Member:
    """One ``record --cluster`` subprocess, with its stderr kept."""

    def __init__(
        self,
        sim: TvSimulator,
        target: str,
        redis_url: str,
        logs: Path,
        n: int,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.command = [
            sys.executable,
            "-m",
            "tvfeed_async.cli",
            "record",
            *SYMBOLS,
            "--interval",
            "1",
            "--to",
            target,
            "--backfill",
            str(BACKFILL),
            "--batch-size",
            "50",
            "--cluster",
            redis_url,
            "--shards",
            str(SHARDS),
            "--lease",
            str(LEASE),
            "--cluster-name",
            NAME,
            *extra,
        ]
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("TV_", "TVFEED_"))}
        self.env["TVFEED_WS_URL"] = sim.endpoints.ws_url
        self.env["TVFEED_WWW_URL"] = sim.endpoints.www_url
        self.env["TVFEED_CACHE_DIR"] = str(logs / "cache")
        self.log_path = logs / f"member-{n}.log"
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                *self.command, env=self.env, stdout=log, stderr=log
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def kill(self) -> None:
        """SIGKILL: nothing of the process's cleanup runs (its leases simply lapse)."""
        assert self.process is not None
        if self.process.returncode is None:
            self.process.kill()
        await self.process.wait()

    async def stop(self) -> int:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.terminate()
        with anyio.fail_after(30):
            return await self.process.wait()


async def until(condition, limit: float = 10.0) -> None:
    """Poll ``condition()`` until it holds (the member's state and Redis keys have no event)."""
    with anyio.fail_after(limit):
        while not condition():  # noqa: ASYNC110 (polled state, no event to wait on)
            await anyio.sleep(0.02)


def pid_of(member: str) -> int:
    """The pid in a default member id (``host-pid-random``)."""
    return int(member.rsplit("-", 2)[1])


async def owners(client: redis_asyncio.Redis) -> list[str | None]:
    values = [await client.get(f"{NAME}:lease:{shard}") for shard in range(SHARDS)]
    return [None if value is None else value.decode() for value in values]


def claims(member: Member) -> list[int]:
    """The shards ``member`` logged claiming, in order."""
    text = member.log_path.read_text(errors="replace")
    return [int(shard) for shard in re.findall(r"cluster: shard (\d+): claimed \(", text)]


def logs(members: list[Member]) -> str:
    return "\n".join(
        f"--- {member.log_path.name}\n" + member.log_path.read_text(errors="replace")[-3000:]
        for member in members
    )


@pytest.mark.parametrize(
    ("store", "per_socket"), [("postgresql", None), ("redis", 1)], indirect=["store"]
)
async def test_three_processes_one_killed_lose_and_double_nothing(
    store: Store, per_socket: int | None, redis_url: str, tmp_path: Path
) -> None:
    """With ``per_socket``, each process records through a FeedPool of that many series per
    socket (``--series-per-socket``)."""
    extra = () if per_socket is None else ("--series-per-socket", str(per_socket))
    client = redis_asyncio.Redis.from_url(redis_url)
    async with TvSimulator() as sim:
        first = {
            key: int(sim.truth_rows(key.symbol, "1", n_bars=BACKFILL - 1)[0][0]) for key in KEYS
        }
        members = [Member(sim, store.target, redis_url, tmp_path, n, extra) for n in range(3)]
        for member in members:
            await member.start()
        try:
            # Every shard held by a different live process, every series backfilled, before
            # time moves (so the expected first bar is known).
            with anyio.fail_after(60):
                while True:
                    held = await owners(client)
                    if None not in held and len(set(held)) == SHARDS:
                        break
                    await anyio.sleep(0.05)
            pids = {member.pid for member in members}
            assert {pid_of(owner) for owner in held if owner} == pids
            stored = await wait_for_store(store.read, sim, KEYS)
            assert all(stored.values()), logs(members)
            for _ in range(5):
                await sim.clock.advance(MINUTE)
                await anyio.sleep(0.1)
            await wait_for_store(store.read, sim, KEYS)
            opened_before_kill = sim.stats.connections_opened

            # SIGKILL the owner of shard 0; time goes on while its series have no recorder.
            victim_id = held[0]
            assert victim_id is not None
            victim = next(member for member in members if member.pid == pid_of(victim_id))
            orphaned = shard_series(KEYS, SHARDS)[0]
            await victim.kill()
            claims_before = [claims(member) for member in members]
            killed_at = time.monotonic()
            taken_at = None
            orphan_minutes = 0
            with anyio.fail_after(30):
                while taken_at is None:
                    await sim.clock.advance(MINUTE)
                    orphan_minutes += 1
                    await anyio.sleep(0.1)
                    new_owner = (await owners(client))[0]
                    if new_owner is not None and new_owner != victim_id:
                        taken_at = time.monotonic()
            takeover = taken_at - killed_at
            for _ in range(3):
                await sim.clock.advance(MINUTE)
                await anyio.sleep(0.1)
            stored = await wait_for_store(store.read, sim, KEYS, limit=60)
            caught_up = time.monotonic() - killed_at
            survivors = [member for member in members if member is not victim]
            statuses = [await member.stop() for member in survivors]
            after = await owners(client)
        finally:
            for member in members:
                await member.kill()
            await client.aclose()
        assert statuses == [0, 0], logs(members)
        # The dead process's shard was taken over by a survivor. (On a loaded machine a
        # survivor starved for longer than the lease may lose a shard too, and take it back.)
        taken = [
            shard
            for member, before in zip(members, claims_before, strict=True)
            for shard in claims(member)[len(before) :]
        ]
        assert 0 in taken, logs(members)
        if per_socket is None:
            assert opened_before_kill == 3  # one TvFeed (one socket) per process
        else:
            assert opened_before_kill >= 6  # each process's shard has 2 series: 2 sockets
        assert pid_of(new_owner) in {member.pid for member in survivors}
        # A clean stop gives the leases back at once.
        assert after == [None] * SHARDS
        expected = sum(len(truth(sim, key, first[key])) for key in KEYS)
        times = [row[0] for rows in stored.values() for row in rows]
        lost = sum(
            len({row[0] for row in truth(sim, key, first[key])} - {row[0] for row in stored[key]})
            for key in KEYS
        )
        doubled = sum(len(rows) - len({row[0] for row in rows}) for rows in stored.values())
        print(
            f"\ncluster[{store.kind}, series per socket {per_socket}]: bars expected "
            f"{expected}, stored {len(times)}, lost {lost}, stored twice {doubled}; "
            f"{len(orphaned)} series orphaned for {orphan_minutes} "
            f"virtual minutes; claims after the kill {sorted(taken)}; lease {LEASE} s, "
            f"takeover {takeover:.2f} s after SIGKILL, store caught up {caught_up:.2f} s after"
        )
        assert orphan_minutes >= 2  # bars closed while nobody recorded the shard
        assert takeover < LEASE * 4  # the lease lapses, then a survivor's next round claims it
        try:
            assert_exactly_truth(stored, sim, first)
        except AssertionError as failure:
            raise AssertionError(f"{failure}\n{logs(members)}") from None


async def test_a_member_with_other_series_is_refused(redis_url: str, tv_simulator) -> None:
    from tvfeed_async import TvFeed
    from tvfeed_async.sinks import RedisSink

    async with TvFeed(endpoints=tv_simulator.endpoints, use_env=False, session_cache=False) as feed:
        one = ClusterRecorder(
            feed, KEYS, lambda: RedisSink(redis_url), redis_url, shards=3, lease=1.0, name=NAME
        )
        other = ClusterRecorder(
            feed, KEYS[:4], lambda: RedisSink(redis_url), redis_url, shards=2, lease=1.0, name=NAME
        )
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(one.run)
            await until(lambda: len(one.held) == 3)
            with pytest.raises(InvalidRequest, match="other series or shards"):
                await other.run()
            # One member alone holds every shard.
            assert sorted(one.held) == [0, 1, 2]
            tasks.cancel_scope.cancel()


async def test_a_lease_another_holds_is_never_renewed_and_its_shard_stops(
    redis_url: str, tv_simulator
) -> None:
    from tvfeed_async import TvFeed
    from tvfeed_async.sinks import RedisSink

    client = redis_asyncio.Redis.from_url(redis_url)
    async with TvFeed(endpoints=tv_simulator.endpoints, use_env=False, session_cache=False) as feed:
        member = ClusterRecorder(
            feed,
            KEYS,
            lambda: RedisSink(redis_url),
            redis_url,
            shards=3,
            lease=1.0,
            name=NAME,
            initial_bars=5,
        )
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(member.run)
                await until(lambda: len(member.held) == 3)
                # Another process took shard 1 (its lease lapsed under a paused process, say).
                await client.set(f"{NAME}:lease:1", "intruder", px=60_000)
                await until(lambda: 1 not in member.held)
                # Never renewed, never deleted: the intruder keeps it; the member's share (3)
                # makes it claim shard 1 again only once the intruder's lease is gone.
                await anyio.sleep(1.0)
                assert await client.get(f"{NAME}:lease:1") == b"intruder"
                assert 0 < await client.pttl(f"{NAME}:lease:1") <= 60_000
                assert 1 not in member.held
                await client.delete(f"{NAME}:lease:1")
                await until(lambda: 1 in member.held)
                tasks.cancel_scope.cancel()
        finally:
            await client.aclose()
    assert member.claims == 4
    assert member.releases == 4  # the lost shard, then the three given back at the end


async def test_an_unreachable_redis_stops_the_shards_until_it_is_back(
    redis_url: str, redis_server, tv_simulator
) -> None:
    from tvfeed_async import TvFeed
    from tvfeed_async.sinks import ParquetSink

    async with TvFeed(endpoints=tv_simulator.endpoints, use_env=False, session_cache=False) as feed:
        member = ClusterRecorder(
            feed,
            KEYS,
            lambda: ParquetSink(Path(os.environ.get("TMPDIR", "/tmp")) / f"cluster-{os.getpid()}"),
            redis_url,
            shards=3,
            lease=1.0,
            name=NAME,
            initial_bars=5,
        )
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(member.run)
            await until(lambda: len(member.held) == 3)
            redis_server.pause()
            try:
                paused_at = time.monotonic()
                await until(lambda: not member.held)
                stopped_after = time.monotonic() - paused_at
            finally:
                redis_server.resume()
            await until(lambda: len(member.held) == 3)
            tasks.cancel_scope.cancel()
    # Stopped before the leases (1 s, last renewed up to 1/3 s before the pause) lapse.
    assert stopped_after < 1.0


async def test_a_recorder_on_a_pool_records_over_several_sockets(redis_url: str) -> None:
    from tvfeed_async.pool import FeedPool
    from tvfeed_async.recorder import Recorder
    from tvfeed_async.sinks import RedisSink

    from .stores import redis_rows

    async def read(key: SeriesKey) -> list:
        return await redis_rows(redis_url, key)

    async with TvSimulator() as sim:
        # The newest closed bar is stored by the live stream, the 9 before it by history.
        first = {key: int(sim.truth_rows(key.symbol, "1", n_bars=9)[0][0]) for key in KEYS}
        pool = FeedPool(
            series_per_socket=2, endpoints=sim.endpoints, use_env=False, session_cache=False
        )
        async with pool, RedisSink(redis_url) as sink, anyio.create_task_group() as tasks:
            recorder = Recorder(pool, KEYS, sink, initial_bars=10)
            tasks.start_soon(recorder.run)
            await wait_for_store(read, sim, KEYS)
            await sim.wait_subscribed(count=len(KEYS))
            for _ in range(5):
                await sim.clock.advance(MINUTE)
                await anyio.sleep(0.05)
            stored = await wait_for_store(read, sim, KEYS)
            sockets = pool.sockets
            tasks.cancel_scope.cancel()
    assert sockets == 3
    assert sim.stats.connections_opened == 3
    assert_exactly_truth(stored, sim, first)


async def test_members_started_together_share_without_handing_back(
    redis_url: str, tv_simulator
) -> None:
    from tvfeed_async import TvFeed
    from tvfeed_async.sinks import RedisSink

    async with TvFeed(endpoints=tv_simulator.endpoints, use_env=False, session_cache=False) as feed:
        members = [
            ClusterRecorder(
                feed,
                KEYS,
                lambda: RedisSink(redis_url),
                redis_url,
                shards=3,
                lease=1.0,
                name=NAME,
                member=f"member-{n}",
                initial_bars=5,
            )
            for n in range(3)
        ]
        async with anyio.create_task_group() as tasks:
            for member in members:
                tasks.start_soon(member.run)
            await until(lambda: sum(len(member.held) for member in members) == 3)
            await anyio.sleep(1.0)  # three more rounds
            held = [sorted(member.held) for member in members]
            tasks.cancel_scope.cancel()
    assert sorted(shard for shards in held for shard in shards) == [0, 1, 2]
    assert all(len(shards) == 1 for shards in held)
    # Nobody claimed a shard only to hand it back when the others showed up.
    assert [member.claims for member in members] == [1, 1, 1]


def test_shards_deal_the_sorted_series() -> None:
    shards = shard_series(reversed(KEYS), 3)
    assert shards == [KEYS[0::3], KEYS[1::3], KEYS[2::3]]
    assert sum(len(keys) for keys in shards) == len(KEYS)
