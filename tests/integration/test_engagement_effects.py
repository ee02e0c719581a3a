"""Engagement end to end: the engine samples its posts' public metrics from the sandbox crowd
on the virtual clock, within X's limits, and the numbers change memory, mood and peak hours."""

from __future__ import annotations

from collections import Counter
from typing import Any

import sqlalchemy as sa
from engagement_helpers import make_engine, persona

from puppet_engine.agents.engagement import HOUR, importance_for
from puppet_engine.agents.mood import Mood, after_engagement
from puppet_engine.clock import VirtualClock
from puppet_engine.engine import Engine
from puppet_engine.sandbox import Sandbox, SandboxConfig
from puppet_engine.storage.tables import events, post_metrics

DAY = 24 * HOUR


async def rows(engine: Engine, table: sa.Table, *where: Any) -> list[Any]:
    async with engine.db.connect() as conn:
        return list((await conn.execute(sa.select(table).where(*where))).fetchall())


async def sample_events(engine: Engine) -> list[Any]:
    return await rows(engine, events, events.c.type == "engagement.sample")


async def test_posts_are_sampled_on_schedule_and_move_memory_and_mood(sqlite_url: str) -> None:
    clock = VirtualClock()
    sandbox = Sandbox(SandboxConfig(seed=4, crowd_rate=0), clock=clock)
    engine = make_engine(sqlite_url, clock, sandbox, persona("ada"))
    await engine.start()
    await engine.run_until(clock.now() + 5 * DAY)
    samples = [r._mapping for r in await rows(engine, post_metrics)]
    by_post: dict[str, list[Any]] = {}
    for s in samples:
        by_post.setdefault(s["post_id"], []).append(s)
    assert len(by_post) >= 20
    hours = (1, 6, 24, 72)
    for post_id, taken in by_post.items():
        for s in taken:  # each slot on time: at most a tenth of its delay early, at most a few minutes late
            delay = hours[s["slot"]] * HOUR
            assert s["posted_at"] + 0.9 * delay <= s["sampled_at"] <= s["posted_at"] + delay + 600, (post_id, s["slot"])
    old = [t for t in by_post.values() if t[0]["posted_at"] < clock.now() - 73 * HOUR]
    assert old and all(sorted(s["slot"] for s in t) == [0, 1, 2, 3] for t in old)
    grown = [t for t in old if sorted(t, key=lambda s: s["slot"])[-1]["impressions"] > t[0]["impressions"]]
    assert len(grown) == len(old)  # impressions grow between the 1 h and the 72 h sample
    finished = [e._mapping for e in await sample_events(engine) if e.status == "done"]
    assert all(e["result"]["calls"] <= 1 for e in finished)  # one agent, few posts: one lookup at most
    assert not [e for e in await sample_events(engine) if e.status == "failed"]

    # Memory: every settled post's memory carries the importance of its latest score.
    last_score: dict[str, float] = {}
    moves: list[float] = []
    expected = Mood()
    for e in sorted(finished, key=lambda e: e["finished_at"]):
        last_score.update(e["result"].get("scores", {}))
        moves.extend(e["result"].get("mood_moves", []))
        for m in e["result"].get("mood_moves", []):
            expected = after_engagement(expected, m)
        expected = Mood.from_state(expected.to_state())  # stored rounded after each event
    memories = await engine.memory.list_memories("ada", kind="post", limit=500)
    by_id = {m.metadata.get("external_id"): m for m in memories}
    assert len(last_score) >= 15
    assert {by_id[p].importance for p in last_score} == {importance_for(s) for s in last_score.values()}
    assert min(m.importance for m in by_id.values() if m.metadata["external_id"] in last_score) < 0.4
    assert max(m.importance for m in by_id.values() if m.metadata["external_id"] in last_score) > 0.4
    # Mood: moved once per settled post by its score, from where it started (no drift here).
    assert len(moves) == len(last_score) and any(m > 0 for m in moves) and any(m < 0 for m in moves)
    state = await engine.services.states.stored("ada")
    assert state is not None and Mood.from_state(state.mood) == expected
    await engine.stop()


async def test_a_spent_window_leaves_the_rest_for_later_and_nothing_is_lost(sqlite_url: str) -> None:
    clock = VirtualClock()
    sandbox = Sandbox(SandboxConfig(seed=4, crowd_rate=0), clock=clock)
    # One metrics lookup per 6 hours: most rounds find the window spent.
    sandbox.service("x").limits.set_profile("payg", {"GET /2/tweets": {"user": 1, "app": 1, "window": 6 * HOUR}})
    engine = make_engine(sqlite_url, clock, sandbox, persona("bo", min_h=1, max_h=2))
    await engine.start()
    await engine.run_until(clock.now() + 4 * DAY)
    done = [e._mapping for e in await sample_events(engine) if e.status == "done"]
    assert any(e["result"]["rate_limited"] for e in done)
    assert not [e for e in await sample_events(engine) if e.status == "failed"]
    stats = sandbox.service("x").stats
    refused = int(stats.get("429", 0))
    lookups = sum(e["result"]["calls"] for e in done)
    assert lookups <= 4 * 4 + 1  # one per 6-hour window
    assert refused <= 2  # the limiter knows the window from the headers: it does not knock again
    per_post = Counter(r._mapping["post_id"] for r in await rows(engine, post_metrics))
    assert len(per_post) >= 30 and max(per_post.values()) <= 4
    # Each lookup carried every post due then (one call for many posts), and late slots were taken.
    assert sum(per_post.values()) > 2 * lookups
    await engine.stop()


def circular_distance(hours: list[int], target: int) -> float:
    return sum(min(abs(h - target), 24 - abs(h - target)) for h in hours) / len(hours)


async def test_learning_moves_peak_hours_toward_what_the_crowd_rewards(sqlite_url: str) -> None:
    """Two agents alike but for the opt-in: only the learner's peak hours move, towards the
    crowd's busy hours, and its later posts go out in them more often than the other's."""
    clock = VirtualClock()
    sandbox = Sandbox(SandboxConfig(seed=9, crowd_rate=0), clock=clock)
    night = [3, 4, 5, 6]  # when the sandbox crowd sleeps (it is busiest around 17:00 UTC)
    engine = make_engine(sqlite_url, clock, sandbox, persona("cy", min_h=1, max_h=5, peak=night, learn=True),
                         persona("di", min_h=1, max_h=5, peak=night, learn=False))
    await engine.start()
    start = clock.now()
    await engine.run_until(start + 6 * DAY)
    learner, other = await engine.services.states.stored("cy"), await engine.services.states.stored("di")
    assert learner is not None and other is not None
    assert other.learned_peak_hours is None  # opt-in: nothing learnt, its schedule is the persona's
    learned = learner.learned_peak_hours
    assert learned is not None and len(learned) == 4
    assert circular_distance(learned, 17) < circular_distance(night, 17) - 4
    await engine.run_until(clock.now() + 6 * DAY)

    async def share_in_learned(agent_id: str) -> float:
        async with engine.db.connect() as conn:
            times = [r[0] for r in (await conn.execute(sa.select(post_metrics.c.posted_at).where(
                post_metrics.c.agent_id == agent_id, post_metrics.c.slot == 0,
                post_metrics.c.posted_at >= start + 7 * DAY))).fetchall()]
        assert len(times) >= 10
        return sum(1 for t in times if int(t // HOUR) % 24 in learned) / len(times)

    assert await share_in_learned("cy") > await share_in_learned("di") + 0.1
    await engine.stop()
