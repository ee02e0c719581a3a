"""Agent leases: which engine process owns which agent, until when.

Several ``puppet-engine run`` processes on one PostgreSQL share the agents. Each
process heartbeats in ``engine_nodes`` and holds a lease per agent it owns, renewed
well before it expires (every third of the TTL). A process takes up to its fair share
(agents ÷ live processes, rounded up) of agents that are unowned or whose lease
expired — so the agents of a process that died are taken over once its leases lapse,
and agents rebalance when a process joins (the others hand back their surplus) or
leaves. PostgreSQL is the coordinator: every change is a conditional UPDATE/INSERT,
never a home-made consensus.

Handing an agent back is a drain: the agent leaves :attr:`LeaseManager.owned` at once
(nothing new starts for it here), and its lease row is deleted only once nothing of it
is in flight in this process (``busy``). The process that takes it over can therefore
requeue the agent's running events and reconcile its actions left in ``sending``: they
can only belong to a process that died.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from puppet_engine.clock import Clock
from puppet_engine.storage.database import Database
from puppet_engine.storage.tables import engine_nodes, leases


@dataclass
class LeaseChanges:
    """What one :meth:`LeaseManager.balance` round changed for this process."""

    gained: set[str] = field(default_factory=set)  # now ours: recover, then run
    lost: set[str] = field(default_factory=set)  # no longer ours (handed back or taken)
    taken_over: set[str] = field(default_factory=set)  # of ``gained``: from an expired lease
    nodes: int = 1  # live processes seen


class LeaseManager:
    """This process's leases: fair share, renewal, drain before hand-back, takeover of the dead."""

    def __init__(self, db: Database, clock: Clock, owner: str, *, ttl: float = 30.0) -> None:
        self.db = db
        self.clock = clock
        self.owner = owner
        self.ttl = ttl
        self.owned: set[str] = set()  # agents this process works for
        self.draining: set[str] = set()  # leased, being handed back once idle

    async def heartbeat(self, conn: AsyncConnection) -> int:
        """Record that this process is alive; returns how many processes are."""
        now = self.clock.now()
        updated = await conn.execute(engine_nodes.update().where(engine_nodes.c.id == self.owner)
                                     .values(heartbeat_at=now))
        if not updated.rowcount:
            await conn.execute(engine_nodes.insert().values(id=self.owner, started_at=now, heartbeat_at=now))
        await conn.execute(engine_nodes.delete().where(engine_nodes.c.heartbeat_at < now - 10 * self.ttl))
        alive = await conn.execute(sa.select(sa.func.count()).select_from(engine_nodes)
                                   .where(engine_nodes.c.heartbeat_at >= now - self.ttl))
        return max(1, int(alive.scalar() or 1))

    async def balance(self, agent_ids: Iterable[str], busy: Collection[str] = ()) -> LeaseChanges:
        """Renew what we hold, hand back surplus (once idle), take free or expired agents up to our share.

        ``busy``: agents with work in flight here; they are drained, not released, this round.
        """
        wanted = sorted(set(agent_ids))
        wanted_set = set(wanted)
        now = self.clock.now()
        expires = now + self.ttl
        changes = LeaseChanges()
        async with self.db.transaction() as conn:
            nodes = changes.nodes = await self.heartbeat(conn)
            share = math.ceil(len(wanted) / nodes) if wanted else 0
            await conn.execute(leases.update().where(leases.c.owner == self.owner).values(expires_at=expires))
            rows = (await conn.execute(sa.select(leases.c.agent_id, leases.c.owner, leases.c.expires_at))).fetchall()
            mine = {r.agent_id for r in rows if r.owner == self.owner}
            draining = (self.draining & mine) | (mine - wanted_set)
            active = sorted(mine - draining)
            while len(active) > share:  # surplus: let a newcomer have it
                draining.add(active.pop())
            while len(active) < share and draining & wanted_set:  # still ours: take it back first
                back = min(draining & wanted_set)
                draining.discard(back)
                active.append(back)
            release = sorted(a for a in draining if a not in busy)
            if release:
                await conn.execute(leases.delete().where(leases.c.owner == self.owner,
                                                         leases.c.agent_id.in_(release)))
                draining.difference_update(release)
            taken = {r.agent_id for r in rows if r.expires_at >= now and r.owner != self.owner}
            expired = {r.agent_id for r in rows if r.expires_at < now and r.owner != self.owner}
            for agent_id in wanted:
                if len(active) >= share:
                    break
                if agent_id in mine or agent_id in taken:
                    continue
                if agent_id in expired:
                    got = bool((await conn.execute(leases.update().where(
                        leases.c.agent_id == agent_id, leases.c.expires_at < now
                    ).values(owner=self.owner, expires_at=expires, acquired_at=now))).rowcount)
                    if got:
                        changes.taken_over.add(agent_id)
                else:
                    got = await _insert_if_absent(conn, agent_id, self.owner, expires, now)
                if got:
                    active.append(agent_id)
        now_owned = set(active)
        changes.gained = now_owned - self.owned
        changes.lost = self.owned - now_owned
        self.owned = now_owned
        self.draining = draining
        return changes

    async def release_all(self) -> None:
        """Hand every agent back at once (clean shutdown, after in-flight work finished)."""
        async with self.db.transaction() as conn:
            await conn.execute(leases.delete().where(leases.c.owner == self.owner))
            await conn.execute(engine_nodes.delete().where(engine_nodes.c.id == self.owner))
        self.owned = set()
        self.draining = set()


async def _insert_if_absent(conn: AsyncConnection, agent_id: str, owner: str, expires: float, now: float) -> bool:
    from sqlalchemy.dialects import postgresql, sqlite

    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    res = await conn.execute(insert(leases).values(agent_id=agent_id, owner=owner, expires_at=expires,
                                                            acquired_at=now)
                             .on_conflict_do_nothing(index_elements=["agent_id"]))
    return bool(res.rowcount)
