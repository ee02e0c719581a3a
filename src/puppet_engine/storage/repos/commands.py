"""The ``commands`` table: operator actions recorded by any process, applied by the agent's owner.

A command goes ``pending → applying → applied | failed``. :func:`claim` (``pending → applying``)
writes the agent's desired state (``agents.enabled``, ``agents.config``) in the same
transaction, so one process applies it whichever receives it, and a later owner of the agent
(after a lease move or a crash) reads the operator's intent from the ``agents`` row. A command
left ``applying`` by a process that died is claimed again after :data:`STALE_SECONDS` (what the
dead process applied died with it).

On PostgreSQL, recording a command (and applying one) sends ``NOTIFY`` on :data:`CHANNEL` in
the same transaction, so listening processes wake at commit. ``restart_all`` is not claimed:
every worker records what it did in ``command_results`` (:func:`record_result`) and the
command is ``applied`` once every live worker has (:func:`finish`).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from puppet_engine.storage.database import Database
from puppet_engine.storage.repos import facts
from puppet_engine.storage.tables import agents, command_results, commands, leases

KINDS = ("start", "stop", "restart", "config", "restart_all")
STALE_SECONDS = 120.0  # an ``applying`` command this old was left by a dead process
OPEN = ("pending", "applying")  # not decided yet
CHANNEL = "puppet_commands"  # NOTIFY channel: a command was recorded or applied (payload: its id)
FILE_REQUESTER = "file "  # requested_by of a config recorded from an edited agent file: "file <path>"
_ENABLES = {"start": True, "restart": True, "stop": False}  # what each kind makes of agents.enabled


async def create(db: Database, kind: str, agent_id: str | None, payload: dict[str, Any],
                 requested_by: str | None, now: float) -> int:
    """Record a pending command; its id."""
    if kind not in KINDS:
        raise ValueError(f"command kind {kind!r} is not one of {', '.join(KINDS)}")
    async with db.transaction() as conn:
        result = await conn.execute(commands.insert().values(
            agent_id=agent_id, kind=kind, payload=payload, requested_by=requested_by, created_at=now,
            state="pending"))
        key = result.inserted_primary_key
        assert key is not None
        await notify(conn, int(key[0]))
        return int(key[0])


async def notify(conn: Any, command_id: int) -> None:
    """Inside a transaction that records or decides a command: wake the listening processes at commit (PostgreSQL; SQLite processes poll)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.text("SELECT pg_notify(:channel, :payload)"),
                           {"channel": CHANNEL, "payload": str(command_id)})


async def get(db: Database, command_id: int) -> dict[str, Any] | None:
    """The command as a plain dict, or ``None``."""
    async with db.connect() as conn:
        row = (await conn.execute(sa.select(commands).where(commands.c.id == command_id))).mappings().first()
    return dict(row) if row is not None else None


async def pending(db: Database, limit: int = 200) -> list[dict[str, Any]]:
    """Commands not decided yet (pending, applying), oldest first."""
    async with db.connect() as conn:
        rows = await conn.execute(sa.select(commands).where(commands.c.state.in_(OPEN))
                                  .order_by(commands.c.id).limit(limit))
        return [dict(r) for r in rows.mappings()]


async def after(db: Database, command_id: int, limit: int = 500) -> list[dict[str, Any]]:
    """Commands with an id above ``command_id``, in order (how other processes follow the owner)."""
    async with db.connect() as conn:
        rows = await conn.execute(sa.select(commands).where(commands.c.id > command_id)
                                  .order_by(commands.c.id).limit(limit))
        return [dict(r) for r in rows.mappings()]


async def newest_id(db: Database) -> int:
    async with db.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.max(commands.c.id)))).scalar() or 0)


async def lease_holder(db: Database, agent_id: str, now: float) -> str | None:
    """The process holding a live lease on the agent, if any."""
    async with db.connect() as conn:
        return (await conn.execute(sa.select(leases.c.owner).where(
            leases.c.agent_id == agent_id, leases.c.expires_at >= now))).scalar()


