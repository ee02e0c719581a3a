"""The review queue's rows: why an outbox action waits (``review_items``) and who decided what
(``review_decisions``).

The action itself stays in ``actions`` (status ``awaiting_review``); a decision moves it with a
conditional update (``awaiting_review → pending`` or ``→ rejected``/``expired``) in the same
transaction as the item's state and the audit row, so two operators (or an operator and the
expiry) never both decide one item.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from puppet_engine.storage.database import Database
from puppet_engine.storage.prepared import Prepared
from puppet_engine.storage.tables import actions, review_decisions, review_items

AWAITING = "awaiting_review"


async def insert_item(conn: AsyncConnection, action_id: int, agent_id: str, item: dict[str, Any], now: float) -> None:
    """Record why action ``action_id`` waits: ``item`` has ``category``, ``reasons``, ``context``,
    ``expires_at`` (or None), ``on_expire`` and ``notify`` (whether a webhook notice is due)."""
    await conn.execute(review_items.insert().values(
        action_id=action_id, agent_id=agent_id, category=item["category"], reasons=list(item["reasons"]),
        context=item.get("context") or {}, state="waiting", created_at=now, expires_at=item.get("expires_at"),
        on_expire=item.get("on_expire", "drop"), notice="pending" if item.get("notify") else "none",
        notice_attempts=0))


def _joined() -> sa.Select[Any]:
    return (sa.select(review_items, actions.c.key, actions.c.kind, actions.c.payload,
                      actions.c.status.label("action_status"))
            .join(actions, actions.c.id == review_items.c.action_id))


async def item(db: Database, action_id: int) -> dict[str, Any] | None:
    """One item with its action (``key``, ``kind``, ``payload``, ``action_status``), or None."""
    async with db.connect() as conn:
        row = (await conn.execute(_joined().where(review_items.c.action_id == action_id))).first()
    return dict(row._mapping) if row is not None else None


async def page(db: Database, *, state: str = "waiting", agent_id: str | None = None, category: str | None = None,
               limit: int = 50, offset: int = 0) -> tuple[list[dict[str, Any]], int]:
    """Items in ``state`` (of an agent, of a category), oldest first, one page, and how many in all."""
    where = [review_items.c.state == state]
    if agent_id:
        where.append(review_items.c.agent_id == agent_id)
    if category:
        where.append(review_items.c.category == category)
    async with db.connect() as conn:
        total = (await conn.execute(sa.select(sa.func.count()).select_from(review_items).where(*where))).scalar()
        rows = await conn.execute(_joined().where(*where).order_by(review_items.c.action_id)
                                  .limit(limit).offset(offset))
        return [dict(r._mapping) for r in rows], int(total or 0)


async def waiting_count(db: Database) -> int:
    """How many items wait for a decision."""
    async with db.connect() as conn:
        return int((await conn.execute(sa.select(sa.func.count()).select_from(review_items)
                                       .where(review_items.c.state == "waiting"))).scalar() or 0)


async def decide(conn: AsyncConnection, action_id: int, *, state: str, action_status: str, now: float,
                 decision: str, decided_by: str | None, reason: str | None = None,
                 payload: dict[str, Any] | None = None) -> bool:
    """Move a waiting item to ``state`` and its action from ``awaiting_review`` to ``action_status``
    (with an edited ``payload``), and record the decision; False when it was no longer waiting."""
    res = await conn.execute(review_items.update()
                             .where(review_items.c.action_id == action_id, review_items.c.state == "waiting")
                             .values(state=state, decided_at=now))
    if not res.rowcount:
        return False
    values: dict[str, Any] = {"status": action_status, "updated_at": now, "not_before": 0.0}
    if payload is not None:
        values["payload"] = payload
    if action_status != "pending":
        values["error"] = f"review: {decision}" + (f": {reason}" if reason else "")
    await conn.execute(actions.update().where(actions.c.id == action_id, actions.c.status == AWAITING)
                       .values(**values))
    row = (await conn.execute(sa.select(review_items.c.agent_id).where(review_items.c.action_id == action_id))).one()
    await conn.execute(review_decisions.insert().values(
        action_id=action_id, agent_id=row[0], decision=decision, reason=reason, edited=payload is not None,
        decided_by=decided_by, decided_at=now))
    return True


# Built once: the outbox asks it on every pass. Agents are filtered in Python (few items wait).
_EXPIRING = Prepared(sa.select(review_items.c.action_id, review_items.c.agent_id, review_items.c.on_expire,
                               review_items.c.expires_at)
                     .where(review_items.c.state == "waiting", review_items.c.expires_at.is_not(None))
                     .order_by(review_items.c.expires_at).limit(sa.bindparam("b_limit", type_=sa.Integer)))


async def expiring(conn: AsyncConnection, now: float, agent_ids: Iterable[str] | None,
                   limit: int = 500) -> tuple[list[tuple[int, str]], float | None]:
    """Waiting items (of these agents) whose time is up, ``(action id, on_expire)``, soonest
    first, and when the next one expires (among the ``limit`` soonest of all agents)."""
    rows = await _EXPIRING.rows(conn, {"b_limit": limit})
    mine = agent_ids if isinstance(agent_ids, set | frozenset) or agent_ids is None else set(agent_ids)
    rows = [r for r in rows if mine is None or r[1] in mine]
    due = [(int(a), str(o)) for a, _, o, at in rows if at <= now]
    later = next((float(at) for _, _, _, at in rows if at > now), None)
    return due, later


async def claim_notices(db: Database, limit: int = 20) -> list[dict[str, Any]]:
    """Items whose webhook notice is due, each claimed (``pending → sending``) by this caller."""
    async with db.transaction() as conn:
        rows = (await conn.execute(_joined().where(review_items.c.notice == "pending")
                                   .order_by(review_items.c.action_id).limit(limit))).fetchall()
        claimed = []
        for row in rows:
            res = await conn.execute(review_items.update()
                                     .where(review_items.c.action_id == row.action_id,
                                            review_items.c.notice == "pending").values(notice="sending"))
            if res.rowcount:
                claimed.append(dict(row._mapping))
    return claimed


async def notice_done(db: Database, action_id: int, *, sent: bool, attempts: int) -> None:
    """The notice went out (``sent``) or was given up after ``attempts``."""
    async with db.transaction() as conn:
        await conn.execute(review_items.update().where(review_items.c.action_id == action_id)
                           .values(notice="sent" if sent else "failed", notice_attempts=attempts))


async def decisions(db: Database, action_id: int) -> list[dict[str, Any]]:
    """The audit trail of one item, oldest first."""
    async with db.connect() as conn:
        rows = await conn.execute(sa.select(review_decisions).where(review_decisions.c.action_id == action_id)
                                  .order_by(review_decisions.c.id))
        return [dict(r._mapping) for r in rows]


async def rejection_counts(db: Database, agent_id: str | None = None) -> list[tuple[str, str, int]]:
    """``(agent id, reason, how many)`` of rejections, most frequent first."""
    q = (sa.select(review_decisions.c.agent_id, review_decisions.c.reason, sa.func.count())
         .where(review_decisions.c.decision == "rejected")
         .group_by(review_decisions.c.agent_id, review_decisions.c.reason)
         .order_by(sa.func.count().desc(), review_decisions.c.agent_id))
    if agent_id:
        q = q.where(review_decisions.c.agent_id == agent_id)
    async with db.connect() as conn:
        return [(str(a), r or "", int(n)) for a, r, n in await conn.execute(q)]


async def tweets_sent(db: Database, agent_id: str, kinds: tuple[str, ...]) -> int:
    """How many tweets of these kinds the agent sent (or is sending): the "first N posts" count."""
    async with db.connect() as conn:
        q = (sa.select(sa.func.count()).select_from(actions)
             .where(actions.c.agent_id == agent_id, actions.c.kind.in_(kinds),
                    actions.c.status.in_(("done", "sending", "pending", "unknown"))))
        return int((await conn.execute(q)).scalar() or 0)
