"""Redis Streams sink (redis-py asyncio; ``pip install "tvfeed-async[redis]"``).

One stream per series, by default ``tv:bars:{symbol}:{interval}`` (``tv:bars:BINANCE:BTCUSDT:1``).
Each closed bar is one entry whose id is the bar's open time in milliseconds, ``<ms>-0``, with
the fields ``open``, ``high``, ``low``, ``close`` and ``volume`` (decimal text that reads back
as the same float; ``volume`` is empty for symbols without volume).

Because the id is the open time, a replay can never append a duplicate: a small Lua script
reads the stream's last id and adds only the bars after it, all in one atomic step per stream
(Redis runs a script without interleaving other commands). An ``XADD`` refused with "equal or
smaller than the target stream top item" (an id at or below one that was already used, e.g.
after ``XDEL``) counts as already stored.

Durability is Redis's: a write is acknowledged when Redis has applied it. For "acknowledged
means it survives a crash of Redis" run Redis with ``appendonly yes`` and ``appendfsync
always``; otherwise the recorder re-reads the stream's last id after any failure, so bars
that a restarted Redis lost are fetched and written again.

``maxlen`` trims each stream (``XADD MAXLEN ~ n`` by default: approximate, cheap). Forming
bars go to a hash per series (``tv:latest:{symbol}:{interval}``), unfillable gaps to a stream
``tv:gaps:{symbol}:{interval}`` with automatic ids and the fields ``after`` and ``before``
(open times, unix seconds).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from types import TracebackType
from typing import Self

import redis.asyncio as redis_asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from ..protocol.bars import Bar, Gap
from ._base import SeriesKey, SinkError, group_by_series

__all__ = ["RedisSink"]

# KEYS[1]: the stream. ARGV[1]: MAXLEN (0: no trimming); ARGV[2]: "~" or "="; then six
# values per bar, oldest first: open time in ms, open, high, low, close, volume.
# Returns how many entries were added.
_APPEND = """
local top = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local last_ms = -1
if top[1] then
  last_ms = tonumber(string.match(top[1][1], '^(%d+)'))
end
local maxlen = tonumber(ARGV[1])
local added = 0
for i = 3, #ARGV, 6 do
  local ms = tonumber(ARGV[i])
  if ms > last_ms then
    local reply
    if maxlen > 0 then
      reply = redis.pcall('XADD', KEYS[1], 'MAXLEN', ARGV[2], maxlen, ARGV[i] .. '-0',
        'open', ARGV[i + 1], 'high', ARGV[i + 2], 'low', ARGV[i + 3],
        'close', ARGV[i + 4], 'volume', ARGV[i + 5])
    else
      reply = redis.pcall('XADD', KEYS[1], ARGV[i] .. '-0',
        'open', ARGV[i + 1], 'high', ARGV[i + 2], 'low', ARGV[i + 3],
        'close', ARGV[i + 4], 'volume', ARGV[i + 5])
    end
    if type(reply) == 'table' and reply.err then
      if not string.find(reply.err, 'equal or smaller', 1, true) then
        return redis.error_reply(reply.err)
      end
    else
      added = added + 1
    end
    last_ms = ms
  end
end
return added
"""

# KEYS[1]: the hash. ARGV: open time in ms, open, high, low, close, volume. A forming bar
# older than the one stored is ignored, so the hash never goes back in time.
_LATEST = """
local stored = redis.call('HGET', KEYS[1], 'time')
if stored and tonumber(stored) > tonumber(ARGV[1]) then
  return 0
end
redis.call('HSET', KEYS[1], 'time', ARGV[1], 'open', ARGV[2], 'high', ARGV[3],
  'low', ARGV[4], 'close', ARGV[5], 'volume', ARGV[6])
