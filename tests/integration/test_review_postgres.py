"""The review queue on PostgreSQL: held, approved (sent once), rejected and expired, as on SQLite."""

from __future__ import annotations

import sqlalchemy as sa

from e2e.test_review_queue import make_engine, persona, tweets_of
from puppet_engine.agents.review_desk import ReviewDesk
from puppet_engine.clock import VirtualClock
from puppet_engine.storage.repos import review as review_rows
from puppet_engine.storage.tables import actions, review_decisions

HOUR = 3600.0


async def test_review_queue_on_postgres(pg_url: str) -> None:
    clock = VirtualClock()
    engine = make_engine(pg_url, clock, persona("pia", {"kinds": ["posts"], "expire_minutes": 300}))
    await engine.start()
    await engine.run_until(clock.now() + 4 * HOUR)
    items, total = await review_rows.page(engine.db, agent_id="pia")
    assert total >= 2
    desk = ReviewDesk(engine.db, engine.clock)
    config = engine.manager.config_of("pia")
    await desk.approve(items[0]["action_id"], decided_by="control:pg", config=config, text="Tea, maps, and patience.")
    await desk.reject(items[1]["action_id"], decided_by="control:pg", reason="dull",
                      agent=engine.manager.agents["pia"])
    await engine.run_until(clock.now() + 8 * HOUR)  # older ones expire (dropped), new ones wait
    assert [t["text"] for t in await tweets_of(engine, "pia")] == ["Tea, maps, and patience."]
    async with engine.db.connect() as conn:
        rows = (await conn.execute(sa.select(actions.c.status, actions.c.created_at).order_by(actions.c.id))).all()
        statuses = [r[0] for r in rows]
        decisions = [r[0] for r in await conn.execute(sa.select(review_decisions.c.decision)
                                                      .order_by(review_decisions.c.id))]
    assert statuses[:2] == ["done", "rejected"] and "expired" in statuses[2:]
    assert all(created > clock.now() - 300 * 60 for status, created in rows if status == "awaiting_review")
    assert decisions[:2] == ["approved", "rejected"] and set(decisions[2:]) <= {"expired_dropped"}
    assert await review_rows.rejection_counts(engine.db) == [("pia", "dull", 1)]
    await engine.stop()
