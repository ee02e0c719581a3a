"""``/agents/{id}/state?at=`` and ``/agents/{id}/history?from=&to=``: an agent's state at any moment
and its timeline between two, from the history (``puppet_engine.history``). Read scope."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from puppet_engine.api.auth import require
from puppet_engine.api.deps import AgentId, Ctx, public_state, scrub_ids
from puppet_engine.api.schemas import responses
from puppet_engine.history import render, show_time, state_at, timeline
from puppet_engine.history.timeline import LIMIT

router = APIRouter(prefix="/agents", tags=["history"])
read = Depends(require("read"))

LATEST = 253_402_300_799.0  # 9999-12-31T23:59:59Z
TimeQ = Annotated[datetime, Query(description="ISO 8601, UTC when no offset is given",
                                  examples=["2026-12-01T03:12:00Z"])]


class MemoriesThen(BaseModel):
    count: int = Field(description="memories the agent had then")
    query: str | None = None
    found: list[dict[str, Any]] | None = Field(None, description="what a search for `query` would have found then")


class StateAt(BaseModel):
    """An agent's state at one moment (every time in UTC ISO 8601)."""

    agent_id: str
    at: str
    known: bool = Field(description="false when the history holds nothing that old for this agent")
    mood: dict[str, Any] | None
    relationships: list[dict[str, Any]]
    config: dict[str, Any] | None = Field(description="config version, its source (file, api) and who changed it")
    lifecycle: dict[str, Any] | None = Field(description="started or stopped, by whom, when")
    schedule: dict[str, str | None]
    balances: dict[str, Any] | None = Field(description="the wallet after its last trade before then")
    trades: list[dict[str, Any]]
    skips: list[dict[str, Any]] = Field(description="the latest decisions not to act, with their reasons")
    memories: MemoriesThen
    state: dict[str, Any] = Field(description="agents.state as it was")
    events_before: list[dict[str, Any]]
    events_after: list[dict[str, Any]]


class TimelineEntry(BaseModel):
    at: str
    what: str = Field(description="received, decided, sent, skipped or changed")
    text: str
    detail: dict[str, Any]


class Timeline(BaseModel):
    agent_id: str
    start: str
    end: str
    entries: list[TimelineEntry]
    text: str = Field(description="the entries as readable lines")


def _time(value: datetime) -> float:
    """Epoch seconds; a time without an offset is UTC (before 1970 is 1970: nothing is older)."""
    epoch = (value if value.tzinfo is not None else value.replace(tzinfo=UTC)).timestamp()
    return min(max(epoch, 0.0), LATEST)


@router.get("/{agent_id}/state", response_model=StateAt, dependencies=[read], responses=responses(404, 422),
            summary="The agent's state at a moment: mood, relationships, config, schedule, balances, memories")
async def get_state_at(
    agent_id: AgentId, ctx: Ctx, at: TimeQ,
    query: Annotated[str | None, Query(min_length=1, max_length=500,
                                       description="also the memories a search for this would have found")] = None,
    limit: Annotated[int, Query(ge=1, le=50, description="memories found at most")] = 5,
) -> dict[str, Any]:
    moment = _time(at)
    store = ctx.memory_store(ctx.agent(agent_id))
    then = await state_at(ctx.db, agent_id, moment, store=store, query=query, limit=limit)
    then["state"] = public_state(then["state"])
    for key in ("events_before", "events_after"):
        then[key] = scrub_ids(then[key])
    return then


@router.get("/{agent_id}/history", response_model=Timeline, dependencies=[read], responses=responses(404, 422),
            summary="What the agent received, decided, sent and skipped between two moments",
            description=f"Oldest first; at most {LIMIT} entries of each source (mentions, events, actions, facts); "
                        "empty when `to` is before `from`.")
async def get_timeline(
    agent_id: AgentId, ctx: Ctx,
    start: Annotated[datetime, Query(alias="from", description="ISO 8601, UTC when no offset is given")],
    end: Annotated[datetime, Query(alias="to", description="ISO 8601, UTC when no offset is given")],
) -> dict[str, Any]:
    ctx.agent(agent_id)
    first, last = _time(start), _time(end)
    entries = scrub_ids(await timeline(ctx.db, agent_id, first, last))
    return {"agent_id": agent_id, "start": show_time(first), "end": show_time(last), "entries": entries,
            "text": render(entries)}
