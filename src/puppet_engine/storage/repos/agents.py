"""The agents table: registered agents, their secret-free config, enabled flag and version."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from puppet_engine.storage.database import Database
from puppet_engine.storage.sql import insert_ignoring_conflicts
from puppet_engine.storage.tables import agents


async def disabled_among(db: Database, agent_ids: Iterable[str]) -> set[str]:
    """Which of these agents are registered and disabled."""
    async with db.connect() as conn:
        return {r.id for r in await conn.execute(
            sa.select(agents.c.id).where(agents.c.id.in_(list(agent_ids)), agents.c.enabled.is_(False)))}


async def save_config(db: Database, agent_id: str, config: dict[str, Any], now: float) -> bool:
    """Register the agent with ``config``, or store ``config`` as its next version when it
    changed; returns whether the agent is enabled (a new one is)."""
    async with db.transaction() as conn:
        row = (await conn.execute(sa.select(agents.c.enabled, agents.c.version, agents.c.config)
                                  .where(agents.c.id == agent_id))).first()
        if row is None:
            await conn.execute(agents.insert().values(id=agent_id, config=config, state={}, enabled=True,
                                                      version=1, created_at=now, updated_at=now))
            return True
        if row.config != config:
            await conn.execute(agents.update().where(agents.c.id == agent_id)
                               .values(config=config, version=row.version + 1, updated_at=now))
        return bool(row.enabled)


async def save_configs(db: Database, configs: list[tuple[str, dict[str, Any]]], now: float,
                       chunk: int = 500) -> dict[str, bool]:
    """:func:`save_config` for many agents, a few statements per ``chunk`` (10,000 agents start
    fast); agent id → enabled."""
    enabled: dict[str, bool] = {}
    for start in range(0, len(configs), chunk):
        part = configs[start:start + chunk]
        async with db.transaction() as conn:
            rows = {r.id: r for r in await conn.execute(
                sa.select(agents.c.id, agents.c.enabled, agents.c.version, agents.c.config)
                .where(agents.c.id.in_([agent_id for agent_id, _ in part])))}
            fresh = []
            for agent_id, config in part:
                row = rows.get(agent_id)
                if row is None:
                    fresh.append({"id": agent_id, "config": config, "state": {}, "enabled": True, "version": 1,
                                  "created_at": now, "updated_at": now})
                    enabled[agent_id] = True
                    continue
                if row.config != config:
                    await conn.execute(agents.update().where(agents.c.id == agent_id)
                                       .values(config=config, version=row.version + 1, updated_at=now))
                enabled[agent_id] = bool(row.enabled)
            if fresh:  # another process may be starting the same agents: first one wins
                await conn.execute(insert_ignoring_conflicts(conn, agents), fresh)
    return enabled


async def set_enabled(db: Database, agent_id: str, enabled: bool, now: float) -> None:
    """Enable or disable the agent (a disabled one is not started)."""
    async with db.transaction() as conn:
        await conn.execute(agents.update().where(agents.c.id == agent_id).values(enabled=enabled, updated_at=now))


async def ids(db: Database) -> list[str]:
    """Every registered agent's id."""
    async with db.connect() as conn:
        return [r[0] for r in await conn.execute(sa.select(agents.c.id))]
