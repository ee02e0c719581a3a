"""The database: one async SQLAlchemy engine for SQLite (default) or PostgreSQL.

``DATABASE_URL`` keeps the original design's forms (``sqlite:///puppet_engine.db``,
``postgresql://user:pass@host/db``); the async driver is chosen here: asyncpg for
PostgreSQL; for SQLite, connections that run on the event loop's thread
(:mod:`puppet_engine.storage.inline_sqlite`, a hundred times faster per statement than
aiosqlite's thread hand-offs), or aiosqlite itself with ``inline=False``.
Migrations run at start through :meth:`Database.migrate`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from puppet_engine.errors import ConfigError, StorageError
from puppet_engine.storage.inline_sqlite import Checkpointer, inline_connector
from puppet_engine.storage.migrate import upgrade

MIGRATION_LOCK = 0x70757070  # PostgreSQL advisory lock key held while migrating ("pupp")
SQLITE_BUSY_SECONDS = 30.0  # how long a write waits for another process's lock on SQLite
SQLITE_READERS = 32  # inline SQLite connections kept open for reads (as many again may open meanwhile)
SQLITE_KEPT_READERS = 8  # of those, held by the Database between reads (a pool checkout costs 60 µs)


def async_url(url: str) -> str:
    """Map a user-facing URL onto the async driver SQLAlchemy should use."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse message
        raise ConfigError(f"DATABASE_URL: cannot parse {url.split('@')[-1]!r}: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return str(parsed.set(drivername="sqlite+aiosqlite"))
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise ConfigError(f"DATABASE_URL: unsupported database {backend!r}; use sqlite:/// or postgresql://")


def _create_private(path: Path) -> None:
    """Create the SQLite file readable by its owner only (mode 0600), as the API key file is:
    it holds the agents' memories, events and trades. SQLite gives its ``-wal`` and ``-shm``
    files the database file's mode. An existing file keeps the mode its owner chose."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class Database:
    """Owns the engine; hands out connections and transactions."""

    def __init__(self, url: str, *, echo: bool = False, inline: bool = True,
                 busy_timeout: float = SQLITE_BUSY_SECONDS) -> None:
        self.url = url
        target = async_url(url)
        parsed = make_url(target)
        self.dialect = parsed.get_backend_name()
        kwargs: dict[str, object] = {"echo": echo}
        self._checkpointer: Checkpointer | None = None
        self.busy_timeout = busy_timeout
        self.inline = False  # SQLite statements run on the loop's thread
        if self.dialect == "sqlite":
            path = parsed.database or ":memory:"
            uri = str(parsed.query.get("uri", "")).lower() == "true"
            on_disk = path != ":memory:" and not uri
            if on_disk:
                _create_private(Path(path))
            if inline:
                self.inline = True
                kwargs["async_creator"] = inline_connector(path, busy_timeout=busy_timeout, uri=uri)
                # Readers of many events at once: kept open (each new one costs a connect, its
                # pragmas and a cold statement and page cache), not closed as overflow.
                kwargs.update(pool_size=SQLITE_READERS, max_overflow=SQLITE_READERS)
                if on_disk:
                    self._checkpointer = Checkpointer(path)
            else:
                kwargs["connect_args"] = {"timeout": busy_timeout}
        else:
            kwargs.update(pool_size=10, max_overflow=20, pool_pre_ping=True)
        self.engine: AsyncEngine = create_async_engine(target, **kwargs)
        # SQLite has one writer: write transactions of this process queue on a lock (FIFO)
        # instead of in SQLite's busy-wait loop, which sleeps for milliseconds at a time.
        self._writer: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._writer_task: asyncio.Task[object] | None = None
        self._writer_conn: AsyncConnection | None = None
        self._pinned: AsyncConnection | None = None  # PostgreSQL: see pinned_transaction
        self._pinned_lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._readers: tuple[asyncio.AbstractEventLoop, list[AsyncConnection]] | None = None  # see connect
        if self.dialect == "sqlite":
            event.listen(self.engine.sync_engine, "connect", self._sqlite_pragmas)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection inside a transaction, committed on success.

        On SQLite, one transaction at a time per process (a nested one in the same task
        shares the turn); reads through :meth:`connect` never wait.
        """
        task = asyncio.current_task()
        if self.dialect != "sqlite" or self._writer_task is task:
            async with self._begin() as conn:
                yield conn
            return
        loop = asyncio.get_running_loop()
        if self._writer is None or self._writer[0] is not loop:
            self._writer = (loop, asyncio.Lock())
            self._writer_conn = None
        async with self._writer[1]:
            self._writer_task = task
            try:
                if not self.inline:
                    async with self._begin() as conn:
                        yield conn
                    return
                conn = await self._writer_connection()
                try:
                    async with conn.begin():
                        yield conn
                except SQLAlchemyError as exc:
                    raise StorageError(f"database error: {exc.__class__.__name__}: {exc}") from exc
            finally:
                self._writer_task = None

    @asynccontextmanager
    async def pinned_transaction(self) -> AsyncIterator[AsyncConnection]:
        """A transaction on a connection kept for one repeated caller (the event engine's
        claims), so state kept on the connection (the owned-agents table) is written once:
        on PostgreSQL a connection of its own, used one transaction at a time; on SQLite
        :meth:`transaction` (its writer connection already is one)."""
        if self.dialect == "sqlite":
            async with self.transaction() as conn:
                yield conn
            return
        loop = asyncio.get_running_loop()
        if self._pinned_lock is None or self._pinned_lock[0] is not loop:  # a connection belongs to one loop
            self._pinned_lock, self._pinned = (loop, asyncio.Lock()), None
        async with self._pinned_lock[1]:
            pinned = self._pinned
            try:
                if pinned is None or pinned.closed or pinned.invalidated:
                    pinned = self._pinned = await self.engine.connect()
                async with pinned.begin():
                    yield pinned
            except SQLAlchemyError as exc:
                raise StorageError(f"database error: {exc.__class__.__name__}: {exc}") from exc

    async def _writer_connection(self) -> AsyncConnection:
        """The connection this process writes through (SQLite, inline): kept open, since
        writes take turns anyway and checking one out of the pool costs more than the write."""
        conn = self._writer_conn
        if conn is None or conn.closed or conn.invalidated:
            try:
                conn = self._writer_conn = await self.engine.connect()
            except SQLAlchemyError as exc:
                raise StorageError(f"database error: {exc.__class__.__name__}: {exc}") from exc
        return conn

    @asynccontextmanager
    async def _begin(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.engine.begin() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StorageError(f"database error: {exc.__class__.__name__}: {exc}") from exc

    @asynccontextmanager
    async def connect(self) -> AsyncIterator[AsyncConnection]:
        """A connection for reads (autocommit-free; nothing is written).

        Inline SQLite: connections are kept between reads (taking one out of the pool and
        back, with its reset, costs ten times a one-row query). A connection is handed to
        one reader at a time, as from the pool, and comes back without a transaction; every
        statement on it still reads the latest commit (WAL: nothing keeps a read transaction
        open between statements, SQLAlchemy's cursors read their rows at once).
        """
        if not self.inline:
            try:
                async with self.engine.connect() as conn:
                    yield conn
            except SQLAlchemyError as exc:
                raise StorageError(f"database error: {exc.__class__.__name__}: {exc}") from exc
            return
        kept = self._kept_readers()
        try:
            conn = kept.pop() if kept else await self.engine.connect()
        except SQLAlchemyError as exc:
            raise StorageError(f"database error: {exc.__class__.__name__}: {exc}") from exc
        try:
            yield conn
        except BaseException as exc:
            await asyncio.shield(self._put_back(conn, keep=False))
            if isinstance(exc, SQLAlchemyError):
                raise StorageError(f"database error: {exc.__class__.__name__}: {exc}") from exc
            raise
        try:
            await self._put_back(conn, keep=True)
        except SQLAlchemyError as exc:
            raise StorageError(f"database error: {exc.__class__.__name__}: {exc}") from exc

    def _kept_readers(self) -> list[AsyncConnection]:
        loop = asyncio.get_running_loop()
        if self._readers is None or self._readers[0] is not loop:  # a connection belongs to one loop
            self._readers = (loop, [])
        return self._readers[1]

    async def _put_back(self, conn: AsyncConnection, *, keep: bool) -> None:
        """After a read: keep ``conn`` for the next (its transaction ended), or close it."""
        if conn.closed or conn.invalidated:
            return
        kept = self._kept_readers()
        if keep and len(kept) < SQLITE_KEPT_READERS:
            if conn.in_transaction():
                await conn.rollback()
            kept.append(conn)
        else:
            await conn.close()

    async def ping(self) -> None:
        """One round trip to the database (raises when it cannot be reached)."""
        async with self.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def migrate(self, revision: str = "head") -> None:
        """Apply migrations up to ``revision`` (idempotent)."""
        async with self.engine.begin() as conn:
            if self.is_postgres:  # several processes starting at once: one migrates, the others wait
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            await conn.run_sync(upgrade, revision)

    async def close(self) -> None:
        pinned, self._pinned = self._pinned, None
        same_loop = self._pinned_lock is not None and self._pinned_lock[0] is asyncio.get_running_loop()
        if pinned is not None and not pinned.closed and same_loop:
            with suppress(SQLAlchemyError, RuntimeError):  # a connection of a loop that has ended
                await pinned.close()
        readers, self._readers = self._readers, None
        if readers is not None and readers[0] is asyncio.get_running_loop():
            for reader in readers[1]:
                await reader.close()
        conn, self._writer_conn = self._writer_conn, None
        if conn is not None and self._writer is not None and self._writer[0] is asyncio.get_running_loop():
            await conn.close()
        await self.engine.dispose()
        if self._checkpointer is not None:
            self._checkpointer.stop()

    def _sqlite_pragmas(self, dbapi_conn: Any, _record: Any) -> None:
        # WAL lets readers (API, dashboard) run while the engine writes.
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        if not self.inline:  # inline connections wait for a lock on the loop, not inside SQLite
            cur.execute(f"PRAGMA busy_timeout={int(self.busy_timeout * 1000)}")
        if self._checkpointer is not None:
            cur.execute("PRAGMA wal_autocheckpoint=0")  # the checkpointer's thread does it
            self._checkpointer.start_once()
        cur.close()
