"""The price_samples table: token prices in USD as sampled over time."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import sqlalchemy as sa

from puppet_engine.storage.database import Database
from puppet_engine.storage.tables import price_samples


async def record(db: Database, prices: Iterable[tuple[str, float]], now: float) -> None:
    """Record ``(mint, USD price)`` samples taken at ``now``."""
    rows = [{"mint": mint, "price_usd": price, "sampled_at": now} for mint, price in prices]
    if rows:
        async with db.transaction() as conn:
            await conn.execute(sa.insert(price_samples), rows)


async def since(db: Database, mints: Sequence[str], start: float) -> dict[str, list[tuple[float, float]]]:
    """mint → ``(sampled at, USD price)`` since ``start``, oldest first (every mint asked for)."""
    query = (sa.select(price_samples.c.mint, price_samples.c.sampled_at, price_samples.c.price_usd)
             .where(price_samples.c.mint.in_(list(mints)), price_samples.c.sampled_at >= start)
             .order_by(price_samples.c.sampled_at))
    out: dict[str, list[tuple[float, float]]] = {m: [] for m in mints}
    async with db.connect() as conn:
        for mint, at, price in (await conn.execute(query)).all():
            out[mint].append((float(at), float(price)))
    return out


async def covering(db: Database, mints: Iterable[str], start: float) -> list[tuple[str, float, float]]:
    """``(mint, USD price, sampled at)`` from the last sample before ``start`` of any of these
    mints on (so a price is known at ``start``), in no particular order."""
    wanted = sorted(mints)
    async with db.connect() as conn:
        before = (await conn.execute(
            sa.select(price_samples.c.mint, sa.func.max(price_samples.c.sampled_at))
            .where(price_samples.c.mint.in_(wanted), price_samples.c.sampled_at < start)
            .group_by(price_samples.c.mint))).fetchall()
        first = min([float(r[1]) for r in before], default=start)
        rows = (await conn.execute(
            sa.select(price_samples.c.mint, price_samples.c.price_usd, price_samples.c.sampled_at)
            .where(price_samples.c.mint.in_(wanted), price_samples.c.sampled_at >= first))).fetchall()
    return [(r[0], float(r[1]), float(r[2])) for r in rows]
