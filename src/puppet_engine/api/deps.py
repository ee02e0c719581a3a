"""What every route needs: the engine, lookups that 404 properly, and shared read helpers."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any

import orjson
from fastapi import Depends, Path, Query, Request, Response

from puppet_engine.api.errors import ApiError, not_found
from puppet_engine.api.schemas import AgentSummary
from puppet_engine.control import EngineControl
from puppet_engine.memory import build_memory_store
from puppet_engine.storage.repos import agents as agent_rows
from puppet_engine.storage.skips import SkipCount

if TYPE_CHECKING:
    from puppet_engine.agents.runtime import AgentRuntime
    from puppet_engine.api.feed import FeedHub
    from puppet_engine.observability.health import HealthRegistry

HEALTH_TTL = 1.0
# Keys that hold other accounts' user ids: never served (tweet ids and @handles are public).
_PRIVATE_KEYS = ("user_id", "author_id", "follower_ids", "user_ids", "participant_ids")


@dataclass
class ApiContext:
    """Held on ``app.state.ctx`` for the routes."""

    engine: EngineControl
    health: HealthRegistry
    feed: FeedHub
    started_at: float = field(default_factory=time.time)
    balances: dict[str, tuple[float, float]] = field(default_factory=dict)  # agent → (SOL, when)
    locks: dict[str, asyncio.Lock] = field(default_factory=dict)  # one lifecycle change at a time per agent
    _memory: Any = None
    _health: tuple[float, Any] | None = None
    _overviews: agent_rows.OverviewReader | None = None

    @property
    def overviews(self) -> agent_rows.OverviewReader:
        """Reads the agents list's page (its own SQLite connection, see :class:`~puppet_engine.storage.repos.agents.OverviewReader`)."""
        if self._overviews is None:
            self._overviews = agent_rows.OverviewReader(self.engine.db)
        return self._overviews

    def close(self) -> None:
        """Release what the routes opened (the list's read connection)."""
        if self._overviews is not None:
            self._overviews.close()
            self._overviews = None

    @property
    def db(self) -> Any:
        return self.engine.db

    def memory_store(self, runtime: AgentRuntime) -> Any:
        """The agent's memory store, else the engine's (an agent still being built); an engine
        without one yet (services not connected) gets one built on its database."""
        if runtime.memory is not None:
            return runtime.memory
        if self.engine.memory is not None:
            return self.engine.memory
        if self._memory is None:
            self._memory = build_memory_store(self.engine.settings, self.engine.db, clock=self.engine.clock)
        return self._memory

    def agent(self, agent_id: str) -> AgentRuntime:
        runtime = self.engine.manager.agents.get(agent_id)
        if runtime is None:
            raise not_found("agent", agent_id)
        return runtime


    async def health_report(self) -> Any:
        """The health registry's report, reused for ``HEALTH_TTL`` seconds (load balancers poll often)."""
        now = time.monotonic()
        if self._health is None or now - self._health[0] > HEALTH_TTL:
            self._health = (now, await self.health.check_all())
        return self._health[1]

    def lock(self, agent_id: str) -> asyncio.Lock:
        return self.locks.setdefault(agent_id, asyncio.Lock())


async def get_ctx(request: Request) -> ApiContext:  # async: sync dependencies cost a thread hop each
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(get_ctx)]
AgentId = Annotated[str, Path(description="the agent's id, as in its file", examples=["coby"], max_length=128)]


@dataclass(frozen=True)
class Paging:
    """``?limit=&offset=`` with sane bounds."""

    limit: int
    offset: int


Limit = Annotated[int, Query(ge=1, le=500, description="page size")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="items to skip")]


async def paging(limit: Limit = 50, offset: Offset = 0) -> Paging:
    return Paging(limit, offset)


PageQ = Annotated[Paging, Depends(paging)]


