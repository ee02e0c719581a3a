"""``GET /feed``: the live activity feed as Server-Sent Events."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from sse_starlette import EventSourceResponse

from puppet_engine.api.auth import ApiKey, Bearer, authenticate
from puppet_engine.api.deps import Ctx
from puppet_engine.api.schemas import responses

router = APIRouter(tags=["feed"])


async def _reader(request: Request, credentials: Bearer) -> ApiKey:
    """The key from the header or ``?key=`` (EventSource sends no headers), checked before the
    feed's own query parameters, so a caller without a key learns nothing about them."""
    return await authenticate(request, credentials, "read", query_token=request.query_params.get("key"))

_EXAMPLE = ('id: action:7:done\ndata: {"id": "action:7:done", "type": "post", "agent_id": "coby", '
            '"at": 1767225601.4, "text": "every ledger is a diary", "status": "done"}\n\n')


@router.get(
    "/feed", response_class=EventSourceResponse,
    responses={**responses(422), 200: {"content": {"text/event-stream": {"example": _EXAMPLE}},
                                       "description": "one JSON item per event: type (post, reply, like, "
                                                      "mention, trade, error), agent_id, at, text, status"}},
    summary="Live activity (posts, replies, mentions, trades, errors) as Server-Sent Events",
)
async def feed(
    request: Request,
    ctx: Ctx,
    _key: Annotated[ApiKey, Depends(_reader)],
    backlog: Annotated[int, Query(ge=0, le=200, description="recent items sent first")] = 20,
    agent: Annotated[str | None, Query(max_length=128, description="only this agent's activity")] = None,
    key: Annotated[str | None, Query(max_length=512, description="the API key, for clients that cannot send "
                                     "headers (EventSource); prefer the Authorization header")] = None,
) -> EventSourceResponse:
    hub = ctx.feed
    queue = await hub.subscribe()
    try:
        initial = await hub.recent(backlog, agent) if backlog else []
    except BaseException:
        hub.unsubscribe(queue)
        raise

    async def stream() -> AsyncIterator[dict[str, Any]]:
        sent = set()
        try:
            for item in initial:
                sent.add(item["id"])
                yield {"id": item["id"], "data": json.dumps(item)}
            while True:
                new = await queue.get()
                if new is None:  # the server is shutting down: end the stream cleanly
                    return
                if (agent and new.get("agent_id") != agent) or new["id"] in sent:
                    continue
                yield {"id": new["id"], "data": json.dumps(new)}
        finally:
            hub.unsubscribe(queue)

    return EventSourceResponse(stream(), ping=15, headers={"Cache-Control": "no-store"})
