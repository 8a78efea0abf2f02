"""ClickHouse access: a small pool of clickhouse-driver clients for asyncio code.

clickhouse-driver is blocking; queries run in worker threads, one client per
thread at a time. Connection failures, timeouts and the server's passing
refusals (TRANSIENT_CODES: too many parts, memory, a read-only table...) become
StoreUnavailableError (retriable); any other refusal propagates as it is.
"""

from __future__ import annotations

import asyncio
import queue
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from clickhouse_driver import Client
from clickhouse_driver.errors import Error as DriverError
from clickhouse_driver.errors import NetworkError, ServerException, SocketTimeoutError

from pipeline.errors import StartTimeoutError, StoreUnavailableError
from pipeline.settings import Settings

UNAVAILABLE = (NetworkError, SocketTimeoutError, EOFError, ConnectionError, OSError)
TRANSIENT_CODES = frozenset(
    {
        159,  # TIMEOUT_EXCEEDED
        173,  # CANNOT_ALLOCATE_MEMORY
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY
        243,  # NOT_ENOUGH_SPACE
        252,  # TOO_MANY_PARTS
    }
)
"""Server refusals that pass by themselves (load, merges, space, a replica catching
up): retriable, like a server that is away. Any other refusal propagates."""


QUERY_TIMEOUT_S = 60.0


def client(
    settings: Settings, database: str | None = None, timeout_s: float = QUERY_TIMEOUT_S
) -> Client:
    ch = settings.clickhouse
    return Client(
        host=ch.host,
        port=ch.port,
        database=database if database is not None else ch.database,
        user=ch.user,
        password=ch.password,
        connect_timeout=min(ch.connect_timeout_s, timeout_s),
        send_receive_timeout=timeout_s,
        sync_request_timeout=min(ch.connect_timeout_s, timeout_s),
        settings={"strings_encoding": "utf-8"},
    )


class ClickHouse:
    """A pool of clients for one database, used from asyncio through threads.

    Every call is bounded by ``timeout_s``: waiting for a free client, the
    socket's reads and writes, and the call as the caller sees it. A server that
    does not answer in time (frozen, overloaded) is StoreUnavailableError, like
    one that is down."""

    def __init__(
        self,
        settings: Settings,
        database: str | None = None,
        size: int = 4,
        timeout_s: float = QUERY_TIMEOUT_S,
    ) -> None:
        self.settings = settings
        self.database = database if database is not None else settings.clickhouse.database
        self.timeout_s = timeout_s
        self._idle: queue.Queue[Client] = queue.Queue()
        for _ in range(size):
            self._idle.put(client(settings, self.database, timeout_s))
        self._size = size

    @contextmanager
    def _client(self) -> Iterator[Client]:
        try:
            conn = self._idle.get(timeout=self.timeout_s)
        except queue.Empty:
            raise StoreUnavailableError(
                f"ClickHouse is busy: no connection free within {self.timeout_s:g}s"
            ) from None
        try:
            yield conn
        except UNAVAILABLE as exc:
            conn.disconnect()
            raise StoreUnavailableError(f"ClickHouse unavailable: {exc}") from exc
        except ServerException as exc:
            if exc.code in TRANSIENT_CODES:
                raise StoreUnavailableError(f"ClickHouse refused for now: {exc}") from exc
            raise
        finally:
            self._idle.put(conn)

    def execute_sync(
        self, sql: str, params: dict[str, Any] | Sequence[Any] | None = None, **kw: Any
    ) -> Any:
        with self._client() as conn:
            return conn.execute(sql, params, **kw)

    async def execute(
        self, sql: str, params: dict[str, Any] | Sequence[Any] | None = None, **kw: Any
    ) -> Any:
        call = asyncio.to_thread(self.execute_sync, sql, params, **kw)
        try:
            # the caller's bound; the thread ends by itself at its socket's timeout
            return await asyncio.wait_for(call, self.timeout_s)
        except TimeoutError:
            raise StoreUnavailableError(
                f"ClickHouse did not answer within {self.timeout_s:g}s"
            ) from None

    async def insert(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """INSERT ``rows`` (tuples in the statement's column order), sent column by
        column: cheaper for the driver than rows, and never inline VALUES (which
        hang clickhouse-driver)."""
        if rows:
            await self.insert_columns(sql, list(zip(*rows, strict=True)))

    async def insert_columns(self, sql: str, columns: Sequence[Sequence[Any]]) -> None:
        """INSERT data already laid out column by column."""
        if columns and len(columns[0]):
            await self.execute(sql, columns, columnar=True)

    def close(self) -> None:
        for _ in range(self._size):
            try:
                self._idle.get(timeout=self.timeout_s * 2 + 1).disconnect()
            except queue.Empty:  # still stuck in a call to a frozen server
                return


def ping(settings: Settings, timeout_s: float | None = None) -> str:
    """The server version, or StoreUnavailableError (a silent server counts as away)."""
    conn = client(settings, "default", timeout_s or settings.clickhouse.connect_timeout_s)
    try:
        return str(conn.execute("SELECT version()")[0][0])
    except UNAVAILABLE as exc:
        raise StoreUnavailableError(f"ClickHouse at {_address(settings)}: {exc}") from exc
    except DriverError as exc:
        raise StoreUnavailableError(f"ClickHouse at {_address(settings)}: {exc}") from exc
    finally:
        conn.disconnect()


def wait_for_clickhouse(settings: Settings, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return ping(
                settings,
                max(0.2, min(settings.clickhouse.connect_timeout_s, deadline - time.monotonic())),
            )
        except StoreUnavailableError as exc:
            if time.monotonic() >= deadline:
                raise StartTimeoutError(
                    f"ClickHouse did not answer within {timeout_s:.0f}s: {exc}"
                ) from exc
            time.sleep(0.3)


def create_database(settings: Settings, database: str) -> None:
    conn = client(settings, database="default")
    try:
        conn.execute(f"CREATE DATABASE IF NOT EXISTS {_ident(database)}")
    finally:
        conn.disconnect()


def drop_database(settings: Settings, database: str) -> None:
    conn = client(settings, database="default")
    try:
        conn.execute(f"DROP DATABASE IF EXISTS {_ident(database)}")
    finally:
        conn.disconnect()


def drop_table(settings: Settings, database: str, table: str) -> None:
    conn = client(settings, database="default")
    try:
        conn.execute(f"DROP TABLE IF EXISTS {_ident(database)}.{_ident(table)}")
    finally:
        conn.disconnect()


def move_tables(settings: Settings, source: str, target: str, tables: Sequence[str]) -> None:
    """Move tables from database ``source`` to ``target`` (same names), in one RENAME."""
    moves = ", ".join(
        f"{_ident(source)}.{_ident(t)} TO {_ident(target)}.{_ident(t)}" for t in tables
    )
    conn = client(settings, database="default")
    try:
        conn.execute(f"RENAME TABLE {moves}")
    finally:
        conn.disconnect()


def _ident(name: str) -> str:
    if not name.isidentifier():
        raise ValueError(f"not a database identifier: {name!r}")
    return name


def _address(settings: Settings) -> str:
    return f"{settings.clickhouse.host}:{settings.clickhouse.port}"