class JSONBytes(Response):
    """A JSON answer encoded by orjson, for a route that builds its model's JSON form itself
    (the route keeps ``response_model`` for the OpenAPI document; FastAPI does not re-check
    a ``Response``)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def page(items: list[Any], total: int, paging: Paging) -> dict[str, Any]:
    return {"items": items, "total": total, "limit": paging.limit, "offset": paging.offset}


def scrub_ids(value: Any) -> Any:
    """``value`` without other accounts' user ids (``author_id``, ``in_reply_to_user_id`` …), at any depth."""
    if isinstance(value, dict):
        return {k: scrub_ids(v) for k, v in value.items()
                if not (isinstance(k, str) and k.endswith(_PRIVATE_KEYS))}
    if isinstance(value, list):
        return [scrub_ids(v) for v in value]
    return value


def public_state(state: dict[str, Any]) -> dict[str, Any]:
    cleaned: dict[str, Any] = scrub_ids(state)
    return cleaned


def public_event(event: Any) -> dict[str, Any]:
    """An ``Event`` as served: payload and result without user ids."""
    out: dict[str, Any] = event.to_dict()
    out["payload"] = scrub_ids(out["payload"])
    out["result"] = scrub_ids(out["result"])
    return out


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
    """One summary per agent id, in order, in one query whatever the number of agents."""
    return [AgentSummary.model_validate(item) for item in await summary_items(ctx, ids)]


async def summary_items(ctx: ApiContext, ids: list[str]) -> list[dict[str, Any]]:
    """:func:`summaries` as served: each an :class:`AgentSummary`'s JSON object (every field, in
    its order), built without a model each, which cost more than the page's SQL
    (``tests/integration/test_api_agents_list.py`` holds them to the model)."""
    manager = ctx.engine.manager
    found = await ctx.overviews.read(ids)
    owners = await ctx.engine.owners(ids)
    out = []
    for agent_id in ids:
        runtime = manager.agents.get(agent_id)  # None while the engine is still building it
        config = manager.config_of(agent_id)
        row = found.get(agent_id)
        state = row.state if row is not None else {}
        cached = ctx.balances.get(agent_id)
        due = row.next_post_due if row is not None and row.next_post_due is not None else state.get("next_post_at")
        status = manager.status(agent_id)
        owner = owners.get(agent_id)
        skipped, warnings = _skip_fields(row.skips if row is not None else None)
        out.append({
            "id": agent_id, "name": config.name or agent_id, "description": config.description,
            "running": status.state == "running", "status": status.state, "status_reason": status.reason,
            "retry_at": _num(status.retry_at), "username": runtime.username if runtime is not None else None,
            "llm_provider": config.llm_provider, "trading_enabled": bool(config.trading_enabled),
            "mood": mood_label(state.get("mood")), "last_post_at": _num(state.get("last_post_at")),
            "next_post_at": _num(due), "posts": row.posts if row is not None else 0,
            "balance_sol": _num(cached[0]) if cached else None,
            "owner": owner[0] if owner is not None else None,
            "owner_since": _num(owner[1]) if owner is not None else None,
            "skipped_posts": skipped, "warnings": warnings,
            "definition_error": row.definition_error if row is not None else None,
        })
    return out


def _skip_fields(count: SkipCount | None) -> tuple[dict[str, Any] | None, list[str]]:
    """``skipped_posts`` and, when most recent posts were skipped, the warning the dashboard flags."""
    if count is None:
        return None, []
    top = count.top(1)
    reason = top[0]["example"] if top else None
    skipped = {"skipped": count.skipped, "recent": count.total, "reason": reason}
    if count.mostly_skipped:
        return skipped, [f"skipped {count.skipped} of its last {count.total} scheduled posts, most often: {reason}"]
    return skipped, []


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


_QUERY_NAMES: dict[int, frozenset[str]] = {}


def _declared_query(dependant: Any) -> set[str]:
    names = {p.alias or p.name for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _declared_query(sub)
    return names


def reject_unknown_query(request: Request) -> None:
    """A query parameter the endpoint does not take is a mistake (``?agent_id=`` for ``?agent=``): 422.

    Called by :func:`~puppet_engine.api.auth.authenticate` once the key is accepted: the
    message lists the endpoint's parameters, which a caller without a key must not learn.
    """
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    # Not a FastAPI route of the API: the dashboard page, or a lean route (which admits its own
    # parameters only, see api/lean.py) and so needs no query parsed here.
    if dependant is None or not getattr(route, "include_in_schema", True) or not request.query_params:
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
