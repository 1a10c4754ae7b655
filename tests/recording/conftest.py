"""Fixtures that start real PostgreSQL and Redis servers on free loopback ports.

One server of each kind per test session; every test gets a database of its own and an
emptied Redis. A test that stops, kills or pauses a server leaves it to the next test's
fixture to start it again. A test skips only when the server binary is not installed (CI
installs both: see ``.ci/run``).
"""

from __future__ import annotations

import itertools
import socket
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tvfeed_async.sinks import ParquetSink, PostgresSink, RedisSink, SeriesKey, Sink

from .servers import PostgresServer, RedisServer, ServerUnavailable
from .stores import Row, parquet_rows, postgres_rows, redis_rows

_databases = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL 15 cluster for the whole session."""
    try:
        server = PostgresServer()
    except ServerUnavailable as missing:
        pytest.skip(str(missing))
    try:
        server.initialise()
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A Redis server for the whole session."""
    try:
        server = RedisServer()
    except ServerUnavailable as missing:
        pytest.skip(str(missing))
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> str:
    """The DSN of a new, empty database on the running server."""
    postgres_server.start()
    name = f"rec_{next(_databases)}"
    subprocess.run(
        [
            str(postgres_server.bin_dir / "psql"),
            "-h",
            "127.0.0.1",
            "-p",
            str(postgres_server.port),
            "-U",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-c",
            f"CREATE DATABASE {name}",
            "postgres",
        ],
        check=True,
        timeout=60,
        stdout=subprocess.DEVNULL,
    )
    return postgres_server.dsn_for(name)


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The URL of the running Redis server, emptied (FLUSHALL) for this test."""
    redis_server.resume()
    redis_server.start()
    with socket.create_connection(("127.0.0.1", redis_server.port), timeout=10) as connection:
        connection.sendall(b"*1\r\n$8\r\nFLUSHALL\r\n")
        reply = connection.recv(64)
    assert reply.startswith(b"+OK"), reply
    return redis_server.url


@dataclass
class Store:
    """One store under test: how to make a sink for it and how to read it directly.

    Attributes:
        kind: ``"postgresql"``, ``"redis"`` or ``"parquet"``.
        target: what ``tvfeed-async record --to`` takes for it.
        sink: an opened sink (the fixture closes it).
    """

    kind: str
    target: str
    new_sink: Callable[[], Sink]
    read: Callable[[SeriesKey], Awaitable[list[Row]]]
    sink: Sink


def _store_parts(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[str, Callable[[], Sink], Callable[[SeriesKey], Awaitable[list[Row]]]]:
    if kind == "postgresql":
        dsn: str = request.getfixturevalue("postgres_dsn")

        async def read_postgres(key: SeriesKey) -> list[Row]:
            return await postgres_rows(dsn, key)

        return dsn, lambda: PostgresSink(dsn, connect_timeout=5), read_postgres
    if kind == "redis":
        url: str = request.getfixturevalue("redis_url")

        async def read_redis(key: SeriesKey) -> list[Row]:
            return await redis_rows(url, key)

        return url, lambda: RedisSink(url, socket_timeout=5), read_redis
    root = tmp_path / "dataset"

    async def read_parquet(key: SeriesKey) -> list[Row]:
        return parquet_rows(root, key)

    return str(root), lambda: ParquetSink(root), read_parquet


@pytest.fixture(params=["postgresql", "redis", "parquet"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Each kind of store in turn, with an opened sink."""
    target, new_sink, read = _store_parts(request.param, request, tmp_path)
    async with new_sink() as sink:
        yield Store(request.param, target, new_sink, read, sink)
