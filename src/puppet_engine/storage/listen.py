"""PostgreSQL LISTEN on a dedicated asyncpg connection, reconnecting when it is lost.

Used to wake a process at once when another one records something for it (an operator
command): ``NOTIFY`` is sent in the recording transaction, so it arrives at commit. The
wake-up is a hint, never the only path: a process keeps polling, and after a reconnection
(notifications sent meanwhile are lost) it is woken once to catch up.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import structlog
from sqlalchemy.engine import make_url

from puppet_engine.tasks import cancel_and_wait

log = structlog.get_logger("puppet_engine.storage.listen")
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)  # reconnection back-off, the last repeated


def asyncpg_dsn(url: str) -> str:
    """The plain ``postgresql://`` DSN asyncpg takes, from any of our PostgreSQL URL forms."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


class PgListener:
    """``LISTEN channel`` for as long as :meth:`start`…:meth:`stop`; ``on_notify(payload)`` for each
    notification, and ``on_notify(None)`` after every (re)connection."""

    def __init__(self, url: str, channel: str, on_notify: Callable[[str | None], None]) -> None:
        self.dsn = asyncpg_dsn(url)
        self.channel = channel
        self.on_notify = on_notify
        self.connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"listen:{self.channel}")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)  # its waits are wait_for's, which may swallow one cancel
        self._task = None

    async def _run(self) -> None:
        import asyncpg  # the postgres extra; this class is only built on PostgreSQL

        failures = 0
        while True:
            lost = asyncio.Event()
            conn: Any = None
            try:
                conn = await asyncpg.connect(self.dsn, timeout=10)
                conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
                await conn.add_listener(self.channel, self._notified)
                failures = 0
                self.connected.set()
                log.debug("listening", channel=self.channel)
                self.on_notify(None)  # catch up on what was recorded while we were not listening
                while not lost.is_set():  # a dropped socket is not always reported: check now and then
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), timeout=15)
                    if not lost.is_set():
                        await asyncio.wait_for(conn.execute("SELECT 1"), timeout=10)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: poll meanwhile, reconnect
                failures += 1
                log.warning("listen_connection_lost", channel=self.channel, error=f"{type(exc).__name__}: {exc}"
                            .replace(self.dsn, "***"), retry_in_seconds=RETRY_SECONDS[min(failures, 4) - 1])
            finally:
                self.connected.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(conn.close(), timeout=2)
            await asyncio.sleep(RETRY_SECONDS[min(max(failures, 1), len(RETRY_SECONDS)) - 1])

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        self.on_notify(payload)
