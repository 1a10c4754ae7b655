"""Several recorder processes sharing one list of series through Redis leases.

Every process is given the same series and the same number of shards. The series, sorted,
are dealt over the shards (series ``i`` of the sorted list goes to shard ``i % shards``), so
every process computes the same shards whatever the order it was given them in.

Each process, every ``lease / 3`` seconds:

1. **Says it is alive.** Its member id goes into a sorted set scored by the Redis server's
   clock plus ``lease``; members whose score passed are removed. So every process sees the
   same number of live members, ``M``, and takes at most ``ceil(shards / M)`` shards.
2. **Renews its leases.** A lease is a Redis key ``{name}:lease:{shard}`` holding the owner's
   member id with an expiry (``PX lease``). It is renewed by a Lua script that extends it only
   if it still holds this member's id (check-and-set), so a process can never renew a lease
   another one took. A shard whose lease could not be renewed is stopped; so is, by a
   watchdog task that does not wait for Redis, a shard last renewed more than ``lease * 0.8``
   seconds ago by the local clock (counted from when the renewal was sent): past that moment
   another process may take it.
3. **Gives back** the shards above its share (a new process joined): it stops their
   recorder first, then deletes the lease (check-and-set again).
4. **Claims** free shards up to its share (from its second round on, so that processes
   started together count each other first): a Lua script sets ``{name}:lease:{shard}`` to its
   member id with ``PX lease`` when the key is absent (or already holds its own id).
   Each shard claimed gets a :class:`~tvfeed_async.recorder.Recorder` of its own, with sinks
   of its own, which reads its checkpoints from the store and backfills from them.

A process that dies (even by SIGKILL) stops renewing: its member entry and its leases expire
after ``lease`` seconds, the survivors' share grows, and they claim its shards on their next
round. The new owner's recorder resumes from the store's checkpoint, so the bars that closed
meanwhile are backfilled; the sinks store idempotently, so a batch the dead process was
writing is not stored twice.

The processes must agree on the series and the number of shards: a digest of both is kept in
``{name}:config`` while any member lives, and a process with another one stops with
:class:`~tvfeed_async.errors.InvalidRequest`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import os
import secrets
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import redis.asyncio as redis_asyncio
from redis.exceptions import RedisError

from .errors import InvalidRequest
from .feed import TvFeed
from .recorder import FATAL_ERRORS, KeyLike, Recorder, SinkMetrics, _series_key
from .sinks._base import SeriesKey, Sink

if TYPE_CHECKING:
    from .pool import FeedPool

__all__ = ["ClusterRecorder", "ShardState", "shard_series"]

logger = logging.getLogger("tvfeed_async.cluster")

# KEYS[1] members zset, KEYS[2] config key; ARGV: member, lease ms, config digest.
# Returns the number of live members, or -1 when another configuration is in use.
_HEARTBEAT = """
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local config = redis.call('GET', KEYS[2])
if config and config ~= ARGV[3] then
  return -1
