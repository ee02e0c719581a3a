"""Failed API authentications per client address, counted in the database.

Every API process on one database reads and writes the same ``auth_failures`` rows, so
a client guessing keys cannot multiply its allowance by the number of processes behind
a load balancer. The count runs in fixed windows: the first failure of a window starts
it, each further one adds to it, and one statement (an upsert) does both, so two
processes counting at once never lose a failure.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from puppet_engine.storage.database import Database
from puppet_engine.storage.tables import auth_failures

SOURCE_MAX = 128  # the column's width: longer client ids are cut (an IPv6 address is 45 characters)


@dataclass(frozen=True)
class FailureCount:
    """A source's failures in its current window, and when that window ends."""

    failures: int
    window_end: float


async def record_auth_failure(db: Database, source: str, *, now: float, window: float,
                              max_failures: int) -> FailureCount:
    """Count one failed authentication from ``source``; returns its count in the current window.

    A window older than ``window`` seconds starts again at 1. ``locked_until`` is set to
    the window's end once the count reaches ``max_failures``. Rows of windows long past
    are deleted on the way, so the table holds only the sources seen recently.
    """
    source = source[:SOURCE_MAX]
    table = auth_failures.c
    expired = table.window_start <= now - window
    failures = sa.case((expired, 1), else_=table.failures + 1)
    start = sa.case((expired, now), else_=table.window_start)
    locked = sa.case((failures >= max_failures, start + window), else_=0.0)
    async with db.transaction() as conn:
        insert = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(auth_failures)
        statement = insert.values(
            source=source, failures=1, window_start=now,
            locked_until=now + window if max_failures <= 1 else 0.0,
        ).on_conflict_do_update(
            index_elements=[table.source],
            set_={"failures": failures, "window_start": start, "locked_until": locked},
        ).returning(auth_failures.c.failures, auth_failures.c.window_start)
        row = (await conn.execute(statement)).one()
        await conn.execute(auth_failures.delete().where(table.window_start <= now - 2 * window,
                                                        table.locked_until <= now))
    return FailureCount(int(row.failures), float(row.window_start) + window)


async def auth_failures_of(db: Database, source: str, *, now: float, window: float) -> int:
    """``source``'s failures in its current window (0 once the window has passed)."""
    async with db.connect() as conn:
        row = (await conn.execute(sa.select(auth_failures.c.failures, auth_failures.c.window_start)
                                  .where(auth_failures.c.source == source[:SOURCE_MAX]))).first()
    if row is None or row.window_start <= now - window:
        return 0
    return int(row.failures)
