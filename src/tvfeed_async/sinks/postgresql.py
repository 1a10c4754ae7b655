"""PostgreSQL / TimescaleDB sink (asyncpg; ``pip install "tvfeed-async[postgres]"``).

Closed bars go to one table (default ``tv_bars``)::

    symbol text, interval text, time timestamptz,
    open, high, low, close, volume double precision,
    primary key (symbol, interval, time)

Each :meth:`PostgresSink.write` is one ``INSERT ... SELECT FROM unnest(...) ON CONFLICT``
statement in its own transaction: the whole batch is stored or none of it, in one round trip,
and a bar already stored is left as it is (``on_conflict="nothing"``) or overwritten with the
same key's new values (``"update"``, the default). The write returns once PostgreSQL has
committed, which with the default ``synchronous_commit`` means the commit record is flushed.

With ``create=True`` the tables are created if missing; when the ``timescaledb`` extension
is available on the server, ``tv_bars`` is made a hypertable on ``time`` (plain PostgreSQL
otherwise). Forming bars go to ``tv_bars_latest`` (one row per series) and unfillable gaps to
``tv_gaps``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Literal, Self

import anyio
import asyncpg

from ..protocol.bars import Bar, Gap
from ._base import SeriesKey, SinkError

__all__ = ["PostgresSink"]

logger = logging.getLogger("tvfeed_async.sinks.postgresql")

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?")

#: What a failing server or connection raises through asyncpg (InternalClientError: the
#: connection's protocol state was broken by an earlier failure).
_STORE_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,
    OSError,
    TimeoutError,
)


def _identifier(name: str, what: str) -> str:
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"{what} {name!r} is not a plain (optionally schema-qualified) name")
    return name


def _utc(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, UTC)


class PostgresSink:
    """Closed bars into a PostgreSQL (or TimescaleDB) table.

    Args:
        dsn: ``postgresql://user:password@host:port/database`` (asyncpg's DSN syntax).
        table: the closed-bar table.
        latest_table: the forming-bar table (one row per series).
        gaps_table: where unfillable gaps are noted.
        create: create missing tables when the sink is opened (a hypertable when the
            ``timescaledb`` extension is available).
        on_conflict: ``"update"`` overwrites a stored bar with the values written again;
            ``"nothing"`` keeps the first values stored.
        connect_timeout: seconds to wait for a connection.
        command_timeout: seconds one statement may take before the call fails.

    Use it as an async context manager; it holds one connection (callers that share the sink
    take turns on it) and opens a new one after the server or the connection failed.
    """

    supports_latest = True

    def __init__(
        self,
        dsn: str,
        *,
        table: str = "tv_bars",
        latest_table: str = "tv_bars_latest",
        gaps_table: str = "tv_gaps",
        create: bool = True,
        on_conflict: Literal["update", "nothing"] = "update",
        connect_timeout: float = 10.0,
        command_timeout: float = 60.0,
    ) -> None:
        if on_conflict not in ("update", "nothing"):
            raise ValueError("on_conflict must be 'update' or 'nothing'")
        self.dsn = dsn
        self.table = _identifier(table, "table")
        self.latest_table = _identifier(latest_table, "latest_table")
        self.gaps_table = _identifier(gaps_table, "gaps_table")
        self.create = create
        self.on_conflict = on_conflict
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.hypertable = False
        self.name = _describe(dsn)
        self._connection: asyncpg.Connection | None = None
        # One connection runs one statement at a time: callers sharing the sink take turns.
        self._turn = anyio.Lock()
        self._insert = self._insert_statement()

    def __repr__(self) -> str:
        return f"<PostgresSink {self.name} table={self.table}>"

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Self:
        """Connect, and create the tables when ``create`` is set.

        Raises:
            SinkError: the server cannot be reached or refused the statements.
        """
        try:
            connection = await self._connect()
            if self.create:
                await self._create_tables(connection)
        except _STORE_ERRORS as error:
            await self._drop_connection()
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
        """Close the connection (does not raise)."""
        await self._drop_connection()

    async def _connect(self) -> asyncpg.Connection:
        connection = self._connection
        if connection is not None and not connection.is_closed():
            return connection
        self._connection = None
        connection = await asyncpg.connect(
            self.dsn, timeout=self.connect_timeout, command_timeout=self.command_timeout
        )
        self._connection = connection
        return connection

    async def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            # terminate(): close() would wait for a server that may be gone.
            connection.terminate()

    async def _create_tables(self, connection: asyncpg.Connection) -> None:
        await connection.execute(
            f"""
            CREATE TABLE IF NOT EXISTS {self.table} (
                symbol text NOT NULL,
                interval text NOT NULL,
                time timestamptz NOT NULL,
                open double precision NOT NULL,
                high double precision NOT NULL,
                low double precision NOT NULL,
                close double precision NOT NULL,
                volume double precision,
                PRIMARY KEY (symbol, interval, time)
            );
            CREATE TABLE IF NOT EXISTS {self.latest_table} (
                symbol text NOT NULL,
                interval text NOT NULL,
                time timestamptz NOT NULL,
                open double precision NOT NULL,
                high double precision NOT NULL,
                low double precision NOT NULL,
                close double precision NOT NULL,
                volume double precision,
                updated_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (symbol, interval)
            );
            CREATE TABLE IF NOT EXISTS {self.gaps_table} (
                symbol text NOT NULL,
                interval text NOT NULL,
                after_time timestamptz NOT NULL,
                before_time timestamptz NOT NULL,
                recorded_at timestamptz NOT NULL DEFAULT now(),
                PRIMARY KEY (symbol, interval, after_time)
            );
            """
        )
        available = await connection.fetchval(
            "SELECT count(*) FROM pg_available_extensions WHERE name = 'timescaledb'"
        )
        if not available:
            logger.info("%s: no timescaledb extension; %s is a plain table", self.name, self.table)
            return
        try:
            async with connection.transaction():
                await connection.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
                await connection.execute(
                    "SELECT create_hypertable($1::regclass, 'time', if_not_exists => TRUE, "
                    "migrate_data => TRUE)",
                    self.table,
                )
        except asyncpg.PostgresError as error:
            # E.g. the extension is installed but not in shared_preload_libraries.
            logger.warning(
                "%s: timescaledb is available but %s could not be made a hypertable (%s); "
                "using a plain table",
                self.name,
                self.table,
                error,
            )
            return
        self.hypertable = True

    # ------------------------------------------------------------------ the Sink protocol

    def _insert_statement(self) -> str:
        if self.on_conflict == "nothing":
            action = "DO NOTHING"
        else:
            action = (
                "DO UPDATE SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, "
                "close = EXCLUDED.close, volume = EXCLUDED.volume"
            )
        return (
            f"INSERT INTO {self.table} (symbol, interval, time, open, high, low, close, volume) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::float8[], "
            "$5::float8[], $6::float8[], $7::float8[], $8::float8[]) "
            f"ON CONFLICT (symbol, interval, time) {action}"
        )

    async def last_stored(self, key: SeriesKey) -> int | None:
        """Open time of the newest stored bar of ``key`` (an index lookup on the primary key).

        Raises:
            SinkError: the server failed.
        """
        newest = await self._call(
            "fetchval",
            f"SELECT max(time) FROM {self.table} WHERE symbol = $1 AND interval = $2",
            key.symbol,
            key.interval,
        )
        if newest is None:
            return None
        assert isinstance(newest, datetime)
        return int(newest.timestamp())

    async def write(self, bars: Sequence[Bar]) -> None:
        """Upsert ``bars`` in one statement and one transaction; returns after the commit.

        Raises:
            SinkError: the server failed; nothing of this batch was committed, unless the
                commit happened and only its answer was lost (writing again is harmless).
        """
        if not bars:
            return
        await self._call(
            "execute",
            self._insert,
            [bar.symbol for bar in bars],
            [bar.interval for bar in bars],
            [_utc(bar.timestamp) for bar in bars],
            [bar.open for bar in bars],
            [bar.high for bar in bars],
            [bar.low for bar in bars],
            [bar.close for bar in bars],
            [bar.volume for bar in bars],
        )

    async def write_latest(self, bars: Sequence[Bar]) -> None:
        """Upsert the forming bars into ``latest_table`` (a row never goes back in time).

        Raises:
            SinkError: the server failed.
        """
        if not bars:
            return
        await self._call(
            "execute",
            f"INSERT INTO {self.latest_table} AS latest "
            "(symbol, interval, time, open, high, low, close, volume) "
            "SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::float8[], "
            "$5::float8[], $6::float8[], $7::float8[], $8::float8[]) "
            "ON CONFLICT (symbol, interval) DO UPDATE SET time = EXCLUDED.time, "
            "open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, "
            "close = EXCLUDED.close, volume = EXCLUDED.volume, updated_at = now() "
            "WHERE latest.time <= EXCLUDED.time",
            [bar.symbol for bar in bars],
            [bar.interval for bar in bars],
            [_utc(bar.timestamp) for bar in bars],
            [bar.open for bar in bars],
            [bar.high for bar in bars],
            [bar.low for bar in bars],
            [bar.close for bar in bars],
            [bar.volume for bar in bars],
        )

    async def record_gap(self, key: SeriesKey, gap: Gap) -> None:
        """Insert the gap into ``gaps_table`` (once per start).

        Raises:
            SinkError: the server failed.
        """
        await self._call(
            "execute",
            f"INSERT INTO {self.gaps_table} (symbol, interval, after_time, before_time) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
            key.symbol,
            key.interval,
            _utc(gap.after),
            _utc(gap.before),
        )

    async def _call(
        self, method: Literal["execute", "fetchval"], query: str, *args: object
    ) -> object:
        try:
            async with self._turn:
                connection = await self._connect()
                try:
                    if method == "execute":
                        return await connection.execute(query, *args)
                    return await connection.fetchval(query, *args)
                except BaseException:
                    # A statement that failed or was cancelled half-way can leave the
                    # connection mid-protocol; the next call gets a fresh one.
                    await self._drop_connection()
                    raise
        except _STORE_ERRORS as error:
            await self._drop_connection()
            raise SinkError(f"{self.name}: {type(error).__name__}: {error}") from error


def _describe(dsn: str) -> str:
    """The DSN without its password."""
    return re.sub(r"(//[^:/@]+):[^@]*@", r"\1:***@", dsn)
