"""The test servers themselves: reachable, and durable across the restarts the crash tests do."""

from __future__ import annotations

import asyncpg
import redis.asyncio as redis

from .servers import PostgresServer, RedisServer


async def test_postgres_keeps_committed_rows_across_a_sigkill(
    postgres_server: PostgresServer, postgres_dsn: str
) -> None:
    connection = await asyncpg.connect(postgres_dsn)
    try:
        await connection.execute("CREATE TABLE t (n int primary key)")
        await connection.execute("INSERT INTO t SELECT generate_series(1, 100)")
    finally:
        await connection.close()
    postgres_server.kill()
    postgres_server.start()
    connection = await asyncpg.connect(postgres_dsn)
    try:
        assert await connection.fetchval("SELECT count(*) FROM t") == 100
        assert await connection.fetchval("SHOW server_version_num") >= "150000"
    finally:
        await connection.close()


async def test_redis_keeps_acknowledged_entries_across_a_sigkill(
    redis_server: RedisServer, redis_url: str
) -> None:
    client = redis.Redis.from_url(redis_url)
    try:
        for n in range(1, 51):
            await client.xadd("s", {"n": n}, id=f"{n}-0")
    finally:
        await client.aclose()
    redis_server.kill()
    redis_server.start()
    client = redis.Redis.from_url(redis_url)
    try:
        entries = await client.xrange("s")
    finally:
        await client.aclose()
    assert [entry_id for entry_id, _ in entries] == [f"{n}-0".encode() for n in range(1, 51)]


async def test_a_paused_redis_answers_nothing_until_resumed(
    redis_server: RedisServer, redis_url: str
) -> None:
    import asyncio

    client = redis.Redis.from_url(redis_url)
    try:
        await client.set("k", "v")
        redis_server.pause()
        try:
            pending = asyncio.ensure_future(client.get("k"))
            done, _ = await asyncio.wait([pending], timeout=0.5)
            assert not done
        finally:
            redis_server.resume()
        assert await asyncio.wait_for(pending, 10) == b"v"
    finally:
        await client.aclose()
