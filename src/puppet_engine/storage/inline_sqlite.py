"""SQLite for the async engine without a thread hop per statement.

SQLAlchemy's aiosqlite dialect sends every DBAPI call (cursor, execute, fetch, close,
commit) to a worker thread and waits for the answer: about 100 µs a call, so a
one-row ``SELECT`` costs half a millisecond while SQLite itself answers in 4 µs. The
connection here speaks aiosqlite's interface (what the dialect calls) but runs each
call on the event loop's own thread, where SQLite over a local file, in WAL mode, is
faster than any hand-off.

What would block the loop is handled without blocking it:

- *another process holding the write lock* (``SQLITE_BUSY``): SQLite is told not to
  wait (``busy_timeout`` 0) and the statement is tried again after an ``asyncio``
  sleep, backing off up to 50 ms, for ``busy_timeout`` seconds in all;
- *checkpoints* (copying the WAL back into the database and syncing it to disk): taken
  off the connections (``wal_autocheckpoint`` 0) and run by :class:`Checkpointer` on
  its own thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")

_RETRY_CODES = {sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED}
_MAX_BACKOFF = 0.05


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    # SQLITE_BUSY_SNAPSHOT (517: a read snapshot too old to write from) is not in the
    # set: waiting cannot cure it, the transaction has to start again.
    return getattr(exc, "sqlite_errorcode", None) in _RETRY_CODES


class InlineCursor:
    """An aiosqlite-style cursor whose calls run at once, on the caller's thread."""

    def __init__(self, connection: InlineConnection, cursor: sqlite3.Cursor) -> None:
        self._owner = connection
        self._cursor = cursor

    @property
    def description(self) -> Any:
        return self._cursor.description

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._cursor.lastrowid

    @property
    def arraysize(self) -> int:
        return self._cursor.arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._cursor.arraysize = value

    async def __aenter__(self) -> InlineCursor:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._rows()

    async def _rows(self) -> AsyncIterator[Any]:
        while (row := self._cursor.fetchone()) is not None:
            yield row

    async def execute(self, sql: str, parameters: Sequence[Any] | dict[str, Any] | None = None) -> InlineCursor:
        await self._owner.run(self._cursor.execute, sql, parameters if parameters is not None else ())
        return self

    async def executemany(self, sql: str, seq_of_parameters: Iterable[Any]) -> InlineCursor:
        rows = list(seq_of_parameters)  # a generator could not be replayed after SQLITE_BUSY
        await self._owner.run(self._cursor.executemany, sql, rows)
        return self

    async def fetchone(self) -> Any:
        return self._cursor.fetchone()

    async def fetchmany(self, size: int | None = None) -> list[Any]:
        return self._cursor.fetchmany(self._cursor.arraysize if size is None else size)

    async def fetchall(self) -> list[Any]:
        return self._cursor.fetchall()

    async def close(self) -> None:
        self._cursor.close()


class _Immediate:
    """Stands in for aiosqlite's request queue, which the dialect uses to set the
    isolation level: the request runs as it is put."""

    def put_nowait(self, item: tuple[asyncio.Future[Any], Callable[[], Any]]) -> None:
        future, function = item
        try:
            future.set_result(function())
        except Exception as exc:
            future.set_exception(exc)


class InlineConnection:
    """The part of ``aiosqlite.Connection`` that SQLAlchemy's aiosqlite dialect uses."""

    def __init__(self, connection: sqlite3.Connection, *, busy_timeout: float) -> None:
        self._connection: sqlite3.Connection | None = connection  # None once closed (the dialect looks)
        self._conn = connection  # the dialect sets the isolation level on this one, through _tx
        self._tx = _Immediate()
        self.busy_timeout = busy_timeout

    @property
    def isolation_level(self) -> str | None:
        return self._conn.isolation_level

    def cursor(self) -> InlineCursor:
        return InlineCursor(self, self._live().cursor())

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        return await self.cursor().execute(sql, parameters)

    async def commit(self) -> None:
        await self.run(self._live().commit)

    async def rollback(self) -> None:
        self._live().rollback()

    async def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._live().create_function(*args, **kwargs)

    async def close(self) -> None:
        self.stop()

    def stop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    async def run(self, call: Callable[..., T], *args: Any) -> T:
        """``call(*args)``; while another process holds the lock, wait for it without blocking the loop."""
        deadline: float | None = None
        delay = 0.001
        while True:
            try:
                return call(*args)
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                now = time.monotonic()
                deadline = deadline if deadline is not None else now + self.busy_timeout
                if now >= deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_BACKOFF)

    @property
    def raw(self) -> sqlite3.Connection:
        """The ``sqlite3`` connection (for statements run without the dialect: ``storage.prepared``)."""
        return self._live()

    def _live(self) -> sqlite3.Connection:
        if self._connection is None:
            raise ValueError("no active connection")  # what aiosqlite says; the dialect maps it
        return self._connection


def inline_connector(path: str, *, busy_timeout: float = 30.0, uri: bool = False) -> Callable[[], Any]:
    """An ``async_creator`` for ``create_async_engine``: opens :class:`InlineConnection` s to ``path``."""

    async def connect() -> InlineConnection:
        raw = sqlite3.connect(path, timeout=0, check_same_thread=False, uri=uri)
        return InlineConnection(raw, busy_timeout=busy_timeout)

    return connect


class Checkpointer:
    """Copies the WAL back into the database every ``interval`` seconds, on its own thread.

    A ``PASSIVE`` checkpoint never waits for readers or writers; the disk sync it ends
    with happens here rather than inside a commit on the event loop.
    """

    def __init__(self, path: str, *, interval: float = 1.0) -> None:
        self.path, self.interval = path, interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.checkpoints = 0

    def start_once(self) -> None:
        """Start the thread unless it runs (called as connections open: the file is in WAL mode by then)."""
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._stop = threading.Event()
                self._thread = threading.Thread(target=self._loop, args=(self._stop,), name="sqlite-checkpoint",
                                                daemon=True)
                self._thread.start()

    def _loop(self, stop: threading.Event) -> None:
        try:
            conn = sqlite3.connect(self.path, timeout=5, check_same_thread=False)
        except sqlite3.Error:
            return  # the database went away; connections opening later start a new thread
        try:
            while not stop.wait(self.interval):
                self.checkpoint(conn)
            self.checkpoint(conn)
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            self.checkpoints += 1
        except sqlite3.Error:
            pass  # busy or gone: the next round tries again

    def stop(self) -> None:
        with self._lock:
            thread, self._thread = self._thread, None
            self._stop.set()
        if thread is not None:
            thread.join(timeout=10)
