"""``/events``: the history (and queue) of everything the engine did or will do; ``/news`` adds to it."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from puppet_engine.api.auth import require
from puppet_engine.api.deps import Ctx, PageQ, page, public_event
from puppet_engine.api.errors import not_found
from puppet_engine.api.routes.agents import schedule
from puppet_engine.api.schemas import EventOut, NewsAccepted, NewsRequest, Page, responses
from puppet_engine.events import Event
from puppet_engine.storage.repos import events as event_rows

router = APIRouter(tags=["events"])

EventStatusName = Literal["pending", "running", "done", "failed", "cancelled"]


@router.get("/events", response_model=Page[EventOut], dependencies=[Depends(require("read"))],
            responses=responses(422), summary="Event history and queue, newest first")
async def list_events(
    paging: PageQ, ctx: Ctx,
    type: Annotated[str | None, Query(max_length=64, description="event type, e.g. post.due; a trailing * "
                                      "matches a prefix (post.*)")] = None,
    agent: Annotated[str | None, Query(max_length=128, description="agent id")] = None,
    status: Annotated[EventStatusName | None, Query()] = None,
    since: Annotated[float | None, Query(ge=0, le=1e11, description="created at or after (epoch seconds)")] = None,
    until: Annotated[float | None, Query(ge=0, le=1e11, description="created before (epoch seconds)")] = None,
) -> dict[str, Any]:
    rows, total = await event_rows.page_of_history(ctx.db, limit=paging.limit, offset=paging.offset, type=type,
                                                   agent_id=agent, status=status, since=since, until=until)
    items = [public_event(Event.from_row(r)) for r in rows]
    return page(items, total, paging)


@router.post("/news", response_model=NewsAccepted, status_code=202, dependencies=[Depends(require("control"))],
             responses=responses(404, 422), tags=["events"],
             summary="Tell agents some news: one 'news' event per agent (default: every running agent)")
async def news(body: NewsRequest, ctx: Ctx) -> NewsAccepted:
    manager = ctx.engine.manager
    targets = list(dict.fromkeys(body.agents)) if body.agents is not None else sorted(manager.running)
    for agent_id in targets:
        if agent_id not in manager.agents:
            raise not_found("agent", agent_id)
    news_id = uuid.uuid4().hex[:12]  # one id for the item across agents, as `puppet-engine news` does
    accepted = [await schedule(ctx, "news", agent_id, {"text": body.text, "id": news_id},
                               key=f"news:{agent_id}:{news_id}") for agent_id in targets]
    return NewsAccepted(events=accepted)
