"""``POST /agents/{id}/replay`` and ``GET /replays/{id}``: exact and what-if replays as background jobs.

A replay sends nothing anywhere (its clients are dry-run and recorded ones, see
:mod:`puppet_engine.replay`); ``llm: "live"`` spends provider calls, so it needs ``max_calls``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field

from puppet_engine.api.auth import require
from puppet_engine.api.deps import AgentId, Ctx
from puppet_engine.api.errors import conflict, not_found
from puppet_engine.api.schemas import responses
from puppet_engine.errors import ConfigError
from puppet_engine.persona import parse_agent_config
from puppet_engine.replay import service
from puppet_engine.replay.jobs import ReplayJobs

router = APIRouter(tags=["replay"])
MAX_CALLS = 10_000


class ReplayIn(BaseModel):
    """What to replay. Times are epoch seconds or ISO 8601 (UTC unless said)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"from": "2026-12-01T00:00", "to": "2026-12-02T00:00"},
        {"from": 1764547200, "to": 1764633600, "agent": {"id": "coby", "name": "Coby"}, "llm": "sandbox"}]})

    since: float | str = Field(alias="from", description="start of the stretch")
    until: float | str = Field(alias="to", description="end of the stretch")
    agent: dict[str, Any] | None = Field(None, description="what-if: the changed agent file (JSON), same id")
    llm: Literal["live", "recorded", "sandbox"] | None = Field(
        None, description="what-if text: the real provider, recorded answers where the request matches, or offline")
    max_calls: int | None = Field(None, ge=0, le=MAX_CALLS, description="with llm=live: at most this many calls")


class ReplayJobOut(BaseModel):
    """A replay job: ``progress`` 0..1 while ``running``; ``report`` when ``done``; ``error`` when ``failed``."""

    id: str
    agent_id: str
    state: Literal["running", "done", "failed"]
    progress: float
    plan: dict[str, Any] = Field(description="what runs: range, what_if, llm mode, recorded calls, estimated cost")
    created_at: float
    finished_at: float | None
    report: dict[str, Any] | None = Field(None, description="as `puppet-engine replay --json` prints it")
    error: str | None


def _jobs(request: Request) -> ReplayJobs:
    jobs = getattr(request.app.state, "replays", None)
    if jobs is None:
        jobs = request.app.state.replays = ReplayJobs()
    return jobs


@router.post("/agents/{agent_id}/replay", response_model=ReplayJobOut, status_code=202,
             dependencies=[Depends(require("control"))], responses=responses(404, 409, 422),
             summary="Replay a recorded stretch (exact, or what-if with a changed persona) in the background")
async def start_replay(agent_id: AgentId, body: ReplayIn, ctx: Ctx, request: Request) -> ReplayJobOut:
    if agent_id not in ctx.engine.manager.agents:
        raise not_found("agent", agent_id)
    if body.llm == "live" and body.max_calls is None:
        raise ConfigError("llm=live needs max_calls: the cost of a live replay must be capped")
    changed = parse_agent_config(body.agent, source="the request's agent") if body.agent is not None else None
    since, until = service.parse_time(body.since, "from"), service.parse_time(body.until, "to")
    settings = ctx.engine.settings
    plan = await service.plan(ctx.db, settings, agent_id, since, until, changed=changed, llm=body.llm,
                              max_calls=body.max_calls)
    try:
        job = _jobs(request).start(agent_id, plan.to_dict(), lambda progress: service.run(ctx.db, settings, plan, progress))
    except RuntimeError as exc:
        raise conflict(str(exc)) from None
    return ReplayJobOut(**job.to_dict())


@router.get("/replays/{job_id}", response_model=ReplayJobOut, dependencies=[Depends(require("read"))],
            responses=responses(404, 422), summary="A replay job: its progress, then its report")
async def get_replay(job_id: Annotated[str, Path(max_length=64)], request: Request) -> ReplayJobOut:
    job = _jobs(request).get(job_id)
    if job is None:
        raise not_found("replay", job_id)
    return ReplayJobOut(**job.to_dict())
