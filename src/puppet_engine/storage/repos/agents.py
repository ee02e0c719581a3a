"""The agents table: registered agents, their secret-free config, enabled flag and version."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from puppet_engine.storage.database import Database
from puppet_engine.storage.repos import facts
from puppet_engine.storage.skips import SkipCount, recent_post_skips
from puppet_engine.storage.sql import fixed_in, insert_ignoring_conflicts
from puppet_engine.storage.tables import actions, agents, events, relationships

SENT_POST_KINDS = ("post", "thread")  # what the overview counts as the agent's posts


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
            await facts.insert(conn, registered(agent_id, now))
            return True
        if row.config != config:
            await conn.execute(agents.update().where(agents.c.id == agent_id)
                               .values(config=config, version=row.version + 1, updated_at=now))
            await facts.insert(conn, [config_fact(agent_id, row.version + 1, now)])
        return bool(row.enabled)


def registered(agent_id: str, now: float) -> list[dict[str, Any]]:
    """The facts of a new agent: registered, first config version (from its file)."""
    return [facts.fact(agent_id, "lifecycle", {"status": "registered", "by": None}, now),
            config_fact(agent_id, 1, now)]


def config_fact(agent_id: str, version: int, now: float, source: str = "file", by: str | None = None
                ) -> dict[str, Any]:
    """A config version's fact: from the agent's file, from the API (``by``: who asked), or restored."""
    return facts.fact(agent_id, "config", {"version": version, "source": source, "by": by}, now)


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
            fresh, changes = [], []
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
                    changes.append(config_fact(agent_id, row.version + 1, now))
                enabled[agent_id] = bool(row.enabled)
            if fresh:  # another process may be starting the same agents: first one wins
                added = await conn.execute(insert_ignoring_conflicts(conn, agents).returning(agents.c.id), fresh)
                changes += [f for (agent_id,) in added for f in registered(agent_id, now)]
            await facts.insert(conn, changes)
    return enabled


async def set_enabled(db: Database, agent_id: str, enabled: bool, now: float) -> None:
    """Enable or disable the agent (a disabled one is not started)."""
    async with db.transaction() as conn:
        changed = await conn.execute(agents.update().where(agents.c.id == agent_id, agents.c.enabled.isnot(enabled))
                                     .values(enabled=enabled, updated_at=now))
        if changed.rowcount:
            await facts.insert(conn, [lifecycle_fact(agent_id, enabled, now)])


def lifecycle_fact(agent_id: str, running: bool, now: float, by: str | None = None) -> dict[str, Any]:
    """The fact of an agent started or stopped (``by``: who asked, when someone did)."""
    return facts.fact(agent_id, "lifecycle", {"status": "started" if running else "stopped", "by": by}, now)


async def ids(db: Database) -> list[str]:
    """Every registered agent's id."""
    async with db.connect() as conn:
        return [r[0] for r in await conn.execute(sa.select(agents.c.id))]


@dataclass(frozen=True)
class AgentOverview:
    """What a list of agents shows of each: stored state, posts sent, next post, skipped posts."""

    state: dict[str, Any]
    posts: int
    next_post_due: float | None  # the pending ``post.due`` event, if any
    skips: SkipCount | None


_POSTS = (sa.select(sa.func.count()).select_from(actions)
          .where(actions.c.agent_id == agents.c.id, fixed_in(actions.c.kind, SENT_POST_KINDS),
                 actions.c.status == "done")
          .scalar_subquery())
_NEXT_POST = (sa.select(sa.func.min(events.c.due_at))
              .where(events.c.agent_id == agents.c.id, events.c.type == "post.due", events.c.status == "pending")
              .scalar_subquery())


@functools.lru_cache(maxsize=64)
def _overviews(n: int) -> sa.Select[Any]:
    """For ``n`` ids: built once per page size (building it cost more than running it) and with
    a parameter per id, so SQLAlchemy's compiled form is reused as is (an expanding IN is
    rendered again on every call)."""
    return sa.select(agents.c.id, agents.c.state, _POSTS.label("posts"), _NEXT_POST.label("next_due")).where(
        agents.c.id.in_([sa.bindparam(f"id_{i}") for i in range(n)]))


async def overviews(db: Database, agent_ids: list[str]) -> dict[str, AgentOverview]:
    """The overview of each registered agent among ``agent_ids``, in one query whatever their number."""
    async with db.connect() as conn:
        found = await conn.execute(_overviews(len(agent_ids)), {f"id_{i}": a for i, a in enumerate(agent_ids)})
        rows = {r.id: r for r in found.fetchall()}
        skips = await recent_post_skips(conn, {r.id: _seq((r.state or {}).get("post_seq")) for r in rows.values()})
    return {agent_id: AgentOverview(state=dict(r.state or {}), posts=int(r.posts or 0),
                                    next_post_due=r.next_due, skips=skips.get(agent_id))
            for agent_id, r in rows.items()}


def _seq(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


async def relationships_of(db: Database, agent_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """The agent's relationships, most familiar first (every column but ``agent_id``)."""
    async with db.connect() as conn:
        rows = (await conn.execute(
            sa.select(relationships).where(relationships.c.agent_id == agent_id)
            .order_by(relationships.c.familiarity.desc()).limit(limit))).mappings().fetchall()
    return [{k: v for k, v in r.items() if k != "agent_id"} for r in rows]