async def claim(db: Database, command: dict[str, Any], node: str, now: float) -> bool:
    """``pending → applying`` by ``node`` with the agent's desired state, in one transaction
    (also a stale ``applying``); ``False`` when another process got there first."""
    open_ = sa.or_(commands.c.state == "pending",
                   sa.and_(commands.c.state == "applying", commands.c.applied_at < now - STALE_SECONDS))
    async with db.transaction() as conn:
        done = await conn.execute(commands.update().where(commands.c.id == command["id"], open_)
                                  .values(state="applying", applied_at=now, applied_by=node))
        if not done.rowcount:
            return False
        agent_id, kind = command["agent_id"], command["kind"]
        by = command.get("requested_by") or "api"
        if agent_id is not None and kind in _ENABLES:
            enabled = _ENABLES[kind]
            changed = await conn.execute(agents.update().where(agents.c.id == agent_id,
                                                               agents.c.enabled.isnot(enabled))
                                         .values(enabled=enabled, updated_at=now))
            if kind == "restart":
                await facts.insert(conn, [facts.fact(agent_id, "lifecycle", {"status": "restarted", "by": by}, now)])
            elif changed.rowcount:
                await facts.insert(conn, [facts.lifecycle_fact(agent_id, enabled, now, by=by)])
        elif agent_id is not None and kind == "config":
            await _save_config(conn, agent_id, command["payload"], now, by)
        return True


async def complete(db: Database, command_id: int, node: str, now: float) -> None:
    """``applying → applied``: ``node`` carried the command out."""
    async with db.transaction() as conn:
        await conn.execute(commands.update().where(commands.c.id == command_id, commands.c.state == "applying",
                                                   commands.c.applied_by == node)
                           .values(state="applied", applied_at=now))
        await notify(conn, command_id)


async def fail(db: Database, command_id: int, reason: str, now: float,
               restore: tuple[str, dict[str, Any]] | None = None) -> None:
    """The command could not be applied: ``failed`` with ``reason``; ``restore`` puts an agent's
    previous config back, under its previous version (a refused config changes nothing)."""
    async with db.transaction() as conn:
        await conn.execute(commands.update().where(commands.c.id == command_id)
                           .values(state="failed", reason=reason[:2000], applied_at=now))
        if restore is None:
            return
        agent_id, config = restore
        row = (await conn.execute(sa.select(agents.c.version, agents.c.config)
                                  .where(agents.c.id == agent_id))).first()
        if row is not None and row.config != config:  # undo the claim's version step
            await conn.execute(agents.update().where(agents.c.id == agent_id)
                               .values(config=config, version=max(1, row.version - 1), updated_at=now))
            await facts.insert(conn, [facts.config_fact(agent_id, max(1, row.version - 1), now, "restored")])


async def _save_config(conn: Any, agent_id: str, config: dict[str, Any], now: float, by: str) -> None:
    row = (await conn.execute(sa.select(agents.c.version, agents.c.config).where(agents.c.id == agent_id))).first()
    if row is not None and row.config != config:
        source = "file" if (by or "").startswith(FILE_REQUESTER) else "api"  # an edited agent file, or the API
        await conn.execute(agents.update().where(agents.c.id == agent_id)
                           .values(config=config, version=row.version + 1, updated_at=now, config_source=source,
                                   config_changed_by=by, config_changed_at=now))
        await facts.insert(conn, [facts.config_fact(agent_id, row.version + 1, now, source, by)])


async def record_result(db: Database, command_id: int, node: str, now: float, result: dict[str, Any]) -> bool:
    """``node`` did its part of an every-worker command (restart_all); ``False`` when it already had."""
    async with db.transaction() as conn:
        seen = (await conn.execute(sa.select(command_results.c.node).where(
            command_results.c.command_id == command_id, command_results.c.node == node))).first()
        if seen is not None:
            return False
        await conn.execute(command_results.insert().values(command_id=command_id, node=node, applied_at=now,
                                                           result=result))
        return True


async def results_of(db: Database, command_id: int) -> list[dict[str, Any]]:
    """What each node did for the command, in the order they did it."""
    async with db.connect() as conn:
        rows = await conn.execute(sa.select(command_results).where(command_results.c.command_id == command_id)
                                  .order_by(command_results.c.applied_at, command_results.c.node))
        return [{"node": r.node, "applied_at": r.applied_at, **(r.result or {})} for r in rows]


async def finish(db: Database, command_id: int, node: str, workers: set[str], now: float) -> bool:
    """Mark an every-worker command ``applied`` once each of ``workers`` (the live ones that were
    up when it was sent) recorded its part; whether it is now decided."""
    async with db.transaction() as conn:
        done = set((await conn.execute(sa.select(command_results.c.node)
                                        .where(command_results.c.command_id == command_id))).scalars())
        if not workers <= done:
            return False
        changed = await conn.execute(commands.update().where(commands.c.id == command_id,
                                                             commands.c.state.in_(OPEN))
                                     .values(state="applied", applied_at=now, applied_by=node))
        if changed.rowcount:
            await notify(conn, command_id)
        return True
