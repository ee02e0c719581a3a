"""What every route needs: the engine, lookups that 404 properly, and shared read helpers."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, Path, Query, Request

from puppet_engine.api.errors import ApiError, not_found
from puppet_engine.api.schemas import AgentSummary
from puppet_engine.storage.tables import actions, agents, events

if TYPE_CHECKING:
    from puppet_engine.agents.runtime import AgentRuntime
    from puppet_engine.api.feed import FeedHub
    from puppet_engine.engine import Engine
    from puppet_engine.observability.health import HealthRegistry

POST_KINDS = ("post", "thread")
# Keys of agent state that may hold other accounts' ids: never served.
_PRIVATE_STATE = ("user_id", "author_id", "follower_ids", "user_ids")


@dataclass
class ApiContext:
    """Held on ``app.state.ctx`` for the routes."""

    engine: Engine
    health: HealthRegistry
    feed: FeedHub
    started_at: float = field(default_factory=time.time)
    balances: dict[str, tuple[float, float]] = field(default_factory=dict)  # agent → (SOL, when)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)  # one lifecycle change at a time per agent
    _memory: Any = None

    @property
    def db(self) -> Any:
        return self.engine.db

    def memory_store(self, runtime: AgentRuntime) -> Any:
        """The agent's memory store; an engine without one wired gets one built on its database."""
        if runtime.memory is not None:
            return runtime.memory
        engine_store = getattr(self.engine, "memory", None)
        if engine_store is not None:
            return engine_store
        if self._memory is None:
            from puppet_engine.memory import build_memory_store

            self._memory = build_memory_store(self.engine.settings, self.engine.db, clock=self.engine.clock)
        return self._memory

    def agent(self, agent_id: str) -> AgentRuntime:
        runtime = self.engine.manager.agents.get(agent_id)
        if runtime is None:
            raise not_found("agent", agent_id)
        return runtime


    def lock(self, agent_id: str) -> asyncio.Lock:
        return self.locks.setdefault(agent_id, asyncio.Lock())


def get_ctx(request: Request) -> ApiContext:
    return request.app.state.ctx  # type: ignore[no-any-return]


Ctx = Annotated[ApiContext, Depends(get_ctx)]
AgentId = Annotated[str, Path(description="the agent's id, as in its file", examples=["coby"], max_length=128)]


class Paging:
    """``?limit=&offset=`` with sane bounds."""

    def __init__(self, limit: Annotated[int, Query(ge=1, le=500, description="page size")] = 50,
                 offset: Annotated[int, Query(ge=0, le=10_000_000, description="items to skip")] = 0) -> None:
        self.limit = limit
        self.offset = offset


PageQ = Annotated[Paging, Depends()]


def page(items: list[Any], total: int, paging: Paging) -> dict[str, Any]:
    return {"items": items, "total": total, "limit": paging.limit, "offset": paging.offset}


async def count(conn: Any, query: sa.Select[Any]) -> int:
    total = await conn.execute(sa.select(sa.func.count()).select_from(query.order_by(None).subquery()))
    return int(total.scalar() or 0)


def public_state(state: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in state.items() if not any(k.endswith(p) for p in _PRIVATE_STATE)}


def mood_label(mood: Any) -> str | None:
    if mood is None or isinstance(mood, str):
        return mood
    if isinstance(mood, dict):
        for name in ("label", "name", "mood", "state"):
            if isinstance(mood.get(name), str):
                return str(mood[name])
        return ", ".join(f"{k} {v}" for k, v in list(mood.items())[:3])
    return str(mood)


async def summaries(ctx: ApiContext, ids: list[str]) -> list[AgentSummary]:
    """One summary per agent id, in order, in three queries whatever the number of agents."""
    manager = ctx.engine.manager
    async with ctx.db.connect() as conn:
        rows = (await conn.execute(sa.select(agents.c.id, agents.c.state).where(agents.c.id.in_(ids)))).fetchall()
        counts = (await conn.execute(
            sa.select(actions.c.agent_id, sa.func.count())
            .where(actions.c.agent_id.in_(ids), actions.c.kind.in_(POST_KINDS), actions.c.status == "done")
            .group_by(actions.c.agent_id))).fetchall()
        due = (await conn.execute(
            sa.select(events.c.agent_id, sa.func.min(events.c.due_at))
            .where(events.c.agent_id.in_(ids), events.c.type == "post.due", events.c.status == "pending")
            .group_by(events.c.agent_id))).fetchall()
    states = {r[0]: dict(r[1] or {}) for r in rows}
    posts = {r[0]: int(r[1]) for r in counts}
    next_due = {r[0]: float(r[1]) for r in due}
    out = []
    for agent_id in ids:
        runtime = manager.agents[agent_id]
        state = states.get(agent_id, {})
        cached = ctx.balances.get(agent_id)
        out.append(AgentSummary(
            id=agent_id, name=runtime.config.name or agent_id, description=runtime.config.description,
            running=agent_id in manager.running, username=runtime.username,
            llm_provider=runtime.config.llm_provider, trading_enabled=runtime.config.trading_enabled,
            mood=mood_label(state.get("mood")), last_post_at=_num(state.get("last_post_at")),
            next_post_at=next_due.get(agent_id, _num(state.get("next_post_at"))), posts=posts.get(agent_id, 0),
            balance_sol=cached[0] if cached else None,
        ))
    return out


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


_QUERY_NAMES: dict[int, frozenset[str]] = {}


def _declared_query(dependant: Any) -> set[str]:
    names = {p.alias or p.name for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _declared_query(sub)
    return names


def reject_unknown_query(request: Request) -> None:
    """A query parameter the endpoint does not take is a mistake (``?agent_id=`` for ``?agent=``): 422."""
    if not request.query_params:
        return
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not getattr(route, "include_in_schema", True):  # the dashboard page is not the API
        return
    known = _QUERY_NAMES.get(id(route))
    if known is None:
        known = _QUERY_NAMES[id(route)] = frozenset(_declared_query(dependant))
    unknown = sorted(set(request.query_params) - known)
    if unknown:
        details = [{"field": f"query.{name}", "message": "unknown query parameter", "type": "extra_forbidden"}
                   for name in unknown]
        allowed = ", ".join(sorted(known)) or "none"
        raise ApiError(422, f"query.{unknown[0]}: unknown query parameter (this endpoint takes: {allowed})",
                       details=details)
