"""``/memory/{agent_id}``: read, add, search and delete what an agent remembers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Response

from puppet_engine.api.auth import require
from puppet_engine.api.deps import AgentId, ApiContext, Ctx, PageQ, page, scrub_ids
from puppet_engine.api.errors import ApiError, not_found
from puppet_engine.api.schemas import (
    ClearRequest,
    Deleted,
    MemoryCreate,
    MemoryHit,
    MemoryKindName,
    MemoryOut,
    MemorySearch,
    Page,
    responses,
)
from puppet_engine.storage.repos import memories

router = APIRouter(prefix="/memory", tags=["memory"])
read = Depends(require("read"))
control = Depends(require("control"))


def _store(ctx: ApiContext, agent_id: str) -> Any:
    return ctx.memory_store(ctx.agent(agent_id))


def _out(memory: Any) -> dict[str, Any]:
    return {"id": memory.id, "kind": memory.kind, "content": memory.content, "importance": memory.importance,
            "created_at": memory.created_at or 0.0, "metadata": scrub_ids(dict(memory.metadata or {}))}


@router.get("/{agent_id}", response_model=Page[MemoryOut], dependencies=[read], responses=responses(404, 422, 503),
            summary="The agent's memories, newest first, filtered by kind and time")
async def list_memories(
    agent_id: AgentId, paging: PageQ, ctx: Ctx,
    kind: Annotated[MemoryKindName | None, Query()] = None,
    since: Annotated[float | None, Query(ge=0, le=1e11, description="epoch seconds, inclusive")] = None,
    until: Annotated[float | None, Query(ge=0, le=1e11, description="epoch seconds, exclusive")] = None,
) -> dict[str, Any]:
    store = _store(ctx, agent_id)
    items = await store.list_memories(agent_id, kind=kind, since=since, until=until,
                                      limit=paging.limit, offset=paging.offset)
    total = await memories.count(ctx.db, agent_id, kind=kind, since=since, until=until)
    return page([_out(m) for m in items], total, paging)


@router.post("/{agent_id}", response_model=MemoryOut, status_code=201, dependencies=[control],
             responses=responses(404, 422, 503), summary="Add a memory (embedded for search at once)")
async def add_memory(body: MemoryCreate, agent_id: AgentId, ctx: Ctx) -> dict[str, Any]:
    from puppet_engine.memory.base import Memory, check_metadata

    try:
        check_metadata(body.metadata)
    except ValueError as exc:
        raise ApiError(422, f"body.metadata: {exc}", details=[
            {"field": "body.metadata", "message": str(exc), "type": "too_long"}]) from None
    store = _store(ctx, agent_id)
    memory = Memory(content=body.content, kind=body.kind, importance=body.importance,
                    metadata={**body.metadata, "source": "api"}, created_at=ctx.engine.clock.now(),
                    agent_id=agent_id)
    memory_id = await store.add_memory(agent_id, memory)
    stored = await store.get(agent_id, memory_id)
    return _out(stored if stored is not None else memory)


@router.post("/{agent_id}/search", response_model=list[MemoryHit], dependencies=[read],
             responses=responses(404, 409, 422, 503), summary="The memories closest in meaning to a query")
async def search(body: MemorySearch, agent_id: AgentId, ctx: Ctx) -> list[dict[str, Any]]:
    store = _store(ctx, agent_id)
    try:
        hits = await store.search_memories(agent_id, body.query, limit=body.limit, kinds=body.kinds)
    except Exception as exc:
        if type(exc).__name__ == "EmbedderMismatch":
            raise ApiError(409, f"{exc}; run `puppet-engine memory reindex`", code="reindex_needed") from None
        raise
    return [{"memory": _out(h.memory), "score": h.score, "similarity": h.similarity} for h in hits]


@router.delete("/{agent_id}/{memory_id}", status_code=204, response_class=Response, dependencies=[control],
               responses=responses(404, 422, 503), summary="Forget one memory")
async def delete_memory(agent_id: AgentId, ctx: Ctx,
                        memory_id: Annotated[str, Path(max_length=64, description="the memory's id")]) -> Response:
    store = _store(ctx, agent_id)
    if not await store.delete(agent_id, memory_id):
        raise not_found("memory", memory_id)
    return Response(status_code=204)


@router.delete("/{agent_id}", response_model=Deleted, dependencies=[control], responses=responses(400, 404, 422, 503),
               summary="Forget everything the agent remembers (needs confirm=true)")
async def clear(agent_id: AgentId, ctx: Ctx,
                confirm: Annotated[bool, Query(description="must be true (or send {\"confirm\": true})")] = False,
                body: Annotated[ClearRequest | None, Body()] = None) -> Deleted:
    store = _store(ctx, agent_id)
    if not (confirm or (body is not None and body.confirm)):
        raise ApiError(400, "deleting every memory needs confirmation: add ?confirm=true",
                       code="confirmation_required")
    return Deleted(deleted=await store.clear(agent_id))
