"""``/agents``: list and inspect agents, make them post or trade, change their config, start and stop them."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request, Response

from puppet_engine.api.auth import ApiKey, authorize, require
from puppet_engine.api.deps import (
    AgentId,
    ApiContext,
    Ctx,
    JSONBytes,
    Limit,
    Offset,
    PageQ,
    Paging,
    page,
    public_event,
    public_state,
    scrub_ids,
    summaries,
    summary_items,
)
from puppet_engine.api.errors import ApiError, conflict, not_found
from puppet_engine.api.lean import LeanRoute
from puppet_engine.api.schemas import (
    Accepted,
    ActionOut,
    AgentDetail,
    AgentSummary,
    CommandedDetail,
    CommandedSummary,
    MentionOut,
    Page,
    PostRequest,
    TradeRequest,
    responses,
)
from puppet_engine.errors import AuthError, ConfigError
from puppet_engine.events import Event
from puppet_engine.persona import PLACEHOLDER, AgentConfig, parse_agent_config
from puppet_engine.storage.repos import agent_states, mentions, outbox
from puppet_engine.storage.repos import agents as agent_rows
from puppet_engine.storage.repos import events as event_rows

router = APIRouter(prefix="/agents", tags=["agents"])
read = Depends(require("read"))
control = Depends(require("control"))
admin = Depends(require("admin"))
ControlKey = Annotated[ApiKey, control]
AdminKey = Annotated[ApiKey, admin]

_SECRET_FIELDS = {
    "twitter_credentials": (("apiKey", "api_key"), ("apiKeySecret", "api_key_secret"),
                            ("accessToken", "access_token"), ("accessTokenSecret", "access_token_secret"),
                            ("bearerToken", "bearer_token")),
    "solana_integration": (("private_key", "private_key"),),
    "llm_config": (("api_key", "api_key"),),
}
_CONFIG_EXAMPLE = {"id": "coby", "name": "Coby", "llm_provider": "fake",
                   "behavior": {"post_frequency": {"min_hours_between_posts": 2, "max_hours_between_posts": 6}}}


@router.get("", response_model=Page[AgentSummary], dependencies=[read], responses=responses(422),
            summary="Every agent with its state, last and next post, mood and balance")
async def list_agents(request: Request, limit: Limit = 50, offset: Offset = 0) -> Response:
    # Served by list_agents_lean in front of it (see lean_routes) unless the query is unusual;
    # this route answers those (its validation errors) and documents the endpoint.
    return await _agents_page(request.app.state.ctx, limit, offset)


async def list_agents_lean(request: Request, limit: int, offset: int) -> Response:
    """:func:`list_agents` for the plain requests its :class:`~puppet_engine.api.lean.LeanRoute` takes."""
    await authorize(request, "read")
    return await _agents_page(request.app.state.ctx, limit, offset)


def lean_routes() -> list[LeanRoute]:
    """The routes to put in front of this router's: the dashboard's most frequent call."""
    return [LeanRoute.beside_endpoint(router, list_agents, list_agents_lean)]


async def _agents_page(ctx: ApiContext, limit: int, offset: int) -> Response:
    # The page served as built (the model's JSON form, see summary_items): validating a page of
    # models again cost as much as the rest of the request.
    ids = ctx.engine.manager.known()  # agents still being built are listed as starting
    chosen = ids[offset:offset + limit]
    return JSONBytes(page(await summary_items(ctx, chosen), len(ids), Paging(limit, offset)))


@router.get("/{agent_id}", response_model=AgentDetail, dependencies=[read], responses=responses(404, 422),
            summary="One agent: summary, redacted config, state, pending events and relationships")
async def get_agent(agent_id: AgentId, ctx: Ctx) -> AgentDetail:
    return await _detail(ctx, agent_id)


async def _detail(ctx: ApiContext, agent_id: str) -> AgentDetail:
    config = _known(ctx, agent_id)
    [summary] = await summaries(ctx, [agent_id])
    pending = await event_rows.upcoming_for(ctx.db, agent_id, limit=20)
    rels = await agent_rows.relationships_of(ctx.db, agent_id, limit=100)
    state = await agent_states.read_state(ctx.db, agent_id)  # any agent, owned by this process or not
    origin = await agent_rows.definition(ctx.db, agent_id) or {}
    return AgentDetail(
        **summary.model_dump(), config=config.public_dict(), state=public_state(state or {}),
        pending_events=[public_event(Event.from_row(r)) for r in pending], relationships=rels,
        config_source=origin.get("config_source"),
    )


@router.get("/{agent_id}/timeline", response_model=Page[ActionOut], dependencies=[read],
            responses=responses(404, 422), summary="What the agent did (posts, replies, likes, trades), newest first")
async def timeline(agent_id: AgentId, paging: PageQ, ctx: Ctx,
                   kind: Annotated[str | None, Query(max_length=32, description="post, reply, like, trade …")] = None,
                   ) -> dict[str, Any]:
    ctx.agent(agent_id)
    rows, total = await outbox.page_for(ctx.db, agent_id, kind=kind, limit=paging.limit, offset=paging.offset)
    items = [scrub_ids(row) for row in rows]
    return page(items, total, paging)


@router.get("/{agent_id}/mentions", response_model=Page[MentionOut], dependencies=[read],
            responses=responses(404, 422), summary="Mentions the agent received and what it decided")
async def agent_mentions(agent_id: AgentId, paging: PageQ, ctx: Ctx) -> dict[str, Any]:
    ctx.agent(agent_id)
    items, total = await mentions.page_for(ctx.db, agent_id, paging.limit, paging.offset)  # never author ids
    return page(items, total, paging)


async def schedule(ctx: ApiContext, event_type: str, agent_id: str | None, payload: dict[str, Any],
                   key: str | None = None) -> Accepted:
    """Schedule a one-off event due now under a unique key; 202 material."""
    key = key or f"api:{event_type}:{agent_id or '-'}:{uuid.uuid4().hex[:16]}"
    event = Event(event_type, agent_id, payload, due_at=ctx.engine.clock.now(), key=key)
    event_id = await ctx.engine.enqueue(event)
    if event_id is None:  # a fresh uuid key cannot collide; treat it as the conflict it would be
        raise conflict(f"event {key!r} already exists")
    return Accepted(event_id=event_id, type=event_type, agent_id=agent_id, key=key)


def _known(ctx: ApiContext, agent_id: str) -> AgentConfig:
    """The agent's config (also while the engine is still building it), else 404."""
    try:
        return ctx.engine.manager.config_of(agent_id)
    except ConfigError:
        raise not_found("agent", agent_id) from None


