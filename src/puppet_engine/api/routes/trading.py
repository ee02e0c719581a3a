"""``/trading/{agent_id}``: trade statistics, the trade audit trail, wallet balance and portfolio value."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query

from puppet_engine.api.auth import require
from puppet_engine.api.deps import AgentId, Ctx, PageQ, page
from puppet_engine.api.portfolio import balance_of, portfolio_series
from puppet_engine.api.schemas import Balance, Page, PortfolioPoint, TradeOut, TradeStats, responses
from puppet_engine.storage.repos import trades

router = APIRouter(prefix="/trading", tags=["trading"])
read = Depends(require("read"))
DAY = 86_400.0

TradeStatusName = Literal["rejected", "pending", "sent", "confirmed", "failed", "dry-run"]


@router.get("/{agent_id}/stats", response_model=TradeStats, dependencies=[read], responses=responses(404, 422),
            summary="How many trades, by outcome, and their volume")
async def stats(agent_id: AgentId, ctx: Ctx) -> TradeStats:
    runtime = ctx.agent(agent_id)
    since = ctx.engine.clock.now() - DAY
    found = await trades.totals(ctx.db, agent_id, since)
    by_status = found.by_status
    return TradeStats(
        agent_id=agent_id, trading_enabled=runtime.config.trading_enabled, total=sum(by_status.values()),
        by_status=by_status, confirmed=by_status.get("confirmed", 0), failed=by_status.get("failed", 0),
        rejected=by_status.get("rejected", 0), volume_sol=found.volume_sol, fees_lamports=found.fees_lamports,
        trades_last_24h=found.recent, last_trade_at=found.last_at,
    )


@router.get("/{agent_id}/transactions", response_model=Page[TradeOut], dependencies=[read],
            responses=responses(404, 422), summary="The agent's trades, newest first, with the rule that stopped any")
async def transactions(agent_id: AgentId, paging: PageQ, ctx: Ctx,
                       status: Annotated[TradeStatusName | None, Query()] = None) -> dict[str, Any]:
    ctx.agent(agent_id)
    items, total = await trades.page_for(ctx.db, agent_id, list(TradeOut.model_fields), status=status,
                                         limit=paging.limit, offset=paging.offset)
    return page(items, total, paging)


@router.get("/{agent_id}/balance", response_model=Balance, dependencies=[read], responses=responses(404, 409, 422, 503),
            summary="The wallet's SOL and token balances, valued in USD where prices are known")
async def balance(agent_id: AgentId, ctx: Ctx) -> Balance:
    result = await balance_of(ctx, agent_id)
    ctx.balances[agent_id] = (result.sol, result.as_of)
    return result


@router.get("/{agent_id}/portfolio", response_model=list[PortfolioPoint], dependencies=[read],
            responses=responses(404, 409, 422, 503),
            summary="Portfolio value over time, rebuilt from the current balance, the trades and price samples")
async def portfolio(agent_id: AgentId, ctx: Ctx,
                    hours: Annotated[float, Query(gt=0, le=24 * 90, description="how far back")] = 24.0,
                    points: Annotated[int, Query(ge=2, le=500, description="samples in the series")] = 60,
                    ) -> list[PortfolioPoint]:
    return await portfolio_series(ctx, agent_id, hours * 3600.0, points)