return 1
"""


def _number(value: float | None) -> str:
    return "" if value is None else repr(float(value))


class RedisSink:
    """Closed bars into one Redis stream per series.

    Args:
        url: ``redis://[:password@]host:port/db`` (redis-py's URL syntax; ``rediss://`` for
            TLS).
        stream_key: the stream name, formatted with ``symbol`` and ``interval``.
        latest_key: the forming-bar hash name (same fields).
        gaps_key: the gap stream name (same fields).
        maxlen: trim each stream to about this many entries (None: never trim).
        approximate: trim with ``~`` (whole nodes, cheaper) rather than exactly.
        socket_timeout: seconds a command may wait for its answer before the call fails.
    """

    supports_latest = True

    def __init__(
        self,
        url: str,
        *,
        stream_key: str = "tv:bars:{symbol}:{interval}",
        latest_key: str = "tv:latest:{symbol}:{interval}",
        gaps_key: str = "tv:gaps:{symbol}:{interval}",
        maxlen: int | None = None,
        approximate: bool = True,
        socket_timeout: float | None = 30.0,
    ) -> None:
        if maxlen is not None and maxlen <= 0:
            raise ValueError("maxlen must be positive (or None)")
        self.url = url
        self.stream_key = stream_key
        self.latest_key = latest_key
        self.gaps_key = gaps_key
        self.maxlen = maxlen
        self.approximate = approximate
        self.name = re.sub(r"(//[^@/]*:)[^@/]*@", r"\1***@", url)
        self._client = redis_asyncio.Redis.from_url(
            url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_timeout,
            # No silent retries: a failure must reach the recorder, which then reads the
            # streams' last ids again before writing (a restarted Redis may have lost bars).
            retry=Retry(NoBackoff(), 0),
        )
        self._append = self._client.register_script(_APPEND)
        self._latest = self._client.register_script(_LATEST)

    def __repr__(self) -> str:
        return f"<RedisSink {self.name}>"

    def stream_name(self, key: SeriesKey) -> str:
        """The stream that holds ``key``'s closed bars."""
        return self.stream_key.format(symbol=key.symbol, interval=key.interval)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        """Check that the server answers.

        Raises:
            SinkError: it does not.
        """
        try:
            await self._client.ping()
        except (RedisError, OSError) as error:
            raise SinkError(f"{self.name}: {type(error).__name__}: {error}") from error
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._client.aclose()

    # ------------------------------------------------------------------ the Sink protocol

    async def last_stored(self, key: SeriesKey) -> int | None:
        """Open time of the stream's last entry (its id), or None for an empty stream.

        Raises:
            SinkError: the server failed.
        """
        try:
            top = await self._client.xrevrange(self.stream_name(key), count=1)
        except (RedisError, OSError) as error:
            raise SinkError(f"{self.name}: {type(error).__name__}: {error}") from error
        if not top:
            return None
        entry_id = top[0][0]
        text = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
        return int(text.split("-", 1)[0]) // 1000

    async def write(self, bars: Sequence[Bar]) -> None:
        """Append ``bars`` to their streams: one script call per stream, pipelined.

        Raises:
            SinkError: the server failed; each stream then holds a prefix of its bars (the
                script of one stream runs whole or not at all).
        """
        if not bars:
            return
        maxlen = str(self.maxlen or 0)
        mode = "~" if self.approximate else "="
        try:
            async with self._client.pipeline(transaction=False) as pipeline:
                for key, group in group_by_series(bars).items():
                    arguments: list[str] = [maxlen, mode]
                    for bar in group:
                        arguments += (
                            str(bar.timestamp * 1000),
                            _number(bar.open),
                            _number(bar.high),
                            _number(bar.low),
                            _number(bar.close),
                            _number(bar.volume),
                        )
                    await self._append(
                        keys=[self.stream_name(key)], args=arguments, client=pipeline
                    )
                await pipeline.execute()
        except (RedisError, OSError) as error:
            raise SinkError(f"{self.name}: {type(error).__name__}: {error}") from error

    async def write_latest(self, bars: Sequence[Bar]) -> None:
        """Set the forming-bar hash of each series (never back in time).

        Raises:
            SinkError: the server failed.
        """
        if not bars:
            return
        try:
            async with self._client.pipeline(transaction=False) as pipeline:
                for bar in bars:
                    name = self.latest_key.format(symbol=bar.symbol, interval=bar.interval)
                    await self._latest(
                        keys=[name],
                        args=[
                            str(bar.timestamp * 1000),
                            _number(bar.open),
                            _number(bar.high),
                            _number(bar.low),
                            _number(bar.close),
                            _number(bar.volume),
                        ],
                        client=pipeline,
                    )
                await pipeline.execute()
        except (RedisError, OSError) as error:
            raise SinkError(f"{self.name}: {type(error).__name__}: {error}") from error

    async def record_gap(self, key: SeriesKey, gap: Gap) -> None:
        """Add an entry to the series' gap stream.

        Raises:
            SinkError: the server failed.
        """
        name = self.gaps_key.format(symbol=key.symbol, interval=key.interval)
        try:
            await self._client.xadd(name, {"after": str(gap.after), "before": str(gap.before)})
        except (RedisError, OSError) as error:
            raise SinkError(f"{self.name}: {type(error).__name__}: {error}") from error
