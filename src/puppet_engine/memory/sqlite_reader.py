"""Plain ``sqlite3`` reads for the SQLite memory store: memory rows by id, and what changed since.

The store keeps each searched agent's memories in process (vectors, ranking fields and the
rest of each row), so a search runs no SQL at all. What keeps that copy true when another
connection or process writes is the ``facts`` table: every memory added, forgotten or
updated writes a fact in the transaction of the change (``storage/repos/facts.py``), with an
id that only grows. Each search asks:

- has any other connection committed since the last look? The header of the WAL index (the
  ``-shm`` file, mapped read-only) changes with every commit, and reading it is a memory
  read, where ``PRAGMA data_version`` costs a read transaction with its file-lock system
  calls (20-60 µs after a search's matrix product has evicted the caches). When the header
  changed, ``PRAGMA data_version`` decides (the header also moves for other reasons);
- when something was committed: the memory facts after the last one seen, which name the
  memories of which agents to read again.

Reads run on one read-only connection (memory-mapped, with a large page cache), guarded by a
lock so a worker thread may use it too.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import sqlite3
import struct
import threading
from collections.abc import Iterable, Iterator
from typing import NamedTuple

_MMAP_BYTES = 1 << 30  # address space only; the pages are the OS's file cache
_CACHE_KIB = 32 * 1024
_IDS_PER_STATEMENT = 500
# The WAL-index header (https://www.sqlite.org/walformat.html, "2.2.1 The WAL-Index Header"):
# 48 bytes in native byte order, starting with the format version; its change counter and
# frame count move with every transaction. The file is at least one 32 KiB page when in use.
_WAL_HEADER_BYTES = 48
_WAL_INDEX_VERSION = 3007000
_SHM_MIN_BYTES = 32 * 1024

#: The fact kinds that change a memory row (``SQLMemoryStore`` writes them).
MEMORY_FACTS = ("memory_added", "memory_forgotten", "memory_updated")

#: A memory row as the store keeps it: every column but ``id``, ``agent_id`` and the embedding.
ROW_COLUMNS = ("kind", "content", "encrypted", "importance", "created_at", "metadata", "key", "embedder", "dim")
_COLUMN_LIST = ", ".join(f'"{c}"' for c in ROW_COLUMNS)


class FactMark(NamedTuple):
    """Where the store has read the facts up to: the newest fact's id and time."""

    id: int
    at: float


class MemoryFact(NamedTuple):
    agent_id: str
    kind: str
    memory_id: str


class SQLiteReader:
    """Reads on a read-only sqlite3 connection to the engine's database file."""

    _ROWS = "SELECT id, agent_id, {cols}, embedding FROM memories WHERE id IN ({marks})"
    _AGENT = f"SELECT id, agent_id, {_COLUMN_LIST}, embedding FROM memories WHERE agent_id = ?"
    _NEWEST = "SELECT id, at FROM facts ORDER BY id DESC LIMIT 1"
    _AT = "SELECT at FROM facts WHERE id = ?"
    _FACTS = (
        "SELECT agent_id, kind, json_extract(payload, '$.id') FROM facts WHERE id > ? AND id <= ? "
        f"AND kind IN ({', '.join(repr(k) for k in MEMORY_FACTS)}) ORDER BY id"
    )

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        self._conn.execute("PRAGMA query_only = ON")
        self._conn.execute(f"PRAGMA mmap_size = {_MMAP_BYTES}")
        self._conn.execute(f"PRAGMA cache_size = -{_CACHE_KIB}")
        self._lock = threading.Lock()
        self._statements: dict[int, str] = {}  # by number of ids: built once (style rule 14)
        self._version = self.data_version()  # the first read maps this connection to the -shm
        wal = self._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        self._shm = _map_wal_index(path + "-shm") if wal else None
        self._header = self._shm[:_WAL_HEADER_BYTES] if self._shm is not None else b""

    def changed(self) -> bool:
        """Whether another connection (of any process) committed since the last call.

        The WAL-index header is read before ``data_version``: a commit that lands between
        them moves the header again, so it is seen by the next call.
        """
        if self._shm is not None:
            header = self._shm[:_WAL_HEADER_BYTES]
            if header == self._header:
                return False
            self._header = header
        version = self.data_version()
        if version == self._version:
            return False
        self._version = version
        return True

    def data_version(self) -> int:
        """Changes whenever another connection (of any process) committed since the last call."""
        with self._lock:
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def newest_fact(self) -> FactMark | None:
        with self._lock:
            row = self._conn.execute(self._NEWEST).fetchone()
        return FactMark(int(row[0]), float(row[1])) if row else None

    def still_there(self, mark: FactMark) -> bool:
        """Whether the fact at ``mark`` is still the one seen (the retention job may have pruned it)."""
        with self._lock:
            row = self._conn.execute(self._AT, (mark.id,)).fetchone()
        return row is not None and float(row[0]) == mark.at

    def memory_facts(self, after: int, upto: int) -> list[MemoryFact]:
        """The memory facts with ``after < id <= upto``, oldest first."""
        with self._lock:
            rows = self._conn.execute(self._FACTS, (after, upto)).fetchall()
        return [MemoryFact(agent, kind, str(memory_id)) for agent, kind, memory_id in rows if memory_id]

    def rows(self, ids: Iterable[str]) -> list[tuple]:
        """Memory rows by id, each ``(id, agent_id, *ROW_COLUMNS, embedding)``; missing ids left out.

        By primary key alone: with ``agent_id`` in the WHERE clause SQLite walks the agent's
        index instead (the caller checks the agent).
        """
        wanted = list(ids)
        out: list[tuple] = []
        for start in range(0, len(wanted), _IDS_PER_STATEMENT):
            chunk = wanted[start : start + _IDS_PER_STATEMENT]
            with self._lock:
                out += self._conn.execute(self._statement(len(chunk)), chunk).fetchall()
        return out

    @contextlib.contextmanager
    def agent_rows(self, agent_id: str, batch: int) -> Iterator[Iterator[list[tuple]]]:
        """Every memory row of the agent, as :meth:`rows` gives them, ``batch`` at a time, from one
        read snapshot; the connection is the caller's until the block ends (do not await in it)."""
        with self._lock:
            cursor = self._conn.execute(self._AGENT, (agent_id,))
            try:
                yield iter(lambda: cursor.fetchmany(batch), [])
            finally:
                cursor.close()

    def _statement(self, count: int) -> str:
        sql = self._statements.get(count)
        if sql is None:
            sql = self._statements[count] = self._ROWS.format(cols=_COLUMN_LIST, marks=", ".join("?" * count))
        return sql

    def close(self) -> None:
        with self._lock:
            if self._shm is not None:
                self._shm.close()
                self._shm = None
            self._conn.close()


def _map_wal_index(path: str) -> mmap.mmap | None:
    """The WAL-index file mapped read-only, or None when it is not one this module can read.

    The mapping stays valid while the reader's connection is open: SQLite truncates or
    deletes the file only when no connection has it open.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        if os.fstat(fd).st_size < _SHM_MIN_BYTES:
            return None
        shm = mmap.mmap(fd, _SHM_MIN_BYTES, access=mmap.ACCESS_READ)
    finally:
        os.close(fd)
    if struct.unpack_from("=I", shm, 0)[0] != _WAL_INDEX_VERSION:
        shm.close()
        return None
    return shm
