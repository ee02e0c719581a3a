"""The asyncpg connections ``PostgresStore`` searches on: a few, an idle one taken without waiting.

asyncpg's own pool does more per search than a search needs (a holder, a proxy,
a future, and a task to shield each release): about 0.03 ms, a tenth of a whole
search at 10,000 memories. Searches open no transactions and leave nothing to
reset, so the connections a store needs are simpler: at most ``size`` open, the
idle ones in a list, the one used last taken first (its backend is the warmest).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


class SearchConnections:
    """Up to ``size`` asyncpg connections to ``dsn``, each prepared by ``init`` when it opens.

    :meth:`take` returns an idle connection at once, opens one while fewer than
    ``size`` are open, and otherwise waits for one to come back through
    :meth:`give_back`. A connection that closed (the server went away) or whose
    search failed is dropped; the next :meth:`take` opens another.
    """

    def __init__(self, dsn: str, size: int, init: Callable[[Any], Awaitable[None]]) -> None:
        if size < 1:
            raise ValueError(f"a search needs at least one connection; got size {size}")
        self._dsn = dsn
        self._init = init
        self._slots = asyncio.Semaphore(size)
        self._idle: list[Any] = []
        self._closed = False

    @property
    def idle(self) -> int:
        """How many open connections wait for a search."""
        return len(self._idle)

    async def take(self) -> Any:
        """A connection for one search; hand it back with :meth:`give_back`, whatever happens."""
        if self._closed:
            raise RuntimeError("the search connections are closed")
        await self._slots.acquire()
        try:
            while self._idle:
                conn = self._idle.pop()
                if not conn.is_closed():  # else the server closed it while it waited
                    return conn
            return await self._open()
        except BaseException:
            self._slots.release()
            raise

    def give_back(self, conn: Any, *, reusable: bool = True) -> None:
        """Return ``conn`` for the next search; ``reusable`` False (its search failed): close it.

        A failed search may have left its connection anywhere (the server gone, a protocol
        state asyncpg did not expect); a new connection costs less than finding out.
        """
        self._slots.release()
        if conn.is_closed():
            return
        if self._closed or not reusable:
            conn.terminate()
            return
        self._idle.append(conn)

    async def close(self) -> None:
        """Close the idle connections now; one still out is closed when it comes back."""
        self._closed = True
        idle, self._idle = self._idle, []
        await asyncio.gather(*(conn.close() for conn in idle), return_exceptions=True)

    async def _open(self) -> Any:
        import asyncpg

        conn = await asyncpg.connect(self._dsn)
        try:
            await self._init(conn)
        except BaseException:
            conn.terminate()
            raise
        return conn