def _running(ctx: ApiContext, agent_id: str, doing: str) -> None:
    """Refuse actions for a stopped agent; a starting (or retrying) one does them once it is up."""
    _known(ctx, agent_id)
    if not ctx.engine.manager.status(agent_id).accepts_actions:
        raise conflict(f"agent {agent_id!r} is stopped; start it before asking it to {doing}", agent_id=agent_id)


@router.post("/{agent_id}/post", response_model=Accepted, status_code=202, dependencies=[control],
             responses=responses(404, 409, 422), summary="Post now: given text, about a topic, or as the persona likes")
async def post_now(agent_id: AgentId, ctx: Ctx, body: Annotated[PostRequest | None, Body()] = None) -> Accepted:
    _running(ctx, agent_id, "post")
    request = body or PostRequest()
    return await schedule(ctx, "post.manual", agent_id, request.model_dump(exclude_none=True))


@router.post("/{agent_id}/trade", response_model=Accepted, status_code=202, dependencies=[control],
             responses=responses(404, 409, 422),
             summary="Trade now; the same risk limits as autonomous trades apply")
async def trade_now(body: TradeRequest, agent_id: AgentId, ctx: Ctx) -> Accepted:
    _running(ctx, agent_id, "trade")
    if not _known(ctx, agent_id).trading_enabled:
        raise conflict(f"trading is not enabled for agent {agent_id!r} (solana_integration.trading_enabled)")
    runtime = ctx.engine.manager.agents.get(agent_id)  # None while being built: its wallet comes with it
    if (runtime is not None and runtime.trader is None) or not ctx.engine.handles("trade.manual"):
        raise conflict(f"agent {agent_id!r} has no wallet: trading is not set up for it")
    return await schedule(ctx, "trade.manual", agent_id, body.model_dump())


@router.put("/{agent_id}/config", response_model=CommandedDetail, dependencies=[admin],
            responses={**responses(404, 409, 422), 202: {"model": CommandedDetail,
                                                         "description": "pending on the agent's owner"}},
            summary="Replace the agent's config: applied by the agent's owner (here: at once), kept across lease moves")
