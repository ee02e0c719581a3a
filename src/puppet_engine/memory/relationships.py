"""What an agent thinks of another agent or account: the ``relationships`` table.

Sentiment runs from -1 (hostile) to 1 (warm), familiarity and trust from 0 to
1. Interactions nudge them through :meth:`RelationshipStore.update_from_interaction`,
which clamps every value to its range in one atomic upsert.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from puppet_engine.clock import Clock, WallClock
from puppet_engine.storage import Database
from puppet_engine.storage.prepared import Prepared
from puppet_engine.storage.repos import facts
from puppet_engine.storage.tables import relationships as table

#: Notes keep this many characters (the newest).
MAX_NOTES_CHARS = 4000


@dataclass
class Relationship:
    agent_id: str
    other: str
    sentiment: float = 0.0
    familiarity: float = 0.0
    trust: float = 0.5
    notes: str = ""
    interactions: int = 0
    updated_at: float = 0.0


def _from_row(row: Any) -> Relationship:
    return Relationship(
        agent_id=row["agent_id"],
        other=row["other"],
        sentiment=float(row["sentiment"]),
        familiarity=float(row["familiarity"]),
        trust=float(row["trust"]),
        notes=str(row["notes"]),
        interactions=int(row["interactions"]),
        updated_at=float(row["updated_at"]),
    )


def _interaction_params(agent_id: str, other: str, now: float, sentiment_delta: float,
                        familiarity_delta: float, trust_delta: float) -> dict[str, Any]:
    """The interaction upsert's parameters: the row a first interaction creates, and the deltas."""
    return {
        "b_agent_id": agent_id,
        "b_other": other,
        "b_sentiment": _clamp(sentiment_delta, -1.0, 1.0),
        "b_familiarity": _clamp(familiarity_delta, 0.0, 1.0),
        "b_trust": _clamp(0.5 + trust_delta, 0.0, 1.0),
        "b_notes": "",
        "b_interactions": 1,
        "b_updated_at": now,
        "b_d_sentiment": sentiment_delta,
        "b_d_familiarity": familiarity_delta,
        "b_d_trust": trust_delta,
    }


def _fact(row: Any, now: float, *, notes: bool) -> dict[str, Any]:
    """The history's fact of a relationship as ``row`` now has it (notes only when they changed)."""
    payload = {k: row[k] for k in ("other", "sentiment", "familiarity", "trust", "interactions")}
    if notes:
        payload["notes"] = row["notes"]
    return facts.fact(row["agent_id"], "relationship", payload, now)


def _clamp(value: float, low: float, high: float) -> float:
    return max(low, min(high, float(value)))


def _clamp_sql(expr: sa.ColumnElement[float], low: float, high: float) -> sa.ColumnElement[float]:
    # CASE works alike on SQLite and PostgreSQL (unlike MIN/MAX vs LEAST/GREATEST).
    return sa.case((expr < low, sa.literal(low)), (expr > high, sa.literal(high)), else_=expr)


_UPSERTS: dict[bool, Prepared] = {}  # PostgreSQL or not → the interaction upsert


