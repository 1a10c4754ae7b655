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
from collections.abc import Iterator

import pytest

from .servers import PostgresServer, RedisServer, ServerUnavailable

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