async def put_config(agent_id: AgentId, ctx: Ctx, key: AdminKey, response: Response,
                     config: Annotated[dict[str, Any], Body(description="the agent file's JSON; absent secrets "
                                                            "are kept", examples=[_CONFIG_EXAMPLE])]) -> CommandedDetail:
    runtime = ctx.agent(agent_id)
    body_id = config.get("id", agent_id)
    if body_id != agent_id:
        raise ApiError(422, f"body.id: must be {agent_id!r} (the agent in the path)",
                       details=[{"field": "body.id", "message": f"must equal {agent_id!r}", "type": "value_error"}])
    data = _keep_secrets({**config, "id": agent_id}, runtime.config, PLACEHOLDER)
    new = parse_agent_config(data, source=f"PUT /agents/{agent_id}/config", previous=runtime.config)
    _register_secrets(new.secret_values())
    # The database never holds secrets in clear: a config that changes them can only be applied
    # by the node that runs the agent, which holds them in memory.
    if new.secret_values() != runtime.config.secret_values() and not await ctx.engine.applies_for(agent_id):
        raise conflict(f"agent {agent_id!r} runs on another node; a config that changes its secrets must be "
                       "sent to that node (or set in its agent file)", agent_id=agent_id)
    async with ctx.lock(agent_id):  # built and connected first: a refused config leaves the agent as it was
        try:
            command = await ctx.engine.submit_command("config", agent_id, new.public_dict(), key.label, config=new)
        except AuthError as exc:  # the config's keys, refused by X: the request's mistake, not an outage
            raise ApiError(400, str(exc), code="invalid_config") from None
    if command["state"] in ("pending", "applying"):
        response.status_code = 202
    detail = await _detail(ctx, agent_id)
    return CommandedDetail(**detail.model_dump(), command_id=command["id"], command_state=command["state"])


def _keep_secrets(data: dict[str, Any], current: Any, placeholder: str) -> dict[str, Any]:
    """Mark every secret the body leaves out as "keep the current one" (explicit null removes it)."""
    for block, names in _SECRET_FIELDS.items():
        old = getattr(current, block, None)
        if old is None:
            continue
        section = data.get(block, ...)
        if section is ...:
            kept = {alias: placeholder for alias, attr in names if getattr(old, attr, None) is not None}
            if kept:
                data[block] = kept
            continue
        if isinstance(section, dict):
            section = dict(section)
            for alias, attr in names:
                if alias not in section and attr not in section and getattr(old, attr, None) is not None:
                    section[alias] = placeholder
            data[block] = section
    return data


def _register_secrets(values: list[str]) -> None:
    try:
        from puppet_engine.observability.logging import update_secrets
    except ImportError:
        return
    update_secrets(values)


async def _lifecycle(ctx: ApiContext, agent_id: str, what: str, key: ApiKey, response: Response) -> CommandedSummary:
    """Record the command; applied here at once (200) when this process owns the agent, else by
    its owner within seconds (202, follow it with ``GET /commands/{id}?wait=5``)."""
    _known(ctx, agent_id)
    async with ctx.lock(agent_id):
        command = await ctx.engine.submit_command(what, agent_id, {}, key.label)
    if command["state"] in ("pending", "applying"):
        response.status_code = 202
    [summary] = await summaries(ctx, [agent_id])
    return CommandedSummary(**summary.model_dump(), command_id=command["id"], command_state=command["state"])


_LIFECYCLE_RESPONSES = {**responses(404, 422), 202: {"model": CommandedSummary,
                                                     "description": "pending on the agent's owner"}}


@router.post("/{agent_id}/start", response_model=CommandedSummary, dependencies=[control],
             responses=_LIFECYCLE_RESPONSES, summary="Start the agent (no-op when running)")
async def start(agent_id: AgentId, ctx: Ctx, key: ControlKey, response: Response) -> CommandedSummary:
    return await _lifecycle(ctx, agent_id, "start", key, response)


@router.post("/{agent_id}/stop", response_model=CommandedSummary, dependencies=[control],
             responses=_LIFECYCLE_RESPONSES, summary="Stop the agent; its schedule waits until it starts again")
async def stop(agent_id: AgentId, ctx: Ctx, key: ControlKey, response: Response) -> CommandedSummary:
    return await _lifecycle(ctx, agent_id, "stop", key, response)


@router.post("/{agent_id}/restart", response_model=CommandedSummary, dependencies=[control],
             responses=_LIFECYCLE_RESPONSES, summary="Restart the agent with fresh clients (starts a stopped one)")
async def restart(agent_id: AgentId, ctx: Ctx, key: ControlKey, response: Response) -> CommandedSummary:
    return await _lifecycle(ctx, agent_id, "restart", key, response)