end
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[2])
redis.call('ZADD', KEYS[1], now_ms + tonumber(ARGV[2]), ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZCARD', KEYS[1])
"""

# KEYS[1] a lease; ARGV: member, lease ms. 1: renewed; 0: it is not (or no longer) ours.
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS[1] a lease; ARGV: member, lease ms. 1: claimed (it was free, or still ours: a shard
# the watchdog stopped while its renewal was under way); 0: another member holds it.
_CLAIM = """
local owner = redis.call('GET', KEYS[1])
if owner and owner ~= ARGV[1] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

# KEYS[1] a lease; ARGV: member. 1: deleted; 0: it was not ours.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

#: A lease not renewed for this fraction of its length is treated as lost.
_SAFETY = 0.8


def shard_series(series: Iterable[KeyLike], shards: int) -> list[list[SeriesKey]]:
    """The series of each shard: the sorted series, dealt ``i % shards``."""
    keys = sorted(dict.fromkeys(_series_key(key) for key in series))
    return [keys[index::shards] for index in range(shards)]


def _config_digest(shards: list[list[SeriesKey]]) -> str:
    text = "\n".join(
        f"{index}\t{key.symbol}\t{key.interval}"
        for index, keys in enumerate(shards)
        for key in keys
    )
    return hashlib.sha256(f"{len(shards)}\n{text}".encode()).hexdigest()[:16]


@dataclass(slots=True)
class ShardState:
    """A shard this process holds (``ClusterRecorder.held``).

    Attributes:
        shard: its number.
        keys: its series.
        since: ``time.monotonic()`` when this process claimed it.
        renewed: ``time.monotonic()`` of the last successful renewal.
        recorder: its recorder (None before it is built).
    """

    shard: int
    keys: list[SeriesKey]
    since: float
    renewed: float
    recorder: Recorder | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class ClusterRecorder:
    """Record a list of series with other processes, each holding a share of the shards.

    Args:
        feed: an open ``TvFeed`` (this process's socket), or a ``FeedPool`` (its sockets).
        series: every process's whole list: ``(symbol, interval)`` pairs or ``SeriesKey``.
        new_sinks: makes the opened-on-entry sinks of one shard (called each time a shard is
            claimed; they are closed when it is given back): a function returning one sink or
            a list, e.g. ``lambda: PostgresSink(dsn)``.
        redis_url: the Redis server the processes share.
        shards: how many shards the series are dealt into (default: one per series, at most
            64); the same in every process.
        lease: seconds a lease lasts without renewal; a dead process's shards are taken over
            after about ``lease * 4 / 3`` seconds.
        name: prefix of the Redis keys (several clusters may share one Redis).
        member: this process's id (default: host name, pid and a random suffix).
        recorder_options: passed to each shard's :class:`Recorder` (``initial_bars``,
            ``since``, ``batch_size``, ``forming``...).

    Example::

        async with TvFeed() as feed:
            cluster = ClusterRecorder(
                feed, series, lambda: PostgresSink(dsn), "redis://localhost:6379/0"
            )
            await cluster.run()
    """

    def __init__(
        self,
        feed: TvFeed | FeedPool,
        series: Iterable[KeyLike],
        new_sinks: Callable[[], Sink | Sequence[Sink]],
        redis_url: str,
        *,
        shards: int | None = None,
        lease: float = 10.0,
        name: str = "tvfeed:cluster",
        member: str | None = None,
        **recorder_options: Any,
    ) -> None:
        keys = list(dict.fromkeys(_series_key(key) for key in series))
        if not keys:
            raise InvalidRequest("ClusterRecorder needs at least one (symbol, interval)")
        if shards is None:
            shards = min(len(keys), 64)
        if type(shards) is not int or shards < 1:
            raise InvalidRequest(f"shards must be a positive int, not {shards!r}")
        if shards > len(keys):
            raise InvalidRequest(f"{shards} shards for {len(keys)} series: some would be empty")
        if not lease > 0.2:
            raise InvalidRequest(f"lease must be more than 0.2 s, not {lease!r}")
        self.feed = feed
        self.shards = shard_series(keys, shards)
        self.new_sinks = new_sinks
        self.redis_url = redis_url
        self.lease = float(lease)
        self.name = name
        self.member = member or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.recorder_options = recorder_options
        self.digest = _config_digest(self.shards)
        #: The shards this process holds now.
        self.held: dict[int, ShardState] = {}
        #: Live members seen in the latest round.
        self.members = 0
        #: Shards claimed and given back (or lost) since start.
        self.claims = 0
        self.releases = 0
        self._client: redis_asyncio.Redis | None = None
        self._failure: BaseException | None = None
        self._feed_closed = False

    def lease_key(self, shard: int) -> str:
        """The Redis key of ``shard``'s lease."""
        return f"{self.name}:lease:{shard}"

    @property
    def metrics(self) -> dict[int, list[SinkMetrics]]:
        """The sinks' metrics of each shard held now."""
        return {
            shard: state.recorder.metrics
            for shard, state in sorted(self.held.items())
            if state.recorder is not None
        }

    # ------------------------------------------------------------------ the loop

    async def run(self) -> None:
        """Take part until cancelled (or until the feed closes).

        Raises:
            InvalidRequest: another process uses other series or another number of shards.
            SymbolNotFound, EntitlementError, AuthError: a shard's recorder cannot go on
                (see :meth:`Recorder.run`); the shards held are given back first.

        Redis failures are retried every round; while Redis is unreachable the shards are
        stopped once their leases may have lapsed, and claimed again when it is back.
        """
        client = redis_asyncio.Redis.from_url(
            self.redis_url, socket_timeout=self.lease / 3, socket_connect_timeout=self.lease / 3
        )
        self._client = client
        heartbeat = client.register_script(_HEARTBEAT)
        renew = client.register_script(_RENEW)
        release = client.register_script(_RELEASE)
        lease_ms = str(int(self.lease * 1000))
        watchdog = asyncio.get_running_loop().create_task(self._watchdog(), name="lease watchdog")
        try:
            await self._rounds(heartbeat, renew, client.register_script(_CLAIM), release, lease_ms)
        finally:
            watchdog.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.wait({watchdog})
                await self._give_back_all(release)
                await client.aclose()

    async def _watchdog(self) -> None:
        """Stop each shard as soon as its lease may have lapsed, whatever Redis is doing (a
        round may wait up to ``lease / 3`` for an answer)."""
        while True:
            await self._drop_lapsed()
            await anyio.sleep(self.lease / 20)

    async def _rounds(
        self,
        heartbeat: Any,
        renew: Any,
        claim: Any,
        release: Any,
        lease_ms: str,
    ) -> None:
        joined = False
        while True:
            if self._failure is not None:
                raise self._failure
            if self._feed_closed:
                logger.info("the feed closed; the cluster member stops")
                return
            try:
                await self._renew_all(renew, lease_ms)
                members = int(
                    await heartbeat(
                        keys=[f"{self.name}:members", f"{self.name}:config"],
                        args=[self.member, lease_ms, self.digest],
                    )
                )
                if members < 0:
                    raise InvalidRequest(
                        f"another process records other series or shards under "
                        f"{self.name!r}; give every process the same list and --shards"
                    )
                self.members = members
                if joined:
                    await self._rebalance(claim, release, lease_ms)
                # Claim nothing in the first round: processes started together then see each
                # other before they claim, and share the shards without handing any back.
                joined = True
            except RedisError as error:
                logger.warning("Redis failed (%s); retrying", error)
            await anyio.sleep(self.lease / 3)

    async def _renew_all(self, renew: Any, lease_ms: str) -> None:
        for shard, state in list(self.held.items()):
            # The lease runs from when Redis ran the script: no earlier than now.
            sent = time.monotonic()
            renewed = int(await renew(keys=[self.lease_key(shard)], args=[self.member, lease_ms]))
            if self.held.get(shard) is not state:
                continue  # the watchdog stopped it meanwhile
            if renewed:
                state.renewed = sent
            else:
                logger.warning("shard %d: lease lost; stopping its recorder", shard)
                await self._stop(shard)
        await self._drop_lapsed()

    async def _drop_lapsed(self) -> None:
        now = time.monotonic()
        for shard, state in list(self.held.items()):
            if now - state.renewed > self.lease * _SAFETY:
                logger.warning("shard %d: lease not renewed in time; stopping its recorder", shard)
                await self._stop(shard)

    async def _rebalance(self, claim: Any, release: Any, lease_ms: str) -> None:
        share = math.ceil(len(self.shards) / max(1, self.members))
        while len(self.held) > share:
            shard = max(self.held)
            logger.info("shard %d: giving it back (%d members)", shard, self.members)
            await self._stop(shard)
            await release(keys=[self.lease_key(shard)], args=[self.member])
        if len(self.held) >= share:
            return
        # Start from a different shard in each process so that they rarely race for one.
        offset = int(hashlib.sha256(self.member.encode()).hexdigest(), 16) % len(self.shards)
        for step in range(len(self.shards)):
            if len(self.held) >= share:
                break
            shard = (offset + step) % len(self.shards)
            if shard in self.held:
                continue
            sent = time.monotonic()
            taken = int(await claim(keys=[self.lease_key(shard)], args=[self.member, lease_ms]))
            if taken:
                self._start(shard, sent)

    def _start(self, shard: int, sent: float) -> None:
        state = ShardState(shard, self.shards[shard], sent, sent)
        self.held[shard] = state
        self.claims += 1
        logger.info("shard %d: claimed (%s)", shard, ", ".join(map(str, state.keys)))
        state.task = asyncio.get_running_loop().create_task(
            self._record(state), name=f"record shard {shard}"
        )

    async def _record(self, state: ShardState) -> None:
        made = self.new_sinks()
        sinks = [made] if isinstance(made, Sink) else list(made)
        try:
            async with contextlib.AsyncExitStack() as stack:
                for sink in sinks:
                    await stack.enter_async_context(sink)
                state.recorder = Recorder(self.feed, state.keys, sinks, **self.recorder_options)
                await state.recorder.run()
            # Recorder.run returns only when the feed closed.
            self._feed_closed = True
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 (the shard is given back; another retries)
            if isinstance(error, FATAL_ERRORS):
                self._failure = error
            else:
                logger.warning("shard %d: recorder failed (%s); giving it back", state.shard, error)
        # The recorder ended by itself (the feed closed, or it failed): give the shard back.
        if self.held.get(state.shard) is state:
            del self.held[state.shard]
            self.releases += 1
            client = self._client
            if client is not None:
                with contextlib.suppress(RedisError):
                    await client.register_script(_RELEASE)(
                        keys=[self.lease_key(state.shard)], args=[self.member]
                    )

    async def _stop(self, shard: int) -> None:
        state = self.held.pop(shard, None)
        if state is None:
            return
        self.releases += 1
        task = state.task
        if task is not None and not task.done():
            task.cancel()
            with anyio.CancelScope(shield=True):
                await asyncio.wait({task})

    async def _give_back_all(self, release: Any) -> None:
        for shard in list(self.held):
            await self._stop(shard)
        # Every shard, not only those held: a claim cancelled after Redis ran it, but before
        # its answer arrived, left a lease with this member's id (the script deletes a lease
        # only if it holds that id).
        for shard in range(len(self.shards)):
            with contextlib.suppress(RedisError, OSError):
                await release(keys=[self.lease_key(shard)], args=[self.member])
        with contextlib.suppress(RedisError, OSError):
            assert self._client is not None
            await self._client.zrem(f"{self.name}:members", self.member)