class RelationshipStore:
    """CRUD over ``relationships`` on the engine's database."""

    def __init__(self, database: Database, clock: Clock | None = None) -> None:
        self.db = database
        self.clock = clock or WallClock()

    def _insert(self) -> Any:  # the dialect's Insert, with on_conflict_*
        dialect = postgresql if self.db.is_postgres else sqlite
        return dialect.insert(table)

    def _interaction_upsert(self) -> Prepared:
        """Insert the first interaction or add one to the row, clamped: built once, run with parameters."""
        stmt = _UPSERTS.get(self.db.is_postgres)
        if stmt is None:
            def param(name: str, column: sa.Column[Any]) -> Any:
                return sa.bindparam(name, type_=column.type)

            insert = self._insert().values({c.name: param(f"b_{c.name}", c) for c in table.c if c.name != "id"})
            stmt = _UPSERTS[self.db.is_postgres] = Prepared(insert.on_conflict_do_update(
                index_elements=[table.c.agent_id, table.c.other],
                set_={
                    "sentiment": _clamp_sql(table.c.sentiment + param("b_d_sentiment", table.c.sentiment), -1.0, 1.0),
                    "familiarity": _clamp_sql(table.c.familiarity + param("b_d_familiarity", table.c.familiarity),
                                              0.0, 1.0),
                    "trust": _clamp_sql(table.c.trust + param("b_d_trust", table.c.trust), 0.0, 1.0),
                    "interactions": table.c.interactions + 1,
                    "updated_at": param("b_updated_at", table.c.updated_at),
                },
            ).returning(*table.c))
        return stmt

    async def get(self, agent_id: str, other: str) -> Relationship | None:
        async with self.db.connect() as conn:
            row = (
                (
                    await conn.execute(
                        sa.select(table).where(table.c.agent_id == agent_id, table.c.other == other)
                    )
                )
                .mappings()
                .first()
            )
        return _from_row(row) if row else None

    async def list_for(self, agent_id: str) -> list[Relationship]:
        """Every relationship of the agent, most familiar first."""
        query = (
            sa.select(table)
            .where(table.c.agent_id == agent_id)
            .order_by(table.c.familiarity.desc(), table.c.other)
        )
        async with self.db.connect() as conn:
            rows = (await conn.execute(query)).mappings().all()
        return [_from_row(row) for row in rows]

    async def upsert(self, relationship: Relationship) -> Relationship:
        """Create or replace, with values clamped to their ranges."""
        now = self.clock.now()
        values = {
            "agent_id": relationship.agent_id,
            "other": relationship.other,
            "sentiment": _clamp(relationship.sentiment, -1.0, 1.0),
            "familiarity": _clamp(relationship.familiarity, 0.0, 1.0),
            "trust": _clamp(relationship.trust, 0.0, 1.0),
            "notes": relationship.notes[-MAX_NOTES_CHARS:],
            "interactions": max(0, relationship.interactions),
            "updated_at": now,
        }
        stmt = self._insert().values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[table.c.agent_id, table.c.other],
            set_={k: stmt.excluded[k] for k in values if k not in ("agent_id", "other")},
        )
        async with self.db.transaction() as conn:
            await conn.execute(stmt)
            await facts.insert(conn, [_fact(values, now, notes=True)])
        return _from_row(values)

    async def seed(
        self,
        agent_id: str,
        other: str,
        *,
        sentiment: float = 0.0,
        familiarity: float = 0.0,
        trust: float = 0.5,
        notes: str = "",
    ) -> bool:
        """Create the relationship unless it exists (its evolved state wins); True if created."""
        now = self.clock.now()
        values = {
            "agent_id": agent_id, "other": other, "sentiment": _clamp(sentiment, -1.0, 1.0),
            "familiarity": _clamp(familiarity, 0.0, 1.0), "trust": _clamp(trust, 0.0, 1.0),
            "notes": notes[-MAX_NOTES_CHARS:], "interactions": 0, "updated_at": now,
        }
        stmt = self._insert().values(**values).on_conflict_do_nothing(index_elements=[table.c.agent_id, table.c.other])
        async with self.db.transaction() as conn:
            result = await conn.execute(stmt)
            if result.rowcount:
                await facts.insert(conn, [_fact(values, now, notes=True)])
        return bool(result.rowcount)

    async def update_from_interaction(
        self,
        agent_id: str,
        other: str,
        sentiment_delta: float = 0.0,
        *,
        familiarity_delta: float = 0.05,
        trust_delta: float = 0.0,
        note: str | None = None,
    ) -> Relationship:
        """Record one interaction: add the deltas (clamped), count it, append ``note``.

        Creates the relationship from the defaults when it does not exist yet.
        """
        params = _interaction_params(agent_id, other, self.clock.now(), sentiment_delta, familiarity_delta,
                                     trust_delta)
        async with self.db.transaction() as conn:
            [found] = await self._interaction_upsert().rows(conn, params)
            row = dict(found._mapping)
            if note:
                # The upsert holds the row's write lock until commit, so this append is safe.
                notes = (row["notes"] + "\n" + note if row["notes"] else note)[-MAX_NOTES_CHARS:]
                await conn.execute(
                    sa.update(table)
                    .where(table.c.agent_id == agent_id, table.c.other == other)
                    .values(notes=notes)
                )
                row["notes"] = notes
            await facts.insert(conn, [_fact(row, params["b_updated_at"], notes=bool(note))])
        return _from_row(row)

    async def update_from_interactions(
        self,
        agent_id: str,
        others: Iterable[str],
        sentiment_delta: float = 0.0,
        *,
        familiarity_delta: float = 0.05,
        trust_delta: float = 0.0,
    ) -> list[Relationship]:
        """:meth:`update_from_interaction` with each of ``others`` (each once), in one transaction."""
        write = self.interactions_write(agent_id, others, sentiment_delta, familiarity_delta=familiarity_delta,
                                        trust_delta=trust_delta)
        if write is None:
            return []
        async with self.db.transaction() as conn:
            return await write(conn)

    def interactions_write(self, agent_id: str, others: Iterable[str], sentiment_delta: float = 0.0, *,
                           familiarity_delta: float = 0.05, trust_delta: float = 0.0
                           ) -> Callable[[AsyncConnection], Awaitable[list[Relationship]]] | None:
        """:meth:`update_from_interactions` as a write for the caller's transaction (an event's
        outcome: see ``HandlerResult.writes``), timed now; None when there is no one to update.
        The transaction must be on this store's database."""
        now = self.clock.now()
        each = [_interaction_params(agent_id, other, now, sentiment_delta, familiarity_delta, trust_delta)
                for other in dict.fromkeys(others)]
        if not each:
            return None

        async def write(conn: AsyncConnection) -> list[Relationship]:
            # One statement for all (distinct rows): rows back by other.
            found = {row.other: row._mapping for row in await self._interaction_upsert().rows(conn, each)}
            rows = [found[params["b_other"]] for params in each]
            await facts.insert(conn, [_fact(row, now, notes=False) for row in rows])
            return [_from_row(row) for row in rows]

        return write

    async def delete(self, agent_id: str, other: str) -> bool:
        async with self.db.transaction() as conn:
            result = await conn.execute(
                sa.delete(table).where(table.c.agent_id == agent_id, table.c.other == other)
            )
            if result.rowcount:
                await facts.insert(conn, [facts.fact(agent_id, "relationship", {"other": other, "deleted": True},
                                                     self.clock.now())])
        return bool(result.rowcount)

    async def clear(self, agent_id: str) -> int:
        async with self.db.transaction() as conn:
            result = await conn.execute(sa.delete(table).where(table.c.agent_id == agent_id))
            if result.rowcount:
                await facts.insert(conn, [facts.fact(agent_id, "relationship", {"cleared": True}, self.clock.now())])
        return int(result.rowcount or 0)
