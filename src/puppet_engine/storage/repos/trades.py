"""The trades table: every trade asked for, with the rule that stopped it or its on-chain outcome."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from puppet_engine.storage.database import Database
from puppet_engine.storage.repos import facts
from puppet_engine.storage.sql import page_of
from puppet_engine.storage.tables import trades


async def by_key(db: Database, key: str) -> Any:
    """The trade recorded under ``key`` (a row mapping), or ``None``."""
    async with db.connect() as conn:
        row = (await conn.execute(sa.select(trades).where(trades.c.key == key))).first()
    return row._mapping if row else None


async def insert(db: Database, values: dict[str, Any], now: float) -> None:
    """Record a new trade (``values``: its columns but the times)."""
    async with db.transaction() as conn:
        await conn.execute(sa.insert(trades).values(**values, created_at=now, updated_at=now))
        await facts.insert(conn, [_fact(values["agent_id"], values, now)])


async def update(db: Database, key: str, now: float, **values: Any) -> None:
    """Set columns of the trade recorded under ``key``."""
    async with db.transaction() as conn:
        await conn.execute(sa.update(trades).where(trades.c.key == key).values(**values, updated_at=now))
        if "status" in values:  # the history keeps each step of a trade's life
            row = (await conn.execute(sa.select(trades).where(trades.c.key == key))).mappings().first()
            if row is not None:
                await facts.insert(conn, [_fact(row["agent_id"], dict(row), now)])


_FACT_COLUMNS = ("key", "status", "input_mint", "output_mint", "in_amount", "out_amount", "amount_sol", "rule",
                 "error", "signature")


def _fact(agent_id: str, values: dict[str, Any], now: float) -> dict[str, Any]:
    return facts.fact(agent_id, "trade", {k: values[k] for k in _FACT_COLUMNS if values.get(k) is not None}, now)


async def with_status(db: Database, agent_id: str, statuses: Iterable[str]) -> list[Any]:
    """The agent's trades in one of ``statuses`` (row mappings)."""
    async with db.connect() as conn:
        rows = (await conn.execute(sa.select(trades).where(
            trades.c.agent_id == agent_id, trades.c.status.in_(list(statuses))))).all()
    return [row._mapping for row in rows]


async def latest(db: Database, agent_id: str, limit: int) -> list[Any]:
    """The agent's latest trades, newest first (row mappings)."""
    async with db.connect() as conn:
        rows = (await conn.execute(sa.select(trades).where(trades.c.agent_id == agent_id)
                                   .order_by(trades.c.created_at.desc()).limit(limit))).all()
    return [row._mapping for row in rows]


async def count_and_volume(db: Database, agent_id: str, since: float, statuses: Iterable[str]) -> tuple[int, float]:
    """How many of the agent's trades in ``statuses`` were made since ``since``, and their SOL."""
    query = sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(trades.c.amount_sol), 0.0)).where(
        trades.c.agent_id == agent_id, trades.c.created_at >= since, trades.c.status.in_(list(statuses)))
    async with db.connect() as conn:
        count, volume = (await conn.execute(query)).one()
    return int(count), float(volume or 0.0)


@dataclass(frozen=True)
class TradeTotals:
    """An agent's trades in figures."""

    by_status: dict[str, int]
    volume_sol: float  # of confirmed trades
    fees_lamports: int
    last_at: float | None
    recent: int  # made since the ``since`` asked for


async def totals(db: Database, agent_id: str, since: float) -> TradeTotals:
    """The agent's trades by status, confirmed volume, fees, last trade, and how many since ``since``."""
    mine = trades.c.agent_id == agent_id
    async with db.connect() as conn:
        by_status = {str(r[0]): int(r[1]) for r in (await conn.execute(
            sa.select(trades.c.status, sa.func.count()).where(mine).group_by(trades.c.status))).fetchall()}
        volume, fees, last = (await conn.execute(sa.select(
            sa.func.coalesce(sa.func.sum(sa.case((trades.c.status == "confirmed", trades.c.amount_sol), else_=0.0)), 0.0),
            sa.func.coalesce(sa.func.sum(trades.c.fee_lamports), 0),
            sa.func.max(trades.c.created_at)).where(mine))).one()
        recent = int((await conn.execute(sa.select(sa.func.count()).select_from(trades)
                                         .where(mine, trades.c.created_at >= since))).scalar() or 0)
    return TradeTotals(by_status, float(volume or 0.0), int(fees or 0), last, recent)


async def page_for(db: Database, agent_id: str, columns: Sequence[str], *, status: str | None, limit: int,
                   offset: int) -> tuple[list[dict[str, Any]], int]:
    """The agent's trades (these ``columns``, of ``status``), newest first, one page, and how many."""
    q = sa.select(*[trades.c[name] for name in columns]).where(trades.c.agent_id == agent_id)
    if status:
        q = q.where(trades.c.status == status)
    async with db.connect() as conn:
        return await page_of(conn, q, trades.c.id.desc(), limit=limit, offset=offset)


async def confirmed_since(db: Database, agent_id: str, since: float) -> list[Any]:
    """``(input_mint, output_mint, in_amount, out_amount, fee_lamports, updated_at)`` of the
    agent's trades confirmed since ``since``, newest first."""
    q = (sa.select(trades.c.input_mint, trades.c.output_mint, trades.c.in_amount, trades.c.out_amount,
                   trades.c.fee_lamports, trades.c.updated_at)
         .where(trades.c.agent_id == agent_id, trades.c.status == "confirmed", trades.c.updated_at >= since)
         .order_by(trades.c.updated_at.desc()))
    async with db.connect() as conn:
        return list((await conn.execute(q)).fetchall())


async def confirmed_counts(db: Database) -> dict[str, int]:
    """agent id → how many of its trades were confirmed."""
    async with db.connect() as conn:
        rows = await conn.execute(sa.select(trades.c.agent_id, sa.func.count())
                                  .where(trades.c.status == "confirmed").group_by(trades.c.agent_id))
        return {a: int(n) for a, n in rows}
