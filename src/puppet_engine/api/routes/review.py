"""``/review``: actions held for a person's approval (see ``docs/review.md``).

``GET /review`` lists what waits, with the context the agent had (the mention and thread of a
reply, the market and risk checks of a trade). Approving (optionally with edited text, checked
again by the agent's rules and X's limits) and rejecting need a ``control`` key; every decision
is recorded with the key's id (``scope:digest``, never the key) and the time.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from puppet_engine.agents.review_desk import ReviewConflict, ReviewDesk, ReviewEditRefused, text_of
from puppet_engine.api.auth import ApiKey, require
from puppet_engine.api.deps import Ctx, PageQ, page, scrub_ids
from puppet_engine.api.errors import ApiError, conflict, not_found
from puppet_engine.api.schemas import responses
from puppet_engine.storage.repos import review as review_rows

router = APIRouter(prefix="/review", tags=["review"])
Category = Literal["posts", "replies", "quotes", "trade_announcements", "trades"]
ItemId = Annotated[int, Path(ge=1, le=2**62, description="the review item's id (its outbox action's id)")]


class ReviewItem(BaseModel):
    """An action held for review, with why it waits and what the agent knew."""

    id: int
    agent_id: str
    kind: str = Field(description="posts, replies, quotes, trade_announcements or trades")
    action_kind: str = Field(description="the outbox action: post, thread, reply, quote, trade")
    text: str = Field(description="what would be posted (a thread's parts separated by blank lines); '' for a trade")
    payload: dict[str, Any]
    reasons: list[str] = Field(description="the rules that held it")
    context: dict[str, Any] = Field(description="mention and thread (replies); market, amount_sol, risk_checks (trades)")
    state: str = Field(description="waiting, approved, rejected or expired")
    action_status: str = Field(description="the outbox status: awaiting_review, then pending, done, rejected, expired …")
    created_at: float
    expires_at: float | None
    on_expire: str
    decided_at: float | None = None
    decisions: list[dict[str, Any]] | None = Field(None, description="the audit trail (single-item reads only)")


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(None, min_length=1, max_length=5000,
                             description="edited words; checked again by the agent's rules and X's limits")


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=500, description="why; the agent remembers it for later posts")


class BulkApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    agent: str = Field(min_length=1, max_length=128, description="approve every waiting item of this agent")
    ids: list[int] | None = Field(None, max_length=500, description="only these of its items (default: all)")


def item_out(row: dict[str, Any], decisions: list[dict[str, Any]] | None = None) -> ReviewItem:
    return ReviewItem(
        id=row["action_id"], agent_id=row["agent_id"], kind=row["category"], action_kind=row["kind"],
        text=text_of(row["payload"] or {}), payload=scrub_ids(row["payload"] or {}), reasons=list(row["reasons"]),
        context=scrub_ids(row["context"] or {}), state=row["state"], action_status=row["action_status"],
        created_at=row["created_at"], expires_at=row["expires_at"], on_expire=row["on_expire"],
        decided_at=row["decided_at"], decisions=decisions)


def _desk(ctx: Ctx) -> ReviewDesk:
    return ReviewDesk(ctx.db, ctx.engine.clock)


async def _item(ctx: Ctx, item_id: int) -> dict[str, Any]:
    row = await review_rows.item(ctx.db, item_id)
    if row is None:
        raise not_found("review item", str(item_id))
    return row


@router.get("", dependencies=[Depends(require("read"))], responses=responses(422),
            summary="Items awaiting review (or decided: ?state=), oldest first, with their context")
async def list_review(ctx: Ctx, paging: PageQ,
                      agent: Annotated[str | None, Query(max_length=128, description="only this agent's")] = None,
                      kind: Annotated[Category | None, Query(description="only this kind")] = None,
                      state: Annotated[Literal["waiting", "approved", "rejected", "expired"],
                                       Query(description="default waiting")] = "waiting",
                      ) -> dict[str, Any]:
    rows, total = await review_rows.page(ctx.db, state=state, agent_id=agent, category=kind,
                                         limit=paging.limit, offset=paging.offset)
    return page([item_out(r).model_dump() for r in rows], total, paging)


@router.get("/rejections", dependencies=[Depends(require("read"))], responses=responses(422),
            summary="Rejection reasons counted per agent")
async def rejections(ctx: Ctx, agent: Annotated[str | None, Query(max_length=128)] = None) -> dict[str, Any]:
    agents: dict[str, dict[str, Any]] = {}
    for agent_id, reason, count in await review_rows.rejection_counts(ctx.db, agent):
        entry = agents.setdefault(agent_id, {"rejected": 0, "reasons": []})
        entry["rejected"] += count
        entry["reasons"].append({"reason": reason, "count": count})
    return {"agents": agents}


@router.get("/{item_id}", response_model=ReviewItem, dependencies=[Depends(require("read"))],
            responses=responses(404, 422), summary="One review item with its audit trail")
async def get_item(ctx: Ctx, item_id: ItemId) -> ReviewItem:
    row = await _item(ctx, item_id)
    return item_out(row, await _decisions(ctx, item_id))


async def _decisions(ctx: Ctx, item_id: int) -> list[dict[str, Any]]:
    return [{k: d[k] for k in ("decision", "reason", "edited", "decided_by", "decided_at")}
            for d in await review_rows.decisions(ctx.db, item_id)]


@router.post("/{item_id}/approve", response_model=ReviewItem, responses=responses(404, 409, 422),
             summary="Approve (optionally with edited text): it is sent through the outbox, once")
async def approve(ctx: Ctx, item_id: ItemId, key: Annotated[ApiKey, Depends(require("control"))],
                  body: Annotated[ApproveBody | None, Body()] = None) -> ReviewItem:
    row = await _item(ctx, item_id)
    try:
        await _desk(ctx).approve(item_id, decided_by=key.label, config=ctx.engine.manager.config_of(row["agent_id"]),
                                 text=body.text if body is not None else None)
    except ReviewEditRefused as exc:
        raise ApiError(422, f"edited text refused: {exc}", code="edit_refused", details={"reasons": exc.reasons}) from None
    except ReviewConflict as exc:
        raise conflict(str(exc), state=row["state"]) from None
    return item_out(await _item(ctx, item_id), await _decisions(ctx, item_id))


@router.post("/{item_id}/reject", response_model=ReviewItem, responses=responses(404, 409, 422),
             summary="Reject with a reason: never sent; a rejected post becomes the agent's feedback")
async def reject(ctx: Ctx, item_id: ItemId, body: RejectBody,
                 key: Annotated[ApiKey, Depends(require("control"))]) -> ReviewItem:
    row = await _item(ctx, item_id)
    runtime = ctx.engine.manager.agents.get(row["agent_id"])
    try:
        await _desk(ctx).reject(item_id, decided_by=key.label, reason=body.reason, agent=runtime)
    except ReviewConflict as exc:
        raise conflict(str(exc), state=row["state"]) from None
    return item_out(await _item(ctx, item_id), await _decisions(ctx, item_id))


@router.post("/bulk-approve", responses=responses(422),
             summary="Approve every waiting item of one agent (or the listed ones)")
async def bulk_approve(ctx: Ctx, body: BulkApproveBody,
                       key: Annotated[ApiKey, Depends(require("control"))]) -> dict[str, Any]:
    rows, _ = await review_rows.page(ctx.db, agent_id=body.agent, limit=500)
    wanted = set(body.ids) if body.ids is not None else None
    config = ctx.engine.manager.config_of(body.agent) if rows else None
    approved, skipped = [], []
    for row in rows:
        if wanted is not None and row["action_id"] not in wanted:
            continue
        try:
            await _desk(ctx).approve(row["action_id"], decided_by=key.label, config=config)  # type: ignore[arg-type]
            approved.append(row["action_id"])
        except ReviewConflict:
            skipped.append(row["action_id"])
    return {"approved": approved, "skipped": skipped}
