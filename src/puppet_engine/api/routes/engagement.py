"""``GET /agents/{agent_id}/engagement``: how the agent's posts are received (docs/engagement.md).

Engagement rate per agent and per post (interactions ÷ impressions where X gives
impressions, else interactions per post), the best and worst settled posts, the rate by
hour of day, and the peak hours the agent posts in (learnt from these numbers when it
opted in).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from puppet_engine.agents.engagement import EngagementPlan, post_view, summary
from puppet_engine.agents.state import AgentState
from puppet_engine.api.auth import require
from puppet_engine.api.deps import AgentId, Ctx
from puppet_engine.api.schemas import responses
from puppet_engine.storage.repos import agent_states
from puppet_engine.storage.repos import engagement as repo

router = APIRouter(prefix="/agents", tags=["agents"])
read = Depends(require("read"))
DAY = 86_400.0


class PostEngagement(BaseModel):
    """One post's latest sample."""

    post_id: str
    text: str | None = Field(None, description="what the agent posted (from its outbox)")
    posted_at: float = Field(description="epoch seconds")
    hour: int = Field(description="hour of day it was posted, in the agent's timezone")
    sampled_at: float
    age_hours: float = Field(description="how old the post was when sampled")
    likes: int
    replies: int
    reposts: int
    quotes: int
    bookmarks: int
    impressions: int | None = Field(description="null where X does not give impressions")
    interactions: int = Field(description="likes + replies + reposts + quotes + bookmarks")
    rate: float | None = Field(description="interactions ÷ impressions; null without impressions")


class HourEngagement(BaseModel):
    hour: int
    posts: int = Field(description="settled posts posted in this hour")
    value: float = Field(description="their mean engagement rate (or interactions, without impressions)")


class Engagement(BaseModel):
    """The agent's engagement over the last ``days``."""

    agent_id: str
    days: float
    sample_hours: list[float] = Field(description="hours after posting at which posts are sampled")
    retention_days: float = Field(description="samples are kept this long after the post, then pruned")
    posts: int = Field(description="posts sampled at least once")
    settled_posts: int = Field(description="posts whose 24 h sample is taken: compared, ranked and learnt from")
    interactions: int
    impressions: int | None
    rate: float | None = Field(description="interactions ÷ impressions over the posts with impressions")
    interactions_per_post: float | None
    best: list[PostEngagement]
    worst: list[PostEngagement]
    by_hour: list[HourEngagement]
    recent: list[PostEngagement] = Field(description="the latest posts, newest first")
    peak_hours: list[int] = Field(description="the hours the agent favours for posting now")
    learn_peak_hours: bool = Field(description="behavior.post_frequency.learn_peak_hours")
    learned_peak_hours: list[int] | None


@router.get("/{agent_id}/engagement", response_model=Engagement, dependencies=[read], responses=responses(404, 422),
            summary="Engagement rate of the agent and its posts, best and worst posts, by hour of day")
async def engagement(agent_id: AgentId, ctx: Ctx,
                     days: Annotated[float, Query(gt=0, le=3650, description="how far back (posts)")] = 30.0,
                     top: Annotated[int, Query(ge=1, le=50, description="best and worst posts shown")] = 5,
                     ) -> Engagement:
    runtime = ctx.agent(agent_id)
    plan = EngagementPlan.from_settings(ctx.engine.settings)
    latest = await repo.latest(ctx.db, agent_id, ctx.engine.clock.now() - days * DAY)
    found = summary(latest, plan, top=top)
    state = AgentState.from_json(await agent_states.read_state(ctx.db, agent_id))
    freq = runtime.config.behavior.post_frequency
    learned = state.learned_peak_hours
    peak = learned if freq.learn_peak_hours and learned else list(freq.peak_posting_hours)
    recent = [post_view(s) for s in reversed([s for s in latest if not s.gone])][:top * 4]
    words = await repo.texts(ctx.db, agent_id, [p["post_id"] for p in (*found["best"], *found["worst"], *recent)])
    for post in (*found["best"], *found["worst"], *recent):
        post["text"] = words.get(post["post_id"])
    return Engagement(
        agent_id=agent_id, days=days, sample_hours=list(plan.sample_hours), retention_days=plan.retention_days,
        recent=[PostEngagement(**p) for p in recent], peak_hours=peak,
        learn_peak_hours=freq.learn_peak_hours, learned_peak_hours=learned, **found,
    )

