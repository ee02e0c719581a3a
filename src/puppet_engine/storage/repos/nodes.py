"""The ``nodes`` table: every ``puppet-engine run`` process, its role and its heartbeat.

A node writes its row at start and on every runtime-loop round (:func:`beat`); a node not
seen for :data:`STALE_SECONDS` is ``gone`` (it died, or lost the database), one that stopped
cleanly is ``stopped``. Rows of nodes gone for a day are pruned. Which node owns an agent is
the ``leases`` table's word (:func:`lease_owners`), one query for any number of agents.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from puppet_engine.storage.database import Database
from puppet_engine.storage.tables import leases, nodes

ROLES = ("all", "worker", "api")
RUNS_AGENTS = ("all", "worker")  # the roles that own agents and apply their commands
STALE_SECONDS = 10.0  # unseen this long: gone (the heartbeat comes every 2 s)
PRUNE_SECONDS = 86_400.0  # rows of nodes gone this long are deleted


@dataclass(frozen=True)
class NodeInfo:
    """What a node says about itself."""

    id: str
    role: str
    host: str
    pid: int
    version: str
    started_at: float


async def beat(db: Database, node: NodeInfo, now: float) -> None:
    """Insert or refresh the node's row (``last_seen = now``); prune long-gone nodes."""
    async with db.transaction() as conn:
        done = await conn.execute(nodes.update().where(nodes.c.id == node.id)
                                  .values(last_seen=now, stopped_at=None, role=node.role))
        if not done.rowcount:
            await conn.execute(nodes.insert().values(
                id=node.id, role=node.role, host=node.host[:255], pid=node.pid, version=node.version[:64],
                started_at=node.started_at, last_seen=now))
        await conn.execute(nodes.delete().where(nodes.c.last_seen < now - PRUNE_SECONDS))


async def stopped(db: Database, node_id: str, now: float) -> None:
    """The node stopped cleanly."""
    async with db.transaction() as conn:
        await conn.execute(nodes.update().where(nodes.c.id == node_id).values(stopped_at=now, last_seen=now))


def _status(row: Any, now: float) -> str:
    if row.stopped_at is not None:
        return "stopped"
    return "gone" if row.last_seen < now - STALE_SECONDS else "live"


async def listing(db: Database, now: float) -> list[dict[str, Any]]:
    """Every node, live ones first, with its status and how many agents it holds a live lease on."""
    held = (sa.select(leases.c.owner, sa.func.count().label("agents"))
            .where(leases.c.expires_at >= now).group_by(leases.c.owner).subquery())
    query = (sa.select(nodes, sa.func.coalesce(held.c.agents, 0).label("agents"))
             .select_from(nodes.outerjoin(held, held.c.owner == nodes.c.id)).order_by(nodes.c.started_at))
    async with db.connect() as conn:
        rows = (await conn.execute(query)).fetchall()
    out = [{"id": r.id, "role": r.role, "host": r.host, "pid": r.pid, "version": r.version,
            "started_at": r.started_at, "last_seen": r.last_seen, "stopped_at": r.stopped_at,
            "status": _status(r, now), "agents": int(r.agents)} for r in rows]
    out.sort(key=lambda n: (n["status"] != "live", -n["started_at"] if n["status"] != "live" else n["started_at"]))
    return out


async def live_workers(db: Database, now: float, started_by: float | None = None) -> set[str]:
    """Nodes that run agents and are alive (started no later than ``started_by``, when given)."""
    query = sa.select(nodes.c.id).where(nodes.c.role.in_(RUNS_AGENTS), nodes.c.stopped_at.is_(None),
                                        nodes.c.last_seen >= now - STALE_SECONDS)
    if started_by is not None:
        query = query.where(nodes.c.started_at <= started_by)
    async with db.connect() as conn:
        return set((await conn.execute(query)).scalars())


async def lease_owners(db: Database, agent_ids: Sequence[str], now: float) -> dict[str, tuple[str, float | None]]:
    """Agent id → (node holding a live lease, since when), in one query."""
    if not agent_ids:
        return {}
    query = sa.select(leases.c.agent_id, leases.c.owner, leases.c.acquired_at).where(leases.c.expires_at >= now)
    if len(agent_ids) <= 500:  # a page of the list; beyond that, read them all (still one query)
        query = query.where(leases.c.agent_id.in_(list(agent_ids)))
    async with db.connect() as conn:
        rows = (await conn.execute(query)).fetchall()
    wanted = set(agent_ids)
    return {r.agent_id: (r.owner, r.acquired_at) for r in rows if r.agent_id in wanted}
