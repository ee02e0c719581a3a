"""LISTEN/NOTIFY wakes the owner of an agent when another node records a command for it, and the
listening connection comes back after PostgreSQL drops it.

Two engines with leases on one PostgreSQL in this loop (as in test_operator_commands.py). The
owner's listening connection is terminated by the server (``pg_terminate_backend``): it
reconnects on a new backend and commands sent to the other node keep being applied well
inside the 2 s polling cycle.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AsyncExitStack

import pytest
import sqlalchemy as sa
from test_operator_commands import CONTROL, _applied, _node

from puppet_engine.storage import Database
from puppet_engine.storage.repos.commands import CHANNEL

pytestmark = pytest.mark.postgres

LISTENERS = sa.text("SELECT pid FROM pg_stat_activity WHERE query = :q AND datname = current_database()")


async def _listening_pids(db: Database) -> set[int]:
    async with db.connect() as conn:
        return set((await conn.execute(LISTENERS, {"q": f'LISTEN "{CHANNEL}"'})).scalars())


async def test_the_owner_is_woken_and_listens_again_after_the_connection_is_lost(pg_url: str) -> None:
    async with AsyncExitStack() as stack:
        a = await stack.enter_async_context(_node(pg_url, "wake-a"))
        b = await stack.enter_async_context(_node(pg_url, "wake-b"))
        await a.engine.rebalance()
        await b.engine.rebalance()
        agent = sorted(a.engine.leases.owned)[0]  # type: ignore[union-attr]
        assert a.engine.listener is not None and b.engine.listener is not None
        await asyncio.wait_for(a.engine.listener.connected.wait(), 10)
        before = await _listening_pids(a.engine.db)
        assert len(before) == 2, before  # one dedicated connection per node

        async def round_trip(kind: str) -> float:
            sent = time.monotonic()
            answer = await b.post(f"/agents/{agent}/{kind}", key=CONTROL)
            command = await _applied(b, answer.json()["command_id"])
            assert command["applied_by"] == "wake-a", command
            return time.monotonic() - sent

        woken = [await round_trip(kind) for kind in ("stop", "start", "stop", "start")]
        assert max(woken) < 0.8, woken  # polling alone waits up to 2 s

        async with a.engine.db.connect() as conn:  # the server drops every listening connection
            await conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                       "WHERE query = :q AND datname = current_database()"),
                               {"q": f'LISTEN "{CHANNEL}"'})
        deadline = time.monotonic() + 15
        while True:
            after = await _listening_pids(a.engine.db)
            if len(after) == 2 and not after & before:
                break
            assert time.monotonic() < deadline, f"listeners not back: before {before}, now {after}"
            await asyncio.sleep(0.1)
        assert a.engine.listener.connected.is_set()
        again = [await round_trip(kind) for kind in ("stop", "start", "stop", "start")]
        assert max(again) < 0.8, again
