"""Engagement sampling against the X emulator: batches of at most 100 ids, a 429 answered by
waiting for the window's reset, no sample lost or taken twice, deleted posts marked gone."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from engagement_helpers import make_engine, persona

from puppet_engine.clock import VirtualClock
from puppet_engine.engine import Engine
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.sandbox.faults import FaultSpec
from puppet_engine.storage.repos import outbox
from puppet_engine.storage.tables import events, post_metrics

HOUR = 3600.0


async def seed_posts(engine: Engine, sandbox: Sandbox, agent_id: str, n: int) -> list[str]:
    """``n`` posts the agent sent (on the emulator and in its outbox) in the last few minutes."""
    x = sandbox.service("x").state
    account = x.account_by_username(engine.manager.agents[agent_id].username)
    clock = engine.clock
    ids = []
    async with engine.db.transaction() as conn:
        for i in range(n):
            now = clock.now() - (n - i) * 2.0
            tweet = x.create_tweet(account, f"note {i} on validators and the ledger", now)
            action_id = await outbox.insert_action(conn, f"seed:{agent_id}:{i}", agent_id, "post",
                                                   {"text": tweet.text}, None, now)
            await outbox.mark_actions_done(conn, [(action_id, now, tweet.id, {})])
            ids.append(tweet.id)
    return ids


async def sample_results(engine: Engine) -> list[dict[str, Any]]:
    async with engine.db.connect() as conn:
        rows = (await conn.execute(sa.select(events.c.result, events.c.status)
                                   .where(events.c.type == "engagement.sample", events.c.status != "pending")
                                   .order_by(events.c.finished_at))).fetchall()
    assert all(status == "done" for _, status in rows)
    return [result for result, _ in rows]


async def test_150_posts_take_two_lookups_and_a_429_waits_for_the_reset(sqlite_url: str) -> None:
    clock = VirtualClock()
    sandbox = Sandbox(SandboxConfig(seed=2, crowd_rate=0), clock=clock)
    engine = make_engine(sqlite_url, clock, sandbox, persona("ed", min_h=500, max_h=600))
    await engine.start()
    await engine.run_until(clock.now() + 600)  # connected; its one first post is out
    ids = await seed_posts(engine, sandbox, "ed", 150)
    sandbox.service("x").state.delete_tweet(sandbox.service("x").state.tweets[ids[7]])
    lookups_before = int(sandbox.service("x").stats.get("200", 0))
    reset = int(clock.now() + 3 * HOUR)
    sandbox.faults.add(FaultSpec(service="x", method="GET", path="/2/tweets", status=429, count=1,
                                 body={"title": "Too Many Requests", "detail": "Too Many Requests",
                                       "type": "about:blank", "status": 429},
                                 headers={"x-rate-limit-limit": "900", "x-rate-limit-remaining": "0",
                                          "x-rate-limit-reset": str(reset)}))
    await engine.run_until(clock.now() + 5 * HOUR)

    results = await sample_results(engine)
    limited = [r for r in results if r["rate_limited"]]
    assert len(limited) == 1 and limited[0]["calls"] == 0  # nothing read in that round …
    after = results[results.index(limited[0]) + 1]
    assert after["calls"] == 2 and after["sampled"] >= 150  # … all of it in the next: 100 + 50 (+ its own post)
    async with engine.db.connect() as conn:
        rows = [r._mapping for r in (await conn.execute(sa.select(post_metrics).where(
            post_metrics.c.post_id.in_(ids)))).fetchall()]
    first = [r for r in rows if r["slot"] == 0]
    assert len(first) == 150 and len({r["post_id"] for r in first}) == 150
    assert all(r["sampled_at"] >= reset for r in first)  # not before the window's reset
    gone = [r for r in first if r["gone"]]
    assert [r["post_id"] for r in gone] == [ids[7]] and gone[0]["impressions"] is None
    lookups = int(sandbox.service("x").stats.get("200", 0)) - lookups_before
    assert lookups <= 4  # two batched lookups (plus the agent's own reads), never one per post
    await engine.stop()


async def test_a_restarted_engine_takes_no_sample_twice(sqlite_url: str) -> None:
    clock = VirtualClock()
    sandbox = Sandbox(SandboxConfig(seed=2, crowd_rate=0), clock=clock)
    engine = make_engine(sqlite_url, clock, sandbox, persona("fa"))
    await engine.start()
    await engine.run_until(clock.now() + 30 * HOUR)
    await engine.stop()
    again = make_engine(sqlite_url, clock, sandbox, persona("fa"))
    await again.start()
    await again.run_until(clock.now() + 50 * HOUR)
    async with again.db.connect() as conn:
        rows = (await conn.execute(sa.select(post_metrics.c.post_id, post_metrics.c.slot))).fetchall()
        pending = (await conn.execute(sa.select(sa.func.count()).select_from(events).where(
            events.c.type == "engagement.sample", events.c.status == "pending"))).scalar()
    assert len(rows) == len(set(rows)) and len({p for p, _ in rows}) >= 10
    assert pending == 1  # one schedule per agent, not one more per start
    await again.stop()


async def test_samples_are_pruned_after_the_retention(sqlite_url: str) -> None:
    clock = VirtualClock()
    sandbox = Sandbox(SandboxConfig(seed=2, crowd_rate=0), clock=clock)
    engine = make_engine(sqlite_url, clock, sandbox, persona("gu"), engagement_retention_days=2.0)
    await engine.start()
    start = clock.now()
    await engine.run_until(start + 9 * 24 * HOUR)
    async with engine.db.connect() as conn:
        oldest = (await conn.execute(sa.select(sa.func.min(post_metrics.c.posted_at)))).scalar()
        rows = (await conn.execute(sa.select(post_metrics.c.post_id, post_metrics.c.slot))).fetchall()
    pruned = sum(r.get("pruned", 0) for r in await sample_results(engine))
    assert pruned > 0 and len(rows) == len(set(rows))
    # Kept the retention, but never less than the sampling window (84 h + two 6 h checks + a day = 4.5
    # days; a post pruned inside it would be sampled again), and pruned once a day.
    kept = engine.services.engagement.kept
    assert kept == 4.5 * 24 * HOUR
    assert oldest is not None and clock.now() - kept - 24 * HOUR <= oldest  # nothing pruned came back
    await engine.stop()
