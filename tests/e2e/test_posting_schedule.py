"""Posting end to end: persisted schedules survive restarts without double posts or bursts."""

from __future__ import annotations

import sqlalchemy as sa

from puppet_engine.clock import VirtualClock
from puppet_engine.engine import Engine, EngineOptions
from puppet_engine.persona import parse_agent_config
from puppet_engine.settings import Settings
from puppet_engine.simulate import simulate
from puppet_engine.storage.tables import actions, events

HOUR = 3600.0


def persona(agent_id: str, min_h: float = 2, max_h: float = 4) -> dict:
    return {
        "id": agent_id, "name": agent_id.title(), "llm_provider": "fake",
        "personality": {"traits": ["curious", "dry"], "interests": ["validators", "tea", "old maps"],
                        "speaking_style": "short and plain"},
        "style_guide": {"formatting": {"uses_hashtags": False, "uses_emojis": False},
                        "vocabulary": {"key_terms": ["ledger"]}},
        "behavior": {"post_frequency": {"min_hours_between_posts": min_h, "max_hours_between_posts": max_h}},
    }


def make_engine(url: str, clock: VirtualClock, *agents: dict) -> Engine:
    from puppet_engine.sandbox import Sandbox, SandboxConfig

    settings = Settings(database_url=url, embedder="hashing", _env_file=None)  # type: ignore[call-arg]
    configs = [parse_agent_config(a) for a in agents]
    return Engine(settings, EngineOptions(agents=configs, clock=clock, seed=1,
                                          sandbox=Sandbox(SandboxConfig(), clock=clock)))


async def post_count(engine: Engine, agent_id: str) -> int:
    async with engine.db.connect() as conn:
        q = sa.select(sa.func.count()).select_from(actions).where(
            actions.c.agent_id == agent_id, actions.c.kind.in_(("post", "thread")), actions.c.status == "done")
        return int((await conn.execute(q)).scalar() or 0)


async def pending_posts(engine: Engine, agent_id: str) -> list[float]:
    async with engine.db.connect() as conn:
        q = sa.select(events.c.due_at).where(events.c.agent_id == agent_id, events.c.type == "post.due",
                                             events.c.status == "pending")
        return [r[0] for r in (await conn.execute(q)).fetchall()]


async def run_to(engine: Engine, clock: VirtualClock, until: float) -> None:
    await engine.run_until(until)


async def test_restart_does_not_post_early_or_twice(sqlite_url: str) -> None:
    clock = VirtualClock()
    engine = make_engine(sqlite_url, clock, persona("ada"))
    await engine.start()
    await run_to(engine, clock, clock.now() + 1 * HOUR)  # the first post is due within 2 minutes
    assert await post_count(engine, "ada") == 1
    [due] = await pending_posts(engine, "ada")
    await engine.stop()

    again = make_engine(sqlite_url, clock, persona("ada"))
    await again.start()
    await again.events.run_until_idle()
    assert await post_count(again, "ada") == 1
    assert await pending_posts(again, "ada") == [due]  # the same schedule, not a new one
    await again.stop()


async def test_agent_down_longer_than_its_max_gap_posts_once_not_a_burst(sqlite_url: str) -> None:
    clock = VirtualClock()
    engine = make_engine(sqlite_url, clock, persona("bo"))
    await engine.start()
    await run_to(engine, clock, clock.now() + 1 * HOUR)
    await engine.stop()
    assert await post_count(engine, "bo") == 1

    clock.advance(40 * HOUR)  # ten max gaps
    again = make_engine(sqlite_url, clock, persona("bo"))
    await again.start()
    await again.events.run_until_idle()
    assert await post_count(again, "bo") == 2
    [due] = await pending_posts(again, "bo")
    assert clock.now() + 2 * HOUR <= due <= clock.now() + 4 * HOUR
    await again.stop()


async def test_posts_are_validated_and_never_repeat(sqlite_url: str) -> None:
    clock = VirtualClock()
    engine = make_engine(sqlite_url, clock, persona("cy", 0.5, 1))
    await engine.start()
    await run_to(engine, clock, clock.now() + 24 * HOUR)
    async with engine.db.connect() as conn:
        rows = (await conn.execute(sa.select(actions.c.payload).where(actions.c.agent_id == "cy"))).fetchall()
    texts = [r[0]["text"] for r in rows]
    assert len(texts) >= 20
    assert len(set(texts)) == len(texts)
    assert not any("#" in t for t in texts)
    await engine.stop()


async def test_simulated_day_post_counts_match_configured_gaps(tmp_path) -> None:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'sim.db'}", embedder="hashing", _env_file=None)  # type: ignore[call-arg]
    configs = [parse_agent_config(persona("fast", 1, 2)), parse_agent_config(persona("slow", 6, 8))]
    report = await simulate(settings, EngineOptions(agents=configs, seed=3), hours=24)
    fast, slow = report.agents["fast"], report.agents["slow"]
    assert 12 <= fast["posts"] <= 25  # 24 h / 2 h … 24 h / 1 h (+ the first post)
    assert 3 <= slow["posts"] <= 5
    assert fast["failed_events"] == 0 and slow["failed_events"] == 0
    assert report.virtual_hours == 24
